# Estimates from predicted labels that a researcher can defend: GLMs and prevalence combining predictions on the
# whole corpus with codes on a gold sample. Mirrors python/imagesasdata/analysis/estimators.py.

#' A regression with image-derived variables, corrected with a gold sample
#'
#' Predicted labels are measured with error, and error in a variable biases the coefficients of any model that
#' uses it, in either direction when the errors depend on the outcome. `corrected_glm()` fits the model three
#' ways, side by side:
#' * `naive`: the predictions used as if they were true, on the whole corpus (what is usually done);
#' * `gold_only`: the coded gold sample alone, weighted by 1/inclusion probability: unbiased but imprecise;
#' * `corrected`: both together: unbiased like the gold sample, usually much narrower.
#'
#' The corrected estimator is the design-based M-estimator of DSL (Egami et al. 2023) with PPI++'s power tuning
#' (Angelopoulos et al. 2023) of `lambda`, coefficient by coefficient. Its covariance treats the corpus as drawn from
#' the process that produced it and the gold sample as drawn from the corpus, stratum by stratum with the
#' finite-population correction; `vcov()` returns it whole (a Wald test of several terms is possible whatever the
#' lambdas). Intervals are Wald intervals on a t quantile with each coefficient's effective degrees of freedom (few
#' when a handful of heavily weighted gold images carry the variance), with a leverage (HC3) correction of the gold
#' images' contributions. An interval that cannot be trusted -- a zero, infinite or absurd standard error, a fit that
#' diverges (separation) -- is not reported: `conf.low`/`conf.high` are `NA`, `flag` says why, and a warning of
#' class `imagesasdata_warning` is raised. An interval resting on a handful of gold images keeps its bounds but is
#' flagged, with a warning naming why: a class of a predicted variable seen fewer than 15 times in the gold sample;
#' with a predicted outcome, fewer than 5 misclassified gold images in a stratum holding a fifth of the corpus; a
#' logistic regression of a predicted outcome with fewer than 5 gold images of the rarer class per coefficient. In
#' benchmarks/README.md such intervals covered as little as 73%; the unflagged ones 93.5-97% in 112 of 117 cells
#' (93.2-93.3% in the other two). `method = "ppi"` calls the Python package ppi-python instead (a predicted
#' outcome and a simple random gold sample only; equal to it, without a joint covariance).
#' benchmarks/inference_coverage.py measures the coverage of all of them across designs.
#'
#' @param formula A model formula, e.g. `retweets ~ protest + log(followers)`. It is read by the engine (patsy's
#'   syntax, R's for `+`, `:`, `*`, `-1`, `+0`, `log()`, `I()`; `^` is a power as in R) and never runs code: a
#'   formula may use column names, numbers, text and `TRUE`/`FALSE` in comparisons, arithmetic, comparisons,
#'   `log()`, `log1p()`, `log2()`, `log10()`, `exp()`, `sqrt()`, `abs()`, `I()` and `C()` (a categorical variable,
#'   e.g. `C(x, Treatment("a"))`), and nothing else; any other function call (`factor()`, `c()`, `system()`), `$`,
#'   `[`, or a name starting with `_` is an error before any data is read. The engine evaluates
#'   the formula rather than R's `model.frame()` so that a formula kept in a shared script or configuration can
#'   never run code, in R, Python or at the command line alike.
#' @param data The corpus: one row per image, with an `image_id` column and every variable of the formula; the
#'   predicted variables hold the model's predictions (a 0/1 or logical indicator, a class, or a probability).
#'   Usually [predict()] or [labelled_images()] joined to your metadata.
#' @param gold The coded gold sample from [read_coding_sheet()] (or any data frame with `image_id`, the true value
#'   of each predicted variable under the same name and coded as the predictions are -- 0/1, `TRUE`/`FALSE`, the
#'   classes; other codes are an error naming the rows -- and `inclusion_probability`). Its `label` column is the
#'   truth of the `.pred_class` column of `data` (the predicted class, as [predict()] names it); a formula may use
#'   `.pred_class` and `.pred_<class>` as they are.
#' @param predicted The names of the predicted variables (the outcome, regressors or both).
#' @param family `"gaussian"`, `"binomial"` (logit) or `"poisson"` (log).
#' @param method `"auto"` or `"dsl"` (the DSL estimator), or `"ppi"` (ppi-python).
#' @param lambda The power-tuning parameter in \[0, 1\] (0: gold only; 1: trust the predictions fully); `NULL`
#'   tunes it.
#' @param conf_level Confidence level of the intervals.
#' @param id The image id column shared by `data` and `gold`.
#' @param design `NULL` reads how the gold sample was drawn from its `inclusion_probability` column (a gold table
#'   without one is an error: a convenience sample or the validation split would pass for a random one); `"srs"`
#'   declares a simple random sample of `data`.
#' @param naive_variance The standard errors of the naive row: `"sandwich"` (the default: robust, HC0, the same
#'   kind as the gold-only and corrected rows', so the three are comparable) or `"model"` (model-based, as `glm()`
#'   and `broom::tidy(glm(...))` report). They differ when the model's variance is wrong: for overdispersed counts
#'   (retweets in a Poisson model) the sandwich is wider -- e.g. 0.129 against glm()'s 0.109 for the same
#'   estimate.
#' @return A `corrected_glm`: `coefficients` (a tibble in broom's shape: `term`, `estimate`, `std.error`,
#'   `statistic`, `p.value`, `conf.low`, `conf.high`, `method`, `lambda` (the power tuning behind each corrected
#'   estimate: tuned per coefficient, `NA` where ppi-python tuned it), `df` (the effective degrees of freedom of
#'   the interval's t quantile) and `flag` (why an interval is not reported, `NA` when it is)), plus the settings.
#'   `tidy()`, `glance()`, `vcov()`, `print()` and `autoplot()` (each coefficient under the three methods, with its
#'   interval).
#' @seealso [corrected_prevalence()], [draw_gold_sample()]
#' @export
#' @examplesIf engine_available()
#' set.seed(1)
#' n <- 2000
#' truth <- stats::rbinom(n, 1, 0.3)
#' corpus <- data.frame(image_id = paste0("img", 1:n), z = stats::rnorm(n))
#' corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
#' corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)   # an 85% accurate classifier
#' coded <- sample(n, 200)
#' gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
#' fit <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "srs")
#' fit
#' tidy(fit)
#' vcov(fit)
corrected_glm <- function(formula, data, gold, predicted, family = c("gaussian", "binomial", "poisson"),
                          method = c("auto", "ppi", "dsl"), lambda = NULL, conf_level = 0.95, id = "image_id",
                          design = NULL, naive_variance = c("sandwich", "model")) {
  if (!inherits(formula, "formula")) {
    abort_argument(sprintf("`formula` must be a formula such as y ~ x + z, not %s", describe_value(formula)))
  }
  family <- arg_match(family)
  method <- arg_match(method)
  naive_variance <- arg_match(naive_variance)
  if (!is.data.frame(data)) abort_argument(sprintf("`data` must be a data frame (the corpus), not %s", describe_value(data)))
  # R's prediction columns (.pred_class, .pred_<class>) in the engine's names, in the data and the formula alike
  text <- engine_formula(paste(deparse(formula, width.cutoff = 500L), collapse = " "))
  predicted <- vapply(arg_strings_vector(predicted, "predicted"), engine_column_name, character(1), USE.NAMES = FALSE)
  fit <- engine_call(
    engine()$corrected_glm, text, arg_corpus(data), arg_gold(gold, "gold"),
    predicted = as.list(predicted), family = family, method = method,
    lam = arg_share(lambda, "lambda", null = TRUE), confidence = arg_share(conf_level, "conf_level", open = TRUE),
    id = arg_string(id, "id"), design = arg_design(design), naive_variance = naive_variance
  )
  field <- function(name) py_value(reticulate::py_get_attr(fit, name))
  coefficients <- broom_shape(as_tibble_engine(reticulate::py_get_attr(fit, "coefficients"), kind = "coefficients"),
                              formula)
  structure(list(
    coefficients = coefficients, formula = formula, family = family,
    predicted = r_term_names(as.character(unlist(field("predicted"))), formula), outcome_predicted = isTRUE(field("outcome_predicted")),
    corrected_method = field("corrected_method"), lambda = field("lam"), n_corpus = as.integer(field("n_corpus")),
    n_gold = as.integer(field("n_gold")), design = field("design"), conf_level = field("confidence"),
    notes = as.character(unlist(field("notes"))), lambda_rule = field("lambda_rule"),
    waves = as.integer(field("waves")), covariances = engine_covariances(fit, formula),
    calibration = field("calibration"),
    engine = fit   # the engine's fit, for plan_gold_sample(fit = ) (lost when saved and read back)
  ), class = "corrected_glm")
}

