# ggplot2 diagnostics: training curves (the book's Figures 7.4 and 7.5), confusion heatmaps, and galleries of
# images (thumbnails made by the engine, which reads every image format; drawn with geom_raster).

#' Plot a fitted CNN: training curves, confusion matrix, or misclassified images
#'
#' @param object A `cnn_fit` (or a `cnn_evaluation`, for `"confusion"` and `"misclassified"`).
#' @param type `"curves"`: loss and accuracy by epoch, training against validation, with the kept epoch
#'   marked (the book's Figures 7.4 and 7.5); `"confusion"`: a heatmap of the confusion matrix;
#'   `"misclassified"`: a gallery of the misclassified images with their true and predicted labels;
#'   `"heatmap"`: where the model looks ([cnn_heatmaps()]) in `images`, or in the top losses;
#'   `"calibration"`: the reliability diagram before and after temperature scaling ([cnn_calibration()]);
#'   `"pr"` and `"roc"`: binary tasks' precision-recall and ROC curves ([cnn_thresholds()]).
#' @param split For `"confusion"`, `"misclassified"`, `"calibration"`, `"pr"` and `"roc"`: which split to show
#'   (default `"val"` for a fit, all for an evaluation); for `"heatmap"` without `images`, the split of the top
#'   losses.
#' @param n For `"misclassified"` and `"heatmap"`: show at most this many images, most confident mistakes (or
#'   largest losses) first.
#' @param images For `"heatmap"`: the images (as [cnn_heatmaps()] takes them); `NULL`: the top losses.
#' @param normalize For `"confusion"`: `"none"` colours the tiles by their counts; `"row"` by the share of each
#'   true class (each row sums to 100%), which reads better when the classes are imbalanced. The tiles show the
#'   counts either way (and the shares with `"row"`).
#' @param accuracy_limits For `"curves"`: the accuracy panel's y range, `c(0, 1)` by default so that small changes
#'   look small; `NULL` fits it to the data. The dotted line is the majority-class rate: the validation accuracy
#'   of always predicting the most common class.
#' @param title,subtitle The plot's title and subtitle: the default describes the plot; `NULL` drops it; or any
#'   text.
#' @param ... For `"misclassified"`, passed to [image_gallery()] (`ncol`, `size`); for `"heatmap"`, to
#'   [cnn_heatmaps()] (e.g. `method`, `target`); otherwise must be empty.
#' @return A ggplot object.
#' @method autoplot cnn_fit
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 3, image_size = 64)
#' autoplot(fit)
#' autoplot(fit, type = "confusion", normalize = "row", title = "Who is this?")
#' autoplot(fit, type = "misclassified")
#' autoplot(fit, type = "calibration")
#' autoplot(fit, type = "heatmap", n = 4)
#' }
autoplot.cnn_fit <- function(object, type = c("curves", "confusion", "misclassified", "calibration", "pr", "roc",
                                              "heatmap"),
                             split = "val", n = 16L, images = NULL, normalize = c("none", "row"),
                             accuracy_limits = c(0, 1), title = ggplot2::waiver(), subtitle = ggplot2::waiver(), ...) {
  type <- arg_choice(type, c("curves", "confusion", "misclassified", "calibration", "pr", "roc", "heatmap"), "type")
  normalize <- arg_choice(normalize, c("none", "row"), "normalize")
  if (type == "misclassified") {
    check_dots(..., .allowed = c("ncol", "size"))
  } else if (type == "heatmap") {
    check_dots(..., .allowed = setdiff(names(formals(cnn_heatmaps)), c("object", "images", "n", "split", "...")))
  } else {
    check_dots(...)
  }
  plot <- switch(type,
    curves = plot_curves(object, unlist(arg_range(accuracy_limits, "accuracy_limits"))),
    confusion = plot_confusion(cnn_confusion(object, split), normalize),
    misclassified = plot_misclassified(cnn_misclassified(object, split), n, ...),
    calibration = plot_calibration(object, split),
    pr = plot_curve(object, split, "pr"),
    roc = plot_curve(object, split, "roc"),
    heatmap = heatmap_gallery(cnn_heatmaps(object, images, n = n, split = if (is.null(images)) split, ...), n = n)
  )
  with_titles(plot, title, subtitle)
}

#' @rdname autoplot.cnn_fit
#' @method autoplot cnn_evaluation
#' @export
autoplot.cnn_evaluation <- function(object, type = c("confusion", "misclassified"), split = NULL, n = 16L,
                                    normalize = c("none", "row"), title = ggplot2::waiver(),
                                    subtitle = ggplot2::waiver(), ...) {
  type <- arg_choice(type, c("confusion", "misclassified"), "type")
  normalize <- arg_choice(normalize, c("none", "row"), "normalize")
  if (type == "misclassified") check_dots(..., .allowed = c("ncol", "size")) else check_dots(...)
  plot <- switch(type,
    confusion = plot_confusion(cnn_confusion(object, split), normalize),
    misclassified = plot_misclassified(cnn_misclassified(object, split), n, ...)
  )
  with_titles(plot, title, subtitle)
}

