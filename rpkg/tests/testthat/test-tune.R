# Grids from R (the book's section 7.2): the cnn_grid and what it holds, the chosen fit, several tasks and the
# book's Table 7.2, the training curves of every configuration (Figures 7.4/7.5), the learning-rate finder.

grid_rows <- function(grid, table) {
  py_json(sprintf("__import__('pyarrow.parquet', fromlist=['x']).read_table(%s).to_pylist()",
                  shQuote(file.path(grid$path, paste0(table, ".parquet")))))
}

test_that("a grid given in R reaches the engine as the engine's grid, with whole numbers as ints", {
  skip_if_no_engine()
  spec <- imagesasdata:::grid_spec(list(learning_rate = c(0.001, 0.01), batch_size = c(1, 4), freeze = "backbone"))
  expect_identical(spec, list(learning_rate = list(0.001, 0.01), batch_size = list(1L, 4L), freeze = list("backbone")))
  rows <- imagesasdata:::grid_spec(data.frame(learning_rate = c(0.001, 0.01), epochs = c(2, 3)))
  expect_identical(rows, list(list(learning_rate = 0.001, epochs = 2L), list(learning_rate = 0.01, epochs = 3L)))
  expect_identical(imagesasdata:::grid_spec("book"), "book")
  expected <- c("image_size", "resize_size", "seed", "epochs", "batch_size", "step_size", "progressive_resize",
                "full_size_epochs", "head_epochs", "patience", "num_workers")
  expect_setequal(imagesasdata:::integer_options(), expected)
  expect_error(tune_cnn("x", grid = 3), class = "imagesasdata_argument_error", regexp = "`grid` must be")
  expect_error(tune_cnn("x", grid = list(batch_size = 2.5)), class = "imagesasdata_argument_error", regexp = "`batch_size`")
  expect_error(tune_cnn("x", list(learning_rate = 0.01), 5), class = "imagesasdata_argument_error", regexp = "must be named")
})

test_that("a bad configuration fails in the engine before anything trains, with its message in R", {
  skip_if_no_engine()
  out <- tempfile("grid")
  expect_error(tune_cnn(file.path(sample_data(), "faces"), list(momentum = c(0.9, 1.5)), out = out, progress = FALSE),
               class = "imagesasdata_argument_error", regexp = "`momentum` must be at least 0 and below 1, not 1.5")
  expect_false(dir.exists(file.path(out, "configs")))
  expect_error(tune_cnn(file.path(sample_data(), "faces"), list(learning_rate = 0.01), epocs = 2, out = out),
               class = "imagesasdata_error", regexp = "Unknown argument `epocs`.*Did you mean `epochs`")
})

test_that("Ray Tune's trial resources are checked in R and in the engine before anything trains", {
  expect_error(tune_cnn("x", backend = "ray", cpus_per_trial = "2"), class = "imagesasdata_argument_error",
               regexp = "`cpus_per_trial` must be a number")
  skip_if_no_engine()
  out <- tempfile("grid")
  expect_error(tune_cnn(file.path(sample_data(), "faces"), list(momentum = c(0.7, 0.9)), cpus_per_trial = 2,
                        out = out, progress = FALSE),
               class = "imagesasdata_error", regexp = "pass `backend = \"ray\"`", fixed = TRUE)
  expect_error(tune_tasks_cnn(list(a = file.path(sample_data(), "faces")), list(momentum = 0.9), backend = "ray",
                              gpus_per_trial = -1, out = out, progress = FALSE),
               class = "imagesasdata_error", regexp = "`gpus_per_trial = -1`: give a number of at least 0", fixed = TRUE)
  expect_false(dir.exists(file.path(out, "configs")))
})

