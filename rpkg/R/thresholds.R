# Thresholds for binary tasks: precision-recall and ROC curves, and a threshold chosen for a target recall or
# precision. Mirrors python/imagesasdata/analysis/thresholds.py.

#' Precision-recall and ROC curves of a binary CNN
#'
#' @param fit A `cnn_fit` of a binary task.
#' @param split Whose predictions: `"val"` (default) or `"test"`.
#' @param calibrate Use calibrated probabilities (then pass `calibrate = TRUE` to [predict()] too).
#' @return A tibble, one row per distinct probability (highest first) plus "nothing positive": `threshold`,
#'   `true_positives`, `false_positives`, `false_negatives`, `true_negatives`, `precision`, `recall`,
#'   `false_positive_rate`, `true_positive_rate`. `autoplot(fit, type = "pr")` and `type = "roc"` draw them.
#' @export
cnn_thresholds <- function(fit, split = "val", calibrate = FALSE) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  as_tibble_engine(engine_call(engine()$run_threshold_curves, run_of(fit), split = arg_string(split, "split"),
                               calibrate = arg_flag(calibrate, "calibrate")))
}

#' Choose a threshold for a target recall or precision
#'
#' The book's advice (section 4.5): when missing a positive costs more than a false alarm, favour recall. A binary
#' model calls an image positive when the positive class's probability is at least a threshold (0.5 by default).
#' `recall = 0.9` finds the highest threshold that still finds 90% of the validation positives; `precision = 0.8`
#' the lowest threshold whose calls are still 80% right. Use it with `predict(fit, ..., threshold = )`,
#' [cnn_evaluate()] and [label_corpus()]. Chosen on the validation images, its metrics there flatter it: check it
#' on a test split or a gold sample.
#'
#' @inheritParams cnn_thresholds
#' @param recall,precision The target; give exactly one.
#' @param conf_level Confidence level of the metrics' intervals.
#' @return A `cnn_threshold`: `threshold`, `target`, `achieved` (`FALSE` when no threshold reaches the target: the
#'   closest is given), `metrics` (at the threshold, in [cnn_metrics()]'s shape), `curves` (as
#'   [cnn_thresholds()]), `split` and `calibrated`.
#' @export
choose_threshold <- function(fit, recall = NULL, precision = NULL, split = "val", calibrate = FALSE,
                             conf_level = 0.95) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  choice <- engine_call(
    engine()$choose_run_threshold, run_of(fit), recall = arg_number(recall, "recall", null = TRUE),
    precision = arg_number(precision, "precision", null = TRUE), split = arg_string(split, "split"),
    calibrate = arg_flag(calibrate, "calibrate"), confidence = arg_share(conf_level, "conf_level", open = TRUE)
  )
  field <- function(name) py_value(reticulate::py_get_attr(choice, name))
  structure(list(
    threshold = field("threshold"), target = field("target"), achieved = isTRUE(field("achieved")),
    metrics = metric_tibble(as_tibble_engine(reticulate::py_get_attr(choice, "metrics"), kind = "metrics"), split = FALSE),
    curves = as_tibble_engine(reticulate::py_get_attr(choice, "curves")), split = field("split"),
    calibrated = isTRUE(field("calibrated")), images = as.integer(field("images"))
  ), class = "cnn_threshold")
}

#' @export
print.cnn_threshold <- function(x, ...) {
  cat(sprintf("<cnn_threshold> %.4g for %s on %d %s images%s%s\n", x$threshold, x$target, x$images, x$split,
              if (x$achieved) "" else " (not reached: the closest)", if (x$calibrated) " (calibrated)" else ""))
  rows <- x$metrics[x$metrics$.estimator == "binary", ]
  cat(sprintf("  %s\n", paste(sprintf("%s %.3f%s", rows$.metric, rows$.estimate, format_interval(rows$conf.low, rows$conf.high)),
                              collapse = ", ")))
  cat("  chosen on these images, so they flatter it: check it on a test split or a gold sample\n")
  invisible(x)
}

plot_curve <- function(fit, split, kind) {
  curves <- cnn_thresholds(fit, split = split)
  if (kind == "pr") {
    base <- ggplot2::ggplot(curves[curves$true_positives + curves$false_positives > 0, ],
                            ggplot2::aes(x = .data$recall, y = .data$precision))
    labels <- ggplot2::labs(x = "recall", y = "precision", title = "Precision-recall curve",
                            subtitle = wrap_text(sprintf("positive class: %s; %s split; each point is a threshold",
                                                         fit$positive_class %||% "?", split)))
  } else {
    base <- ggplot2::ggplot(curves, ggplot2::aes(x = .data$false_positive_rate, y = .data$true_positive_rate)) +
      ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50")
    auc <- py_value(engine_call(bridge()$curve_auc, engine_table(curves)))
    labels <- ggplot2::labs(x = "false positive rate", y = "true positive rate (recall)",
                            title = sprintf("ROC curve: AUC %.3f", auc),
                            subtitle = wrap_text(sprintf("positive class: %s; %s split; the dashed line is guessing",
                                                         fit$positive_class %||% "?", split)))
  }
  base +
    ggplot2::geom_step(direction = "vh", colour = "steelblue") +
    ggplot2::geom_point(size = 1, colour = "steelblue") +
    ggplot2::coord_equal(xlim = c(0, 1), ylim = c(0, 1)) +
    labels +
    ggplot2::theme_minimal() + text_spans_plot()
}