# Each method's covariance matrix as an R matrix with R's term names (none for ppi-python's corrected fit).
engine_covariances <- function(fit, formula) {
  out <- list()
  for (method in c("naive", "gold_only", "corrected")) {
    out[method] <- list(tryCatch({
      table <- as_tibble_engine(engine_call(reticulate::py_get_attr(fit, "vcov"), method))
      terms <- r_term_names(table$term, formula)
      matrix <- as.matrix(table[, -1, drop = FALSE])
      dimnames(matrix) <- list(terms, terms)
      matrix
    }, imagesasdata_error = function(e) NULL))
  }
  out
}

# The corpus for the estimators: a data frame as an Arrow table, with calibrate_to_corpus()'s record (its attribute
# `calibration`) back in the table's metadata, so the estimates say how its probabilities were calibrated.
arg_corpus <- function(data) {
  table <- engine_table(data, kind = "predictions")
  record <- attr(data, "calibration", exact = TRUE)
  if (is.character(record) && length(record) == 1 && nzchar(record)) {
    table <- engine_call(bridge()$with_calibration, table, record)
  }
  table
}

# design = NULL or "srs", checked here so the error names the R argument.
arg_design <- function(design) {
  if (is.null(design)) return(NULL)
  if (!identical(design, "srs")) {
    abort_argument(sprintf("`design` must be NULL (read from the gold sample) or \"srs\", not %s",
                           describe_value(design)))
  }
  design
}