test_that("tune_cnn() returns a cnn_grid: one row per configuration, exactly the engine's results", {
  trains()
  grid <- small_grid()
  expect_s3_class(grid, "cnn_grid")
  expect_identical(grid$parameters, c("learning_rate", "momentum"))
  results <- grid$results
  expect_identical(names(results), c("config_id", "learning_rate", "momentum", "best_epoch", "val_accuracy",
                                     "val_precision", "val_recall", "val_f_meas", "val_loss", "seconds", "status",
                                     paste0("val_", rep(c("accuracy", "precision", "recall", "f_meas"), each = 2),
                                            c("_lower", "_upper"))))
  expect_identical(results$config_id, sprintf("config_%03d", 1:4))
  expect_identical(results$learning_rate, c(0.001, 0.001, 0.01, 0.01))
  expect_identical(results$momentum, c(0.7, 0.9, 0.7, 0.9))
  expect_type(results$best_epoch, "integer")
  expect_identical(results$status, rep("complete", 4))
  engine <- grid_rows(grid, "results")
  expect_identical(results$val_accuracy, engine$val_accuracy)
  expect_identical(results$val_loss, engine$val_loss)
  # the best on validation accuracy, ties broken by the lower loss
  ordered <- results[order(-results$val_accuracy, results$val_loss), ]
  expect_identical(grid$best_config, ordered$config_id[1])
  printed <- capture.output(print(grid))
  expect_match(printed[1], "<cnn_grid> 4 configurations of learning_rate x momentum, chosen on validation accuracy",
               fixed = TRUE)
  best <- ordered[1, ]
  expect_match(printed[2], sprintf("best: %s (learning_rate = %s, momentum = %s)", best$config_id,
                                   format(best$learning_rate), format(best$momentum)), fixed = TRUE)
  expect_match(printed[3], sprintf("val  accuracy %.3f", best$val_accuracy), fixed = TRUE)
  expect_true(any(grepl("^  test accuracy", printed)))
})

test_that("cnn_history() of a grid has every epoch of every configuration; the test split is scored once", {
  trains()
  grid <- small_grid()
  history <- cnn_history(grid)
  expect_equal(nrow(history), 4 * 2 * 2)
  expect_true(all(c("config_id", "epoch", "split", "loss", "accuracy") %in% names(history)))
  expect_identical(history$loss, grid_rows(grid, "history")$loss)
  expect_type(history$epoch, "integer")
  test <- grid$test_metrics
  expect_identical(names(test), c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high",
                                  "interval"))
  expect_identical(unique(test$split), "test")
  expect_equal(sum(test$.metric == "accuracy"), 1)
  expect_identical(unique(test$n[test$.metric == "accuracy"]), 12L)        # a quarter of 48 images
})

test_that("best_cnn() is the chosen configuration's fit, with its integers recorded as integers", {
  trains()
  grid <- small_grid()
  fit <- best_cnn(grid)
  expect_s3_class(fit, "cnn_fit")
  expect_identical(fit$path, normalizePath(file.path(grid$path, "configs", grid$best_config)))
  best <- grid$results[grid$results$config_id == grid$best_config, ]
  expect_identical(fit$description$hyperparameters$learning_rate, best$learning_rate)
  expect_identical(fit$description$hyperparameters$epochs, 2L)
  expect_identical(fit$description$hyperparameters$image_size, 64L)
  accuracy <- cnn_metrics(fit, split = "val")
  expect_identical(accuracy$.estimate[accuracy$.metric == "accuracy"], best$val_accuracy)
  # every configuration saw the same split; the test images none
  expect_equal(sum(fit$splits$split == "test"), 0)
  expect_equal(nrow(fit$splits), 36)
  # re-opened from its directory: the same grid, without training
  again <- load_grid(grid$path)
  expect_identical(again$results$val_accuracy, grid$results$val_accuracy)
  expect_identical(again$best_config, grid$best_config)
  expect_error(best_cnn(fit), class = "imagesasdata_argument_error", regexp = "cnn_grid")
})

