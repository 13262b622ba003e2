# tune's verbs for a grid of fine-tunes: show_best() and select_best() (as in tune's R/select_best.R), and broom's
# tidy() and glance(). A grid holds one validation split, so each configuration has one estimate per metric (tune's
# `mean` over resamples is that estimate) with its 95% interval.

# The grid's metrics in yardstick's names (schema.GRID_METRICS through R_METRICS: f_meas, and mn_log_loss for the
# validation cross-entropy, the engine's val_loss); the engine's names (f1, loss) are taken too.
grid_metric <- function(metric, grid) {
  metric <- arg_string(metric %||% grid$select_on, "metric")
  choices <- as.character(unlist(engine_schema()$grid_metrics))
  metric <- r_metric_name(metric)
  if (!metric %in% choices) {
    hint <- closest(metric, choices)
    abort_argument(c(sprintf("`metric` must be one of %s, not \"%s\".", and_list(sprintf("\"%s\"", choices), "or"),
                             metric),
                     i = if (length(hint)) sprintf("Did you mean \"%s\"?", hint)))
  }
  metric
}

# A grid's metrics in long form, from the engine (bridge.grid_metrics: the estimator by the engine's headline rule,
# the best first by its one selection rule), already in tune's names: every metric (`metric = NULL`,
# collect_metrics()'s shape) or the finished configurations ranked on one (show_best()'s).
grid_long <- function(grid, metric = NULL) {
  result <- engine_call(bridge()$grid_metrics, engine_table(grid$results, kind = "grid"), as.list(grid$parameters),
                        length(grid_classes(grid)), metric = metric)
  as_tibble_engine(result, kind = "grid_metrics")
}

grid_classes <- function(grid) {
  if (is.environment(grid$cache) && !is.null(grid$cache$classes)) return(grid$cache$classes)
  classes <- tryCatch(as.character(unlist(py_value(grid_of(grid)$best$classes))), error = function(e) character())
  if (is.environment(grid$cache)) grid$cache$classes <- classes
  classes
}

#' The best configurations of a grid, tune's way
#'
#' `show_best()` lists the top configurations on a validation metric; `select_best()` gives the best one's settings
#' (for the metric the grid was chosen on, always the engine's choice, [best_cnn()]'s fit). As tune's functions of
#' the same names, with one difference: a grid is evaluated on one validation split, so `mean` is that split's
#' estimate and its 95% interval (`conf.low`, `conf.high`) takes the place of tune's standard error.
#'
#' @param x A `cnn_grid` from [tune_cnn()] or [load_grid()].
#' @param metric `"accuracy"`, `"precision"`, `"recall"`, `"f_meas"` (F1) or `"mn_log_loss"` (the validation
#'   loss; `"loss"` also works). Default: the one the grid was chosen on.
#' @param n How many configurations to show.
#' @param ... Must be empty.
#' @return `show_best()`: a tibble with the grid's options, `.metric`, `.estimator`, `mean`, `conf.low`, `conf.high` and
#'   `.config` (the configuration id), best first. `select_best()`: one row, the grid's options and `.config`.
#' @section With tune: When the tune package is installed, `show_best()` and `select_best()` on a `cnn_grid` are
#'   also registered as methods of tune's generics of the same names, and these functions hand anything other than
#'   a `cnn_grid` to tune's. So `library(tune)` before or after `library(imagesasdata)` masks nothing that matters:
#'   either package's `show_best()` works on a `cnn_grid` and on tune's results.
#' @seealso [tidy.cnn_grid()], [best_cnn()]
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' grid <- tune_cnn(file.path(sample_data(), "faces"),
#'                  grid = list(learning_rate = c(0.001, 0.01), momentum = c(0.7, 0.9)),
#'                  epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE)
#' show_best(grid, metric = "f_meas")
#' select_best(grid)
#' }
show_best <- function(x, ...) {
  if (!inherits(x, "cnn_grid") && isNamespaceLoaded("tune")) return(getExportedValue("tune", "show_best")(x, ...))
  UseMethod("show_best")
}

