# Metrics, confusion matrices and mistakes of a fit or an evaluation, in tidymodels' shapes. Mirrors
# python/imagesasdata/metrics.py.

#' Classification metrics of a fitted CNN
#'
#' In yardstick's shape and with yardstick's names, so `dplyr::filter()` and `ggplot()` work as usual: `accuracy`,
#' and `precision`, `recall` and `f_meas` (F1) -- for the positive class (yardstick's event) in a binary task, and
#' per class plus macro, micro and weighted averages in a multiclass one. `tidy(fit)` gives the same table.
#'
#' @param x A `cnn_fit` ([finetune_cnn()], [load_cnn()]) or a `cnn_evaluation` ([cnn_evaluate()]).
#' @param split Keep only these splits (e.g. `"val"`, `"test"`); `NULL` keeps all.
#' @param calibration For a fit: also the expected calibration error (`ece`) and Brier score (`brier`) before
#'   (`.estimator` `uncalibrated`) and after (`temperature`) temperature scaling (see [cnn_calibration()]).
#' @return A tibble: `.metric` (`accuracy`, `precision`, `recall`, `f_meas`; in a binary task also `roc_auc`, the
#'   area under the ROC curve, without an interval), `.estimator` (binary, multiclass, macro, micro,
#'   macro_weighted, per_class), `.estimate`, `split`, `class` (the positive class, or the class of a per_class
#'   row; `NA` otherwise), `n` (the images the estimate rests on), and its 95% interval: `conf.low`, `conf.high` (broom's names, used for
#'   every interval in the package) and
#'   `interval` (the method: `wilson` for accuracy, precision and recall, `percentile_bootstrap` for `f_meas`, the
#'   averages and the calibration measures; `NA` where a ratio has nothing under it, e.g. no predicted positives).
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' cnn_metrics(fit, split = "val")
#' }
cnn_metrics <- function(x, split = NULL, calibration = FALSE) {
  metrics <- result_table(x, "metrics")
  if (arg_flag(calibration, "calibration")) {
    if (!inherits(x, "cnn_fit")) abort_argument("`calibration = TRUE` needs a cnn_fit (the run holds the calibration)")
    if (is.null(x$calibration)) {
      abort_argument("this fit has no calibration table: it was trained before calibration existed; train it again")
    }
    metrics <- rbind(metrics, x$calibration)
  }
  if (inherits(x, "cnn_fit") && length(x$classes) == 2 && nrow(metrics)) {
    # the area under the ROC curve of each split, from the run's predictions (the engine computes it)
    auc <- engine_call(bridge()$roc_auc_rows, run_of(x), as.list(unique(metrics$split)))
    metrics <- rbind(metrics, metric_tibble(as_tibble_engine(auc, kind = "metrics")))
  }
  keep_splits(metrics, split)
}

# A metrics table (sent by the engine in R's names: as_tibble_engine(kind = "metrics")) in the one column order:
# .metric, .estimator, .estimate, [split], class, n, then the interval (conf.low, conf.high, interval; NA for tables
# written before intervals existed). Fits, evaluations, grids, gold samples and tag comparisons all hold their
# metrics in this shape. Nothing is renamed here: the names come from the engine's schema.
METRIC_COLUMNS <- c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high", "interval")
metric_tibble <- function(metrics, split = TRUE) {
  rows <- nrow(metrics)
  empty <- list(split = NA_character_, class = NA_character_, conf.low = NA_real_, conf.high = NA_real_,
                interval = NA_character_)
  for (name in names(empty)) if (!name %in% names(metrics)) metrics[[name]] <- rep(empty[[name]], rows)
  tibble::as_tibble(metrics[if (split) METRIC_COLUMNS else setdiff(METRIC_COLUMNS, "split")])
}

# " [0.646, 0.985]", or "" without an interval.
format_interval <- function(lower, upper, digits = 3L) {
  if (is.null(lower) || is.null(upper)) return(rep("", max(1L, length(lower))))
  ifelse(is.na(lower) | is.na(upper), "", sprintf(" [%.*f, %.*f]", digits, lower, digits, upper))
}

# The metrics a person reads first, on one line ("accuracy 0.917 [0.646, 0.985], ..."), written by the engine.
headline_metrics <- function(metrics, split) {
  as.character(py_value(engine_call(bridge()$headline, engine_table(metrics, kind = "metrics"), split)))
}

