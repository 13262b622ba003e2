# Does the model (or the autotagger) work equally well for everyone? Metrics by subgroup with intervals, the
# largest gap and its permutation test. Mirrors python/imagesasdata/measure/subgroups.py.

#' Metrics by subgroup: does it work equally well for everyone?
#'
#' Joins a metadata column (gender, skin tone, account type, period) to a fit's validation or test predictions,
#' an evaluation, a tag comparison or any data frame of true and predicted labels, and reports each group's
#' accuracy, precision, recall and F1 with confidence intervals, the largest gap between groups and a permutation
#' test of whether that gap exceeds chance (the book's sections 6 and 8.4).
#'
#' Intervals are the engine's, as in [cnn_metrics()]: Wilson score intervals (or exact Clopper-Pearson ones) for
#' accuracy and for one class's precision and recall; seeded percentile bootstrap intervals (the group's images
#' resampled) for F1 and the averages over classes.
#'
#' @param x A `cnn_fit` (its validation and test predictions), a `cnn_evaluation`, a `tag_comparison`, or a data
#'   frame with `image_id`, `label` and `.pred_class` (or the engine's `predicted`) columns.
#' @param metadata A data frame (or CSV/Parquet path) with the `by` column and the group column(s); `NULL` when `x`
#'   already holds them.
#' @param group The column(s) defining groups; several make intersectional groups (e.g. gender and skin tone).
#' @param by The column joining `x` and `metadata`.
#' @param split For a `cnn_fit` or `cnn_evaluation`: keep only these splits.
#' @param positive_class Binary tasks: the class whose precision, recall and F1 are reported.
#' @param conf_level Confidence level of the intervals.
#' @param interval_method `"wilson"` or `"exact"` (Clopper-Pearson): the interval of accuracy, precision and recall.
#' @param bootstrap Resamples for the bootstrap intervals.
#' @param permutations Shuffles of the group labels for the gap test.
#' @param seed Seed of the bootstrap and the permutations.
#' @param min_size Groups with fewer images are reported but left out of the gap test.
#' @return A `subgroup_audit`: a list with `metrics` (a tibble: the group column(s), `group`, `.metric`,
#'   `.estimator`, `.estimate`, `conf.low`, `conf.high`, `interval`, `class`, `n`), `gaps` (per headline metric:
#'   `largest_group`, `largest`, `smallest_group`, `smallest`, `gap`, `p_value`) and `excluded` (images left
#'   out: no group, label or prediction). `autoplot()` draws the estimates with their intervals.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' people <- data.frame(image_id = fit$predictions$image_id,
#'                      session = ifelse(seq_len(nrow(fit$predictions)) %% 2 == 0, "a", "b"))
#' audit <- subgroup_metrics(fit, people, "session", min_size = 1)
#' autoplot(audit)
#' }
subgroup_metrics <- function(x, metadata = NULL, group, by = "image_id", split = NULL, positive_class = NULL,
                             conf_level = 0.95, interval_method = c("wilson", "exact"), bootstrap = 1000L,
                             permutations = 2000L, seed = 0L, min_size = 5L) {
  interval_method <- match.arg(interval_method)
  input <- subgroup_input(x, split, positive_class)
  audit <- engine_call(
    engine()$subgroup_metrics, engine_table(input$table, kind = "predictions"),
    if (is.null(metadata)) NULL else arg_table(metadata, "metadata"), arg_strings(group, "group"),
    by = arg_string(by, "by"), truth = input$truth, predicted = "predicted",
    classes = if (is.null(input$classes)) NULL else as.list(input$classes), positive_class = input$positive,
    confidence = arg_share(conf_level, "conf_level", open = TRUE), interval_method = interval_method,
    bootstrap = arg_count(bootstrap, "bootstrap"),
    permutations = arg_count(permutations, "permutations"), seed = arg_count(seed, "seed"),
    min_size = arg_count(min_size, "min_size")
  )
  metrics <- as_tibble_engine(audit$metrics, kind = "metrics")
  groups <- as.character(unlist(py_value(audit$groups)))
  shaped <- metric_tibble(metrics, split = FALSE)
  shaped <- tibble::as_tibble(c(as.list(metrics[unique(c(groups, "group"))]), as.list(shaped)))
  structure(list(metrics = shaped, gaps = as_tibble_engine(audit$gaps, kind = "metrics"),
                 excluded = as_tibble_engine(audit$excluded),
                 groups = groups, conf_level = py_value(audit$confidence), summary = py_value(audit$summary())),
            class = "subgroup_audit")
}

