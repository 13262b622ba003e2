# The run directory, the unit of reproducibility: saving, loading and reading its training history. Mirrors
# python/imagesasdata/runs.py.

#' Save a fitted CNN to a folder
#'
#' Copies the run directory — weights (safetensors), settings and class names (JSON), history, metrics,
#' confusion matrices and predictions (Parquet) — to `path`. Everything needed to explain and reload the model
#' is in that one folder, in open formats.
#'
#' @param fit A `cnn_fit`.
#' @param path A new (or empty) folder.
#' @return The saved copy, as a `cnn_fit` reading from `path` (invisibly).
#' @export
save_cnn <- function(fit, path) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  saved <- engine_call(run_of(fit)$save, path.expand(arg_string(path, "path")))
  invisible(new_cnn_fit(saved))
}

#' Load a fitted CNN from its run directory
#'
#' Opens a folder written by [finetune_cnn()] (its `out`), [save_cnn()] or the `imagesasdata finetune` command.
#' Weights are read with safetensors only; a pickle is refused unread.
#'
#' @param path The run directory.
#' @return A `cnn_fit`.
#' @export
load_cnn <- function(path) {
  new_cnn_fit(engine_call(engine()$load_run, path.expand(arg_string(path, "path"))))
}

#' Training history of a fitted CNN, or of every configuration of a grid
#'
#' @param fit A `cnn_fit`, or a `cnn_grid` from [tune_cnn()].
#' @return A tibble with one row per epoch and split: `epoch`, `split` (`train`, `val`), `loss`, `accuracy`,
#'   `learning_rate` (the rate used in that epoch, after StepLR) and `seconds`; for a grid, first `config_id` and
#'   the grid's options (its `learning_rate` is the configuration's; the epoch's scheduled rate is
#'   `epoch_learning_rate`). `autoplot(fit)` and `autoplot(grid)` draw it.
#' @export
cnn_history <- function(fit) {
  if (inherits(fit, "cnn_grid")) return(fit$history)
  result_table(fit, "history")
}