#' @rdname show_best
#' @export
select_best <- function(x, ...) {
  if (!inherits(x, "cnn_grid") && isNamespaceLoaded("tune")) return(getExportedValue("tune", "select_best")(x, ...))
  UseMethod("select_best")
}

#' @rdname show_best
#' @export
show_best.cnn_grid <- function(x, metric = NULL, n = 5L, ...) {
  check_dots(...)
  utils::head(grid_long(x, grid_metric(metric, x)), arg_count(n, "n"))
}

#' @rdname show_best
#' @export
select_best.cnn_grid <- function(x, metric = NULL, ...) {
  check_dots(...)
  best <- show_best(x, metric = metric, n = 1L)
  best[c(x$parameters, ".config")]
}

#' Tidy and glance at a grid
#'
#' @param x A `cnn_grid`.
#' @param conf.int,conf.level As in broom: `conf.int = FALSE` leaves out `conf.low` and `conf.high`; a grid holds
#'   95% intervals only (another `conf.level` is an error that says how to get it from the chosen fit).
#' @param ... Must be empty.
#' @return `tidy()`: one row per configuration and validation metric, as tune's `collect_metrics()`: `.config`, the
#'   grid's options, `.metric` (`accuracy`, `precision`, `recall`, `f_meas`, `mn_log_loss`), `.estimator`,
#'   `.estimate`, `conf.low`, `conf.high`, `best_epoch` and `status`. `glance()`: one row: `configurations`, `completed`,
#'   `parameters` (the options varied), `select_on`, `best_config`, the chosen configuration's validation
#'   `accuracy`, `precision`, `recall`, `f_meas` and `mn_log_loss`, whether a test split was scored (`tested`),
#'   where the grid's last call on Ray ran -- `nodes` (in the cluster when it started), `workers` (trials started),
#'   `nodes_used` (that finished trials), `nodes_lost` and `retried` (trials Ray Tune ran again; counts, `NA` for a
#'   grid that never ran on Ray; the trials per node are in `x$cluster$by_node`, why each was retried in
#'   `x$cluster$retried`) -- and `path`.
#' @name cnn_grid_tidiers
#' @export
tidy.cnn_grid <- function(x, conf.int = TRUE, conf.level = 0.95, ...) {
  check_dots(...)
  if (!isTRUE(all.equal(arg_share(conf.level, "conf.level", open = TRUE), 0.95))) {
    abort_argument(c("A grid holds its intervals at the 95% level only: `conf.level` must be 0.95.",
                     i = "For another level, tidy the chosen fit: `tidy(best_cnn(grid), conf.level = ...)`."),
                   argument = "conf.level")
  }
  out <- grid_long(x)
  if (!arg_flag(conf.int, "conf.int")) out <- out[setdiff(names(out), c("conf.low", "conf.high"))]
  out
}

#' @rdname cnn_grid_tidiers
#' @export
glance.cnn_grid <- function(x, ...) {
  check_dots(...)
  best <- best_row(x)
  cluster <- x$cluster
  count <- function(value) if (is.null(cluster)) NA_integer_ else as.integer(value)
  tibble::tibble(configurations = nrow(x$results), completed = sum(x$results$status %in% "complete"),
                 parameters = paste(x$parameters, collapse = ", "), select_on = x$select_on,
                 best_config = x$best_config, accuracy = best$val_accuracy, precision = best$val_precision,
                 recall = best$val_recall, f_meas = best$val_f_meas, mn_log_loss = best$val_loss,
                 tested = !is.null(x$test_metrics), nodes = count(length(cluster$nodes)),
                 workers = count(cluster$workers), nodes_used = count(nrow(cluster$by_node)),
                 nodes_lost = count(length(cluster$nodes_lost)), retried = count(length(cluster$retried)),
                 path = x$path)
}
