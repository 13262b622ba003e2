# Autotaggers validated against manual labels (the book's section 6): Amazon Rekognition, the offline ImageNet
# tagger, the comparison with manual labels and label frequencies (Figures 6.3 and 6.4). Mirrors
# python/imagesasdata/autotag/.

#' Label images with Amazon Rekognition
#'
#' `rekognition_labels()` calls DetectLabels (one row per image x label); `rekognition_celebrities()` calls
#' RecognizeCelebrities (one row per image x celebrity). Made safe, cheap and checkable:
#' * credentials come from the standard AWS chain only (environment variables, `~/.aws/credentials`, a
#'   `profile`, an instance role); no function takes a key, and no key lands in a table, cache or message;
#' * never pay twice: identical files are asked about once, and every answer is stored in a response cache the
#'   moment it arrives, so a rerun (or a run after an interruption) only asks for what is missing;
#'   `dry_run = TRUE` counts the calls and prices them, sending nothing;
#' * a killed run costs at most the requests in flight when it died (at most `concurrency`): each request is
#'   recorded before it is sent, so the next run says how many there were and asks about them again (or, with
#'   `resend_in_flight = FALSE`, does not: no image is ever sent twice, and those images get an `error`);
#' * images are made to fit the service's limits; throttling is retried (botocore's adaptive mode); one image's
#'   failure is a row with an `error`, never the end of the run.
#'
#' @param images A folder, image paths (a character vector), a CSV/Parquet file or a data frame with a path
#'   column.
#' @param min_confidence Labels below this confidence (0-100) are not returned (55 is the service's default).
#' @param max_labels At most this many labels per image (`NULL`: the service's choice).
#' @param cache Folder of the response cache (default: `IMAGESASDATA_AUTOTAG_CACHE`, else
#'   `~/.cache/imagesasdata/autotag`).
#' @param region,endpoint_url,profile Where to send the calls (`endpoint_url`: e.g. a local test server) and
#'   whose credentials (an AWS profile name).
#' @param concurrency Calls in flight at once.
#' @param max_attempts botocore's retry budget per call.
#' @param dry_run Count the calls and estimate their cost; send nothing.
#' @param price_per_1000 USD per 1,000 images, for the estimate (default: the published price of the first
#'   million images a month).
#' @param progress Show a progress bar (default: only in an interactive session).
#' @param resend_in_flight Ask again about images whose requests a killed run had sent without recording the
#'   answer (the service may have billed them once already). `FALSE` never sends an image twice; those images
#'   get a row with an `error` naming this argument.
#' @return A tibble, one row per image x label: `image_id`, `path`, `image_sha256`, `tagger`, `label`,
#'   `confidence` (0-100), `label_rank` (1 = most confident), `parents`, `aliases` and `categories` (list columns
#'   of character vectors), `instances`, `bounding_boxes` (a list column of data frames: `left`, `top`, `width`,
#'   `height`, `confidence`), `label_model_version` and `error`. An image with no label is one row with `NA`
#'   label; an image that failed is one row with its `error`. With `dry_run = TRUE`: a one-row plan (`operation`,
#'   `images`, `distinct_images`, `unreadable`, `cached`, `calls`, `price_per_1000`, `estimated_cost_usd`), and the
#'   estimate as a message.
#' @seealso [autotag_local()] (nothing leaves the machine), [compare_tags()], [label_frequencies()]
#' @export
#' @examples
#' \dontrun{
#' examples <- "path/to/images"
#' rekognition_labels(examples, dry_run = TRUE)     # what it would cost; nothing is sent
#' tags <- rekognition_labels(examples)
#' celebrities <- rekognition_celebrities(examples)
#' }
rekognition_labels <- function(images, min_confidence = 55, max_labels = NULL, cache = NULL, region = NULL,
                               endpoint_url = NULL, profile = NULL, concurrency = 4L, max_attempts = 10L,
                               dry_run = FALSE, price_per_1000 = 1, progress = interactive(),
                               resend_in_flight = TRUE) {
  tag_call(engine()$rekognition_labels, images, dry_run, c(
    list(min_confidence = arg_number(min_confidence, "min_confidence"),
         max_labels = arg_count(max_labels, "max_labels", null = TRUE)),
    aws_options(cache, region, endpoint_url, profile, concurrency, max_attempts, price_per_1000, progress,
                resend_in_flight)
  ))
}

