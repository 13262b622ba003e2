# Planning: how many gold images to code (plan_gold_sample()) and whether more labelled training images would help
# (learning_curve()). Mirrors python/imagesasdata/analysis/planner.py and train/learning_curve.py.

#' Plan a gold sample: its size and allocation for a target interval width
#'
#' For each design -- a simple random sample (`"srs"`), strata in proportion to their size (`"proportional"`),
#' Neyman's allocation (`"neyman"`: more images where the predictions are less certain, the fewest images for a
#' given variance) and the same number per stratum (`"equal"`, for comparison) -- the smallest gold sample whose
#' expected interval width reaches `target_width`, side by side with its gold-only width.
#'
#' For a class's share, the classifier's error rates come from a run's validation confusion matrix (`validation`;
#' its rates P(predicted | true) are combined with the corpus's predicted shares, so a balanced validation split
#' does no harm) or from a coded first wave (`gold`). For a coefficient, from a [corrected_glm()] fitted on a first
#' wave (`fit`), whose covariance foresees other gold sizes.
#'
#' What the plan assumes: the error rates it was given are those the corpus will show (from a small first wave
#' they are noisy; from a validation split of other images they may not transfer); with strata other than the
#' predicted class, the rates are the same in every stratum; the intervals the estimators report are close to the
#' expected width (a rare class with few positives varies more). Decide the size once, draw it
#' ([draw_gold_sample()] with `previous =` after a first wave), and report what the coded sample gives.
#'
#' @param data The labelled corpus: a `cnn_labelling` from [label_corpus()], its folder, or a predictions data
#'   frame (`image_id`, `.pred_class`). Not needed with `fit`.
#' @param target_width The interval width to reach (`conf.high - conf.low`), e.g. `0.04` for a share within about
#'   2 points either way.
#' @param gold A coded first wave ([read_coding_sheet()]).
#' @param validation A `cnn_fit` (its validation confusion matrix), its run folder, or a confusion table
#'   ([cnn_confusion()]'s shape: `truth`, `.pred_class`, `count`).
#' @param fit A [corrected_glm()] fitted on a first wave, to plan for one of its coefficients.
#' @param term With `fit`: the coefficient, as [tidy()] names it (default: the first that is not the intercept).
#' @param target_class The class whose share is planned for (default: the positive class of two, else the rarest
#'   predicted class).
#' @param strata `".pred_class"` (strata by predicted class, the default), a column of `data`, or `NULL` (simple
#'   random sampling only).
#' @param designs Which designs to compare.
#' @param conf_level Confidence level of the intervals.
#' @param split With `validation`: the run's split to read the errors from.
#' @inheritParams corrected_glm
#' @return A tibble of class `gold_plan`, one row per design: `design`, `strata`, `gold_size`, `expected_width`,
#'   `gold_only_width`, `target_width`, `reaches_target`, `allocation` (as text), `note`; with attributes
#'   `allocations` (a tibble: `design`, `stratum`, `stratum_size`, `gold_images`), `curve` (expected width by gold
#'   size, for `autoplot()`), `recommended`, `target`, `source` and `assumptions`. [gold_allocation()] gives a
#'   design's allocation for [draw_gold_sample()].
#' @seealso [learning_curve()], [draw_gold_sample()], [corrected_prevalence()]
#' @export
#' @examplesIf engine_available()
#' set.seed(1)
#' n <- 5000
#' truth <- ifelse(stats::runif(n) < 0.05, "protest", "other")
#' right <- stats::runif(n)
#' predicted <- ifelse(truth == "protest", ifelse(right < 0.8, "protest", "other"),
#'                     ifelse(right < 0.03, "protest", "other"))
#' corpus <- data.frame(image_id = paste0("img", 1:n), .pred_class = predicted)
#' validation <- data.frame(truth = c("other", "other", "protest", "protest"),
#'                          .pred_class = c("other", "protest", "other", "protest"), count = c(97, 3, 20, 80))
#' plan <- plan_gold_sample(corpus, target_width = 0.04, validation = validation, target_class = "protest")
#' plan
#' gold_allocation(plan)
plan_gold_sample <- function(data = NULL, target_width, gold = NULL, validation = NULL, fit = NULL, term = NULL,
                             target_class = NULL, strata = ".pred_class",
                             designs = c("srs", "proportional", "neyman", "equal"), conf_level = 0.95,
                             split = "val", design = NULL) {
  designs <- as.list(arg_choice_many(designs, c("srs", "proportional", "neyman", "equal"), "designs"))
  engine_fit <- NULL
  if (!is.null(fit)) {
    if (!inherits(fit, "corrected_glm")) abort_argument(sprintf("`fit` must be a corrected_glm, not %s", describe_value(fit)))
    engine_fit <- fit$engine
    if (is.null(engine_fit) || reticulate::py_is_null_xptr(engine_fit)) {
      abort_argument("`fit` no longer holds the engine's fit (it was saved and read back); fit it again with corrected_glm()")
    }
    if (!is.null(term)) {   # R's spelling of a term (politicianTRUE) in the engine's (politician[T.True])
      engine_terms <- as.character(unlist(py_value(reticulate::py_get_attr(engine_fit, "terms"))))
      r_terms <- r_term_names(engine_terms, fit$formula)
      if (term %in% r_terms) term <- engine_terms[match(term, r_terms)]
    }
  }
  result <- engine_call(
    engine()$plan_gold_sample, if (is.null(data)) NULL else arg_labels(data, "data"),
    target_width = arg_number(target_width, "target_width"),
    gold = if (is.null(gold)) NULL else arg_gold(gold, "gold"), validation = arg_validation(validation),
    fit = engine_fit, term = arg_string(term, "term", null = TRUE),
    target_class = arg_string(target_class, "target_class", null = TRUE),
    strata = engine_column_name(arg_string(strata, "strata", null = TRUE)), designs = designs,
    confidence = arg_share(conf_level, "conf_level", open = TRUE), split = arg_string(split, "split"),
    design = arg_design(design)
  )
  field <- function(name) py_value(reticulate::py_get_attr(result, name))
  table <- as_tibble_engine(reticulate::py_get_attr(result, "designs"), kind = "gold_plan")
  table$design <- factor(table$design, levels = intersect(c("srs", "proportional", "neyman", "equal"), table$design))
  structure(table,
            allocations = as_tibble_engine(reticulate::py_get_attr(result, "allocations")),
            curve = as_tibble_engine(reticulate::py_get_attr(result, "curve")),
            recommended = field("recommended"), target = field("target"), source = field("source"),
            assumptions = as.character(unlist(field("assumptions"))), conf_level = field("confidence"),
            class = c("gold_plan", class(table)))
}

