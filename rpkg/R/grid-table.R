# The book's Table 7.2 drawn as a figure: one row per task, the chosen configuration's validation metrics and its
# learning rate, momentum and batch size, in the book's column order (from format_grid_summary()).

#' Plot several tasks' grids: the book's Table 7.2
#'
#' Draws the table the book prints as Table 7.2 -- one row per task, the columns Task, Accuracy, F1, Precision,
#' Recall, Learning rate, Momentum and Batch size of each task's chosen configuration -- as a ggplot, so that it
#' sits in a report beside Figures 7.4 and 7.5 ([autoplot.cnn_grid()]). The metrics are those of the validation
#' split that chose the configuration (optimistic, as in the book); with a test split, the test accuracy and F1
#' follow in their own columns. [format_grid_summary()] gives the same table as text for `knitr::kable()`.
#'
#' @param object A `cnn_grids` from [tune_tasks_cnn()].
#' @param title,subtitle The plot's title and subtitle: the default names the table; `NULL` drops it; or any text.
#' @param ... Must be empty.
#' @return A ggplot.
#' @method autoplot cnn_grids
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' grids <- tune_tasks_cnn(list(who = file.path(sample_data(), "faces")), grid = list(learning_rate = c(0.001, 0.01)),
#'                         epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE)
#' autoplot(grids)
#' }
autoplot.cnn_grids <- function(object, title = ggplot2::waiver(), subtitle = ggplot2::waiver(), ...) {
  check_dots(...)
  with_titles(grid_table_plot(grid_summary(object)), title, subtitle)
}

# Table 7.2's layout from grid_summary()'s tibble: text in cells, the book's column names on top.
grid_table_plot <- function(summary) {
  text <- format_grid_summary(summary)
  book <- c("Task", "Accuracy", "F1", "Precision", "Recall", "Learning rate", "Momentum", "Batch size")
  tested <- intersect(c("Test accuracy", "Test F1"), names(text))
  others <- setdiff(names(text), c(book, grep("95% CI$", names(text), value = TRUE), grep("^Test ", names(text), value = TRUE)))
  columns <- c(intersect(book, names(text)), others, tested)
  cells <- do.call(rbind, lapply(columns, function(column) {
    data.frame(row = seq_len(nrow(text)), column = column, label = as.character(text[[column]]), stringsAsFactors = FALSE)
  }))
  cells$column <- factor(cells$column, levels = columns)
  cells$row <- factor(cells$row, levels = rev(seq_len(nrow(text))))
  ggplot2::ggplot(cells, ggplot2::aes(x = .data$column, y = .data$row, label = .data$label)) +
    ggplot2::geom_tile(fill = NA, colour = "grey85") +
    ggplot2::geom_text(size = 3.5) +
    ggplot2::scale_x_discrete(position = "top") +
    ggplot2::labs(x = NULL, y = NULL, title = "The chosen configuration of each task (the book's Table 7.2)",
                  subtitle = "validation metrics chose the configuration: optimistic") +
    ggplot2::theme_minimal() +
    ggplot2::theme(axis.text.y = ggplot2::element_blank(), panel.grid = ggplot2::element_blank(),
                   axis.text.x.top = ggplot2::element_text(face = "bold"))
}
