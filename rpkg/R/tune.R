# Hyperparameter grids (the book's section 7.2): tune_cnn() and the grid object it returns (class "cnn_grid"),
# several tasks at once, the book's Table 7.2, and the learning-rate finder. Mirrors python/imagesasdata/tune.py.

#' Fine-tune a grid of configurations and choose the best on validation
#'
#' What the book does in section 7.2: every configuration of a grid of hyperparameters is fine-tuned on the same
#' split, the best is chosen on validation, and the test split (if any) is evaluated once, for the chosen
#' configuration only. The book's grid (`grid = "book"`) is 3 learning rates x 2 momentums x 2 batch sizes, 50
#' epochs, StepLR 7 / 0.1. Grids are cheap: the images are decoded once and shared; with `freeze = "backbone"` and
#' `augment_crop = FALSE`, features are computed once and only the last layer trains. An interrupted grid resumes
#' when run again with the same `out`.
#'
#' @param data The labelled images, as for [finetune_cnn()].
#' @param grid A preset: `"table7.2"` (the book's 12 configurations as in its Table 7.2: learning rate 0.0005,
#'   0.001, 0.005 x momentum 0.7, 0.9 x batch size 1, 4; 50 epochs; StepLR step size 7, gamma 0.1; `"book"` is the
#'   same) or `"figure7.4"` (the same with gamma 0.01, as the book's Figures 7.4/7.5 -- the book uses both gammas
#'   without comment, and the grid prints a note saying so). The presets train under `recipe = "head-first"` (the
#'   book's SGD and StepLR on the offline network; `recipe = "book"` for Listing 1's ResNet-18), not the default
#'   recipe, whose one-cycle schedule has no step size or gamma. Or a named list of vectors, every combination of which
#'   is a configuration, e.g. `list(learning_rate = c(0.001, 0.01), momentum = c(0.7, 0.9))`; or a data frame
#'   with one row per configuration and one column per option.
#' @param ... Fixed options for every configuration, as named arguments of [finetune_cnn()] (e.g. `epochs = 10`,
#'   `image_size = 64`, `freeze = "backbone"`); the grid's values override them, and they override the preset's
#'   (the book's 50 epochs).
#' @param out The grid directory (default: a new folder in R's session temporary directory, removed when R ends): `grid.json`, one run directory per
#'   configuration under `configs/`, `results.parquet`, `history.parquet`, `test_metrics.parquet`.
#' @param label,path The label and image path columns of a table: strings, or bare column names (`label = is_s1`).
#'   A factor (or logical) label gives the classes' order and the positive class, as in [finetune_cnn()].
#' @param select_on Validation measure that picks the configuration: `"accuracy"` (the book's), `"f_meas"` (F1; the
#'   engine's `"f1"` works too) or `"loss"`.
#' @param backend `"local"` runs configurations one after another in this R session; `"ray"` runs them as Ray Tune
#'   trials (on the cluster named by `RAY_ADDRESS`, else on this machine).
#' @param cpus_per_trial,gpus_per_trial With `backend = "ray"`: what each trial reserves (default: 1 CPU, and 1 GPU
#'   on a cluster with GPUs). A trial trains with as many threads as its CPUs; `gpus_per_trial = 0.5` puts two
#'   trials on one card.
#' @param progress As in [finetune_cnn()]: `"epochs"` (the default) writes a line per configuration and per epoch,
#'   `TRUE` adds progress bars, `FALSE` is silent.
#' @return A `cnn_grid`: `results` (a tibble, one row per configuration: `config_id`, the grid's options,
#'   `best_epoch`, `val_accuracy`, `val_precision`, `val_recall`, `val_f_meas` (F1), `val_loss`, `seconds`, `status`, then
#'   the 95% interval of each validation metric, `val_<metric>_lower` and `val_<metric>_upper`),
#'   `history` (every epoch of every configuration; see [cnn_history()]), `best_config`, `parameters` (the grid's
#'   option names), `test_metrics` (as [cnn_metrics()], or `NULL` without a test split), `cluster` (`NULL` unless
#'   the grid ran on Ray: its last call's `nodes`, `workers` (trials started), `by_node` (a tibble of `node` and
#'   `trials` finished there), `nodes_lost` and `retried` (each trial Ray Tune ran again, on which node and why))
#'   and `path`. Print it for
#'   the chosen configuration; [best_cnn()] gives its fitted model, `autoplot()` the training curves of all,
#'   [show_best()] and [select_best()] the top configurations on any metric (tune's verbs), `tidy()` and `glance()`
#'   ([cnn_grid_tidiers]) the metrics of every configuration and a one-row summary.
#' @seealso [tune_tasks_cnn()], [grid_summary()], [lr_find()], [load_grid()]
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' grid <- tune_cnn(file.path(sample_data(), "faces"),
#'                  grid = list(learning_rate = c(0.001, 0.01), momentum = c(0.7, 0.9)),
#'                  epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE)
#' grid
#' grid$results
#' autoplot(grid)
#' best_cnn(grid)
#' }
tune_cnn <- function(data, grid = "book", ..., out = NULL, label = NULL, path = NULL, select_on = "accuracy",
                     backend = c("local", "ray"), cpus_per_trial = NULL, gpus_per_trial = NULL,
                     progress = "epochs") {
  backend <- arg_choice(backend, c("local", "ray"), "backend")
  label <- column_arg(substitute(label), parent.frame(), data, "label")
  path <- column_arg(substitute(path), parent.frame(), data, "path")
  options <- train_options(list(...))
  labelled <- labelled_data(data, label, path, class_order = options$class_order,
                            positive_class = options$positive_class)
  options$class_order <- labelled$class_order
  options$positive_class <- labelled$positive_class
  select_on <- arg_string(select_on, "select_on")
  run_in_folder(out, "imagesasdata-grid-", function(folder) {
    result <- engine_call_list(engine()$tune, c(list(
      labelled$images, grid_spec(grid), out = folder, label = labelled$label, path = labelled$path,
      select_on = engine_select_on(select_on), backend = backend, progress = arg_progress(progress)
    ), trial_resources(cpus_per_trial, gpus_per_trial), options))
    new_cnn_grid(result, select_on)
  })
}