test_that("autoplot(grid) draws Figures 7.4/7.5: facets by the first option, colour by the second", {
  trains()
  grid <- small_grid()
  plot <- autoplot(grid)
  built <- ggplot2::ggplot_build(plot)
  layout <- built$layout$layout
  expect_setequal(as.character(unique(layout$facet)), c("learning_rate = 0.001", "learning_rate = 0.01"))
  expect_setequal(paste(layout$measure, layout$split), c("loss training", "loss validation", "accuracy training",
                                                         "accuracy validation"))
  lines <- plot$data
  expect_identical(levels(lines$colour), c("0.7", "0.9"))
  expect_identical(plot$labels$colour, "momentum")
  expect_equal(nrow(lines), 4 * 2 * 2 * 2)
  # a configuration's values come from results, not from the history's per-epoch learning rate
  one <- lines[lines$config_id == "config_003" & lines$measure == "loss", ]
  expect_true(all(one$facet == "learning_rate = 0.01"))
  history <- cnn_history(grid)
  expect_equal(sort(one$value), sort(history$loss[history$config_id == "config_003"]))
  expect_length(unique(built$data[[1]]$group), 4)                        # one line per configuration and panel
  loss_only <- ggplot2::ggplot_build(autoplot(grid, measure = "loss"))
  expect_setequal(as.character(unique(loss_only$layout$layout$measure)), "loss")
})

test_that("several tasks, and the book's Table 7.2 as a tibble and as the book prints it", {
  trains()
  sample <- sample_data()
  one_vs_others <- utils::read.csv(file.path(sample, "person_vs_others.csv"))
  one_vs_others$path <- file.path(sample, one_vs_others$path)
  grids <- tune_tasks_cnn(list(who = file.path(sample, "faces"), s1_or_not = one_vs_others),
                          grid = data.frame(learning_rate = c(0.001, 0.01), batch_size = c(4, 8)),
                          epochs = 1, image_size = 64, freeze = "backbone", augment_crop = FALSE,
                          out = tempfile("tasks"), progress = FALSE)
  expect_s3_class(grids, "cnn_grids")
  expect_identical(names(grids), c("who", "s1_or_not"))
  expect_identical(grids$s1_or_not$results$batch_size, c(4L, 8L))           # a data frame: one row per configuration
  expect_output(print(grids), "<cnn_grids> 2 tasks: who, s1_or_not")
  summary <- grid_summary(grids)
  expect_identical(summary$task, c("who", "s1_or_not"))
  expect_identical(names(summary), c("task", "accuracy", "f_meas", "precision", "recall", "learning_rate", "batch_size",
                                     paste0(rep(c("accuracy", "f_meas", "precision", "recall"), each = 2),
                                            c("_lower", "_upper"))))
  for (task in names(grids)) {
    best <- grids[[task]]$results[grids[[task]]$results$config_id == grids[[task]]$best_config, ]
    expect_identical(summary$accuracy[summary$task == task], best$val_accuracy)
    expect_identical(summary$batch_size[summary$task == task], best$batch_size)
  }
  book <- format_grid_summary(summary)
  expect_identical(names(book), c("Task", "Accuracy", "F1", "Precision", "Recall", "Learning rate", "Batch size",
                                  "Accuracy 95% CI", "F1 95% CI", "Precision 95% CI", "Recall 95% CI"))
  expect_identical(book$Accuracy, sprintf("%.1f%%", 100 * summary$accuracy))
  expect_true(all(book$`Learning rate` %in% c("0.001", "0.01")))
  expect_identical(as.numeric(book$`Learning rate`), summary$learning_rate)
  expect_identical(book$`Batch size`, as.character(summary$batch_size))
  expect_true(all(vapply(book, is.character, logical(1))))
  expect_match(knitr::kable(book)[1], "^\\|Task +\\|Accuracy +\\|F1 +\\|Precision +\\|Recall +\\|Learning rate +\\|Batch size +\\|Accuracy 95% CI +\\|")
  expect_identical(format_grid_summary(grids), book)
  single <- grid_summary(grids$who, task = "faces")
  expect_identical(single$task, "faces")
  expect_error(grid_summary(list(1)), class = "imagesasdata_argument_error", regexp = "tune_tasks_cnn")
})