#' @rdname rekognition_labels
#' @return `rekognition_celebrities()`: a tibble, one row per image x celebrity: `image_id`, `path`,
#'   `image_sha256`, `tagger`, `celebrity`, `celebrity_id`, `match_confidence` (0-100), `celebrity_rank`, `urls` (a
#'   list column), `known_gender`, `face_confidence`, `face_box` (a data-frame column: `left`, `top`, `width`,
#'   `height`), `unrecognized_faces` and `error`; an image with nobody recognised is one row with `NA` celebrity.
#' @export
rekognition_celebrities <- function(images, cache = NULL, region = NULL, endpoint_url = NULL, profile = NULL,
                                    concurrency = 4L, max_attempts = 10L, dry_run = FALSE, price_per_1000 = 1,
                                    progress = interactive(), resend_in_flight = TRUE) {
  tag_call(engine()$rekognition_celebrities, images, dry_run,
           aws_options(cache, region, endpoint_url, profile, concurrency, max_attempts, price_per_1000, progress,
                       resend_in_flight))
}

aws_options <- function(cache, region, endpoint_url, profile, concurrency, max_attempts, price_per_1000, progress,
                        resend_in_flight) {
  list(cache = if (is.null(cache)) NULL else path.expand(arg_string(cache, "cache")),
       region = arg_string(region, "region", null = TRUE),
       endpoint_url = arg_string(endpoint_url, "endpoint_url", null = TRUE),
       profile = arg_string(profile, "profile", null = TRUE),
       concurrency = arg_count(concurrency, "concurrency"), max_attempts = arg_count(max_attempts, "max_attempts"),
       price_per_1000 = arg_number(price_per_1000, "price_per_1000"), progress = arg_flag(progress, "progress"),
       resend_in_flight = arg_flag(resend_in_flight, "resend_in_flight"))
}

tag_call <- function(fun, images, dry_run, options) {
  dry_run <- arg_flag(dry_run, "dry_run")
  args <- c(list(arg_images(images, "images")), options, dry_run = dry_run)
  # A dry run prints its estimate in the engine; here it becomes an R message.
  result <- if (dry_run) engine_call_printed(fun, args) else engine_call_list(fun, args)
  as_tibble_engine(result)
}