# The engine's estimates (in broom's names, from the engine's schema), its term names in R's (r_term_names()).
broom_shape <- function(table, formula) {
  table$term <- r_term_names(table$term, formula)
  table$method <- factor(table$method, levels = c("naive", "gold_only", "corrected"))
  tibble::as_tibble(table[intersect(c("term", "estimate", "std.error", "statistic", "p.value", "conf.low",
                                      "conf.high", "method", "lambda", "df", "flag"), names(table))])
}

# A share in [0, 1] (lambda), or a level strictly inside (0, 1) (conf_level), checked here so the error names the
# R argument rather than the engine's.
arg_share <- function(x, name, null = FALSE, open = FALSE) {
  if (is.null(x) && null) return(NULL)
  x <- arg_number(x, name, null = null)
  ok <- if (open) x > 0 && x < 1 else x >= 0 && x <= 1
  if (!ok) {
    abort_argument(sprintf("`%s` must lie %s, not %s", name,
                           if (open) "strictly between 0 and 1 (e.g. 0.95)" else "between 0 and 1", format(x)))
  }
  x
}

arg_strings_vector <- function(x, name) {
  if (is.factor(x)) x <- as.character(x)
  if (!is.character(x) || !length(x) || anyNA(x)) {
    abort_argument(sprintf("`%s` must name the predicted variables (a character vector), not %s", name, describe_value(x)))
  }
  x
}

#' @importFrom generics tidy
#' @export
generics::tidy

#' @importFrom generics glance
#' @export
generics::glance

#' Tidy and glance at a corrected regression
#'
#' @param x A `corrected_glm`.
#' @param method Keep only these methods (`"naive"`, `"gold_only"`, `"corrected"`); `NULL` keeps all. One method
#'   gives one model per table, as modelsummary expects:
#'   `modelsummary::modelsummary(list(naive = fit, corrected = fit), ...)` needs a tidy per method, e.g.
#'   `lapply(c(naive = "naive", corrected = "corrected"), function(m) structure(list(tidy = tidy(fit, method = m),
#'   glance = glance(fit)), class = "modelsummary_list"))`.
#' @param conf.int,conf.level As in broom: `conf.int = FALSE` leaves out `conf.low` and `conf.high`; `conf.level`
#'   (default: the fit's) recomputes the Wald intervals (estimate -/+ z * std.error) at another level.
#' @param ... Must be empty.
#' @return `tidy()`: a tibble with `term`, `estimate`, `std.error`, `statistic`, `p.value`, `conf.low`,
#'   `conf.high`, `method`, `lambda` (the power tuning of each corrected coefficient), `df` and `flag`. `glance()`:
#'   one row with `formula`, `family`, `predicted`, `corrected_method`, `lambda` (`NA` when it differs by
#'   coefficient), `lambda_rule` (how it was chosen), `n_corpus`, `n_gold`, `design`, `waves` (of the gold sample),
#'   `conf_level` and `calibration` (how the corpus's probabilities were calibrated to it by
#'   [calibrate_to_corpus()]; `NA` when they were not). `vcov()`: the covariance matrix of one method's coefficients, terms as dimnames (an error
#'   for `method = "ppi"` fits, which ppi-python gives no joint covariance for).
#' @name corrected_glm_tidiers
#' @export
tidy.corrected_glm <- function(x, method = NULL, conf.int = TRUE, conf.level = x$conf_level, ...) {
  check_dots(...)
  out <- tidy_interval(x$coefficients, conf.int, conf.level, x$conf_level, function(level) {
    # every interval of a corrected fit is estimate -/+ q * std.error, q the t quantile at the effective degrees
    # of freedom where the engine gives them (df), else the normal one
    table <- x$coefficients
    df <- if ("df" %in% names(table)) table$df else rep(NA_real_, nrow(table))
    z <- ifelse(is.na(df) | !is.finite(df), stats::qnorm((1 + level) / 2), stats::qt((1 + level) / 2, pmax(df, 1)))
    table$conf.low <- table$estimate - z * table$std.error
    table$conf.high <- table$estimate + z * table$std.error
    table
  })
  if (!is.null(method)) {
    unknown <- setdiff(method, levels(out$method))
    if (length(unknown)) abort_argument(sprintf("`method` must be among naive, gold_only, corrected, not %s",
                                                paste(unknown, collapse = ", ")))
    out <- out[out$method %in% method, ]
  }
  out
}

