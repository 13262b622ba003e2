# Argument checks and conversions done in R before anything reaches Python: only type and shape (a whole
# number, one string, TRUE/FALSE). What values make sense is the engine's to judge; its message comes back
# through engine_call().

`%||%` <- function(x, y) if (is.null(x)) y else x

describe_value <- function(x) {
  if (is.null(x)) return("NULL")
  if (length(x) != 1) return(sprintf("a %s vector of length %d", class(x)[[1]], length(x)))
  sprintf("%s (a %s)", format(x), class(x)[[1]])
}

arg_string <- function(x, name, null = FALSE) {
  if (is.null(x) && null) return(NULL)
  if (is.factor(x)) x <- as.character(x)
  if (!is.character(x) || length(x) != 1 || is.na(x)) {
    abort_argument(sprintf("`%s` must be one string%s, not %s", name, if (null) " or NULL" else "", describe_value(x)))
  }
  x
}

# A whole number as an R integer, so Python receives an int (R's 25 is a double, and the engine wants ints).
arg_count <- function(x, name, null = FALSE) {
  if (is.null(x) && null) return(NULL)
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || !is.finite(x) || x != round(x) || abs(x) > .Machine$integer.max) {
    abort_argument(sprintf("`%s` must be a whole number%s, not %s", name, if (null) " or NULL" else "", describe_value(x)))
  }
  as.integer(x)
}

arg_number <- function(x, name, null = FALSE) {
  if (is.null(x) && null) return(NULL)
  if (!is.numeric(x) || length(x) != 1 || is.na(x)) {
    abort_argument(sprintf("`%s` must be a number%s, not %s", name, if (null) " or NULL" else "", describe_value(x)))
  }
  as.double(x)
}

# One of `choices` (match.arg() in R's condition style): a vector of several (the default) means the first.
arg_choice <- function(x, choices, name) {
  if (identical(x, choices)) return(choices[[1]])
  if (is.character(x) && length(x) == 1 && !is.na(x) && x %in% choices) return(x)
  hint <- if (is.character(x) && length(x) == 1) closest(x, choices) else character()
  abort_argument(c(sprintf("`%s` must be one of %s, not %s.", name, and_list(sprintf("\"%s\"", choices), "or"),
                           if (is.character(x) && length(x) == 1) sprintf("\"%s\"", x) else describe_value(x)),
                   i = if (length(hint)) sprintf("Did you mean \"%s\"?", hint)), argument = name)
}

# match.arg() for an argument whose default lists the choices, e.g. backend <- arg_match(backend).
arg_match <- function(arg) {
  name <- deparse(substitute(arg))
  choices <- eval(formals(sys.function(sys.parent()))[[name]], envir = parent.frame())
  arg_choice(arg, choices, name)
}

arg_flag <- function(x, name) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    abort_argument(sprintf("`%s` must be TRUE or FALSE, not %s", name, describe_value(x)))
  }
  x
}

# Training's progress: TRUE (bars and a line per epoch), FALSE (silent), or "epochs" (a line per epoch only),
# "bars", "none".
arg_progress <- function(x, name = "progress") {
  if (is.logical(x) && length(x) == 1 && !is.na(x)) return(x)
  if (is.character(x) && length(x) == 1 && x %in% c("epochs", "bars", "none")) return(x)
  abort_argument(sprintf("`%s` must be TRUE, FALSE or \"epochs\", not %s", name, describe_value(x)))
}

# TRUE, FALSE or one string such as "auto".
arg_flag_or_string <- function(x, name) {
  if (is.logical(x) && length(x) == 1 && !is.na(x)) return(x)
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(x)
  abort_argument(sprintf("`%s` must be TRUE, FALSE or a string such as \"auto\", not %s", name, describe_value(x)))
}

# What users pass as images: a folder, a table file or one image (one string); several image files (a character
# vector); or a data frame with a path column (sent as an Arrow table, NA kept as null).
arg_images <- function(x, name) {
  if (is.data.frame(x)) {
    if ("label" %in% names(x)) x$label <- r_labels(x$label)   # logical labels are the classes "TRUE" and "FALSE"
    return(engine_table(x))
  }
  if (is.factor(x)) x <- as.character(x)
  if (is.character(x) && length(x) >= 1 && !anyNA(x)) {
    return(if (length(x) == 1) path.expand(x) else as.list(path.expand(x)))
  }
  abort_argument(sprintf(
    "`%s` must be a folder, a CSV/Parquet file, image paths (a character vector) or a data frame with a path column, not %s",
    name, describe_value(x)))
}

# One or several strings (a Python str for one, a list for several, so a one-element vector stays a str).
arg_strings <- function(x, name, null = FALSE) {
  if (is.null(x) && null) return(NULL)
  if (is.factor(x)) x <- as.character(x)
  if (!is.character(x) || !length(x) || anyNA(x)) {
    abort_argument(sprintf("`%s` must be a character vector (one or more names)%s, not %s", name,
                           if (null) " or NULL" else "", describe_value(x)))
  }
  if (length(x) == 1) x else as.list(x)
}

# One value of any simple type (a string, number or TRUE/FALSE), or NULL.
arg_scalar <- function(x, name) {
  if (is.null(x)) return(NULL)
  if (is.factor(x)) x <- as.character(x)
  if (!is.atomic(x) || length(x) != 1 || is.na(x)) {
    abort_argument(sprintf("`%s` must be one value (a string, number or TRUE/FALSE) or NULL, not %s", name, describe_value(x)))
  }
  x
}

# c(low, high) as two Python floats, or NULL.
arg_range <- function(x, name) {
  if (is.null(x)) return(NULL)
  if (!is.numeric(x) || length(x) != 2 || anyNA(x)) {
    abort_argument(sprintf("`%s` must be c(low, high), e.g. c(0, 10), or NULL, not %s", name, describe_value(x)))
  }
  as.list(as.double(x))
}

# A table: a data frame (sent as an Arrow table) or one CSV/Parquet file path.
arg_table <- function(x, name) {
  if (is.data.frame(x)) return(engine_table(x))
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  abort_argument(sprintf("`%s` must be a data frame or the path of a CSV/Parquet file, not %s", name, describe_value(x)))
}
