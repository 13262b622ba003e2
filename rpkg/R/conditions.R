# Conditions for people, in R's vocabulary: errors and warnings are rlang conditions with classes (so code can
# catch them and tests can check them), they name the R argument and say what to do, and they show the call the
# user typed (finetune_cnn(...), predict(fit, ...)), never an internal helper. Engine errors carry fields (option,
# value, expected, choices, path, row, hint) from which R builds its condition (condition_from_fields() in
# engine.R). The engine writes its messages for Python and the command line (`learning_rate=-1.0`, `--out`); for
# its warnings and for raise sites that carry no fields yet, r_vocabulary() rewrites those into R's words here,
# with no model logic: only names and phrasing change.
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

# The first `name` in backticks of a message: the argument it is about.
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

# -------------------------------------------------------------------------------- engine messages in R's words

# The engine's message, written for Python and its command line, in R's words: `name=value` becomes `name = value`
# with R's spelling of the value (TRUE, NULL, "x", c(...)), "--out" becomes `out`, and the shapes the engine uses
# for a bad option ("learning_rate=-1.0 must be above 0", "optimizer='adm': choose one of sgd, adam, adamw")
# become "`learning_rate` must be above 0, not -1" and "`optimizer` must be one of ...". Returns the headline and
# the remaining sentences as bullets, and the argument named, if any.
r_vocabulary <- function(message) {
  text <- gsub("\\s*\\(CLI: [^)]*\\)", "", message)
  text <- replace_all(text, "--[a-z][a-z0-9-]*", function(flag) sprintf("`%s`", gsub("-", "_", substring(flag, 3))))
  argument <- NULL
  value <- "('[^']*'|\"[^\"]*\"|\\[[^]]*\\]|-?[0-9][0-9.e+-]*|True|False|None)"
  name <- "\\b([a-z][a-z0-9_]*)"
  # "name=value must be ..." (the option checks of TrainConfig and friends)
  shape <- regexec(paste0("^", name, "=", value, " (must) (.*)$"), text)
  parts <- regmatches(text, shape)[[1]]
  if (length(parts)) {
    argument <- parts[[2]]
    rest <- split_sentences(parts[[5]])
    first <- rest[[1]]
    aside <- regmatches(first, regexec("^(.*?)( \\([^()]*\\))$", first))[[1]]
    main <- if (length(aside)) aside[[2]] else first
    tail <- if (length(aside)) aside[[3]] else ""
    headline <- sprintf("`%s` %s %s, not %s%s.", argument, parts[[4]], r_values(main), r_value(parts[[3]]), r_values(tail))
    return(list(headline = headline, bullets = r_values(rest[-1]), argument = argument))
  }
  # "name=value: choose one of a, b, c"
  shape <- regexec(paste0("^", name, "=", value, ": choose (one of )?(.*)$"), text)
  parts <- regmatches(text, shape)[[1]]
  if (length(parts)) {
    argument <- parts[[2]]
    rest <- split_sentences(parts[[5]])
    choices <- trimws(strsplit(sub("[.]$", "", rest[[1]]), ",| or ")[[1]])
    choices <- choices[nzchar(choices)]
    quoted <- vapply(choices, function(choice) r_value(sub("^'(.*)'$", "\\1", choice), quote = TRUE), character(1))
    headline <- sprintf("`%s` must be %s, not %s.", argument,
                        if (length(quoted) == 1) quoted else paste("one of", and_list(quoted, "or")),
                        r_value(parts[[3]]))
    return(list(headline = headline, bullets = r_values(rest[-1]), argument = argument))
  }
  # "positive_class 'x' is not one of the classes ['a', 'b']"
  shape <- regexec(paste0("^", name, " ", value, " is not one of the classes \\[([^]]*)\\](.*)$"), text)
  parts <- regmatches(text, shape)[[1]]
  if (length(parts)) {
    argument <- parts[[2]]
    classes <- vapply(trimws(strsplit(parts[[4]], ",")[[1]]), r_value, character(1), USE.NAMES = FALSE)
    rest <- split_sentences(trimws(sub("^[.]", "", parts[[5]])))
    headline <- sprintf("`%s` must be one of the classes, %s, not %s.", argument, and_list(classes, "or"),
                        r_value(parts[[3]]))
    return(list(headline = headline, bullets = r_values(rest[nzchar(rest)]), argument = argument))
  }
  # "unknown option 'epocs'. Did you mean 'epochs'? Options: ..."
  shape <- regexec("^unknown option '([^']*)'[.]?(.*)$", text)
  parts <- regmatches(text, shape)[[1]]
  if (length(parts)) {
    rest <- split_sentences(trimws(parts[[3]]))
    rest <- rest[nzchar(rest)]
    rest <- sub("^Did you mean '([^']*)'", "Did you mean `\\1`", rest)
    rest <- sub("^Options: ", "The options: ", rest)
    return(list(headline = sprintf("Unknown argument `%s`.", parts[[2]]), bullets = r_values(rest),
                argument = parts[[2]]))
  }
  # anything else: "class_order [...] does not match ...", "cpus_per_trial needs ...": a leading option name is
  # the argument, else the first `name=` in the text
  leading <- regmatches(text, regexec("^([a-z][a-z0-9]*_[a-z0-9_]*) ", text))[[1]]
  if (length(leading)) {
    argument <- leading[[2]]
    text <- sub("^[a-z][a-z0-9_]* ", sprintf("`%s` ", argument), text)
  } else {
    named <- regmatches(text, regexec(paste0(name, "="), text))[[1]]
    if (length(named)) argument <- named[[2]]
  }
  sentences <- split_sentences(text)
  list(headline = r_values(sentences[[1]]), bullets = r_values(sentences[-1]), argument = argument)
}

