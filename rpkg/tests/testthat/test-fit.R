# A real (tiny) fine-tune seen from R: the cnn_fit, its tables exactly as the engine wrote them, predictions,
# evaluation, saving and loading.

engine_rows <- function(fit, table) {
  py_json(sprintf("__import__('imagesasdata').load_run(%s).%s.to_pylist()", shQuote(fit$path), table))
}

test_that("a fit prints its validation metrics and summarises its settings", {
  trains()
  fit <- faces_fit()
  expect_s3_class(fit, "cnn_fit")
  expect_identical(fit$classes, paste0("s", 1:6))
  printed <- capture.output(print(fit))
  expect_match(printed[1], "<cnn_fit> efficientnet_lite0 fine-tuned for 6 classes: s1, s2, s3, s4, s5, s6", fixed = TRUE)
  accuracy <- fit$metrics$.estimate[fit$metrics$split == "val" & fit$metrics$.metric == "accuracy"]
  expect_true(any(grepl(sprintf("val  accuracy %.3f", accuracy), printed, fixed = TRUE)))
  expect_true(any(grepl("best epoch [12] of 2", printed)))
  expect_true(any(grepl(fit$path, printed, fixed = TRUE)))
  s <- summary(fit)
  expect_s3_class(s, "summary.cnn_fit")
  expect_identical(s$split_sizes[["train"]] + s$split_sizes[["val"]], 48L)
  summary_text <- capture.output(print(s))
  expect_true(any(grepl("epochs = 2", summary_text, fixed = TRUE)))
  expect_true(any(grepl("Confusion matrix (val", summary_text, fixed = TRUE)))
})

test_that("cnn_metrics() is yardstick-shaped and holds exactly the engine's metrics", {
  trains()
  fit <- faces_fit()
  metrics <- cnn_metrics(fit)
  expect_identical(names(metrics), c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high",
                                     "interval"))
  expect_type(metrics$.estimate, "double")
  expect_type(metrics$n, "integer")
  engine <- engine_rows(fit, "metrics")
  expect_identical(metrics$.metric, sub("^f1$", "f_meas", engine$metric))   # yardstick's names
  expect_identical(metrics$.estimator, engine$estimator)
  expect_identical(metrics$.estimate, engine$estimate)
  expect_identical(metrics$class, engine$class)          # NA exactly where the engine had None
  expect_identical(metrics$n, as.integer(engine$n))
  expect_setequal(unique(metrics$.estimator), c("multiclass", "macro", "micro", "macro_weighted", "per_class"))
  expect_identical(cnn_metrics(fit, split = "val"), metrics)
  expect_error(cnn_metrics(fit, split = "test"), class = "imagesasdata_argument_error", regexp = "no split")
})

test_that("the binary fit reports the positive class, and its test split", {
  trains()
  fit <- binary_fit()
  expect_identical(fit$classes, c("negative", "positive"))
  expect_identical(fit$positive_class, "positive")
  metrics <- cnn_metrics(fit)
  expect_setequal(unique(metrics$split), c("val", "test"))
  precision <- metrics[metrics$.metric == "precision" & metrics$.estimator == "binary", ]
  expect_identical(precision$class, c("positive", "positive"))
  expect_match(paste(capture.output(print(fit)), collapse = "\n"), "(positive class: positive)", fixed = TRUE)
  confusion <- cnn_confusion(fit, split = "test")
  expect_equal(sum(confusion$count), sum(fit$splits$split == "test"))
})

test_that("cnn_history() and cnn_confusion() are the engine's tables with R types", {
  trains()
  fit <- faces_fit()
  history <- cnn_history(fit)
  expect_identical(names(history), c("epoch", "split", "loss", "accuracy", "learning_rate", "seconds"))
  expect_identical(history$epoch, c(1L, 1L, 2L, 2L))
  expect_identical(history$split, c("train", "val", "train", "val"))
  expect_identical(history$loss, engine_rows(fit, "history")$loss)
  confusion <- cnn_confusion(fit)
  expect_identical(names(confusion), c("split", "truth", ".pred_class", "count"))
  expect_identical(levels(confusion$truth), fit$classes)
  expect_identical(levels(confusion$.pred_class), fit$classes)
  expect_type(confusion$count, "integer")
  expect_equal(nrow(confusion), 36)
  expect_equal(sum(confusion$count), sum(fit$splits$split == "val"))
  expect_identical(confusion$count, as.integer(engine_rows(fit, "confusion")$count))
})

