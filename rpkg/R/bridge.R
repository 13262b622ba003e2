# The R side of the bridge: engine tables (pyarrow) ↔ tibbles, with exact types.
#
# Why a bridge of our own: Debian 12's reticulate 1.28 returns numpy 2 arrays and pandas 3 data frames to R
# unconverted, every reticulate turns a Python list holding None into an R list, and reticulate 1.28 turns a
# Python int above 2^31 into 0. The engine (python/imagesasdata/bridge.py) therefore sends each column as a
# homogeneous plain list plus a type word and the 0-based rows that are null; this file rebuilds integer,
# double, character, logical, factor, Date, POSIXct, list and data-frame columns with NA at those rows. The same
# holds in the other direction (engine_table()). Zero-row tables keep their columns and types.
#
# How to wrap a new engine function (dedupe, autotag, tune tables, ...) — a dozen lines, no logic in R:
#
#   image_duplicates <- function(data, threshold = 8L) {
#     result <- engine_call(engine()$find_duplicates,          # 1. call the engine through engine_call(),
#                           arg_images(data, "data"),          #    checking and converting each argument
#                           threshold = arg_count(threshold, "threshold"))
#     as_tibble_engine(result, factors = "label")              # 2. Arrow table -> tibble
#   }
#
# arg_*() (checks.R) convert types explicitly (arg_count() gives Python an int); engine_call() turns the
# engine's ImagesAsDataError into an R condition of class "imagesasdata_error" with the engine's message;
# as_tibble_engine() converts any Arrow table (or pandas frame, or dict of columns) the engine returns. Options a
# user passes through `...` go through engine_call_list(); the engine's own warnings come back as R warnings.

#' Convert an engine table to a tibble
#'
#' The one conversion every wrapper uses: an Arrow table returned by the Python engine becomes a tibble with
#' the same rows and columns — integers stay integer (wider ones become double), nulls become `NA`, string
#' columns named in `factors` become factors, Arrow dictionaries become factors, dates and timestamps become
#' `Date` and `POSIXct`, list columns become list columns and structs data-frame columns.
#'
#' @param x A Python object from the engine: a `pyarrow.Table`, a pandas data frame or a dict of columns.
#' @param factors Names of columns to return as factors (absent ones are ignored).
#' @param levels Level order for those factors, e.g. a fit's classes; `NULL` sorts the values present
#'   naturally (`s2` before `s10`). Values outside `levels` are added after them, never turned into `NA`.
#' @param kind Which kind of table of the engine/R contract (python/imagesasdata/schema.py): `"predictions"`,
#'   `"metrics"`, `"confusion"`, `"coefficients"`, `"prevalence"` or `"grid"`. The engine then sends its columns in
#'   R's names (`.pred_class`, `.pred_<class>`, `.metric`, `conf.low`, ...); `NULL` leaves every name as it is.
#' @return A tibble.
#' @noRd
#' @export
as_tibble_engine <- function(x, factors = NULL, levels = NULL, kind = NULL) {
  deprecated_export("as_tibble_engine()", caller = sys.frame(sys.parent()))
  spec <- NULL
  if (length(factors)) {
    level_list <- if (is.null(levels)) NULL else as.list(as.character(levels))
    spec <- stats::setNames(rep(list(level_list), length(factors)), as.character(factors))
  }
  encoded <- engine_call(bridge()$to_r, x, factors = spec, kind = kind)
  decode_table(py_value(encoded))
}

# A named list of encoded tables (bridge.run_tables and the like) to a named list of tibbles.
decode_tables <- function(encoded) {
  lapply(py_value(encoded), decode_table)
}

decode_table <- function(encoded) {
  nrow <- as.integer(encoded$nrow)
  names <- as.character(unlist(encoded$names))
  columns <- lapply(encoded$columns, decode_column, nrow = nrow)
  names(columns) <- names
  tibble::new_tibble(columns, nrow = nrow)
}

# Atomic templates for each type word; a column of zero rows is template[0].
TEMPLATES <- list(logical = logical(), integer = integer(), double = double(), character = character(),
                  factor = integer(), date = double(), datetime = double())

decode_column <- function(column, nrow) {
  type <- column$type
  missing <- as.integer(unlist(column$missing)) + 1L
  if (identical(type, "list")) return(decode_list(column, nrow, missing))
  if (identical(type, "struct")) return(decode_struct(column, nrow))
  template <- TEMPLATES[[type]]
  if (is.null(template)) stop("the engine sent a column of unknown type ", type, "; update the R package")
  values <- plain_vector(column$values, template, nrow)
  values[missing] <- NA
  switch(type,
    factor = structure(values, levels = as.character(unlist(column$levels)), class = "factor"),
    date = structure(values, class = "Date"),
    datetime = .POSIXct(values, tz = column$tz %||% ""),
    values
  )
}

# reticulate makes a homogeneous Python list an R vector, an empty one list(), and (in some versions) leaves
# a list unsimplified; all become a vector of the template's type and the expected length.
plain_vector <- function(values, template, nrow) {
  if (is.null(values) || length(values) == 0) {
    values <- template
  } else if (is.list(values)) {
    values <- unlist(values, use.names = FALSE)
  }
  if (inherits(values, "python.builtin.object")) {
    stop("reticulate returned a Python object where the bridge expected plain values; please report this ",
         "with your reticulate version (", utils::packageVersion("reticulate"), ")")
  }
  storage.mode(values) <- typeof(template)
  if (length(values) != nrow) stop(sprintf("bridge: %d values for %d rows", length(values), nrow))
  unname(values)
}

