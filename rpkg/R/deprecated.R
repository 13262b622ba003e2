# Names that changed, kept for one release with a lifecycle warning (lifecycle::deprecate_warn(): once every 8
# hours per name, always under testthat when lifecycle_verbosity = "warning"), then removed. Calls from inside the
# package never warn: only a user's code does.
#
# 0.1.0 exported as_tibble_engine() and engine_table(), the bridge's internal conversions (rpkg/R/bridge.R): every
# exported function returns tibbles in R's names, so nothing needs them. They stay exported until the next release.

#' Deprecated functions
#'
#' @description
#' Deprecated. `as_tibble_engine()` and `engine_table()` were exported by imagesasdata 0.1.0, but they are the package's own
#' conversions between the Python engine's Arrow tables and tibbles: every exported function already returns
#' tibbles, with tidymodels' column names. They still work, with a deprecation warning, and will no longer be
#' exported from the next release.
#'
#' @param x A Python object from the engine: a `pyarrow.Table`, a pandas data frame or a dict of columns.
#' @param factors Names of columns to return as factors.
#' @param levels Level order for those factors.
#' @param kind Which kind of table of the engine/R contract (`"predictions"`, `"metrics"`, ...), or `NULL`.
#' @param data A data frame.
#' @return `as_tibble_engine()`: a tibble. `engine_table()`: a Python `pyarrow.Table`.
#' @name imagesasdata-deprecated
#' @aliases as_tibble_engine engine_table
#' @usage as_tibble_engine(x, factors = NULL, levels = NULL, kind = NULL)
#'
#' engine_table(data, kind = NULL)
#' @keywords internal
NULL

# Warn when `what` (an exported name kept for one release) is called from outside the package. `caller` is the
# calling frame of the deprecated function (its parent.frame()).
deprecated_export <- function(what, caller, details = NULL) {
  namespace <- environment(deprecated_export)
  # The package's own code, and its tests, run in environments whose parents include the package's namespace (for
  # tests, testthat's copy of it); a user's code does not. (topenv() would stop early where an option names another
  # top-level environment, as testthat's does.)
  env <- caller
  while (!identical(env, emptyenv())) {
    if (isNamespace(env) && identical(environmentName(env), environmentName(namespace))) return(invisible())
    env <- parent.env(env)
  }
  lifecycle::deprecate_warn("0.1.0", what, details = details %||%
                              "It is internal: imagesasdata's functions return tibbles in tidymodels' names.",
                            env = namespace)
}

# tune's verbs: show_best() and select_best() on a cnn_grid are registered as methods of tune's generics when tune
# is installed (now, or loaded later), so library(tune) and library(imagesasdata) work in either order. vctrs'
# s3_register() is the documented way to register a method for a generic of a package in Suggests.
register_tune_methods <- function() {
  vctrs::s3_register("tune::show_best", "cnn_grid", show_best.cnn_grid)
  vctrs::s3_register("tune::select_best", "cnn_grid", select_best.cnn_grid)
}