test_that("cnn_misclassified() lists exactly the wrong validation predictions, most confident first", {
  trains()
  fit <- faces_fit()
  wrong <- cnn_misclassified(fit)
  predictions <- fit$predictions
  expect_equal(nrow(wrong), sum(predictions$label != predictions$.pred_class))
  expect_true(all(wrong$label != wrong$.pred_class))
  expect_false(is.unsorted(rev(wrong$probability)))
  if (nrow(wrong)) {
    row <- predictions[predictions$image_id == wrong$image_id[1], ]
    expect_equal(wrong$probability[1], row[[paste0(".pred_", as.character(row$.pred_class))]])
  }
  accuracy <- fit$metrics$.estimate[fit$metrics$.metric == "accuracy" & fit$metrics$split == "val"]
  expect_equal(1 - nrow(wrong) / nrow(predictions), accuracy)
})

test_that("predict() labels new images in a tibble joinable by image_id, with NA for an unreadable image", {
  trains()
  fit <- faces_fit()
  folder <- file.path(sample_data(), "new_images")
  classes <- predict(fit, folder)
  expect_identical(names(classes), c("image_id", "path", ".pred_class", "error"))
  expect_equal(nrow(classes), 12)
  expect_s3_class(classes$.pred_class, "factor")
  expect_identical(levels(classes$.pred_class), fit$classes)
  expect_true(all(is.na(classes$error)))
  probs <- predict(fit, folder, type = "prob")
  expect_identical(names(probs), c("image_id", "path", ".pred_class", paste0(".pred_", fit$classes), "error"))
  expect_equal(rowSums(as.matrix(probs[paste0(".pred_", fit$classes)])), rep(1, 12), tolerance = 1e-6)
  expect_identical(probs$.pred_class, classes$.pred_class)
  # exactly the engine's predictions
  engine <- py_json(sprintf("__import__('imagesasdata').load_run(%s).predict(%s, progress=False).to_pylist()",
                            shQuote(fit$path), shQuote(folder)))
  expect_identical(as.character(probs$.pred_class), engine$predicted)   # the one mapping: predicted -> .pred_class
  expect_identical(probs$.pred_s1, engine$prob_s1)                      # prob_<class> -> .pred_<class>
  # joinable to the user's own data by image_id
  metadata <- data.frame(image_id = c("s1_9.png", "s6_10.png"), retweets = c(3L, 10L))
  joined <- merge(metadata, classes, by = "image_id")
  expect_equal(nrow(joined), 2)
  # a data frame keeps its rows and order; a broken image is a row with its error and NA predictions
  broken <- broken_image()
  frame <- data.frame(path = c(probs$path[2], broken, probs$path[1]))
  expect_warning(mixed <- predict(fit, frame, type = "prob"), class = "imagesasdata_warning_unreadable",
                 regexp = "1 of 3 images could not be read")
  expect_identical(mixed$path, c(probs$path[2], normalizePath(broken), probs$path[1]))
  expect_identical(is.na(mixed$.pred_class), c(FALSE, TRUE, FALSE))
  expect_true(all(is.na(unlist(mixed[2, paste0(".pred_", fit$classes)]))))
  expect_match(mixed$error[2], "not an image", fixed = TRUE)
  expect_identical(mixed$error[c(1, 3)], c(NA_character_, NA_character_))
  expect_equal(mixed$.pred_s2[c(1, 3)], probs$.pred_s2[c(2, 1)])
})