#' Tag images on this machine with an ImageNet network
#'
#' The offline EfficientNet-Lite0's top `top_k` ImageNet labels, in the table shape of [rekognition_labels()]:
#' nothing leaves the machine (the book's privacy argument), nothing is paid per call, and the same weights give
#' the same labels next year. The vocabulary is ImageNet's 1,000 categories, narrower than Rekognition's and
#' without its hierarchy, so `parents`, `instances` and `bounding_boxes` stay empty.
#'
#' @inheritParams rekognition_labels
#' @param top_k Labels per image.
#' @param min_confidence Drop labels below this percentage (0-100).
#' @param batch_size Images per forward pass.
#' @param device `"auto"` (a GPU when there is one), `"cpu"`, `"cuda"`, ...
#' @param num_workers Threads decoding images (`NULL`: up to 8).
#' @return A tibble as [rekognition_labels()] returns, `tagger` `"efficientnet_lite0"`.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' tags <- autotag_local(file.path(sample_data(), "new_images"), top_k = 3, progress = FALSE)
#' label_frequencies(tags)
#' }
autotag_local <- function(images, top_k = 5L, min_confidence = 0, batch_size = 32L, device = "auto",
                          num_workers = NULL, progress = interactive()) {
  result <- engine_call(
    engine()$autotag_local, arg_images(images, "images"), top_k = arg_count(top_k, "top_k"),
    min_confidence = arg_number(min_confidence, "min_confidence"), batch_size = arg_count(batch_size, "batch_size"),
    device = arg_string(device, "device"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress")
  )
  as_tibble_engine(result)
}

# A tag table for the engine: a file path as is; a data frame without its list and data-frame columns (parents,
# bounding boxes, ...), which no comparison or count reads.
arg_tags <- function(x, name) {
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  if (!is.data.frame(x)) {
    abort_argument(sprintf("`%s` must be a tag table (rekognition_labels(), autotag_local(), ...) or its CSV/Parquet file, not %s",
                           name, describe_value(x)))
  }
  atomic <- vapply(x, function(column) is.atomic(column) && !is.data.frame(column), logical(1))
  engine_table(as.data.frame(x)[atomic])
}

#' Validate an autotagger against manual labels
#'
#' A tag (or any of several tags) is a proxy for a concept: "Crowd" for protest, "John Legend" for John Legend
#' (the book's Tables 6.1 and 6.2). An image is predicted positive when it carries a proxy tag at or above
#' `min_confidence`; the manual label says whether it truly is. Images whose tagging failed, without tags or
#' without a manual label are left out and listed in `$excluded`.
#'
#' @param tags A tag table ([rekognition_labels()], [rekognition_celebrities()], [autotag_local()] or any data
#'   frame with `image_id` and `label` or `celebrity` columns), or its CSV/Parquet file.
#' @param manual Manual labels: a data frame with one row per image, `by` and `manual_label` columns.
#' @param positive The tag, or tags, that count as a positive prediction (case-insensitive).
#' @param manual_positive The manual label that is the positive class (default: yes/true/1/positive, or of two
#'   labels the one matching a positive tag).
#' @param min_confidence Tags below this confidence (0-100) do not count.
#' @param manual_label,by The manual label column, and the image id column both tables share.
#' @param tag_column,confidence_column The tag and confidence columns (default: `label`/`confidence`, or
#'   `celebrity`/`match_confidence`).
#' @param tagger Which tagger's rows to use when the table holds several.
#' @return A `tag_comparison`: `confusion` (a tibble: `truth` and `.pred_class` as factors negative/positive, `cell`
#'   such as "true positive", `count`), `metrics` (accuracy, precision, recall, F1 of the positive class in
#'   [cnn_metrics()]'s shape: `.metric`, `.estimator`, `.estimate`, `class`, `n`, and the 95% interval `conf.low`,
#'   `conf.high`, `interval`), `per_image` (each image's
#'   `manual_label`, `truth`, `.pred_class`, `matched_tags` (a list column), `max_confidence`, `cell`), `excluded`
#'   (`image_id`, `reason`), `positive_tags`, `manual_positive` and `min_confidence`. Print it for the book's 2x2
#'   table; `autoplot()` draws the confusion matrix.
#' @export
#' @examplesIf engine_available()
#' tags <- data.frame(image_id = c("a", "a", "b", "c"), label = c("Crowd", "Person", "Person", "Crowd"),
#'                    confidence = c(91, 99, 98, 60))
#' manual <- data.frame(image_id = c("a", "b", "c"), protest = c("yes", "no", "yes"))
#' compare_tags(tags, manual, "Crowd", manual_label = "protest", min_confidence = 55)
compare_tags <- function(tags, manual, positive, manual_positive = NULL, min_confidence = 0, manual_label = "label",
                         by = "image_id", tag_column = NULL, confidence_column = NULL, tagger = NULL) {
  comparison <- engine_call(
    engine()$compare_tags, arg_tags(tags, "tags"), arg_table(manual, "manual"), arg_strings(positive, "positive"),
    manual_positive = arg_scalar(manual_positive, "manual_positive"),
    min_confidence = arg_number(min_confidence, "min_confidence"), manual_label = arg_string(manual_label, "manual_label"),
    by = arg_string(by, "by"), tag_column = arg_string(tag_column, "tag_column", null = TRUE),
    confidence_column = arg_string(confidence_column, "confidence_column", null = TRUE),
    tagger = arg_string(tagger, "tagger", null = TRUE)
  )
  classes <- c("negative", "positive")
  structure(list(
    confusion = as_tibble_engine(comparison$confusion, factors = c("truth", "predicted"), levels = classes,
                                 kind = "confusion"),
    metrics = metric_tibble(as_tibble_engine(comparison$metrics, kind = "metrics"), split = FALSE),
    per_image = prediction_tibble(comparison$per_image, classes, factors = c("truth", "predicted")),
    excluded = as_tibble_engine(comparison$excluded),
    positive_tags = as.character(unlist(py_value(comparison$positive_tags))),
    manual_positive = py_value(comparison$manual_positive),
    min_confidence = py_value(comparison$min_confidence),
    summary = py_value(comparison$summary())
  ), class = "tag_comparison")
}

#' @export
print.tag_comparison <- function(x, ...) {
  cat("<tag_comparison>", x$summary, sep = "\n")
  invisible(x)
}

#' @rdname compare_tags
#' @param object A `tag_comparison`.
#' @param normalize `"none"` or `"row"`: as for [autoplot.cnn_fit()]'s confusion matrix.
#' @param title,subtitle The plot's title and subtitle: the default describes the plot; `NULL` drops it; or any
#'   text.
#' @param ... Must be empty.
#' @method autoplot tag_comparison
#' @export
autoplot.tag_comparison <- function(object, normalize = c("none", "row"), title = ggplot2::waiver(),
                                    subtitle = ggplot2::waiver(), ...) {
  check_dots(...)
  normalize <- arg_match(normalize)
  confusion <- object$confusion
  confusion$split <- sprintf("%s as %s", paste(object$positive_tags, collapse = " or "), object$manual_positive)
  plot <- plot_confusion(confusion, normalize) +
    ggplot2::labs(x = "tagged", y = "manual label", title = "Tags against manual labels")
  with_titles(plot, title, subtitle)
}

#' Tidy, glance at and augment a tag comparison
#'
#' @param x A `tag_comparison` from [compare_tags()].
#' @param conf.int,conf.level As in broom: `conf.int = FALSE` leaves out the interval; another `conf.level`
#'   recomputes it (by the engine).
#' @param ... Must be empty.
#' @return `tidy()`: the metrics (yardstick's shape: `.metric`, `.estimator`, `.estimate`, `class`, `n`, `conf.low`,
#'   `conf.high`, `interval`). `glance()`: one row: `positive_tags`, `manual_positive`, `min_confidence`, `images`
#'   (compared), `excluded`, `accuracy`, `precision`, `recall` and `f_meas`. `augment()`: one row per compared image
#'   (`image_id`, `manual_label`, `truth`, `.pred_class`, `matched_tags`, `max_confidence`, `cell`).
#' @name tag_comparison_tidiers
#' @export
tidy.tag_comparison <- function(x, conf.int = TRUE, conf.level = 0.95, ...) {
  check_dots(...)
  tidy_interval(x$metrics, conf.int, conf.level, 0.95, function(level) {
    metrics_at_level(x$metrics, x$per_image, c("negative", "positive"), "positive", level, truth = "truth")
  })
}

#' @rdname tag_comparison_tidiers
#' @export
glance.tag_comparison <- function(x, ...) {
  check_dots(...)
  tibble::as_tibble(c(
    list(positive_tags = paste(x$positive_tags, collapse = ", "),
         manual_positive = as.character(x$manual_positive %||% NA_character_),
         min_confidence = as.double(x$min_confidence), images = nrow(x$per_image), excluded = nrow(x$excluded)),
    headline_values(x$metrics)
  ))
}

#' @rdname tag_comparison_tidiers
#' @export
augment.tag_comparison <- function(x, ...) {
  check_dots(...)
  x$per_image
}

#' How often each tag occurs, per tagger
#'
#' The counts behind the book's Figure 6.3 (the most frequent labels above a confidence) and, with several
#' taggers, its Figure 6.4 (label frequencies side by side). `autoplot()` draws them.
#'
#' @param tags A tag table, or a list of them (one per tagger, e.g. `list(rekognition_labels(x),
#'   autotag_local(x))`); a table without a `tagger` column takes its name in the list.
#' @param min_confidence Count tags at or above this confidence (0-100).
#' @param top_n Keep the `top_n` most frequent tags of each tagger (`NULL`: all).
#' @return A tibble of class `label_frequencies`: `tagger`, `label`, `images` (distinct images carrying the tag),
#'   `share` (of the tagger's successfully tagged images), `tagged_images` and `rank` (1 = most frequent; ties by
#'   name).
#' @export
#' @examplesIf engine_available()
#' tags <- data.frame(image_id = c("a", "a", "b", "c"), label = c("Crowd", "Person", "Person", "Crowd"),
#'                    confidence = c(91, 99, 98, 60), tagger = "rekognition")
#' frequencies <- label_frequencies(tags, min_confidence = 55)
#' autoplot(frequencies)
label_frequencies <- function(tags, min_confidence = 0, top_n = NULL) {
  if (is.list(tags) && !is.data.frame(tags)) {
    if (!length(tags)) abort_argument("`tags` is an empty list; give one tag table or a list of them")
    labels <- names(tags) %||% rep("", length(tags))
    tables <- lapply(seq_along(tags), function(k) {
      table <- tags[[k]]
      if (is.data.frame(table) && !"tagger" %in% names(table) && nzchar(labels[[k]])) table$tagger <- labels[[k]]
      arg_tags(table, sprintf("tags[[%d]]", k))
    })
    tags <- unname(tables)
  } else {
    tags <- arg_tags(tags, "tags")
  }
  result <- engine_call(engine()$label_frequencies, tags, min_confidence = arg_number(min_confidence, "min_confidence"),
                        top_n = arg_count(top_n, "top_n", null = TRUE))
  classed(as_tibble_engine(result), "label_frequencies")
}

#' Plot label frequencies: the book's Figures 6.3 and 6.4
#'
#' Horizontal bars of the images carrying each label, most frequent on top: one tagger gives Figure 6.3; several
#' taggers give Figure 6.4, as dodged bars over the labels they share in their top `n`, or (`position =
#' "facet"`) one panel per tagger.
#'
#' @param object The result of [label_frequencies()].
#' @param n Show each tagger's `n` most frequent labels.
#' @param value `"images"` (counts) or `"share"` (of the tagged images).
#' @param position For several taggers: `"dodge"` (bars side by side per label) or `"facet"` (a panel each).
#' @param ... Must be empty.
#' @return A ggplot.
#' @method autoplot label_frequencies
#' @export
autoplot.label_frequencies <- function(object, n = 20L, value = c("images", "share"), position = c("dodge", "facet"),
                                       ...) {
  check_dots(...)
  n <- arg_count(n, "n")
  value <- arg_match(value)
  position <- arg_match(position)
  frequencies <- as.data.frame(object)
  frequencies$tagger[is.na(frequencies$tagger)] <- "tags"
  taggers <- unique(frequencies$tagger)
  top <- frequencies[frequencies$rank <= n, ]
  title <- if (length(taggers) > 1) "Label frequencies by tagger" else sprintf("The %d most frequent labels", min(n, nrow(top)))
  y_label <- if (value == "images") "images" else "share of tagged images"
  if (length(taggers) > 1 && position == "dodge") {
    # Every tagger's bar for each label in anyone's top n, zero where a tagger never gave it.
    labels <- unique(top$label)
    grid <- expand.grid(label = labels, tagger = taggers, stringsAsFactors = FALSE)
    top <- merge(grid, frequencies[c("tagger", "label", "images", "share")], all.x = TRUE, sort = FALSE)
    top$images[is.na(top$images)] <- 0L
    top$share[is.na(top$share)] <- 0
    totals <- tapply(top[[value]], top$label, sum)
    top$label <- factor(top$label, levels = names(sort(totals)))
    return(ggplot2::ggplot(top, ggplot2::aes(x = .data[[value]], y = .data$label, fill = .data$tagger)) +
             ggplot2::geom_col(position = ggplot2::position_dodge(width = 0.8), width = 0.75) +
             ggplot2::labs(x = y_label, y = NULL, fill = "tagger", title = title) +
             ggplot2::theme_minimal() + text_spans_plot() +
             ggplot2::theme(legend.position = "bottom"))
  }
  # Within each tagger, most frequent on top: order the labels by tagger, then rank.
  top <- top[order(top$tagger, -top$rank), ]
  top$bar <- factor(paste(top$tagger, top$label, sep = "\r"), levels = unique(paste(top$tagger, top$label, sep = "\r")))
  plot <- ggplot2::ggplot(top, ggplot2::aes(x = .data[[value]], y = .data$bar)) +
    ggplot2::geom_col(fill = "steelblue") +
    ggplot2::scale_y_discrete(labels = function(x) sub("^.*\r", "", x)) +
    ggplot2::labs(x = y_label, y = NULL, title = title) +
    ggplot2::theme_minimal() + text_spans_plot()
  if (length(taggers) > 1) plot <- plot + ggplot2::facet_wrap(ggplot2::vars(.data$tagger), scales = "free_y")
  plot
}