# A job's folder: `out` when given; else a new folder in R's session temporary directory (removed with the
# session, and at once if the job fails). `job(folder)` runs the engine call.
run_in_folder <- function(out, prefix, job) {
  if (!is.null(out)) return(job(path.expand(arg_string(out, "out"))))
  folder <- tempfile(prefix)
  withCallingHandlers(job(folder), error = function(e) unlink(folder, recursive = TRUE))
}

#' Tune the same grid for several tasks
#'
#' [tune_cnn()] for each task (e.g. the book's protest, John Legend and emotion classifiers) into `out/<task>/`.
#' [grid_summary()] turns the result into the book's Table 7.2.
#'
#' @param tasks A named list: for each task, its labelled images (a folder, a table file or a data frame).
#' @inheritParams tune_cnn
#' @return A `cnn_grids` object: a named list of `cnn_grid`s, one per task.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' sample <- sample_data()
#' grids <- tune_tasks_cnn(list(who = file.path(sample, "faces"),
#'                              s1_or_not = file.path(sample, "person_vs_others.csv")),
#'                         grid = list(learning_rate = c(0.001, 0.01)), epochs = 2, image_size = 64,
#'                         freeze = "backbone", augment_crop = FALSE)
#' grid_summary(grids)
#' }
tune_tasks_cnn <- function(tasks, grid = "book", ..., out = NULL, select_on = "accuracy", backend = c("local", "ray"),
                           cpus_per_trial = NULL, gpus_per_trial = NULL, progress = "epochs") {
  backend <- arg_choice(backend, c("local", "ray"), "backend")
  if (!is.list(tasks) || is.data.frame(tasks) || !length(tasks) || is.null(names(tasks)) || any(!nzchar(names(tasks))) ||
      anyDuplicated(names(tasks))) {
    abort_argument("`tasks` must be a named list with one entry per task, e.g. list(protest = \"protest/\", legend = legend_table)")
  }
  options <- train_options(list(...))
  # As the engine's tune_tasks(): tune() for each task into out/<task>/, each with its own classes.
  labelled <- lapply(names(tasks), function(name) {
    labelled_data(tasks[[name]], NULL, NULL, class_order = options$class_order,
                  positive_class = options$positive_class, data_arg = sprintf("tasks$%s", name))
  })
  names(labelled) <- names(tasks)
  select_on <- arg_string(select_on, "select_on")
  run_in_folder(out, "imagesasdata-tasks-", function(root) {
    grids <- lapply(names(tasks), function(name) {
      task_options <- options
      task_options$class_order <- labelled[[name]]$class_order
      task_options$positive_class <- labelled[[name]]$positive_class
      result <- engine_call_list(engine()$tune, c(list(
        labelled[[name]]$images, grid_spec(grid), out = file.path(root, name),
        select_on = engine_select_on(select_on), backend = backend, progress = arg_progress(progress)
      ), trial_resources(cpus_per_trial, gpus_per_trial), task_options))
      new_cnn_grid(result, select_on)
    })
    names(grids) <- names(tasks)
    structure(grids, class = "cnn_grids")
  })
}