#' @rdname corrected_glm_tidiers
#' @export
glance.corrected_glm <- function(x, ...) {
  check_dots(...)
  tibble::tibble(formula = paste(deparse(x$formula, width.cutoff = 500L), collapse = " "), family = x$family,
                 predicted = paste(x$predicted, collapse = ", "), corrected_method = x$corrected_method,
                 lambda = if (is.null(x$lambda)) NA_real_ else as.double(x$lambda),
                 lambda_rule = x$lambda_rule %||% NA_character_, n_corpus = x$n_corpus, n_gold = x$n_gold,
                 design = x$design, waves = x$waves %||% 1L, conf_level = x$conf_level,
                 calibration = x$calibration %||% NA_character_)
}

#' @rdname corrected_glm_tidiers
#' @param object A `corrected_glm`.
#' @importFrom stats vcov
#' @export
vcov.corrected_glm <- function(object, method = "corrected", ...) {
  check_dots(...)
  method <- arg_string(method, "method")
  if (!method %in% c("naive", "gold_only", "corrected")) {
    abort_argument(sprintf("`method` must be one of naive, gold_only, corrected, not %s", method))
  }
  matrix <- object$covariances[[method]]
  if (is.null(matrix)) {
    rlang::abort(c(sprintf("no covariance matrix for the %s fit", method),
                   i = "ppi-python gives none; fit with method = \"auto\" for vcov() and Wald tests"),
                 class = "imagesasdata_error", call = user_env())
  }
  matrix
}

#' @export
print.corrected_glm <- function(x, ...) {
  cat(sprintf("<corrected_glm> %s (%s)\n", paste(deparse(x$formula, width.cutoff = 500L), collapse = " "), x$family))
  cat(sprintf("  predicted: %s; %d corpus images, %d gold (%s)\n", paste(x$predicted, collapse = ", "), x$n_corpus,
              x$n_gold, x$design))
  cat(sprintf("  corrected by %s%s\n", x$corrected_method,
              if (!is.null(x$lambda)) sprintf(" (lambda %.2f)", x$lambda)
              else if (startsWith(x$corrected_method, "DSL")) " (lambda tuned per coefficient)" else ""))
  coefficients <- x$coefficients
  cells <- ifelse(is.na(coefficients$flag) & !is.na(coefficients$conf.low),
                  sprintf("%.3f [%.3f, %.3f]", coefficients$estimate, coefficients$conf.low, coefficients$conf.high),
                  sprintf("%.3f [unreliable]", coefficients$estimate))
  methods <- intersect(c("naive", "gold_only", "corrected"), as.character(coefficients$method))
  terms <- unique(coefficients$term)
  grid <- vapply(methods, function(m) cells[match(terms, coefficients$term[coefficients$method == m]) +
                                              (which(coefficients$method == m)[1] - 1L)], character(length(terms)))
  grid <- matrix(grid, nrow = length(terms), dimnames = list(terms, methods))
  widths <- c(max(nchar(c("term", terms))), pmax(nchar(methods), apply(grid, 2, function(v) max(nchar(v)))))
  if (sum(widths) + 2L * length(widths) <= getOption("width", 80L)) {
    line <- function(values) cat("  ", paste(mapply(formatC, values, width = -widths), collapse = "  "), "\n", sep = "")
    line(c("term", methods))
    for (t in terms) line(c(t, grid[t, ]))
  } else {
    for (t in terms) {
      cat(sprintf("  %s\n", t))
      for (m in methods) cat(sprintf("    %-10s %s\n", m, grid[t, m]))
    }
  }
  cat(sprintf("  estimates [%g%% intervals]; tidy() for the table, vcov() for the covariance, autoplot() to compare\n",
              100 * x$conf_level))
  flagged <- coefficients[!is.na(coefficients$flag), ]
  for (i in seq_len(nrow(flagged))) {
    cat(sprintf("  unreliable: %s %s: %s\n", flagged$method[i], flagged$term[i], flagged$flag[i]))
  }
  for (note in x$notes) cat(sprintf("  note: %s\n", note))
  invisible(x)
}