# The headline metrics of one split as named numbers (accuracy; the binary or macro precision, recall and f_meas),
# for glance() methods.
headline_values <- function(metrics, split = NULL) {
  if (!is.null(split)) metrics <- metrics[metrics$split %in% split, ]
  value <- function(metric) {
    rows <- metrics[metrics$.metric == metric, ]
    rows <- rows[rows$.estimator %in% c(if (metric == "accuracy") c("binary", "multiclass") else c("binary", "macro")), ]
    if (nrow(rows)) rows$.estimate[[1]] else NA_real_
  }
  list(accuracy = value("accuracy"), precision = value("precision"), recall = value("recall"), f_meas = value("f_meas"))
}

# The positive class of a binary metrics table (NA in a multiclass one).
positive_of <- function(metrics) {
  classes <- metrics$class[metrics$.estimator == "binary" & !is.na(metrics$class)]
  if (length(classes)) classes[[1]] else NA_character_
}

#' Confusion matrices of a fitted CNN
#'
#' @inheritParams cnn_metrics
#' @return A tibble in long form, one row per pair of classes (zeros included): `split`, `truth` and `.pred_class`
#'   (factors in the fit's class order) and `count`. `stats::xtabs(count ~ truth + .pred_class, ...)` makes the
#'   square table; `autoplot(fit, type = "confusion")` draws it.
#' @export
cnn_confusion <- function(x, split = NULL) {
  keep_splits(result_table(x, "confusion"), split)
}

#' The images a fitted CNN gets wrong
#'
#' The book's advice: look at what the model misclassifies. Most confident mistakes first.
#'
#' @inheritParams cnn_metrics
#' @return A tibble of the misclassified validation (and test, or evaluated) images: `image_id`, `path`,
#'   `split`, `label`, `.pred_class`, `probability` (of the predicted class) and the `.pred_<class>` columns.
#'   [image_gallery()] and `autoplot(fit, type = "misclassified")` show them.
#' @export
cnn_misclassified <- function(x, split = NULL) {
  predictions <- keep_splits(result_table(x, "predictions"), split)
  interpretation <- engine_call(engine()$Interpretation$from_predictions,
                                engine_table(predictions, kind = "predictions"), x$classes)
  wrong <- prediction_tibble(engine_call(interpretation$misclassified), x$classes, factors = c("label", "predicted"))
  if (!"split" %in% names(wrong)) wrong$split <- rep(NA_character_, nrow(wrong))
  first <- c("image_id", "path", "split", "label", ".pred_class", "probability")
  wrong[c(first, setdiff(names(wrong), c(first, "error")))]
}

result_table <- function(x, name) {
  if (!inherits(x, c("cnn_fit", "cnn_evaluation"))) {
    abort_argument(sprintf("expected a cnn_fit (finetune_cnn(), load_cnn()) or a cnn_evaluation (cnn_evaluate()), not %s",
                           describe_value(x)))
  }
  table <- x[[name]]
  if (is.null(table)) {
    abort_argument(sprintf("this run has no %s table (status: %s); it did not finish training", name,
                           x$description$status %||% "unknown"))
  }
  table
}

keep_splits <- function(table, split) {
  if (is.null(split)) return(table)
  split <- as.character(split)
  unknown <- setdiff(split, unique(table$split))
  if (length(unknown)) {
    abort_argument(sprintf("no split %s in these results; they hold %s", paste(dQuote(unknown, FALSE), collapse = ", "),
                           paste(dQuote(unique(table$split), FALSE), collapse = ", ")))
  }
  table[table$split %in% split, ]
}

# broom's conf.int and conf.level for a table holding conf.low and conf.high at level `have`: conf.int = FALSE drops
# the interval; another level recomputes it through `recompute(level)` (the engine; Wald for regressions).
tidy_interval <- function(table, conf.int, conf.level, have, recompute) {
  conf.int <- arg_flag(conf.int, "conf.int")
  conf.level <- arg_share(conf.level, "conf.level", open = TRUE)
  if (!conf.int) return(table[setdiff(names(table), c("conf.low", "conf.high", "interval"))])
  if (isTRUE(all.equal(conf.level, have))) return(table)
  recompute(conf.level)
}

# A metrics table of `predictions` (R's names: label or truth, .pred_class) at another level, in `metrics`'s splits.
metrics_at_level <- function(metrics, predictions, classes, positive, level, truth = "label") {
  splits <- if ("split" %in% names(metrics)) unique(metrics$split) else NULL
  result <- engine_call(bridge()$metrics_at, engine_table(predictions[c(truth, ".pred_class",
                                                                        if (!is.null(splits)) "split")],
                                                          kind = "predictions"),
                        as.list(classes), positive, level, splits = if (is.null(splits)) NULL else as.list(splits),
                        truth = truth)
  metric_tibble(as_tibble_engine(result, kind = "metrics"), split = !is.null(splits))
}
