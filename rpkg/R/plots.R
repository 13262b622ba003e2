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
#' @param ... Passed to [image_gallery()] for `"misclassified"`, to [cnn_heatmaps()] for `"heatmap"` (e.g.
#'   `method`, `target`).
#' @return A ggplot object.
#' @method autoplot cnn_fit
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 3, image_size = 64)
#' autoplot(fit)
#' autoplot(fit, type = "confusion")
#' autoplot(fit, type = "misclassified")
#' autoplot(fit, type = "calibration")
#' autoplot(fit, type = "heatmap", n = 4)
#' }
autoplot.cnn_fit <- function(object, type = c("curves", "confusion", "misclassified", "calibration", "pr", "roc",
                                              "heatmap"),
                             split = "val", n = 16L, images = NULL, ...) {
  type <- match.arg(type)
  switch(type,
    curves = plot_curves(object),
    confusion = plot_confusion(cnn_confusion(object, split)),
    misclassified = plot_misclassified(cnn_misclassified(object, split), n, ...),
    calibration = plot_calibration(object, split),
    pr = plot_curve(object, split, "pr"),
    roc = plot_curve(object, split, "roc"),
    heatmap = heatmap_gallery(cnn_heatmaps(object, images, n = n, split = if (is.null(images)) split, ...), n = n)
  )
}

#' @rdname autoplot.cnn_fit
#' @method autoplot cnn_evaluation
#' @export
autoplot.cnn_evaluation <- function(object, type = c("confusion", "misclassified"), split = NULL, n = 16L, ...) {
  type <- match.arg(type)
  switch(type,
    confusion = plot_confusion(cnn_confusion(object, split)),
    misclassified = plot_misclassified(cnn_misclassified(object, split), n, ...)
  )
}

plot_curves <- function(fit) {
  history <- cnn_history(fit)
  long <- rbind(
    data.frame(epoch = history$epoch, split = history$split, measure = "loss", value = history$loss),
    data.frame(epoch = history$epoch, split = history$split, measure = "accuracy", value = history$accuracy)
  )
  long$measure <- factor(long$measure, levels = c("loss", "accuracy"))
  long$split <- factor(long$split, levels = c("train", "val"), labels = c("training", "validation"))
  best <- fit$description$best_epoch
  selected_on <- fit$description$hyperparameters$select_on %||% "accuracy"
  plot <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value, colour = .data$split)) +
    ggplot2::geom_line() +
    ggplot2::geom_point(size = 1.5) +
    ggplot2::facet_wrap(ggplot2::vars(.data$measure), ncol = 1, scales = "free_y") +
    ggplot2::scale_x_continuous(breaks = function(limits) unique(round(pretty(limits)))) +
    ggplot2::labs(x = "epoch", y = NULL, colour = NULL,
                  title = "Training curves",
                  subtitle = if (is.null(best)) NULL else
                    sprintf("dashed line: the kept epoch (%d), best validation %s", best, selected_on)) +
    ggplot2::theme_minimal() +
    ggplot2::theme(legend.position = "bottom")
  if (!is.null(best)) plot <- plot + ggplot2::geom_vline(xintercept = best, linetype = "dashed", colour = "grey40")
  plot
}

plot_confusion <- function(confusion) {
  ggplot2::ggplot(confusion, ggplot2::aes(x = .data$predicted, y = .data$truth, fill = .data$count)) +
    ggplot2::geom_tile(colour = "white") +
    ggplot2::geom_text(ggplot2::aes(label = .data$count)) +
    ggplot2::scale_y_discrete(limits = rev) +
    ggplot2::scale_fill_gradient(low = "grey95", high = "steelblue") +
    ggplot2::facet_wrap(ggplot2::vars(.data$split)) +
    ggplot2::coord_equal() +
    ggplot2::labs(x = "predicted", y = "true label", fill = "images", title = "Confusion matrix") +
    ggplot2::theme_minimal() +
    ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 45, hjust = 1), panel.grid = ggplot2::element_blank())
}

plot_misclassified <- function(wrong, n, ...) {
  if (!nrow(wrong)) return(empty_plot("No misclassified images"))
  wrong <- utils::head(wrong, n)
  wrong$caption <- sprintf("%s\ntrue: %s\npredicted: %s (%.2f)", wrong$image_id, wrong$label, wrong$predicted,
                           wrong$probability)
  image_gallery(wrong, caption = "caption", n = n, ...) +
    ggplot2::labs(title = "Misclassified images", subtitle = "most confident mistakes first")
}

empty_plot <- function(text) {
  ggplot2::ggplot() +
    ggplot2::annotate("text", x = 0, y = 0, label = text) +
    ggplot2::theme_void()
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
  } else if ("image_id" %in% names(data)) as.character(data$image_id) else basename(data$path)
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
    ggplot2::theme_void() +
    ggplot2::theme(strip.text = ggplot2::element_text(size = 8))
}