# Ray Tune's per-trial resources, passed only when given (the engine checks them against the backend).
trial_resources <- function(cpus_per_trial, gpus_per_trial) {
  resources <- list(cpus_per_trial = arg_number(cpus_per_trial, "cpus_per_trial", null = TRUE),
                    gpus_per_trial = arg_number(gpus_per_trial, "gpus_per_trial", null = TRUE))
  resources[!vapply(resources, is.null, logical(1))]
}

#' Re-open a grid directory
#'
#' @param path A grid directory written by [tune_cnn()] (its `out`) or the `imagesasdata tune` command.
#' @return A `cnn_grid`.
#' @export
load_grid <- function(path) {
  path <- path.expand(arg_string(path, "path"))
  grid <- engine_call(engine()$load_grid, path)
  new_cnn_grid(grid, as.character(py_value(grid$select_on)))
}

# A cnn_grid holds the grid directory's path and its tables; the engine's Grid is kept in an environment and
# reopened from the path when missing (e.g. after readRDS()).
new_cnn_grid <- function(grid, select_on) {
  test <- grid$test_metrics
  grid_object <- structure(list(
    path = as.character(reticulate::py_str(grid$path)),
    results = as_tibble_engine(grid$results, kind = "grid"),
    history = as_tibble_engine(grid$history),
    best_config = as.character(py_value(grid$best_config)),
    parameters = as.character(unlist(py_value(grid$parameters))),
    select_on = r_metric_name(select_on),
    test_metrics = if (inherits(test, "python.builtin.NoneType")) NULL
                   else metric_tibble(as_tibble_engine(test, kind = "metrics")),
    cluster = cluster_object(grid)
  ), class = "cnn_grid")
  grid_object$cache <- new.env(parent = emptyenv())
  grid_object$cache$grid <- grid
  grid_object
}

# The engine's Grid behind a cnn_grid.
grid_of <- function(grid) engine_object(grid, "grid", "load_grid")

best_row <- function(grid) grid$results[grid$results$config_id == grid$best_config, ]