# A run (cnn_fit, folder) or a confusion table, as the engine takes it.
arg_validation <- function(x) {
  if (is.null(x)) return(NULL)
  if (inherits(x, "cnn_fit")) return(x$path)
  if (is.data.frame(x)) return(engine_table(x, kind = "confusion"))
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  abort_argument(sprintf("`validation` must be a cnn_fit, its run folder or a confusion table, not %s",
                         describe_value(x)))
}

arg_choice_many <- function(x, choices, name) {
  if (!is.character(x) || !length(x) || anyNA(x) || !all(x %in% choices)) {
    abort_argument(sprintf("`%s` must name some of %s, not %s", name, paste0('"', choices, '"', collapse = ", "),
                           describe_value(x)))
  }
  unique(x)
}

#' A planned design's allocation, for draw_gold_sample()
#'
#' @param plan A `gold_plan` from [plan_gold_sample()].
#' @param design Which design (default: the recommended one, reaching the target with the fewest images).
#' @return A named integer vector: gold images per stratum, as [draw_gold_sample()]'s `allocation` takes it.
#' @export
gold_allocation <- function(plan, design = NULL) {
  if (!inherits(plan, "gold_plan")) abort_argument(sprintf("`plan` must be a gold_plan, not %s", describe_value(plan)))
  design <- design %||% attr(plan, "recommended") %||% as.character(plan$design[[1]])
  rows <- attr(plan, "allocations")
  rows <- rows[rows$design == design, ]
  if (!nrow(rows)) abort_argument(sprintf("`design`: the plan has %s", paste(as.character(plan$design), collapse = ", ")))
  stats::setNames(as.integer(rows$gold_images), rows$stratum)
}

