# Conditions for people, in R's vocabulary: errors and warnings are rlang conditions with classes (so code can
# catch them and tests can check them), they name the R argument and say what to do, and they show the call the
# user typed (finetune_cnn(...), predict(fit, ...)), never an internal helper. Engine errors carry fields (option,
# value, expected, choices, path, row, hint) from which R builds its condition (condition_from_fields() in
# engine.R). Where the fields do not make a sentence of their own, the condition's message is the engine's, which
# the engine spells for R itself (schema.render: `learning_rate = 0.1`, "x", TRUE, `out`); R never parses an
# engine message.
#
# Classes:
#   imagesasdata_error             every error of the package (engine errors included)
#   imagesasdata_argument_error    an argument of the wrong type, shape or value: checked in R before Python is
#                                  called, or refused by the engine (its message names the option)
#   imagesasdata_column_error      a column named (or expected) in a data frame that is not there
#   imagesasdata_dots_error        an argument in `...` that the method does not take (a typo, `newdata`)
#   imagesasdata_python_error      an unexpected Python exception (its traceback in the `traceback` field)
#   imagesasdata_warning           every warning; subclasses imagesasdata_warning_unreadable (images that could
#                                  not be read), imagesasdata_warning_one_class (one class predicted for all),
#                                  imagesasdata_warning_unlabelled (a table without a label column)
# Argument errors carry the R argument's name in their `argument` field.

# The frame of the outermost imagesasdata function on the call stack: the call the user typed. rlang shows it as
# "Error in `finetune_cnn()`" (for an S3 method, the generic's call: "Error in `predict()`").
user_env <- function() {
  namespace <- topenv(environment(user_env))
  frames <- sys.nframe() - 1L
  for (i in seq_len(frames)) {
    fun <- sys.function(i)
    if (is.function(fun) && identical(environment(fun), namespace)) return(sys.frame(i))
  }
  NULL
}

abort_argument <- function(message, ..., argument = NULL, class = NULL, call = user_env()) {
  if (is.null(argument)) argument <- first_argument(message[[1]])
  rlang::abort(message, class = c(class, "imagesasdata_argument_error", "imagesasdata_error"), call = call,
               argument = argument, ...)
}

# The first `name` in backticks of a message R itself wrote (abort_argument()'s, never an engine message): the
# argument it is about.
first_argument <- function(text) {
  found <- regmatches(text, regexpr("`[A-Za-z_.][A-Za-z0-9_.$]*`", text))
  if (length(found)) gsub("`", "", found) else NULL
}

warn_imagesasdata <- function(message, class = NULL, call = user_env(), ...) {
  call <- if (is.environment(call)) sys_call_of(call) else call
  text <- if (length(message) > 1) {
    paste(c(message[[1]], rlang::format_error_bullets(message[-1])), collapse = "\n")
  } else {
    message
  }
  warning(warningCondition(text, class = c(class, "imagesasdata_warning"), call = call, ...))
}

# The call of the frame `env`, an S3 method's as its generic's (predict(), not predict.cnn_fit()).
sys_call_of <- function(env) {
  for (i in rev(seq_len(sys.nframe()))) {
    if (!identical(sys.frame(i), env)) next
    call <- sys.call(i)
    name <- if (is.symbol(call[[1]])) as.character(call[[1]]) else ""
    generic <- sub("\\.[^.]+$", "", name)
    class <- substring(name, nchar(generic) + 2L)
    if (nzchar(class) && !is.null(utils::getS3method(generic, class, optional = TRUE))) call[[1]] <- as.name(generic)
    return(call)
  }
  NULL
}

# ----------------------------------------------------------------------------------------- did you mean

# The choices closest to `name` (case-insensitive edit distance, at most a third of its length, and at least 2), or
# character(0).
closest <- function(name, choices, n = 1L) {
  choices <- unique(as.character(choices))
  if (!length(choices) || is.null(name) || !nzchar(name)) return(character())
  distance <- drop(utils::adist(tolower(name), tolower(choices)))
  limit <- max(2, ceiling(nchar(name) / 3))
  keep <- order(distance)[distance[order(distance)] <= limit]
  utils::head(choices[keep], n)
}

backticks <- function(x) paste0("`", x, "`")

# "a, b and c"
and_list <- function(x, last = "and") {
  if (length(x) <= 1) return(paste(x, collapse = ""))
  paste(paste(utils::head(x, -1), collapse = ", "), last, utils::tail(x, 1))
}

# ----------------------------------------------------------------------------------------------- dots