#' @export
print.cnn_grid <- function(x, ...) {
  best <- best_row(x)
  parameters <- if (length(x$parameters)) paste(x$parameters, collapse = " x ") else "no options"
  cat(sprintf("<cnn_grid> %d configurations of %s, chosen on validation %s\n", nrow(x$results), parameters,
              x$select_on))
  settings <- vapply(x$parameters, function(p) format(best[[p]][[1]]), character(1))
  cat(sprintf("  best: %s (%s)\n", x$best_config, paste(sprintf("%s = %s", x$parameters, settings), collapse = ", ")))
  shown <- vapply(c("accuracy", "precision", "recall", "f_meas"), function(m) {
    sprintf("%s %.3f%s", sub("f_meas", "f1", m), best[[paste0("val_", m)]],
            format_interval(best[[paste0("val_", m, "_lower")]], best[[paste0("val_", m, "_upper")]]))
  }, character(1))
  cat(sprintf("  val  %s, loss %.3f (epoch %s)\n", paste(shown, collapse = ", "), best$val_loss,
              format(best$best_epoch)))
  cat("       optimistic: the validation split chose this configuration and its epoch\n")
  if (!is.null(x$test_metrics)) {
    metrics <- x$test_metrics
    rows <- metrics[metrics$.estimator %in% c("binary", "multiclass", "macro"), ]
    labels <- ifelse(rows$.estimator == "macro", paste(rows$.metric, "(macro)"), rows$.metric)
    cat(sprintf("  test %s\n", paste(sprintf("%s %.3f%s", labels, rows$.estimate, format_interval(rows$conf.low, rows$conf.high)),
                                     collapse = ", ")))
    cat("       held out: scored once, for the chosen configuration only\n")
  } else {
    cat("  no test split: report the chosen configuration on new labelled images (cnn_evaluate())\n")
  }
  unfinished <- sum(x$results$status != "complete", na.rm = TRUE)
  if (unfinished) cat(sprintf("  %d configurations did not finish (see $results$status)\n", unfinished))
  lines <- cluster_lines(x$cluster, "grid", "; run again, it resumed from its last finished epoch")
  if (length(lines)) cat(lines, sep = "\n")
  cat(sprintf("  grid directory: %s\n", x$path))
  invisible(x)
}

#' @export
print.cnn_grids <- function(x, ...) {
  cat(sprintf("<cnn_grids> %d tasks: %s\n", length(x), paste(names(x), collapse = ", ")))
  for (task in names(x)) {
    best <- best_row(x[[task]])
    test <- x[[task]]$test_metrics
    tested <- if (is.null(test)) "" else {
      accuracy <- test$.estimate[test$.metric == "accuracy" & test$.estimator %in% c("binary", "multiclass")]
      if (length(accuracy)) sprintf("; test accuracy %.3f", accuracy[[1]]) else ""
    }
    cat(sprintf("  %s: %s, val accuracy %.3f, f1 %.3f (optimistic)%s\n", task, x[[task]]$best_config,
                best$val_accuracy, best$val_f_meas, tested))
  }
  cat("grid_summary() gives the book's Table 7.2\n")
  invisible(x)
}

#' The chosen configuration's fitted CNN
#'
#' @param grid A `cnn_grid` from [tune_cnn()] or [load_grid()].
#' @return A `cnn_fit` (the best configuration's run directory): print it, [predict()] with it, [save_cnn()] it.
#' @export
best_cnn <- function(grid) {
  if (!inherits(grid, "cnn_grid")) abort_argument(sprintf("`grid` must be a cnn_grid from tune_cnn(), not %s", describe_value(grid)))
  new_cnn_fit(engine_call(engine()$load_run, file.path(grid$path, "configs", grid$best_config)))
}

#' The book's Table 7.2: the chosen configuration of each task
#'
#' For each task, the chosen configuration's validation accuracy, F1, precision and recall, and its learning
#' rate, momentum and batch size (and any other grid option), plus test metrics when there was a test split.
#' `format_grid_summary()` makes the table as the book prints it, ready for `knitr::kable()`.
#'
#' @param grids A `cnn_grids` from [tune_tasks_cnn()], a named list of `cnn_grid`s, or one `cnn_grid`.
#' @param task For one `cnn_grid`: the task's name in the table.
#' @return `grid_summary()`: a tibble with `task`, `accuracy`, `f_meas` (F1), `precision`, `recall`, the grid's options,
#'   `test_<metric>` columns when tested, then each metric's 95% interval (`<metric>_lower`, `<metric>_upper`).
#'   `format_grid_summary()`: a data frame of text with the book's column names (Task, Accuracy, F1, Precision,
#'   Recall, Learning rate, Momentum, Batch size) and percentages, then one "95% CI" column per metric.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' grids <- tune_tasks_cnn(list(who = file.path(sample_data(), "faces")), grid = list(learning_rate = c(0.001, 0.01)),
#'                         epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE)
#' grid_summary(grids)
#' knitr::kable(format_grid_summary(grids))
#' }
grid_summary <- function(grids, task = "task") {
  if (inherits(grids, "cnn_grid")) grids <- stats::setNames(list(grids), arg_string(task, "task"))
  if (!is.list(grids) || !length(grids) || is.null(names(grids)) || any(!nzchar(names(grids))) ||
      !all(vapply(grids, inherits, logical(1), "cnn_grid"))) {
    abort_argument("`grids` must be the result of tune_tasks_cnn(), a named list of cnn_grid objects, or one cnn_grid")
  }
  engine_grids <- lapply(grids, grid_of)
  as_tibble_engine(engine_call(engine()$grid_summary, reticulate::r_to_py(engine_grids)), kind = "grid")
}