# Text wrapped to fit a plot at the default device size (7 in wide at ggplot2's 11 pt base: about 85 characters).
# Titles, subtitles and captions span the whole plot, not only the panel: with long axis labels or a square panel
# (coord_fixed) a panel-aligned subtitle runs off the device.
text_spans_plot <- function() {
  ggplot2::theme(plot.title.position = "plot", plot.caption.position = "plot")
}

wrap_text <- function(text, width = 80L) {
  if (is.null(text) || !length(text)) return(NULL)
  paste(strwrap(paste(text, collapse = " "), width = width), collapse = "\n")
}

# A short id for a gallery caption: never an absolute path (the folder and the file's name instead).
short_id <- function(id) {
  id <- as.character(id)
  long <- !is.na(id) & (startsWith(id, "/") | grepl("^[A-Za-z]:[/\\\\]", id) | nchar(id) > 24)
  id[long] <- file.path(basename(dirname(id[long])), basename(id[long]))
  id
}

# A title given by the user (text, or NULL for none) replaces the plot's own; waiver() keeps it.
with_titles <- function(plot, title, subtitle) {
  if (!inherits(title, "waiver")) plot <- plot + ggplot2::labs(title = title)
  if (!inherits(subtitle, "waiver")) plot <- plot + ggplot2::labs(subtitle = subtitle)
  plot
}

# Readable names of splits in facets and legends.
split_label <- function(split) {
  names <- c(train = "training", val = "validation", test = "test")
  out <- ifelse(split %in% names(names), names[split], split)
  unname(out)
}

# The accuracy of always predicting the most common class of the validation images.
majority_rate <- function(fit) {
  splits <- fit$splits
  if (is.null(splits)) return(NULL)
  labels <- splits$label[splits$split %in% "val"]
  if (!length(labels)) return(NULL)
  max(table(as.character(labels))) / length(labels)
}

plot_curves <- function(fit, accuracy_limits = c(0, 1)) {
  history <- cnn_history(fit)
  long <- rbind(
    data.frame(epoch = history$epoch, split = history$split, measure = "loss", value = history$loss),
    data.frame(epoch = history$epoch, split = history$split, measure = "accuracy", value = history$accuracy)
  )
  long$measure <- factor(long$measure, levels = c("loss", "accuracy"))
  long$split <- factor(split_label(long$split), levels = c("training", "validation"))
  best <- fit$description$best_epoch
  selected_on <- fit$description$hyperparameters$select_on %||% "accuracy"
  majority <- majority_rate(fit)
  notes <- c(if (!is.null(best)) sprintf("dashed line: the kept epoch (%d), best validation %s", best, selected_on),
             if (!is.null(majority)) sprintf("dotted line: always predicting the largest class (%.2f)", majority))
  plot <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value, colour = .data$split)) +
    ggplot2::geom_line() +
    ggplot2::geom_point(size = 1.5) +
    ggplot2::facet_wrap(ggplot2::vars(.data$measure), ncol = 1, scales = "free_y") +
    ggplot2::scale_x_continuous(breaks = function(limits) unique(round(pretty(limits)))) +
    ggplot2::labs(x = "epoch", y = NULL, colour = NULL, title = "Training curves",
                  subtitle = if (length(notes)) wrap_text(paste(notes, collapse = "; ")) else NULL) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom")
  if (!is.null(accuracy_limits)) {
    # both ends of the range drawn invisibly in the accuracy panel, so its free axis spans at least them
    ends <- data.frame(measure = factor("accuracy", levels = levels(long$measure)), value = accuracy_limits,
                       epoch = min(long$epoch))
    plot <- plot + ggplot2::geom_blank(data = ends, ggplot2::aes(x = .data$epoch, y = .data$value),
                                       inherit.aes = FALSE)
  }
  if (!is.null(majority)) {
    reference <- data.frame(measure = factor("accuracy", levels = levels(long$measure)), value = majority)
    plot <- plot + ggplot2::geom_hline(data = reference, ggplot2::aes(yintercept = .data$value), linetype = "dotted",
                                       colour = "grey30")
  }
  if (!is.null(best)) plot <- plot + ggplot2::geom_vline(xintercept = best, linetype = "dashed", colour = "grey40")
  plot
}