# What each kind of x sends: its labels and predictions (as text), the truth column's name, the classes.
subgroup_input <- function(x, split, positive_class) {
  positive <- arg_string(positive_class, "positive_class", null = TRUE)
  if (inherits(x, "tag_comparison")) {
    table <- x$per_image[c("image_id", "truth", ".pred_class")]
    return(list(table = table, truth = "truth", classes = c("negative", "positive"), positive = positive %||% "positive"))
  }
  if (inherits(x, c("cnn_fit", "cnn_evaluation"))) {
    predictions <- keep_splits(result_table(x, "predictions"), split)
    if (inherits(x, "cnn_fit") && is.null(split)) predictions <- predictions[predictions$split != "train", ]
    keep <- intersect(c("image_id", "split", "label", ".pred_class"), names(predictions))
    return(list(table = predictions[keep], truth = "label", classes = x$classes,
                positive = positive %||% if (inherits(x, "cnn_fit")) x$positive_class else NULL))
  }
  if (is.data.frame(x)) {
    missing <- setdiff(c("label", ".pred_class"), names(x))
    if (length(missing)) {
      abort_argument(sprintf("`x` lacks the column(s) %s (predictions as predict() names them: .pred_class)",
                             paste(missing, collapse = ", ")))
    }
    plain <- vapply(x, function(column) is.atomic(column) || is.factor(column), logical(1))
    return(list(table = x[plain], truth = "label", classes = NULL, positive = positive))
  }
  abort_argument(sprintf("`x` must be a cnn_fit, a cnn_evaluation, a tag_comparison or a data frame, not %s",
                         describe_value(x)))
}

#' @export
print.subgroup_audit <- function(x, ...) {
  cat("<subgroup_audit>", x$summary, sep = "\n")
  invisible(x)
}

#' @rdname subgroup_metrics
#' @param object A `subgroup_audit`.
#' @param ... Not used.
#' @method autoplot subgroup_audit
#' @export
autoplot.subgroup_audit <- function(object, ...) {
  headline <- object$metrics[object$metrics$.estimator %in% c("binary", "multiclass", "macro"), ]
  headline$.metric <- factor(headline$.metric, levels = c("accuracy", "precision", "recall", "f_meas"))
  ggplot2::ggplot(headline, ggplot2::aes(x = .data$.estimate, y = .data$group)) +
    ggplot2::geom_errorbar(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high), width = 0.2, colour = "grey40",
                           orientation = "y") +
    ggplot2::geom_point(size = 2.5) +
    ggplot2::facet_wrap(ggplot2::vars(.data$.metric), nrow = 1) +
    # few, short labels: four panels side by side at 7 in leave no room for 0.00 ... 1.00 on each
    ggplot2::scale_x_continuous(limits = c(0, 1), breaks = c(0, 0.5, 1), labels = c("0", "0.5", "1")) +
    ggplot2::labs(x = sprintf("estimate with %d%% interval", round(100 * object$conf_level)), y = "group",
                  title = "Metrics by group", subtitle = paste(object$groups, collapse = " x ")) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(panel.spacing.x = ggplot2::unit(1.2, "lines"), plot.margin = ggplot2::margin(5.5, 12, 5.5, 5.5))
}