# Every match of `pattern` in `text` replaced by fun(match).
replace_all <- function(text, pattern, fun) {
  out <- ""
  repeat {
    at <- regexpr(pattern, text, perl = TRUE)
    if (at < 0) break
    end <- at + attr(at, "match.length")
    out <- paste0(out, substr(text, 1, at - 1), fun(substr(text, at, end - 1)))
    text <- substr(text, end, nchar(text))
  }
  paste0(out, text)
}

# Sentences: split after ". " (or "? ") before a capital letter, never after "e.g." or "i.e.", and before the
# engine's " Did you mean ...?".
split_sentences <- function(text) {
  marked <- gsub("(?<!e\\.g|i\\.e)([.?!]) (?=[A-Z])", "\\1\001", text, perl = TRUE)
  marked <- gsub(" (?=Did you mean )", "\001", marked, perl = TRUE)
  parts <- trimws(strsplit(marked, "\001", fixed = TRUE)[[1]])
  if (!length(parts)) "" else parts
}

# Every `name=value` (and `name=...`) of a sentence in R's spelling.
r_values <- function(text) {
  if (!length(text)) return(character())
  value <- "('[^']*'|\"[^\"]*\"|\\[[^]]*\\]|-?[0-9][0-9.e+-]*[0-9]|-?[0-9]|True|False|None)"
  vapply(text, function(sentence) {
    sentence <- gsub("\\b([a-z][a-z0-9_]*)=(\u2026|\\.\\.\\.)", "`\\1 =`", sentence, perl = TRUE)
    sentence <- replace_all(sentence, "\\[('[^']*'(, )?)*\\]", r_value)
    sentence <- replace_all(sentence, paste0("\\b[a-z][a-z0-9_]*=", value), function(pair) {
      at <- regexpr("=", pair, fixed = TRUE)
      sprintf("`%s = %s`", substr(pair, 1, at - 1), r_value(substring(pair, at + 1)))
    })
    gsub("(?<![A-Za-z])'([^'\\s]*)'(?![A-Za-z])", "\"\\1\"", sentence, perl = TRUE)
  }, character(1), USE.NAMES = FALSE)
}

# One Python literal in R's spelling: 'x' -> "x", True -> TRUE, None -> NULL, -1.0 -> -1, ['a', 'b'] -> c("a", "b").
r_value <- function(value, quote = FALSE) {
  if (value %in% c("True", "False")) return(toupper(value))
  if (identical(value, "None")) return("NULL")
  if (grepl("^\\[.*\\]$", value)) {
    inner <- trimws(strsplit(substr(value, 2, nchar(value) - 1), ",")[[1]])
    return(sprintf("c(%s)", paste(vapply(inner[nzchar(inner)], r_value, character(1)), collapse = ", ")))
  }
  if (grepl("^'.*'$", value) || grepl('^".*"$', value)) return(sprintf("\"%s\"", substr(value, 2, nchar(value) - 1)))
  number <- suppressWarnings(as.numeric(value))
  if (!is.na(number)) return(format(number, scientific = FALSE, drop0trailing = TRUE, trim = TRUE))
  if (quote) sprintf("\"%s\"", value) else value
}