test_that("a grid on Ray says where its trials ran, and keeps it with the grid", {
  trains()
  grid <- tune_cnn(file.path(sample_data(), "faces"), grid = list(learning_rate = 0.01), epochs = 1, image_size = 64,
                   freeze = "backbone", augment_crop = FALSE, backend = "ray", out = tempfile("grid"),
                   progress = FALSE)
  nodes <- py_json("sorted(n['NodeManagerAddress'] for n in __import__('ray').nodes() if n['Alive'])")
  expect_identical(grid$cluster$nodes, nodes)
  expect_identical(grid$cluster$workers, 1L)
  expect_identical(grid$cluster$by_node, tibble::tibble(node = nodes, trials = 1L))
  expect_identical(c(grid$cluster$nodes_lost, grid$cluster$retried), character())
  recorded <- py_json(sprintf("__import__('json').load(open(%s))", shQuote(file.path(grid$path, "cluster.json"))))
  expect_identical(as.integer(unlist(recorded$by_node)), 1L)   # the engine's record, kept with the grid
  printed <- capture.output(print(grid))
  expect_true("  on Ray: 1 node, 1 trial" %in% printed)
  expect_true(sprintf("    %s: 1 trial", nodes) %in% printed)
  expect_identical(unlist(glance(grid)[c("nodes", "workers", "nodes_used", "nodes_lost", "retried")]),
                   c(nodes = 1L, workers = 1L, nodes_used = 1L, nodes_lost = 0L, retried = 0L))
  expect_identical(load_grid(grid$path)$cluster, grid$cluster)
  # a grid that never ran on Ray
  expect_null(small_grid()$cluster)
  expect_true(all(is.na(unlist(glance(small_grid())[c("nodes", "workers", "nodes_used", "nodes_lost", "retried")]))))
})

test_that("lr_find() gives the loss by learning rate and a suggestion; autoplot() marks it on a log axis", {
  trains()
  finder <- lr_find(file.path(sample_data(), "faces"), recipe = "head-first", num_steps = 20, image_size = 64,
                    freeze = "backbone", augment_crop = FALSE, progress = FALSE)
  expect_s3_class(finder, "cnn_lr_finder")
  table <- finder$table
  expect_identical(names(table), c("step", "learning_rate", "loss", "smoothed_loss"))
  expect_type(table$step, "integer")
  expect_false(is.unsorted(table$learning_rate))
  expect_equal(table$learning_rate[1], 1e-7)
  expect_lte(nrow(table), 20)
  expect_true(finder$suggestion >= min(table$learning_rate) && finder$suggestion <= max(table$learning_rate))
  expect_output(print(finder), sprintf("suggested learning rate: %.1e", finder$suggestion), fixed = TRUE)
  plot <- autoplot(finder)
  built <- ggplot2::ggplot_build(plot)
  expect_s3_class(plot$scales$get_scales("x")$trans, "trans")
  expect_identical(plot$scales$get_scales("x")$trans$name, "log-10")
  expect_equal(built$data[[3]]$xintercept, log10(finder$suggestion))
  expect_equal(built$data[[4]]$x, log10(finder$suggestion))
  expect_error(lr_find(file.path(sample_data(), "faces"), start_lr = 1, end_lr = 0.1), class = "imagesasdata_error",
               regexp = "start_lr")
  # The book's StepLR (head-first) starts at the rate: the steepest fall. The default recipe's one-cycle rate is a
  # peak: the valley.
  expect_identical(finder$rule, "steepest")
  expect_equal(finder$suggestion, finder$steepest)
  fast <- lr_find(file.path(sample_data(), "faces"), num_steps = 20, image_size = 64, progress = FALSE)
  expect_identical(fast$rule, "valley")
  expect_equal(fast$suggestion, fast$valley)
  expect_output(print(fast), "fastai's valley", fixed = TRUE)
})