#' @rdname grid_summary
#' @param summary The result of `grid_summary()` (or grids, summarised first).
#' @param digits Decimal places of the percentages.
#' @export
format_grid_summary <- function(summary, digits = 1L) {
  if (!is.data.frame(summary)) summary <- grid_summary(summary)
  digits <- arg_count(digits, "digits")
  percent <- function(x) ifelse(is.na(x), "", sprintf(paste0("%.", digits, "f%%"), 100 * x))
  plain <- function(x) ifelse(is.na(x), "", format(x, scientific = FALSE, drop0trailing = TRUE, trim = TRUE))
  book_names <- c(task = "Task", accuracy = "Accuracy", f_meas = "F1", precision = "Precision", recall = "Recall",
                  learning_rate = "Learning rate", momentum = "Momentum", batch_size = "Batch size")
  label_of <- function(name) {
    label <- unname(ifelse(name %in% names(book_names), book_names[name], sentence_case(name)))
    sub("^Test f meas$", "Test F1", label)
  }
  metrics <- c("accuracy", "f_meas", "precision", "recall")
  # each metric's interval as one text column after the book's columns, e.g. "Accuracy 95% CI": "64.6-98.5%"
  with_interval <- sub("_lower$", "", grep("_lower$", names(summary), value = TRUE))
  intervals <- lapply(with_interval, function(metric) {
    lower <- summary[[paste0(metric, "_lower")]]
    upper <- summary[[paste0(metric, "_upper")]]
    ifelse(is.na(lower) | is.na(upper), "",
           sprintf(paste0("%.", digits, "f-%.", digits, "f%%"), 100 * lower, 100 * upper))
  })
  names(intervals) <- paste(label_of(with_interval), "95% CI")
  summary <- summary[!grepl("_(lower|upper)$", names(summary))]
  out <- lapply(names(summary), function(name) {
    values <- summary[[name]]
    is_metric <- name %in% metrics || grepl("^test_(accuracy|f_meas|precision|recall)$", name)
    if (is_metric) percent(values)
    else if (is.numeric(values)) vapply(values, plain, character(1))
    else ifelse(is.na(values), "", as.character(values))
  })
  out <- as.data.frame(c(stats::setNames(out, label_of(names(summary))), intervals), check.names = FALSE,
                       stringsAsFactors = FALSE)
  out
}

sentence_case <- function(name) {
  words <- gsub("_", " ", name)
  paste0(toupper(substring(words, 1, 1)), substring(words, 2))
}

