# Calibrated probabilities: the temperature fitted on the validation split at the end of training, and the
# reliability diagram. Mirrors python/imagesasdata/analysis/calibration.py.

#' How well calibrated a fitted CNN's probabilities are
#'
#' At the end of training the engine fits temperature scaling (Guo et al. 2017) on the validation split: one number
#' T that divides the logits, chosen by maximum likelihood. It changes no predicted class, only how sure the
#' probabilities are; `predict(fit, ..., calibrate = TRUE)` applies it. This function returns the reliability
#' diagram's data before and after; `autoplot(fit, type = "calibration")` draws it, and
#' `cnn_metrics(fit, calibration = TRUE)` adds the expected calibration error (`ece`) and Brier score (`brier`)
#' before (`uncalibrated`) and after (`temperature`), with intervals.
#'
#' In a binary task the diagram bins the positive class's probability against the share of positives; in a
#' multiclass task the top-label probability against the share classified correctly.
#'
#' @param fit A `cnn_fit`.
#' @param split Whose predictions: `"val"` (where T was fitted, so the "after" is in-sample) or `"test"`.
#' @param bins Number of equal-width probability bins.
#' @return A tibble: `probabilities` (`uncalibrated` or `temperature`), `split`, `bin`, `lower`, `upper`, `images`,
#'   `predicted` (mean probability in the bin), `observed` (share correct, or positive), `ece` and `temperature`.
#' @export
cnn_calibration <- function(fit, split = "val", bins = 10L) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  as_tibble_engine(engine_call(engine()$calibration_table, run_of(fit), split = arg_string(split, "split"),
                               bins = arg_count(bins, "bins")))
}

# "calibration: temperature 1.83 fitted on 12 validation images; ECE 0.142 -> 0.061" for print.cnn_fit().
calibration_line <- function(fit) {
  entry <- fit$description$calibration
  if (is.null(entry)) return(invisible())
  ece <- function(value) if (is.null(value)) "NA" else sprintf("%.3f", value)
  if (identical(entry$status, "fitted")) {
    cat(sprintf("  calibration: temperature %.3g fitted on %d validation images; ECE %s -> %s (calibrate = TRUE applies it)\n",
                entry$temperature, as.integer(entry$images), ece(entry$ece_before), ece(entry$ece_after)))
  } else {
    cat(sprintf("  calibration: %s\n", entry$status))
  }
}

plot_calibration <- function(fit, split) {
  table <- cnn_calibration(fit, split = split)
  table <- table[table$images > 0, ]
  binary <- length(fit$classes) == 2
  table$label <- ifelse(table$probabilities == "uncalibrated",
                        sprintf("uncalibrated (ECE %.3f)", table$ece),
                        sprintf("temperature %.2g (ECE %.3f)", table$temperature, table$ece))
  ggplot2::ggplot(table, ggplot2::aes(x = .data$predicted, y = .data$observed, colour = .data$label)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_line() +
    ggplot2::geom_point(ggplot2::aes(size = .data$images)) +
    ggplot2::coord_equal(xlim = c(0, 1), ylim = c(0, 1)) +
    ggplot2::labs(x = if (binary) sprintf("predicted probability of %s", fit$positive_class %||% fit$classes[[2]])
                      else "predicted probability (most probable class)",
                  y = if (binary) "share that are positive" else "share classified correctly",
                  colour = NULL, size = "images", title = "Reliability diagram",
                  subtitle = wrap_text(sprintf("%s split; on the dashed line probabilities mean what they say", split))) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom", legend.box = "vertical")
}
