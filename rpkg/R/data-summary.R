# The book's Table 7.1 in one call: the images of each task by class and split (the engine's data_summary()).

#' How many images each task has, by class and split (the book's Table 7.1)
#'
#' One call for the table the book opens its case study with: for each task (e.g. protest, John Legend, each
#' emotion), the number of images of each class in the training, validation and test splits. Data that come split
#' (the book's `train/`, `val/`, `test/` folders, or a `split` column) are counted as they are; data not yet split
#' are counted in the split [finetune_cnn()] and [tune_cnn()] would draw with the same `val_fraction`,
#' `test_fraction` and `seed`, so the table describes the data exactly as the models will see them.
#'
#' @param tasks A named list with one entry per task, each its labelled images as for [finetune_cnn()] (a folder,
#'   a CSV/Parquet file or a data frame); or one task's images (named `"task"`).
#' @param label,path The label and path columns of table data (the same names for every task).
#' @param val_fraction,test_fraction,seed,balance As for [finetune_cnn()]; used only for data not yet split.
#'   `test_fraction = NULL` holds out 10% when every class has at least 20 images, else nothing.
#' @return A tibble, one row per task and class: `task`, `class`, `train`, `val`, `test`, `total` (image counts),
#'   `share` (the class's share of the task's images), `split_source` (`"given"` or `"drawn"`) and `no_test` (why
#'   the task has no test split, or `NA`). [format_data_summary()] prints it with the book's words.
#' @seealso [tune_tasks_cnn()] and [grid_summary()] for Table 7.2.
#' @export
#' @examplesIf engine_available()
#' sample <- sample_data()
#' data_summary(list(who = file.path(sample, "faces"), s1_or_not = file.path(sample, "person_vs_others.csv")))
data_summary <- function(tasks, label = NULL, path = NULL, val_fraction = 0.2, test_fraction = NULL, seed = 0L,
                         balance = FALSE) {
  if (!is.list(tasks) || is.data.frame(tasks)) tasks <- list(task = tasks)
  if (!length(tasks) || is.null(names(tasks)) || any(!nzchar(names(tasks))) || anyDuplicated(names(tasks))) {
    abort_argument("`tasks` must be a named list with one entry per task, e.g. list(protest = \"protest/\", legend = legend_table)")
  }
  label <- arg_string(label, "label", null = TRUE)
  path <- arg_string(path, "path", null = TRUE)
  rows <- lapply(names(tasks), function(name) {
    labelled <- labelled_data(tasks[[name]], label, path, data_arg = sprintf("tasks$%s", name))
    table <- engine_call(engine()$data_summary, stats::setNames(list(labelled$images), name),
                         label = labelled$label, path = labelled$path,
                         val_fraction = arg_number(val_fraction, "val_fraction"),
                         test_fraction = arg_number(test_fraction, "test_fraction", null = TRUE),
                         seed = arg_count(seed, "seed"), balance = arg_flag(balance, "balance"))
    as_tibble_engine(table)
  })
  do.call(rbind, rows)
}

#' @rdname data_summary
#' @param summary The result of `data_summary()`.
#' @param digits Decimal places of the percentages.
#' @return `format_data_summary()`: a data frame of text for `knitr::kable()`: Task, Class, Training,
#'   Validation, Test, Total and Share (of the task's images), with a total row per task.
#' @export
format_data_summary <- function(summary, digits = 1L) {
  if (!is.data.frame(summary) || !all(c("task", "class", "train", "val", "test", "total") %in% names(summary))) {
    abort_argument("`summary` must be the result of data_summary()")
  }
  digits <- arg_count(digits, "digits")
  percent <- function(x) sprintf(paste0("%.", digits, "f%%"), 100 * x)
  pieces <- lapply(unique(summary$task), function(task) {
    rows <- summary[summary$task == task, ]
    counts <- data.frame(Task = c(rows$task, task), Class = c(rows$class, "all"),
                         Training = c(rows$train, sum(rows$train)), Validation = c(rows$val, sum(rows$val)),
                         Test = c(rows$test, sum(rows$test)), Total = c(rows$total, sum(rows$total)),
                         stringsAsFactors = FALSE)
    counts$Share <- percent(counts$Total / sum(rows$total))
    counts
  })
  out <- do.call(rbind, pieces)
  rownames(out) <- NULL
  out
}