plot_confusion <- function(confusion, normalize = "none") {
  confusion <- as.data.frame(confusion)
  totals <- stats::ave(confusion$count, confusion$split, confusion$truth, FUN = sum)
  confusion$share <- ifelse(totals > 0, confusion$count / totals, NA_real_)
  images <- tapply(confusion$count, confusion$split, sum)
  confusion$facet <- factor(sprintf("%s (%d images)", split_label(confusion$split), images[confusion$split]),
                            levels = unique(sprintf("%s (%d images)", split_label(confusion$split),
                                                    images[confusion$split])))
  by_row <- identical(normalize, "row")
  confusion$text <- if (by_row) sprintf("%d\n%.0f%%", confusion$count, 100 * confusion$share)
                    else as.character(confusion$count)
  fill <- if (by_row) "share" else "count"
  whole <- function(limits) {
    breaks <- pretty(limits)
    breaks[breaks == round(breaks) & breaks >= 0]
  }
  scale <- if (by_row) {
    ggplot2::scale_fill_gradient(low = "grey95", high = "steelblue", limits = c(0, 1),
                                 labels = function(x) sprintf("%.0f%%", 100 * x), name = "share of\ntrue class")
  } else {
    ggplot2::scale_fill_gradient(low = "grey95", high = "steelblue", breaks = whole,
                                 labels = function(x) format(as.integer(round(x))), name = "images")
  }
  ggplot2::ggplot(confusion, ggplot2::aes(x = .data$.pred_class, y = .data$truth, fill = .data[[fill]])) +
    ggplot2::geom_tile(colour = "white") +
    ggplot2::geom_text(ggplot2::aes(label = .data$text), size = 3.2) +
    ggplot2::scale_y_discrete(limits = rev) +
    scale +
    ggplot2::facet_wrap(ggplot2::vars(.data$facet)) +
    ggplot2::coord_equal() +
    ggplot2::labs(x = "predicted", y = "true label", title = "Confusion matrix",
                  subtitle = if (by_row) "colour: share of each true class (rows sum to 100%)" else NULL) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 45, hjust = 1), panel.grid = ggplot2::element_blank())
}

plot_misclassified <- function(wrong, n, ...) {
  if (!nrow(wrong)) return(empty_plot("No misclassified images"))
  wrong <- utils::head(wrong, n)
  # short lines: three thumbnails abreast at 7 in leave each caption about 20 characters
  wrong$caption <- sprintf("%s\n%spredicted: %s\nprobability %.2f", short_id(wrong$image_id),
                           ifelse(is.na(wrong$label), "", sprintf("true: %s\n", wrong$label)), wrong$.pred_class,
                           wrong$probability)
  image_gallery(wrong, caption = "caption", n = n, ...) +
    ggplot2::labs(title = "Misclassified images", subtitle = "most confident mistakes first")
}

empty_plot <- function(text) {
  ggplot2::ggplot() +
    ggplot2::annotate("text", x = 0, y = 0, label = text) +
    ggplot2::theme_void() + text_spans_plot()
}

#' A gallery of images
#'
#' Thumbnails of the images in a table (any format the engine reads), one panel each, captioned — e.g. the
#' misclassified images of [cnn_misclassified()], or a sample of a corpus.
#'
#' @param data A data frame with a `path` column (such as [image_table()], [predict.cnn_fit()] or
#'   [cnn_misclassified()] return).
#' @param caption Name of the column that captions each image (default: `image_id` when present, else the file
#'   name).
#' @param n Show at most this many images (the first `n` rows).
#' @param ncol Number of columns of the grid (default: chosen by ggplot2).
#' @param size Longest side of each thumbnail in pixels.
#' @return A ggplot object. Images that cannot be read are left out and counted in the plot's caption.
#' @export
#' @examplesIf engine_available()
#' faces <- image_table(file.path(sample_data(), "faces"))
#' image_gallery(faces[faces$label == "s1", ], caption = "image_id") +
#'   ggplot2::labs(caption = "Images: ORL face database, Olivetti Research Laboratory")
image_gallery <- function(data, caption = NULL, n = 16L, ncol = NULL, size = 96L) {
  if (!is.data.frame(data) || !"path" %in% names(data)) abort_argument("`data` must be a data frame with a path column")
  n <- arg_count(n, "n")
  size <- arg_count(size, "size")
  data <- utils::head(data, n)
  if (!nrow(data)) return(empty_plot("No images"))
  labels <- if (!is.null(caption)) {
    if (!arg_string(caption, "caption") %in% names(data)) abort_argument(sprintf("no column `%s` in `data`", caption))
    as.character(data[[caption]])
  } else if ("image_id" %in% names(data)) short_id(data$image_id) else basename(data$path)
  labels <- make.unique(ifelse(is.na(labels), basename(as.character(data$path)), labels), sep = " ")
  pixels <- as_tibble_engine(engine_call(bridge()$thumbnails, as.list(as.character(data$path)), max_side = size))
  unreadable <- unique(pixels$image[!is.na(pixels$error)])
  pixels <- pixels[is.na(pixels$error), ]
  pixels$caption <- factor(labels[pixels$image], levels = labels)
  note <- if (length(unreadable)) sprintf("%d image(s) could not be read", length(unreadable)) else NULL
  ggplot2::ggplot(pixels, ggplot2::aes(x = .data$x, y = .data$y, fill = .data$colour)) +
    ggplot2::geom_raster() +
    ggplot2::scale_fill_identity() +
    ggplot2::scale_y_reverse() +
    ggplot2::facet_wrap(ggplot2::vars(.data$caption), ncol = ncol) +
    ggplot2::coord_fixed() +
    ggplot2::labs(caption = note) +
    ggplot2::theme_void() + text_spans_plot() +
    ggplot2::theme(strip.text = ggplot2::element_text(size = 8, margin = ggplot2::margin(3, 0, 3, 0)),
                   plot.margin = ggplot2::margin(6, 6, 6, 6))
}