test_that("cnn_evaluate() scores labelled images it never saw", {
  trains()
  fit <- faces_fit()
  new <- image_table(file.path(sample_data(), "new_images"))
  new$label <- sub("_.*", "", new$image_id)          # sK_9.png shows person sK
  evaluation <- cnn_evaluate(fit, new, progress = FALSE)
  expect_s3_class(evaluation, "cnn_evaluation")
  accuracy <- cnn_metrics(evaluation)
  accuracy <- accuracy$.estimate[accuracy$.metric == "accuracy"]
  predicted <- predict(fit, new)
  expect_equal(accuracy, mean(as.character(predicted$.pred_class) == new$label))
  expect_identical(unique(cnn_metrics(evaluation)$split), "evaluation")
  expect_equal(sum(cnn_confusion(evaluation)$count), 12)
  expect_output(print(evaluation), "<cnn_evaluation> 12 images")
  wrong <- cnn_misclassified(evaluation)
  expect_equal(nrow(wrong), sum(as.character(predicted$.pred_class) != new$label))
})

test_that("save_cnn() and load_cnn() round-trip a run directory", {
  trains()
  fit <- faces_fit()
  folder <- file.path(tempfile("saved"), "model")
  saved <- save_cnn(fit, folder)
  expect_s3_class(saved, "cnn_fit")
  expect_identical(saved$path, normalizePath(folder))
  expect_true(file.exists(file.path(folder, "model.safetensors")))
  loaded <- load_cnn(folder)
  expect_identical(loaded$classes, fit$classes)
  expect_identical(cnn_metrics(loaded), cnn_metrics(fit))
  expect_identical(cnn_history(loaded), cnn_history(fit))
  new <- file.path(sample_data(), "new_images")
  expect_identical(predict(loaded, new, type = "prob")$.pred_s3, predict(fit, new, type = "prob")$.pred_s3)
  # a fit survives saveRDS()/readRDS(): the engine's run is reopened from the path
  rds <- tempfile(fileext = ".rds")
  saveRDS(loaded, rds)
  restored <- readRDS(rds)
  expect_identical(predict(restored, new)$.pred_class, predict(loaded, new)$.pred_class)
  expect_error(save_cnn(fit, folder), class = "imagesasdata_error", regexp = "not empty")
  expect_error(load_cnn(tempdir()), class = "imagesasdata_error", regexp = "not a run directory")
  # the engine's command-line wording in R's: "--out" is the argument `out`
  expect_error(load_cnn(tempdir()), class = "imagesasdata_error", regexp = "pass the `out` folder", fixed = TRUE)
})

test_that("resuming a finished fit with other options is an error naming them, and changes nothing", {
  trains()
  fit <- faces_fit()
  before <- tools::md5sum(file.path(fit$path, "model.json"))
  expect_error(finetune_cnn(file.path(sample_data(), "faces"), out = fit$path, resume = TRUE, epochs = 3,
                            image_size = 64, progress = FALSE),
               class = "imagesasdata_error",
               regexp = "holds a complete run trained with other options (epochs: the run has 2, this call 3)",
               fixed = TRUE)
  expect_identical(tools::md5sum(file.path(fit$path, "model.json")), before)
  again <- finetune_cnn(file.path(sample_data(), "faces"), out = fit$path, resume = TRUE, epochs = 2,
                        image_size = 64, progress = FALSE)
  expect_identical(again$description$run_id, fit$description$run_id)
})

test_that("a fit whose model.json was edited is refused when it predicts, naming the field", {
  trains()
  fit <- faces_fit()
  copy <- save_cnn(fit, file.path(tempfile("edited"), "model"))
  # the edit a user might make in a text editor: the normalisation's mean, nothing else
  file <- file.path(copy$path, "model.json")
  text <- paste(readLines(file), collapse = "\n")
  writeLines(sub('"mean": \\[[^]]*\\]', '"mean": [0.1, 0.1, 0.1]', text), file)
  expect_error(predict(load_cnn(copy$path), file.path(sample_data(), "new_images")), class = "imagesasdata_error",
               regexp = "model.json was edited after the run was written: preprocessing no longer matches")
})