#' Plot a grid: the book's Figures 7.4 and 7.5, or its Table 7.2
#'
#' `type = "curves"`: loss and accuracy by epoch, training against validation, for every configuration: facets by
#' the grid's first option (the book: learning rate), colour by its second (momentum), line type by its third
#' (batch size) -- the layout of the book's Figures 7.4 (loss) and 7.5 (accuracy) for `grid = "figure7.4"`.
#' `type = "table"`: the chosen configuration in the layout of the book's Table 7.2 (see [autoplot.cnn_grids()]).
#'
#' @param object A `cnn_grid`.
#' @param type `"curves"` (Figures 7.4/7.5) or `"table"` (Table 7.2).
#' @param measure `"loss"` (Figure 7.4), `"accuracy"` (Figure 7.5) or both.
#' @param accuracy_limits The accuracy panels' y range, `c(0, 1)` by default so that small changes look small;
#'   `NULL` fits it to the data.
#' @param title,subtitle The plot's title and subtitle: the default describes the grid; `NULL` drops it; or any
#'   text.
#' @param ... Must be empty.
#' @return A ggplot.
#' @method autoplot cnn_grid
#' @export
autoplot.cnn_grid <- function(object, measure = c("loss", "accuracy"), accuracy_limits = c(0, 1),
                              title = ggplot2::waiver(), subtitle = ggplot2::waiver(), type = c("curves", "table"),
                              ...) {
  check_dots(...)
  type <- arg_choice(type, c("curves", "table"), "type")
  if (type == "table") return(with_titles(grid_table_plot(grid_summary(object)), title, subtitle))
  if (!is.character(measure) || !length(measure) || !all(measure %in% c("loss", "accuracy"))) {
    abort_argument(sprintf("`measure` must be \"loss\", \"accuracy\" or both, not %s", describe_value(measure)))
  }
  measure <- unique(measure)
  accuracy_limits <- unlist(arg_range(accuracy_limits, "accuracy_limits"))
  parameters <- object$parameters
  settings <- as.data.frame(object$results)[c("config_id", parameters)]
  history <- as.data.frame(object$history)
  # A configuration's own values come from results (the history's epoch_learning_rate is the scheduled rate).
  long <- do.call(rbind, lapply(measure, function(m) {
    data.frame(config_id = history$config_id, epoch = history$epoch, split = history$split, measure = m,
               value = history[[m]], stringsAsFactors = FALSE)
  }))
  long$measure <- factor(long$measure, levels = measure)
  long$split <- factor(long$split, levels = c("train", "val"), labels = c("training", "validation"))
  settings_of <- match(long$config_id, settings$config_id)
  aesthetic <- function(k) {
    if (length(parameters) < k) return(NULL)
    name <- parameters[[k]]
    values <- settings[[name]]
    shown <- function(v) ifelse(is.na(v), "NA", format(v, scientific = FALSE, drop0trailing = TRUE, trim = TRUE))
    levels <- unique(shown(sort(values, na.last = TRUE)))
    factor(shown(values[settings_of]), levels = levels, labels = if (k == 1) paste(name, "=", levels) else levels)
  }
  long$facet <- aesthetic(1) %||% factor("all configurations")
  long$colour <- aesthetic(2) %||% factor("")
  long$linetype <- aesthetic(3) %||% factor("")
  best <- best_row(object)
  chosen <- paste(sprintf("%s = %s", parameters, vapply(parameters, function(p) format(best[[p]][[1]]), character(1))),
                  collapse = ", ")
  plot <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value, group = .data$config_id,
                                             colour = .data$colour, linetype = .data$linetype)) +
    ggplot2::geom_line() +
    ggplot2::facet_grid(rows = ggplot2::vars(.data$measure, .data$split), cols = ggplot2::vars(.data$facet),
                        scales = "free_y") +
    ggplot2::scale_x_continuous(breaks = function(limits) unique(round(pretty(limits)))) +
    ggplot2::labs(x = "epoch", y = NULL, colour = if (length(parameters) >= 2) parameters[[2]] else NULL,
                  linetype = if (length(parameters) >= 3) parameters[[3]] else NULL,
                  title = sprintf("Training curves of %d configurations", nrow(object$results)),
                  subtitle = wrap_text(sprintf("chosen on validation %s: %s (%s)", object$select_on, object$best_config, chosen))) +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom")
  if (length(parameters) < 2) plot <- plot + ggplot2::guides(colour = "none")
  if (length(parameters) < 3) plot <- plot + ggplot2::guides(linetype = "none")
  if ("accuracy" %in% measure && !is.null(accuracy_limits)) {
    ends <- expand.grid(value = accuracy_limits, split = levels(long$split), facet = levels(long$facet))
    ends$measure <- factor("accuracy", levels = levels(long$measure))
    ends$split <- factor(ends$split, levels = levels(long$split))
    ends$facet <- factor(ends$facet, levels = levels(long$facet))
    ends$epoch <- min(long$epoch)
    plot <- plot + ggplot2::geom_blank(data = ends, ggplot2::aes(x = .data$epoch, y = .data$value), inherit.aes = FALSE)
  }
  with_titles(plot, title, subtitle)
}