# Methods of R generics (predict, augment, tidy, autoplot, ...) must take `...`; whatever lands there is a
# mistake: a misspelt argument (`tpye = "prob"`) or another package's name for one (`newdata`). Call it first
# thing in a method with `...`, as check_dots(...).
check_dots <- function(..., .allowed = character(), .renames = c(newdata = "new_data")) {
  dots <- as.list(substitute(list(...)))[-1]
  if (!length(dots)) return(invisible())
  method <- sys.function(sys.parent())
  known <- setdiff(c(names(formals(method)), .allowed), "...")
  names <- names(dots) %||% rep("", length(dots))
  passed <- nzchar(names) & names %in% .allowed
  if (all(passed)) return(invisible())
  bullets <- character()
  for (k in which(!passed)) {
    shown <- paste(deparse(dots[[k]], width.cutoff = 60L), collapse = " ")
    name <- names[[k]]
    if (!nzchar(name)) {
      bullets <- c(bullets, x = sprintf("An unnamed argument: %s.", shown))
      next
    }
    bullets <- c(bullets, x = sprintf("%s is not an argument here.", backticks(sprintf("%s = %s", name, shown))))
    if (name %in% names(.renames) && .renames[[name]] %in% known) {
      bullets <- c(bullets, i = sprintf("Use %s (the tidymodels name), not %s.", backticks(.renames[[name]]),
                                        backticks(name)))
    } else if (length(suggestion <- closest(name, known))) {
      bullets <- c(bullets, i = sprintf("Did you mean %s?", backticks(sprintf("%s = %s", suggestion, shown))))
    }
  }
  rlang::abort(c("Arguments in `...` must be used.", bullets),
               class = c("imagesasdata_dots_error", "imagesasdata_argument_error", "imagesasdata_error"),
               call = user_env(), argument = "...", dots = names[!passed])
}

# ----------------------------------------------------------------------------------------- columns

# A column argument (label, path, group) as the user wrote it: a string; or a bare name, label = is_s1, which
# names a column of `data` (as in dplyr) or, if `data` has no such column, an R object holding the name.
column_arg <- function(expr, env, data, arg, data_arg = "data") {
  if (is.null(expr)) return(NULL)
  if (is.symbol(expr)) {
    name <- as.character(expr)
    if (is.data.frame(data) && name %in% names(data)) return(name)
    if (!exists(name, envir = env)) {
      columns <- if (is.data.frame(data)) names(data) else character()
      hint <- closest(name, columns)
      abort_argument(c(
        sprintf("`%s = %s`: no column %s in `%s`, and no R object of that name.", arg, name, backticks(name),
                data_arg),
        i = if (length(hint)) sprintf("Did you mean `%s = %s`?", arg, hint),
        i = if (!is.data.frame(data)) sprintf("Name the column as a string: `%s = \"%s\"`.", arg, name)
      ), class = "imagesasdata_column_error", argument = arg)
    }
  }
  value <- eval(expr, env)
  if (is.null(value)) return(NULL)
  arg_string(value, arg)
}

# The label column of a data frame: `label` when given (it must exist), else "label". A missing column is an
# error that suggests the column that looks most like labels.
require_column <- function(data, name, arg, data_arg = "data", default = NULL) {
  wanted <- name %||% default
  if (wanted %in% names(data)) return(wanted)
  rlang::abort(c(
    sprintf("No column %s in `%s`.", backticks(wanted), data_arg),
    column_hints(data, wanted, arg, given = !is.null(name))
  ), class = c("imagesasdata_column_error", "imagesasdata_argument_error", "imagesasdata_error"),
  call = user_env(), argument = arg)
}

column_hints <- function(data, wanted, arg, given) {
  columns <- names(data)
  guess <- closest(wanted, columns)
  if (!length(guess) && identical(arg, "label")) guess <- label_like(data)
  c(i = if (length(guess)) sprintf("Did you mean `%s = %s`?", arg, guess[[1]]) else
          if (!given) sprintf("Name the column that holds the %ss with `%s =`.", arg, arg),
    i = sprintf("Its columns: %s.", paste(utils::head(columns, 12), collapse = ", ")))
}

# The columns that could hold class labels: character, factor or logical, other than paths, ids and splits, with
# fewer distinct values than rows; the one named most like "label" first.
label_like <- function(data) {
  skip <- c("path", "image_id", "split", "file", "filename", "image", "error")
  candidates <- Filter(function(name) {
    column <- data[[name]]
    !(name %in% skip) && (is.character(column) || is.factor(column) || is.logical(column)) &&
      length(unique(column[!is.na(column)])) %in% seq_len(max(1L, nrow(data) - 1L))
  }, names(data))
  if (!length(candidates)) return(character())
  candidates[order(drop(utils::adist("label", tolower(candidates))))]
}