#' Plot a corrected regression: each coefficient under the three methods
#'
#' @param object A `corrected_glm`.
#' @param terms Which terms to show (default: all but the intercept).
#' @param truth Optional known values of the coefficients (a named numeric vector, e.g. in a simulation), drawn as
#'   dashed lines.
#' @param ... Must be empty.
#' @return A ggplot object: one panel per term, the naive, gold-only and corrected estimates with their intervals.
#' @method autoplot corrected_glm
#' @export
autoplot.corrected_glm <- function(object, terms = NULL, truth = NULL, ...) {
  check_dots(...)
  table <- object$coefficients
  terms <- terms %||% setdiff(unique(table$term), "(Intercept)")
  if (!length(terms)) terms <- unique(table$term)
  unknown <- setdiff(terms, table$term)
  if (length(unknown)) abort_argument(sprintf("`terms`: no term %s (terms: %s)", paste(unknown, collapse = ", "),
                                              paste(unique(table$term), collapse = ", ")))
  table <- table[table$term %in% terms, ]
  table$term <- factor(table$term, levels = terms)
  labels <- c(naive = "naive (predictions as if true)", gold_only = "gold sample only", corrected = "corrected")
  table$label <- factor(labels[as.character(table$method)], levels = rev(labels))
  plot <- ggplot2::ggplot(table, ggplot2::aes(x = .data$estimate, y = .data$label, colour = .data$method)) +
    ggplot2::geom_vline(xintercept = 0, colour = "grey80") +
    ggplot2::geom_errorbar(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high), width = 0.25,
                           orientation = "y") +
    ggplot2::geom_point(size = 2.5) +
    ggplot2::facet_wrap(ggplot2::vars(.data$term), scales = "free_x") +
    ggplot2::scale_colour_manual(values = c(naive = "#d95f02", gold_only = "#7570b3", corrected = "#1b9e77"),
                                 guide = "none") +
    ggplot2::labs(x = sprintf("estimate with %g%% interval", 100 * object$conf_level), y = NULL,
                  title = "How much the correction matters",
                  subtitle = wrap_text(sprintf("%d corpus images, %d coded; corrected by %s", object$n_corpus, object$n_gold,
                                     object$corrected_method))) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(panel.spacing.x = ggplot2::unit(1.5, "lines"))   # free x scales: keep neighbours' labels apart
  if (!is.null(truth)) {
    lines <- data.frame(term = factor(names(truth), levels = terms), value = as.double(truth))
    lines <- lines[!is.na(lines$term), ]
    plot <- plot + ggplot2::geom_vline(data = lines, ggplot2::aes(xintercept = .data$value), linetype = "dashed")
  }
  plot
}