#' Find a learning rate: the loss as the learning rate grows
#'
#' Trains briefly with a learning rate rising exponentially from `start_lr` to `end_lr` (Smith 2017; fastai's
#' `lr_find()`), stopping when the loss explodes. A good learning rate lies where the loss falls fastest, well
#' before it blows up. The suggestion suits the options' schedule: for the book's StepLR (which starts at the rate
#' and only lowers it) the steepest fall of the smoothed loss; for `schedule = "one_cycle"` or `"warmup_cosine"`
#' (the default recipe, "fast"), whose `learning_rate` is a peak, fastai's valley (half-way down the longest descent
#' of the smoothed loss). Pass it as `learning_rate` to [finetune_cnn()] with the same options. Nothing is
#' written to disk.
#'
#' @inheritParams tune_cnn
#' @param start_lr,end_lr The learning rates of the first and last step.
#' @param num_steps Steps (batches) to take at most.
#' @param ... Options as for [finetune_cnn()] (e.g. `image_size = 64`, `batch_size = 8`, `freeze = "backbone"`).
#' @param progress Show a progress bar (default: only in an interactive session).
#' @return A `cnn_lr_finder`: `table` (a tibble: `step`, `learning_rate`, `loss`, `smoothed_loss`),
#'   `suggestion`, `rule` (`"steepest"` or `"valley"`: which one the suggestion is), and both candidates,
#'   `steepest` and `valley`. `autoplot()` draws the curve with the suggestion marked.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' finder <- lr_find(file.path(sample_data(), "faces"), image_size = 64, num_steps = 50)
#' finder
#' autoplot(finder)
#' }
lr_find <- function(data, start_lr = 1e-7, end_lr = 10, num_steps = 100L, label = NULL, path = NULL, ...,
                    progress = interactive()) {
  label <- column_arg(substitute(label), parent.frame(), data, "label")
  path <- column_arg(substitute(path), parent.frame(), data, "path")
  options <- train_options(list(...))
  labelled <- labelled_data(data, label, path, class_order = options$class_order,
                            positive_class = options$positive_class)
  options$class_order <- labelled$class_order
  options$positive_class <- labelled$positive_class
  finder <- engine_call_list(engine()$lr_find, c(list(
    labelled$images, start_lr = arg_number(start_lr, "start_lr"),
    end_lr = arg_number(end_lr, "end_lr"), num_steps = arg_count(num_steps, "num_steps"),
    label = labelled$label, path = labelled$path, progress = arg_flag(progress, "progress")
  ), options))
  structure(list(table = as_tibble_engine(finder$table), suggestion = py_value(finder$suggestion),
                 rule = py_value(finder$rule), steepest = py_value(finder$steepest), valley = py_value(finder$valley)),
            class = "cnn_lr_finder")
}

# What a finder's suggestion is, in words (an object saved before the rule was recorded: the steepest fall).
suggestion_rule <- function(finder) {
  if (identical(finder$rule, "valley")) {
    "fastai's valley: half-way down the longest descent of the smoothed loss"
  } else {
    "steepest fall of the smoothed loss"
  }
}

#' @export
print.cnn_lr_finder <- function(x, ...) {
  rates <- x$table$learning_rate
  cat(sprintf("<cnn_lr_finder> %d steps, learning rate %.1e to %.1e\n", nrow(x$table), min(rates), max(rates)))
  cat(sprintf("  suggested learning rate: %.1e (%s); autoplot() shows the curve\n", x$suggestion,
              suggestion_rule(x)))
  invisible(x)
}

