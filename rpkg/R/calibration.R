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

#' Calibrate a labelled corpus's probabilities to the corpus
#'
#' The temperature a fit stores is fitted on its validation split, so its probabilities are calibrated to that
#' split -- and, when the split was balanced, to its class shares rather than the corpus's. `calibrate_to_corpus()`
#' corrects both, for the corpus you estimate from:
#' * `temperature = "gold"`: a temperature fitted on the coded gold sample, each image weighted by 1/inclusion
#'   probability, so the fit is the corpus's (`"run"` applies the fit's own validation temperature);
#' * `prior_shift`: the probabilities moved by Bayes' rule from the class shares of the training split to the
#'   corpus's -- estimated from the gold sample (`"gold"`, design-weighted), by EM from the corpus's own
#'   probabilities (`"em"`, Saerens et al. 2002), or given (a named vector such as `c(protest = 0.05, other = 0.95)`).
#'   `.pred_class` is then the most probable class again; `predicted_before` keeps the old one where any changed.
#'
#' What was done travels with the result (attribute `calibration`): [corrected_glm()] prints it as a note and
#' reports it in `glance()`, and [corrected_prevalence()] keeps it as an attribute. When the calibration was fitted
#' on the gold sample that the estimators then use, the note says that their intervals treat it as fixed.
#'
#' @param labels The labelled corpus: a `cnn_labelling` from [label_corpus()], its folder, or a predictions tibble
#'   with `.pred_<class>` columns.
#' @param gold The coded gold sample ([read_coding_sheet()]), for `temperature = "gold"` or `prior_shift = "gold"`.
#' @param temperature `NULL` (keep the probabilities' scale), `"run"` or `"gold"`.
#' @param prior_shift `NULL`, `"gold"`, `"em"`, or the corpus's class shares as a named numeric vector.
#' @param run The fit (a `cnn_fit`) or run folder the labels were made with (default: the labelling's own).
#' @param source_priors The class shares the probabilities reflect, as a named numeric vector (default: those of
#'   the run's training split, read from `run`); needed for a prior shift when there is no run.
#' @param design `NULL` (read from the gold sample) or `"srs"` (a gold table without inclusion probabilities that is
#'   a simple random sample of the corpus).
#' @return The corpus as a tibble in [predict()]'s shape, with the recalibrated `.pred_<class>` and `.pred_class`,
#'   and the attribute `calibration` (JSON text: temperature, what it was fitted on, the prior shift, the class
#'   shares before and after, how many predicted classes changed).
#' @seealso [cnn_calibration()] for the run's own temperature and reliability diagram.
#' @export
calibrate_to_corpus <- function(labels, gold = NULL, temperature = NULL, prior_shift = NULL, run = NULL,
                                source_priors = NULL, design = NULL) {
  if (!is.null(temperature) && !identical(temperature, "run") && !identical(temperature, "gold")) {
    abort_argument(sprintf("`temperature` must be NULL, \"run\" or \"gold\", not %s", describe_value(temperature)))
  }
  shares <- function(x, name) {
    if (is.null(names(x)) || any(!nzchar(names(x)))) {
      abort_argument(sprintf("`%s` given as shares must name each class, e.g. c(protest = 0.05, other = 0.95)", name))
    }
    as.list(x)
  }
  if (!is.null(source_priors) && !is.numeric(source_priors)) {
    abort_argument(sprintf("`source_priors` must be named class shares, not %s", describe_value(source_priors)))
  }
  shift <- prior_shift
  if (is.numeric(prior_shift)) {
    shift <- shares(prior_shift, "prior_shift")
  } else if (!is.null(prior_shift) && !identical(prior_shift, "gold") && !identical(prior_shift, "em")) {
    abort_argument(sprintf("`prior_shift` must be NULL, \"gold\", \"em\" or named class shares, not %s",
                           describe_value(prior_shift)))
  }
  if (is.null(temperature) && is.null(prior_shift)) {
    abort_argument("say what to calibrate: `temperature = \"gold\"` (or \"run\"), `prior_shift`, or both")
  }
  classes <- if (inherits(labels, "cnn_labelling")) labels$classes else NULL
  engine_run <- if (inherits(run, "cnn_fit")) run_of(run) else if (is.null(run)) NULL else path.expand(arg_string(run, "run"))
  table <- engine_call(
    engine()$calibrate_to_corpus, arg_labels(labels, "labels"),
    run = engine_run, gold = if (is.null(gold)) NULL else arg_gold(gold, "gold"), temperature = temperature,
    prior_shift = shift, source_priors = if (is.null(source_priors)) NULL else shares(source_priors, "source_priors"),
    design = arg_design(design)
  )
  out <- prediction_tibble(table, classes)
  attr(out, "calibration") <- as.character(py_value(engine_call(bridge()$calibration_json, table)))
  folder <- if (inherits(labels, "cnn_labelling")) labels$path else if (is.character(labels)) labels else NULL
  attr(out, "positive_class") <- positive_of_labels(labels) %||%
    (if (!is.null(folder) && dir.exists(folder)) labelling_positive(folder))
  note <- py_value(engine_call(bridge()$calibration_note, table))
  if (length(note)) rlang::inform(as.character(note), class = "imagesasdata_message")
  out
}