#' The share of each class in the corpus, corrected with a gold sample
#'
#' Naive (the share of predicted labels, with a Wilson interval), gold-only (the design-weighted share of codes) and
#' corrected (the gold images' share within each stratum and predicted class, weighted by the corpus's counts:
#' post-stratification), overall or within groups such as days or accounts. The gold-only and corrected intervals
#' are Jeffreys intervals of that weighted sum (seeded Monte Carlo): unlike Wald intervals they keep their coverage
#' when a rare class meets a heavily weighted stratum that shows few or none of it. `method = "dsl"` gives the DSL
#' estimator with a Wald interval, `method = "ppi"` ppi-python's mean (simple random samples only); with
#' `use = "probability"` the DSL estimator is used. The `interval` column says which. The Wald intervals covered
#' as little as 45% with a 2-5% class and a few hundred gold images (benchmarks/README.md) and warn there: when a
#' group's gold images hold fewer than 10 of the class (or of the others), or fewer than 5 misclassified ones in a
#' stratum holding a fifth of the corpus.
#'
#' @param data The labelled corpus (from [predict()] or [labelled_images()], joined to any metadata): `image_id`,
#'   `.pred_class` and, for `use = "probability"`, the `.pred_<class>` columns (or the engine's names, `predicted`
#'   and `prob_<class>`).
#' @param gold The coded gold sample from [read_coding_sheet()].
#' @param classes The classes (default: all present).
#' @param by A column of `data` to estimate within each of its groups; groups with fewer than 10 gold images get
#'   only the naive estimate (with a warning).
#' @param use `"class"` (the predicted class) or `"probability"` (its probability, best with `calibrate = TRUE`).
#' @param strata The column of `data` the gold sample was stratified by (default: the one recorded with the
#'   sample; `".pred_class"` for strata by predicted class).
#' @inheritParams corrected_glm
#' @return A tibble of class `corrected_prevalence`: `[by]`, `class`, `method`, `estimate`, `std.error`,
#'   `conf.low`, `conf.high`, `n_corpus`, `n_gold`, `interval`; attribute `calibration`: how the corpus's
#'   probabilities were calibrated to it ([calibrate_to_corpus()]; `NULL` when they were not). `autoplot()` draws it.
#' @export
corrected_prevalence <- function(data, gold, classes = NULL, by = NULL, use = c("class", "probability"),
                                 method = c("auto", "ppi", "dsl"), lambda = NULL, conf_level = 0.95, id = "image_id",
                                 design = NULL, strata = NULL) {
  by <- column_arg(substitute(by), parent.frame(), data, "by")
  use <- arg_match(use)
  method <- arg_match(method)
  if (!is.data.frame(data)) abort_argument(sprintf("`data` must be a data frame (the corpus), not %s", describe_value(data)))
  result <- engine_call(
    engine()$corrected_prevalence, arg_corpus(data), arg_gold(gold, "gold"),
    classes = if (is.null(classes)) NULL else as.list(as.character(classes)), by = arg_string(by, "by", null = TRUE),
    use = use, method = method, lam = arg_share(lambda, "lambda", null = TRUE),
    confidence = arg_share(conf_level, "conf_level", open = TRUE), id = arg_string(id, "id"),
    design = arg_design(design), strata = engine_column_name(arg_string(strata, "strata", null = TRUE))
  )
  table <- as_tibble_engine(result, kind = "prevalence")
  table$method <- factor(table$method, levels = c("naive", "gold_only", "corrected"))
  # the fit's classes and positive class, carried by the gold sample (or the corpus) from the fit
  design <- if (is.data.frame(gold)) attr(gold, "gold_design", exact = TRUE) else NULL
  levels <- if (is.character(design) && length(design) == 1) gold_classes(design) else character()
  if (length(levels)) table$class <- factor(table$class, levels = union(levels, unique(as.character(table$class))))
  attr(table, "positive_class") <- (if (is.data.frame(gold)) attr(gold, "positive_class", exact = TRUE)) %||%
    positive_of_labels(data)
  attr(table, "by") <- by
  attr(table, "calibration") <- py_value(engine_call(bridge()$calibration_note, result))
  class(table) <- c("corrected_prevalence", class(table))
  table
}

#' @rdname corrected_prevalence
#' @param object A `corrected_prevalence`.
#' @param level Which class to show (default: the fit's positive class, carried by the gold sample; else the
#'   second class).
#' @param ... Must be empty.
#' @method autoplot corrected_prevalence
#' @export
autoplot.corrected_prevalence <- function(object, level = NULL, ...) {
  check_dots(...)
  classes <- if (is.factor(object$class)) levels(object$class) else unique(object$class)
  level <- level %||% attr(object, "positive_class", exact = TRUE) %||% classes[[min(2L, length(classes))]]
  table <- as.data.frame(object)
  table <- table[as.character(table$class) == level, ]
  by <- attr(object, "by")
  table$group <- if (is.null(by)) "corpus" else as.character(table[[by]])
  ggplot2::ggplot(table, ggplot2::aes(x = .data$group, y = .data$estimate, colour = .data$method)) +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             position = ggplot2::position_dodge(width = 0.5), na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(naive = "#d95f02", gold_only = "#7570b3", corrected = "#1b9e77"),
                                 labels = c(naive = "naive (predictions as if true)", gold_only = "gold sample only",
                                            corrected = "corrected")) +
    ggplot2::labs(x = by %||% "", y = sprintf("share of %s", level), colour = NULL,
                  title = sprintf("Prevalence of %s", level)) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom")
}