#' Plot the learning-rate finder
#'
#' The loss (faint) and its smoothed version against the learning rate on a log10 axis, fastai-style, with the
#' suggested learning rate marked.
#'
#' @param object A `cnn_lr_finder` from [lr_find()].
#' @param ... Must be empty.
#' @return A ggplot.
#' @method autoplot cnn_lr_finder
#' @export
autoplot.cnn_lr_finder <- function(object, ...) {
  check_dots(...)
  table <- object$table
  at <- which.min(abs(log10(table$learning_rate) - log10(object$suggestion)))
  point <- data.frame(learning_rate = object$suggestion, smoothed_loss = table$smoothed_loss[[at]])
  finite <- is.finite(table$loss)
  # The raw loss explodes at the end; the view follows the smoothed loss, as fastai's plot does.
  smoothed <- table$smoothed_loss[is.finite(table$smoothed_loss)]
  ggplot2::ggplot(table[finite, ], ggplot2::aes(x = .data$learning_rate)) +
    ggplot2::geom_line(ggplot2::aes(y = .data$loss), colour = "grey70") +
    ggplot2::geom_line(ggplot2::aes(y = .data$smoothed_loss), colour = "steelblue", linewidth = 0.9) +
    ggplot2::geom_vline(xintercept = object$suggestion, linetype = "dashed", colour = "grey40") +
    ggplot2::geom_point(data = point, ggplot2::aes(y = .data$smoothed_loss), colour = "red", size = 3) +
    ggplot2::scale_x_log10(labels = function(x) format(x, scientific = TRUE)) +
    ggplot2::coord_cartesian(ylim = range(smoothed)) +
    ggplot2::labs(x = "learning rate (log scale)", y = "loss", title = "Learning-rate finder",
                  subtitle = wrap_text(sprintf("suggested: %.1e, %s (blue)", object$suggestion,
                                               suggestion_rule(object)))) +
    ggplot2::theme_minimal() + text_spans_plot()
}

# ------------------------------------------------------------------------------------------------- options

# finetune_cnn()'s options given through `...`: named, each converted like finetune_cnn() converts it (whole
# numbers as Python ints for the engine's integer options). Unknown names are the engine's to refuse.
train_options <- function(options) {
  if (!length(options)) return(list())
  if (is.null(names(options)) || any(!nzchar(names(options)))) {
    abort_argument("options in `...` must be named, e.g. epochs = 2, image_size = 64")
  }
  integers <- integer_options()
  out <- list()
  for (name in names(options)) out[name] <- list(option_value(options[[name]], name, integers))
  out
}

option_value <- function(x, name, integers) {
  if (is.null(x)) return(NULL)
  if (identical(name, "class_order")) {
    if (is.factor(x)) x <- levels(x)
    if (!is.character(x) || anyNA(x)) abort_argument(sprintf("`class_order` must be a character vector, not %s", describe_value(x)))
    return(as.list(x))
  }
  if (identical(name, "select_on")) return(engine_select_on(arg_string(x, name)))
  if (name %in% integers) return(arg_count(x, name))
  if (is.logical(x)) return(arg_flag(x, name))
  if (is.numeric(x)) return(arg_number(x, name))
  arg_string(x, name)
}

# The engine's whole-number options (TrainConfig fields typed int), asked once per session.
integer_options <- function() {
  if (is.null(.engine$integer_options)) {
    fields <- engine_call(bridge()$integer_options)
    .engine$integer_options <- as.character(unlist(py_value(fields)))
  }
  .engine$integer_options
}

# A grid as the engine takes it: a preset name; a dict of lists (from a named list of vectors); a list of dicts
# (from a data frame, one row per configuration).
grid_spec <- function(grid) {
  if (is.character(grid) && length(grid) == 1 && !is.na(grid)) return(grid)
  integers <- integer_options()
  values_of <- function(values, name) {
    values <- if (is.list(values)) values else as.list(values)
    lapply(values, option_value, name = name, integers = integers)
  }
  if (is.data.frame(grid)) {
    if (!nrow(grid) || !ncol(grid)) abort_argument("`grid` has no configurations (an empty data frame)")
    columns <- lapply(names(grid), function(name) {
      column <- grid[[name]]
      values_of(if (is.factor(column)) as.character(column) else column, name)
    })
    names(columns) <- names(grid)
    return(lapply(seq_len(nrow(grid)), function(i) lapply(columns, function(column) column[[i]])))
  }
  if (is.list(grid) && length(grid) && !is.null(names(grid)) && all(nzchar(names(grid)))) {
    spec <- lapply(names(grid), function(name) values_of(grid[[name]], name))
    names(spec) <- names(grid)
    return(spec)
  }
  abort_argument(sprintf(
    "`grid` must be a preset (\"table7.2\", \"figure7.4\", \"book\"), a named list of values such as list(learning_rate = c(0.001, 0.01)), or a data frame with one row per configuration, not %s",
    describe_value(grid)))
}