decode_list <- function(column, nrow, missing) {
  lengths <- plain_vector(column$lengths, integer(), nrow)
  child <- decode_column(column$child, sum(lengths))
  rows <- factor(rep.int(seq_len(nrow), lengths), levels = seq_len(nrow))
  cells <- unname(split(child, rows))
  cells[missing] <- list(NULL)
  cells
}

decode_struct <- function(column, nrow) {
  fields <- lapply(column$children, decode_column, nrow = nrow)
  names(fields) <- as.character(unlist(column$names))
  tibble::new_tibble(fields, nrow = nrow)
}

# ----------------------------------------------------------------------------------------------- R -> engine

#' Send a data frame to the engine as an Arrow table
#'
#' The reverse of [as_tibble_engine()]: each column travels as a plain list with its type and the rows that are
#' `NA` (which become nulls, never the string `"NA"`). Character, factor (as text), integer, double (`NaN` kept),
#' logical, `Date` and `POSIXct` columns are supported.
#'
#' @param data A data frame.
#' @param kind As for [as_tibble_engine()]: R's names of that kind of table go back to the engine's.
#' @return A Python `pyarrow.Table`.
#' @noRd
#' @export
engine_table <- function(data, kind = NULL) {
  deprecated_export("engine_table()", caller = sys.frame(sys.parent()))
  if (!is.data.frame(data)) abort_argument(sprintf("expected a data frame, not %s", describe_value(data)))
  columns <- lapply(names(data), function(name) encode_r_column(data[[name]], name))
  encoded <- list(nrow = nrow(data), names = as.list(names(data)), columns = columns)
  engine_call(bridge()$from_r, encoded, kind = kind)
}

# The engine/R contract (python/imagesasdata/schema.py) as R data, read once per session.
engine_schema <- function() {
  if (is.null(.engine$schema)) .engine$schema <- py_value(bridge()$schema())
  .engine$schema
}

# ----------------------------------------------------------------------------------------------- names
#
# The one place where R's names meet the engine's. Tables cross already renamed (as_tibble_engine(kind =) and
# engine_table(kind =): the bridge renames through the engine's schema, python/imagesasdata/schema.py); the few
# names that cross outside a table -- a column named in an argument, a metric, a formula and its terms, a record's
# keys (bridge()$r_record) -- are converted here, by asking the same schema. No other R file renames an engine
# column or metric.

# yardstick's name of an engine metric (f1 -> f_meas, loss -> mn_log_loss), from the contract.
r_metric_name <- function(metric) {
  names <- unlist(engine_schema()$r_metrics)
  renamed <- unname(names[metric])
  ifelse(is.na(renamed), metric, renamed)
}

# select_on in R may use yardstick's names (f_meas, mn_log_loss): the engine's, from its schema.
engine_select_on <- function(select_on) as.character(py_value(bridge()$engine_metric(select_on)))

# A column name of R's predictions in the engine's spelling (.pred_class -> predicted, .pred_x -> prob_x).
engine_column_name <- function(name) {
  if (is.null(name)) return(NULL)
  as.character(py_value(bridge()$engine_column(name, "predictions")))
}

# A formula in the engine's spelling, and the engine's term names back in R's: both through the engine's schema
# (schema.engine_formula, schema.r_terms: R's prediction names, ^, &, |, !, TRUE/FALSE, patsy's levels), so R
# renames nothing itself.
engine_formula <- function(text) as.character(py_value(bridge()$engine_formula(text)))

r_term_names <- function(terms, formula) {
  if (!length(terms)) return(character())
  as.character(unlist(py_value(bridge()$r_terms(as.list(as.character(terms)), as.list(all.vars(formula))))))
}

encode_r_column <- function(x, name) {
  # A named vector (c(a = 1, b = 2), sapply()'s result, a tibble column that kept its names) travels as its values:
  # its names would turn the rows of NA into a Python dict, which the engine cannot read.
  x <- unname(x)
  type <- if (is.factor(x)) "factor"
    else if (inherits(x, "Date")) "date"
    else if (inherits(x, "POSIXct")) "datetime"
    else if (is.logical(x)) "logical"
    else if (is.integer(x)) "integer"
    else if (is.double(x)) "double"
    else if (is.character(x)) "character"
    else abort_argument(sprintf(
      "column `%s` is %s; the engine takes character, factor, numeric, logical, Date or POSIXct columns",
      name, paste0("a ", class(x)[[1]])))
  missing <- is.na(x)
  if (is.double(x)) missing <- missing & !is.nan(x)  # NaN is a number to the engine; NA is missing
  values <- switch(type,
    factor = as.integer(x),
    date = as.double(unclass(x)),
    datetime = as.double(unclass(x)),
    unclass(x)
  )
  values[missing] <- switch(type, character = "", logical = FALSE, 0L)
  encoded <- list(type = type, values = as.list(unname(values)), missing = as.list(which(missing) - 1L))
  if (type == "factor") encoded$levels <- as.list(levels(x))
  if (type == "datetime") encoded$tz <- attr(x, "tzone") %||% ""
  encoded
}