#' @export
print.gold_plan <- function(x, ...) {
  cat(sprintf("<gold_plan> %s, %g%% interval %g wide\n", attr(x, "target"), 100 * attr(x, "conf_level"),
              x$target_width[1]))
  cat(sprintf("  from %s\n", attr(x, "source")))
  for (i in seq_len(nrow(x))) {
    mark <- if (identical(as.character(x$design[i]), attr(x, "recommended"))) "  <- fewest images" else ""
    reach <- if (isTRUE(x$reaches_target[i])) "" else " (does not reach the target)"
    gold_only <- if (is.na(x$gold_only_width[i])) "" else sprintf("; gold only %.3g", x$gold_only_width[i])
    cat(sprintf("  %-13s %7d images: expected width %.3g%s%s%s\n", x$design[i], x$gold_size[i], x$expected_width[i],
                gold_only, reach, mark))
    cat(sprintf("  %-13s %s\n", "", x$allocation[i]))
  }
  for (a in attr(x, "assumptions")) cat(paste0(strwrap(paste("assumes:", a), width = 100, indent = 2, exdent = 4), "\n"),
                                        sep = "")
  invisible(x)
}

#' @rdname plan_gold_sample
#' @param object A `gold_plan`.
#' @param ... Must be empty.
#' @method autoplot gold_plan
#' @export
autoplot.gold_plan <- function(object, ...) {
  check_dots(...)
  curve <- attr(object, "curve")
  curve$design <- factor(curve$design, levels = levels(object$design))
  planned <- as.data.frame(object)
  ggplot2::ggplot(curve, ggplot2::aes(x = .data$gold_size, y = .data$expected_width, colour = .data$design)) +
    ggplot2::geom_hline(yintercept = object$target_width[1], linetype = "dashed", colour = "grey40") +
    ggplot2::geom_line() +
    ggplot2::geom_point(data = planned, size = 2.5) +
    ggplot2::scale_x_log10() +
    ggplot2::labs(x = "gold images (log scale)", y = sprintf("expected width of the %g%% interval",
                                                             100 * attr(object, "conf_level")),
                  colour = "design", title = sprintf("Planning the gold sample: %s", attr(object, "target")),
                  subtitle = wrap_text(sprintf("dashed: the target width; points: the smallest size reaching it (from %s)",
                                               attr(object, "source")))) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom")
}

