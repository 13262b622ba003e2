# Classes follow R. A factor label gives the class order (its levels, those used) and the positive class (the
# first level: yardstick's "event"); a logical label becomes the classes "TRUE" and "FALSE", TRUE first; an explicit
# `class_order` or `positive_class` overrides both. Character labels and folders keep the engine's rule (classes
# in natural order; the positive class is "positive" if there is one, else the second). The engine receives the
# result as its class_order and positive_class options; nothing about the model is decided here.

# The path columns the engine guesses (data/table.py PATH_COLUMN_GUESSES).
PATH_COLUMNS <- c("path", "file", "filename", "file_name", "image", "image_path", "filepath")

# Labelled data for the engine, checked in R: the label and path columns exist (else an error naming the closest
# column), a logical label is sent as TRUE/FALSE text, and the classes' order and positive class come from the
# factor. Returns list(images = what the engine reads, label, path, class_order, positive_class).
labelled_data <- function(data, label, path, class_order = NULL, positive_class = NULL, data_arg = "data",
                          required = TRUE) {
  order <- NULL
  if (is.data.frame(data)) {
    path <- path_column(data, path, data_arg)
    label <- if (required || !is.null(label)) require_column(data, label, "label", data_arg, default = "label")
             else if ("label" %in% names(data)) "label" else NULL
    if (!is.null(label)) {
      warn_numeric_label(data[[label]], label)
      data[[label]] <- r_labels(data[[label]])
      if (is.factor(data[[label]])) order <- levels(droplevels(data[[label]]))
    }
  } else if (is_text_table(data)) {
    columns <- text_table_columns(data)
    if (!is.null(path)) require_columns_of(columns, path, "path", data_arg)
    if (required || !is.null(label)) require_columns_of(columns, label %||% "label", "label", data_arg, given = !is.null(label))
  }
  if (!is.null(class_order)) {
    if (is.factor(class_order)) class_order <- levels(class_order)
    if (!is.character(class_order) || anyNA(class_order) || !length(class_order)) {
      abort_argument(sprintf("`class_order` must be the class names in order (a character vector), not %s",
                             describe_value(class_order)))
    }
    order <- class_order
  }
  positive <- positive_class
  if (is.null(positive) && length(order) == 2) positive <- order[[1]]
  list(images = arg_images(data, data_arg), label = label, path = path,
       class_order = if (is.null(order)) NULL else as.list(order),
       positive_class = arg_string(positive, "positive_class", null = TRUE), levels = order)
}

# A labelled table from the engine as a tibble whose `label` is a factor: with `levels` (a factor the user gave),
# in that order; otherwise in natural order, except that with two classes the engine's default positive class comes
# first. Given back to finetune_cnn(), such a table is then read with the positive class the engine would choose
# for its source (R's rule: the first level), and tidymodels users see the event first, as yardstick expects.
label_tibble <- function(result, levels = NULL) {
  table <- as_tibble_engine(result, factors = "label", levels = levels)
  if (is.null(levels) && is.factor(table$label) && nlevels(table$label) == 2) {
    positive <- py_value(engine_call(bridge()$positive_class, as.list(levels(table$label))))
    table$label <- factor(table$label, levels = c(positive, setdiff(levels(table$label), positive)))
  }
  table
}

# The levels of a data frame's factor (or logical) `label` column, to keep in what the engine returns; NULL otherwise.
input_levels <- function(x) {
  if (!is.data.frame(x) || !"label" %in% names(x)) return(NULL)
  labels <- r_labels(x$label)
  if (is.factor(labels)) levels(droplevels(labels)) else NULL
}

# A label column in R's terms: logical becomes a factor with levels TRUE, FALSE (TRUE, the event, first).
# A numeric label column is almost always a mistake (a count, a score) or codes that need names: say what happens.
warn_numeric_label <- function(x, label) {
  if (!is.numeric(x)) return(invisible())
  values <- sort(unique(x[!is.na(x)]))
  shown <- and_list(format(utils::head(values, 5), trim = TRUE, drop0trailing = TRUE))
  warn_imagesasdata(c(
    sprintf("The label column `%s` is numeric: treating %s%s as classes.", label, shown,
            if (length(values) > 5) sprintf(" (and %d more)", length(values) - 5) else ""),
    i = sprintf("Convert it with `factor()` (levels give the class order; the first is the positive class), or name the classes: `factor(%s, labels = c(...))`.", label)
  ), class = "imagesasdata_warning_numeric_label")
}

r_labels <- function(x) {
  if (is.logical(x)) return(factor(ifelse(x, "TRUE", "FALSE"), levels = c("TRUE", "FALSE")))
  x
}

path_column <- function(data, path, data_arg) {
  if (!is.null(path)) return(require_column(data, path, "path", data_arg))
  found <- intersect(PATH_COLUMNS, names(data))
  if (length(found)) return(NULL)   # the engine's own guess
  rlang::abort(c(
    sprintf("No path column in `%s`.", data_arg),
    i = sprintf("Name the column of image paths with `path =`, or call it one of %s.",
                paste(backticks(PATH_COLUMNS[1:4]), collapse = ", ")),
    i = sprintf("Its columns: %s.", paste(utils::head(names(data), 12), collapse = ", "))
  ), class = c("imagesasdata_column_error", "imagesasdata_argument_error", "imagesasdata_error"),
  call = user_env(), argument = "path")
}

# A CSV or TSV file given by its path: its header is read in R so that a missing column is named before Python
# reads the table. (Parquet files are left to the engine.)
is_text_table <- function(x) {
  is.character(x) && length(x) == 1 && !is.na(x) && grepl("\\.(csv|tsv|txt)$", tolower(x)) && file.exists(x)
}

text_table_columns <- function(file) {
  sep <- if (grepl("\\.tsv$", tolower(file))) "\t" else ","
  header <- tryCatch(utils::read.csv(path.expand(file), sep = sep, nrows = 20L, check.names = FALSE,
                                     stringsAsFactors = FALSE),
                     error = function(e) NULL)
  header
}

require_columns_of <- function(header, name, arg, data_arg, given = TRUE) {
  if (is.null(header) || name %in% names(header)) return(invisible(name))
  rlang::abort(c(
    sprintf("No column %s in `%s`.", backticks(name), data_arg),
    column_hints(header, name, arg, given = given)
  ), class = c("imagesasdata_column_error", "imagesasdata_argument_error", "imagesasdata_error"),
  call = user_env(), argument = arg)
}

# image_table() on a table without a label column: every label is NA. Say so when the table has columns that
# could hold labels, and which one looks most like them.
warn_unlabelled <- function(data, data_arg) {
  candidates <- label_like(data)
  if (!length(candidates)) return(invisible())
  warn_imagesasdata(c(
    sprintf("No column `label` in `%s`: every image is unlabelled (`label` is NA).", data_arg),
    i = sprintf("If a column holds the labels, name it: `label = %s`.", candidates[[1]])
  ), class = "imagesasdata_warning_unlabelled")
}