#' A learning curve: will more labelled images help?
#'
#' The labelled images are split once (seeded, as [finetune_cnn()] splits them); the model is fine-tuned on growing
#' fractions of the training split -- nested (each fraction holds the smaller ones' images), each class in
#' proportion -- and every fit is scored on the same held-out images (the test split when there is one, else the
#' validation split, which also chose each fit's epoch and so flatters every fraction a little). The last step's
#' change in accuracy, with a paired interval (the same images scored by both fits), says whether the curve is
#' still rising; `answer` says it in words, with the change scaled to 200 more images (an optimistic guide: curves
#' flatten).
#'
#' @param data The labelled images, as for [finetune_cnn()].
#' @param fractions Increasing fractions of the training images, in (0, 1].
#' @param ... Options for every fit, as named arguments of [finetune_cnn()] (e.g. `epochs = 5`,
#'   `freeze = "backbone"`, `image_size = 64`); `seed` also seeds the split and the fractions.
#' @param out A folder for the fits (default: a new folder in R's session temporary directory); running again with
#'   the same `out` resumes.
#' @param label,path The label and image path columns of a table, as in [finetune_cnn()].
#' @param conf_level Confidence level of the intervals.
#' @param progress As in [finetune_cnn()].
#' @return A tibble of class `cnn_learning_curve`, one row per fraction: `fraction`, `train_images`, `split` (the
#'   images scored), `accuracy`, `conf.low`, `conf.high` (a Wilson interval), `n`, `run` (the fit's folder); with
#'   attributes `last_step` (a list: `from_images`, `to_images`, `change`, `conf.low`, `conf.high`, `per_200`) and
#'   `answer`. `autoplot()` draws it.
#' @seealso [plan_gold_sample()] for the gold sample, [finetune_cnn()].
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' curve <- learning_curve(file.path(sample_data(), "faces"), fractions = c(0.5, 1), epochs = 2, image_size = 64,
#'                         freeze = "backbone", augment_crop = FALSE)
#' curve
#' autoplot(curve)
#' }
learning_curve <- function(data, fractions = c(0.25, 0.5, 0.75, 1), ..., out = NULL, label = NULL, path = NULL,
                           conf_level = 0.95, progress = "epochs") {
  label <- column_arg(substitute(label), parent.frame(), data, "label")
  path <- column_arg(substitute(path), parent.frame(), data, "path")
  if (!is.numeric(fractions) || !length(fractions) || anyNA(fractions)) {
    abort_argument(sprintf("`fractions` must be increasing numbers in (0, 1], not %s", describe_value(fractions)))
  }
  options <- train_options(list(...))
  labelled <- labelled_data(data, label, path, class_order = options$class_order,
                            positive_class = options$positive_class)
  options$class_order <- labelled$class_order
  options$positive_class <- labelled$positive_class
  run_in_folder(out, "imagesasdata-curve-", function(folder) {
    result <- engine_call_list(engine()$learning_curve, c(list(
      labelled$images, fractions = as.list(as.double(fractions)), out = folder, label = labelled$label,
      path = labelled$path, confidence = arg_share(conf_level, "conf_level", open = TRUE),
      progress = arg_progress(progress)
    ), options))
    table <- as_tibble_engine(reticulate::py_get_attr(result, "table"), kind = "learning_curve")
    step <- py_value(bridge()$r_record(reticulate::py_get_attr(result, "last_step"), "learning_curve"))
    structure(table, last_step = step, answer = py_value(reticulate::py_get_attr(result, "answer")),
              notes = as.character(unlist(py_value(reticulate::py_get_attr(result, "notes")))),
              conf_level = conf_level, class = c("cnn_learning_curve", class(table)))
  })
}

#' @export
print.cnn_learning_curve <- function(x, ...) {
  cat(sprintf("<cnn_learning_curve> %d fractions of the training images, scored on %s\n", nrow(x), x$split[1]))
  for (i in seq_len(nrow(x))) {
    cat(sprintf("  %4.0f%% (%5d training images): accuracy %.3f [%.3f, %.3f]\n", 100 * x$fraction[i],
                x$train_images[i], x$accuracy[i], x$conf.low[i], x$conf.high[i]))
  }
  cat(paste0(strwrap(attr(x, "answer"), width = 100, indent = 2, exdent = 2), "\n"), sep = "")
  for (note in attr(x, "notes")) print_note(note)
  invisible(x)
}

#' @rdname learning_curve
#' @param object A `cnn_learning_curve`.
#' @method autoplot cnn_learning_curve
#' @export
autoplot.cnn_learning_curve <- function(object, ...) {
  check_dots(...)
  table <- as.data.frame(object)
  ggplot2::ggplot(table, ggplot2::aes(x = .data$train_images, y = .data$accuracy)) +
    ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high), fill = "grey85") +
    ggplot2::geom_line(colour = "#1b9e77") +
    ggplot2::geom_point(colour = "#1b9e77", size = 2.5) +
    ggplot2::labs(x = "training images", y = sprintf("%s accuracy (%g%% interval)", table$split[1],
                                                     100 * attr(object, "conf_level")),
                  title = "Will more labelled images help?", subtitle = wrap_text(attr(object, "answer"))) +
    ggplot2::theme_minimal() + text_spans_plot()
}
