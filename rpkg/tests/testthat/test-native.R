# R that feels native: classes follow R's factors, tidymodels' verbs and names, R-style conditions that name the
# argument and show the user's call, warnings for silent trouble, fits in tempdir(), plots, vignettes.

# The sample faces with person s1 against the others as a factor whose first level is "s1", in a column that is
# not called `label`.
people <- function() {
  faces <- image_table(file.path(sample_data(), "faces"))
  faces$is_s1 <- factor(ifelse(faces$label == "s1", "s1", "other"), levels = c("s1", "other"))
  faces$label <- NULL
  faces
}

# Cheap fits: a frozen backbone, no random crops (features computed once), one epoch at 64 px.
quick_fit <- function(data, ...) {
  finetune_cnn(data, epochs = 1, image_size = 64, freeze = "backbone", augment_crop = FALSE, progress = FALSE, ...)
}

factor_fit <- function() {
  skip_finetune()
  if (is.null(shared_fits$factor)) {
    data <- people()
    data$followers <- seq_len(nrow(data)) * 10L   # a column of the user's own, which augment(fit) keeps
    shared_fits$factor <- suppressWarnings(quick_fit(data, label = is_s1))   # bare name, as in dplyr
  }
  shared_fits$factor
}

test_that("a factor label gives the class order and, as in yardstick, the first level is the positive class", {
  trains()
  fit <- factor_fit()
  expect_identical(fit$classes, c("s1", "other"))                 # not sorted: the factor's order
  expect_identical(fit$positive_class, "s1")                      # the first level, not the engine's "second class"
  metrics <- tidy(fit)
  expect_identical(unique(metrics$class[metrics$.estimator == "binary" & !is.na(metrics$class)]), "s1")
  printed <- capture.output(print(fit))
  expect_match(printed[1], "2 classes: s1, other; positive class: s1", fixed = TRUE)
  expect_identical(levels(cnn_confusion(fit)$truth), c("s1", "other"))
  new <- image_table(file.path(sample_data(), "new_images"))
  probs <- suppressWarnings(predict(fit, new, type = "prob"))
  expect_identical(names(probs), c("image_id", "path", ".pred_class", ".pred_s1", ".pred_other", "error"))
  expect_identical(levels(probs$.pred_class), c("s1", "other"))
  # unused levels are dropped; the order of those used is kept
  data <- people()
  data$is_s1 <- factor(as.character(data$is_s1), levels = c("unused", "s1", "other"))
  expect_identical(imagesasdata:::labelled_data(data, "is_s1", NULL)$class_order, list("s1", "other"))
  expect_identical(imagesasdata:::labelled_data(data, "is_s1", NULL)$positive_class, "s1")
  # positive_class = overrides the factor; class_order = overrides its order
  overridden <- imagesasdata:::labelled_data(data, "is_s1", NULL, class_order = c("other", "s1"), positive_class = "s1")
  expect_identical(overridden$class_order, list("other", "s1"))
  expect_identical(overridden$positive_class, "s1")
  expect_identical(imagesasdata:::labelled_data(data, "is_s1", NULL, class_order = c("other", "s1"))$positive_class,
                   "other")
  # character labels keep the engine's rule; image_table()'s factor is read by its levels like any other
  faces <- image_table(file.path(sample_data(), "faces"))
  expect_identical(imagesasdata:::labelled_data(faces, NULL, NULL)$class_order, as.list(levels(faces$label)))
  faces$label <- as.character(faces$label)
  expect_null(imagesasdata:::labelled_data(faces, NULL, NULL)$class_order)
  expect_null(imagesasdata:::labelled_data(faces, NULL, NULL)$positive_class)
  expect_identical(levels(image_table(people(), label = is_s1)$label), c("s1", "other"))
})

test_that("logical labels are the classes TRUE and FALSE, TRUE first; positive_class overrides", {
  trains()
  data <- people()
  data$is_s1 <- data$is_s1 == "s1"
  fit <- suppressWarnings(quick_fit(data, label = "is_s1", positive_class = "FALSE"))
  expect_identical(fit$classes, c("TRUE", "FALSE"))
  expect_identical(fit$positive_class, "FALSE")
  expect_identical(glance(fit)$positive_class, "FALSE")
  expect_match(capture.output(print(fit))[1], "positive class: FALSE", fixed = TRUE)
  expect_identical(levels(image_table(data, label = is_s1)$label), c("TRUE", "FALSE"))
  # a positive class that is not a class: the engine's message, in R's words, naming the argument
  expect_error(quick_fit(data, label = is_s1, positive_class = "yes"), class = "imagesasdata_argument_error",
               regexp = "`positive_class` must be one of the classes, \"TRUE\" or \"FALSE\", not \"yes\"", fixed = TRUE)
})

positive_of_metrics <- function(metrics) unique(metrics$class[metrics$.estimator == "binary" & !is.na(metrics$class)])

test_that("cnn_evaluate() takes the positive class from a factor label too", {
  trains()
  fit <- factor_fit()
  new <- image_table(file.path(sample_data(), "new_images"))
  new$is_s1 <- factor(ifelse(startsWith(new$image_id, "s1_"), "s1", "other"), levels = c("other", "s1"))
  evaluation <- suppressWarnings(cnn_evaluate(fit, new, label = is_s1, progress = FALSE))
  expect_identical(positive_of_metrics(tidy(evaluation)), "other")   # the evaluation's factor: "other" first
  evaluation <- suppressWarnings(cnn_evaluate(fit, new, label = is_s1, positive_class = "s1", progress = FALSE))
  expect_identical(positive_of_metrics(tidy(evaluation)), "s1")
})

test_that("augment(fit) keeps the user's data frame: its rows, columns and label name, with the predictions added", {
  fit <- factor_fit()
  data <- people()
  data$followers <- seq_len(nrow(data)) * 10L
  augmented <- augment(fit)
  expect_s3_class(augmented, "tbl_df")
  # parsnip's augment(): the data as given, then the split and the predictions; no `label` column of ours
  expect_identical(names(augmented), c(union(names(data), "split"), ".pred_class", ".pred_s1", ".pred_other"))
  expect_identical(nrow(augmented), nrow(data))
  expect_identical(augmented$image_id, data$image_id)                   # the user's rows, in their order
  expect_identical(augmented$is_s1, data$is_s1)                         # the label under its own name, a factor
  expect_identical(augmented$followers, data$followers)
  expect_false("label" %in% names(augmented))
  expect_identical(levels(augmented$.pred_class), c("s1", "other"))
  # the engine's predictions of those very images, matched by id
  at <- match(fit$predictions$image_id, augmented$image_id)
  expect_false(anyNA(at))
  expect_identical(augmented$.pred_class[at], fit$predictions$.pred_class)
  expect_identical(augmented$.pred_s1[at], fit$predictions$.pred_s1)
  expect_identical(augmented$split[at], as.character(fit$predictions$split))
  # every row has its split; training images were not predicted as the fit ended (augment(fit, data) predicts all)
  expect_identical(augmented$split, as.character(fit$splits$split)[match(data$image_id, fit$splits$image_id)])
  expect_setequal(augmented$split, c("train", "val"))
  expect_true(all(is.na(augmented$.pred_class[augmented$split == "train"])))
  scored <- augmented$split == "val"
  expect_equal(augmented$.pred_s1[scored] + augmented$.pred_other[scored], rep(1, sum(scored)), tolerance = 1e-5)
  predicted <- augment(fit, data)                                       # every row predicted
  expect_identical(names(predicted), c(names(data), ".pred_class", ".pred_s1", ".pred_other"))
  expect_false(anyNA(predicted$.pred_class))
  expect_equal(predicted$.pred_s1[scored], augmented$.pred_s1[scored], tolerance = 1e-4)
})

test_that("augment(), tidy() and glance() of a fit have tidymodels' shapes", {
  trains()
  fit <- faces_fit()
  new <- image_table(file.path(sample_data(), "new_images"))
  new$retweets <- seq_len(nrow(new))
  augmented <- augment(fit, new)
  expect_s3_class(augmented, "tbl_df")
  expect_identical(names(augmented), c(names(new), ".pred_class", paste0(".pred_", fit$classes)))
  expect_identical(augmented$retweets, new$retweets)                     # the user's rows, in their order
  expect_identical(augmented$.pred_class, predict(fit, new)$.pred_class)
  expect_identical(augment(fit, augmented)$.pred_s1, augmented$.pred_s1)  # augmenting again replaces, not adds
  folder <- augment(fit, file.path(sample_data(), "new_images"))
  expect_identical(names(folder), c("image_id", "path", "label", "split", ".pred_class", paste0(".pred_", fit$classes)))
  expect_identical(augment(fit), fit$predictions)                       # the validation predictions
  expect_true(all(c("label", ".pred_class", ".pred_s1") %in% names(fit$predictions)))
  expect_identical(tidy(fit), cnn_metrics(fit))
  expect_identical(tidy(fit, split = "val"), cnn_metrics(fit, split = "val"))
  glanced <- glance(fit)
  expect_identical(nrow(glanced), 1L)
  expect_identical(names(glanced), c("architecture", "classes", "positive_class", "n_train", "n_val", "n_test",
                                     "epochs_run", "best_epoch", "select_on", "accuracy", "precision", "recall",
                                     "f_meas", "status", "path"))
  expect_identical(glanced$classes, 6L)
  expect_identical(glanced$positive_class, NA_character_)
  metrics <- cnn_metrics(fit, split = "val")
  expect_identical(glanced$accuracy, metrics$.estimate[metrics$.metric == "accuracy"])
  expect_identical(glanced$f_meas, metrics$.estimate[metrics$.metric == "f_meas" & metrics$.estimator == "macro"])
  expect_true("f_meas" %in% metrics$.metric && !"f1" %in% metrics$.metric)
})

test_that("an evaluation and a tag comparison have tidy(), glance() and augment()", {
  trains()
  fit <- faces_fit()
  new <- image_table(file.path(sample_data(), "new_images"))
  new$label <- sub("_.*", "", new$image_id)
  evaluation <- cnn_evaluate(fit, new, progress = FALSE)
  expect_identical(tidy(evaluation), evaluation$metrics)
  expect_identical(names(glance(evaluation)), c("images", "unreadable", "classes", "positive_class", "accuracy",
                                                "precision", "recall", "f_meas"))
  expect_identical(glance(evaluation)$images, 12L)
  expect_identical(augment(evaluation), evaluation$predictions)
  expect_true(all(c("label", ".pred_class", ".pred_s6", "error") %in% names(augment(evaluation))))

  tags <- data.frame(image_id = c("a", "a", "b", "c"), label = c("Crowd", "Person", "Person", "Crowd"),
                     confidence = c(91, 99, 98, 60))
  manual <- data.frame(image_id = c("a", "b", "c"), protest = c("yes", "no", "yes"))
  comparison <- compare_tags(tags, manual, "Crowd", manual_label = "protest", min_confidence = 55)
  expect_identical(tidy(comparison), comparison$metrics)
  expect_true("f_meas" %in% tidy(comparison)$.metric)
  glanced <- glance(comparison)
  expect_identical(names(glanced), c("positive_tags", "manual_positive", "min_confidence", "images", "excluded",
                                     "accuracy", "precision", "recall", "f_meas"))
  expect_identical(glanced$images, 3L)
  expect_identical(glanced$accuracy, 1)
  expect_true(all(c("truth", ".pred_class") %in% names(augment(comparison))))
})

test_that("a grid has tune's show_best() and select_best(), and broom's tidy() and glance()", {
  trains()
  grid <- small_grid()
  best <- show_best(grid)
  expect_identical(names(best), c("learning_rate", "momentum", ".metric", ".estimator", "mean", "conf.low", "conf.high",
                                  ".config"))
  expect_identical(best$.config[[1]], grid$best_config)                 # the engine's choice comes first
  expect_identical(unique(best$.metric), "accuracy")
  expect_identical(unique(best$.estimator), "multiclass")
  expect_false(is.unsorted(rev(best$mean)))
  expect_identical(nrow(show_best(grid, n = 2)), 2L)
  by_f1 <- show_best(grid, metric = "f_meas")
  expect_identical(unique(by_f1$.estimator), "macro")
  expect_identical(by_f1$mean, sort(grid$results$val_f_meas, decreasing = TRUE))
  by_loss <- show_best(grid, metric = "loss")
  expect_identical(unique(by_loss$.metric), "mn_log_loss")
  expect_identical(by_loss$mean, sort(grid$results$val_loss))
  selected <- select_best(grid)
  expect_identical(names(selected), c("learning_rate", "momentum", ".config"))
  expect_identical(selected$.config, grid$best_config)
  expect_error(show_best(grid, metric = "f1_score"), class = "imagesasdata_argument_error", regexp = "`metric`")
  tidied <- tidy(grid)
  expect_identical(names(tidied), c(".config", "learning_rate", "momentum", ".metric", ".estimator", ".estimate",
                                    "conf.low", "conf.high", "best_epoch", "status"))
  expect_identical(nrow(tidied), 4L * 5L)
  expect_setequal(unique(tidied$.metric), c("accuracy", "precision", "recall", "f_meas", "mn_log_loss"))
  glanced <- glance(grid)
  expect_identical(nrow(glanced), 1L)
  expect_identical(glanced$best_config, grid$best_config)
  expect_identical(glanced$configurations, 4L)
  expect_true(glanced$tested)
})

# A package named tune holding tune's two generics, in a temporary library: what tune's show_best() and
# select_best() are to R's dispatch, when tune itself is not installed (it is not on Debian).
tune_generics_library <- function() {
  source <- file.path(tempfile("tune-generics"), "tune")
  dir.create(file.path(source, "R"), recursive = TRUE)
  writeLines(c("Package: tune", "Version: 0.0.1", "Title: Generics of tune", "Description: For a test.",
               "License: MIT", "Authors@R: person('a', 'b', role = c('aut', 'cre'), email = 'a@b.c')"),
             file.path(source, "DESCRIPTION"))
  writeLines(c("export(show_best, select_best)", "S3method(show_best, tune_results)"), file.path(source, "NAMESPACE"))
  writeLines(c("show_best <- function(x, ...) UseMethod('show_best')",
               "select_best <- function(x, ...) UseMethod('select_best')",
               "show_best.tune_results <- function(x, ...) 'the method of tune'"), file.path(source, "R", "tune.R"))
  library <- tempfile("tune-library")
  dir.create(library)
  status <- system2(file.path(R.home("bin"), "R"), c("CMD", "INSTALL", "--no-test-load", "-l", shQuote(library),
                                                      shQuote(source)), stdout = FALSE, stderr = FALSE)
  expect_identical(status, 0L)
  library
}

test_that("show_best() and select_best() are methods of tune's generics when tune is loaded, in either order", {
  trains()
  grid <- small_grid()
  if (isNamespaceLoaded("tune")) skip("tune is loaded already")
  library <- if (requireNamespace("tune", quietly = TRUE)) NULL else tune_generics_library()
  loadNamespace("tune", lib.loc = library)
  on.exit(unloadNamespace("tune"), add = TRUE)
  tune_show_best <- getExportedValue("tune", "show_best")
  tune_select_best <- getExportedValue("tune", "select_best")
  # tune's generics (as when library(tune) masks ours) reach the cnn_grid methods registered on load
  expect_identical(tune_show_best(grid, n = 2), show_best(grid, n = 2))
  expect_identical(tune_select_best(grid), select_best(grid))
  # ours (as when library(imagesasdata) masks tune's) hand tune's own objects to tune
  if (!is.null(library)) {
    expect_identical(show_best(structure(list(), class = "tune_results")), "the method of tune")
  }
})

test_that("methods with ... refuse misspelt arguments and newdata, naming them", {
  trains()
  fit <- faces_fit()
  images <- file.path(sample_data(), "new_images")
  e <- expect_error(predict(fit, images, tpye = "prob"), class = "imagesasdata_dots_error")
  expect_s3_class(e, "rlang_error")
  expect_match(conditionMessage(e), "`tpye = \"prob\"` is not an argument", fixed = TRUE)
  expect_match(conditionMessage(e), "Did you mean `type = \"prob\"`?", fixed = TRUE)
  expect_identical(deparse(conditionCall(e)[[1]]), "predict")        # the user's call, not an internal one
  e <- expect_error(predict(fit, newdata = images), class = "imagesasdata_dots_error")
  expect_match(conditionMessage(e), "Use `new_data` (the tidymodels name), not `newdata`.", fixed = TRUE)
  expect_error(augment(fit, newdata = images), class = "imagesasdata_dots_error", regexp = "new_data")
  expect_error(predict(fit), class = "imagesasdata_argument_error", regexp = "`new_data` is missing")
  expect_error(predict(fit, images, type = "probs"), class = "imagesasdata_argument_error",
               regexp = "`type` must be one of \"class\" or \"prob\", not \"probs\".*Did you mean \"prob\"")
  expect_error(tidy(fit, splti = "val"), class = "imagesasdata_dots_error", regexp = "Did you mean `split")
  expect_error(glance(fit, 1), class = "imagesasdata_dots_error", regexp = "unnamed")
  expect_error(summary(fit, detail = TRUE), class = "imagesasdata_dots_error")
  expect_error(autoplot(fit, tpye = "confusion"), class = "imagesasdata_dots_error", regexp = "Did you mean `type")
})

test_that("a missing label column is an R error that names the closest column", {
  skip_if_no_engine()
  data <- people()
  e <- expect_error(finetune_cnn(data, epochs = 1), class = "imagesasdata_column_error")
  expect_s3_class(e, "rlang_error")
  expect_identical(e$argument, "label")
  expect_match(conditionMessage(e), "No column `label` in `data`.", fixed = TRUE)
  expect_match(conditionMessage(e), "Did you mean `label = is_s1`?", fixed = TRUE)
  expect_identical(deparse(conditionCall(e)[[1]]), "finetune_cnn")
  e <- expect_error(finetune_cnn(data, label = "is_S1"), class = "imagesasdata_column_error")
  expect_match(conditionMessage(e), "No column `is_S1` in `data`.*Did you mean `label = is_s1`")
  # a bare name that is neither a column nor an R object
  e <- expect_error(finetune_cnn(data, label = is_s2), class = "imagesasdata_column_error")
  expect_match(conditionMessage(e), "`label = is_s2`: no column `is_s2` in `data`", fixed = TRUE)
  expect_match(conditionMessage(e), "Did you mean `label = is_s1`?", fixed = TRUE)
  # a bare name that is an R object holding the column's name works as the string would
  column <- "is_s1"
  expect_identical(imagesasdata:::column_arg(quote(column), environment(), data, "label"), "is_s1")
  # the same from tune_cnn(), lr_find() and cnn_evaluate(); and a CSV file's header is read in R
  expect_error(tune_cnn(data, list(learning_rate = 0.01)), class = "imagesasdata_column_error", regexp = "is_s1")
  expect_error(lr_find(data), class = "imagesasdata_column_error", regexp = "is_s1")
  csv <- tempfile(fileext = ".csv")
  utils::write.csv(data.frame(path = data$path, person = data$is_s1), csv, row.names = FALSE)
  expect_error(finetune_cnn(csv), class = "imagesasdata_column_error", regexp = "Did you mean `label = person`")
  expect_error(finetune_cnn(data.frame(file_name = data$path, label = "a"), path = "paths"),
               class = "imagesasdata_column_error", regexp = "No column `paths`")
  expect_error(finetune_cnn(data.frame(where = data$path, label = "a")), class = "imagesasdata_column_error",
               regexp = "No path column in `data`")
  # image_table() reads a table without labels as unlabelled, and says where the labels may be
  expect_warning(table <- image_table(data), class = "imagesasdata_warning_unlabelled", regexp = "label = is_s1")
  expect_true(all(is.na(table$label)))
  expect_silent(image_table(data.frame(path = data$path[1:2])))          # nothing that could be labels
  expect_error(image_table(data, label = "lable"), class = "imagesasdata_column_error", regexp = "No column `lable`")
})

test_that("engine messages arrive in R's words, naming the R argument, with the user's call", {
  skip_if_no_engine()
  faces <- file.path(sample_data(), "faces")
  e <- expect_error(finetune_cnn(faces, learning_rate = -1), class = "imagesasdata_argument_error")
  expect_s3_class(e, "rlang_error")
  expect_identical(e$argument, "learning_rate")
  expect_match(conditionMessage(e), "`learning_rate` must be above 0, not -1 (the book uses 0.001).", fixed = TRUE)
  expect_identical(e$engine_message, "learning_rate=-1.0 must be above 0 (the book uses 0.001)")
  expect_identical(e$fields$expected, "above 0")                          # built from the error's fields
  expect_equal(e$fields$value, -1)
  expect_identical(deparse(conditionCall(e)[[1]]), "finetune_cnn")
  e <- expect_error(finetune_cnn(faces, optimizer = "adm"), class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "`optimizer` must be one of \"sgd\", \"adam\" or \"adamw\", not \"adm\".",
               fixed = TRUE)
  expect_identical(e$argument, "optimizer")
  e <- expect_error(finetune_cnn(faces, normalize = "bakbone"), class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "Did you mean \"backbone\"?", fixed = TRUE)
  e <- expect_error(tune_cnn(faces, list(learning_rate = 0.01), epocs = 2), class = "imagesasdata_error")
  expect_match(conditionMessage(e), "Unknown argument `epocs`.", fixed = TRUE)
  expect_identical(deparse(conditionCall(e)[[1]]), "tune_cnn")
  # R-side checks are rlang conditions too, with the call and the argument
  e <- expect_error(finetune_cnn(faces, epochs = 2.5), class = "imagesasdata_argument_error")
  expect_s3_class(e, "rlang_error")
  expect_identical(e$argument, "epochs")
  expect_identical(deparse(conditionCall(e)[[1]]), "finetune_cnn")
  e <- expect_error(image_table(file.path(tempdir(), "nowhere")), class = "imagesasdata_error")
  expect_identical(deparse(conditionCall(e)[[1]]), "image_table")
})

test_that("an engine error's R condition is built from its fields, whatever its message says", {
  raise <- function(fields, message = "any wording at all", r_message = NULL) {
    imagesasdata:::raise_engine_error(list(type = "ImagesAsDataError", message = message, r_message = r_message,
                                           engine = TRUE, fields = fields), call = NULL)
  }
  e <- expect_error(raise(list(what = "option", option = "learning_rate", value = -1, expected = "above 0",
                               hint = "the book uses 0.001")), class = "imagesasdata_argument_error")
  expect_identical(conditionMessage(e), "`learning_rate` must be above 0, not -1 (the book uses 0.001).")
  expect_identical(e$argument, "learning_rate")
  expect_identical(e$engine_message, "any wording at all")
  e <- expect_error(raise(list(what = "option", option = "normalize", value = "bakbone",
                               choices = c("imagenet", "backbone", "train"))), class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "`normalize` must be one of \"imagenet\", \"backbone\" or \"train\", not \"bakbone\".",
               fixed = TRUE)
  expect_match(conditionMessage(e), "Did you mean \"backbone\"?", fixed = TRUE)
  e <- expect_error(raise(list(what = "option", option = "progress", value = "lines",
                               choices = c("True", "False", "epochs"))), class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "must be one of TRUE, FALSE or \"epochs\", not \"lines\".", fixed = TRUE)
  e <- expect_error(raise(list(what = "option", option = "class_order", value = list("a", "a"),
                               expected = "a list naming each class once")), class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "`class_order` must be a list naming each class once, not c(\"a\", \"a\").",
               fixed = TRUE)
  e <- expect_error(raise(list(what = "option", option = "positive_class", value = "yes", expected = "one of the classes",
                               choices = c("a", "b"))), class = "imagesasdata_argument_error")
  expect_identical(conditionMessage(e), "`positive_class` must be one of the classes, \"a\" or \"b\", not \"yes\".")
  e <- expect_error(raise(list(what = "unknown_option", option = "epocs", choices = c("seed", "epochs"))),
                    class = "imagesasdata_argument_error")
  expect_match(conditionMessage(e), "Unknown argument `epocs`.", fixed = TRUE)
  expect_match(conditionMessage(e), "Did you mean `epochs`?", fixed = TRUE)
  # a file and row travel as the condition's fields; the message is the engine's as the engine spelt it for R,
  # passed on as it is (never parsed: a message in Python's spelling would arrive in Python's spelling)
  e <- expect_error(raise(list(what = "file", path = "/tmp/gold/coding_sheet_wave1.csv", row = 5L, value = "maybe"),
                          message = "codes outside the classes (a, b): coding_sheet_wave1.csv row 5: 'maybe'",
                          r_message = "codes outside the classes (a, b): coding_sheet_wave1.csv row 5: \"maybe\""),
                    class = "imagesasdata_error")
  expect_identical(e$path, "/tmp/gold/coding_sheet_wave1.csv")
  expect_identical(e$row, 5L)
  expect_identical(conditionMessage(e), "codes outside the classes (a, b): coding_sheet_wave1.csv row 5: \"maybe\"")
  expect_identical(e$engine_message, "codes outside the classes (a, b): coding_sheet_wave1.csv row 5: 'maybe'")
  e <- expect_error(raise(list(what = "column", option = "manual_label", value = "lable", choices = c("label", "id")),
                          message = "manual_label='lable': no such column in the manual labels (columns: label, id)."),
                    class = "imagesasdata_column_error")
  expect_identical(e$argument, "manual_label")
  # a message without fields is the condition's message as it came, with the package's class
  e <- expect_error(raise(list(), message = "start_lr=1 and end_lr=0.1: need 0 < start_lr < end_lr (finite)"),
                    class = "imagesasdata_error")
  expect_identical(conditionMessage(e), "start_lr=1 and end_lr=0.1: need 0 < start_lr < end_lr (finite)")
  expect_false(inherits(e, "imagesasdata_argument_error"))
})

test_that("the engine spells its messages for R: options, values, flags and command-line asides", {
  skip_if_no_engine()
  schema <- reticulate::import("imagesasdata.schema")
  text <- paste0("pass ", schema$setting("resume", TRUE), schema$cli_only("--resume"), " with the ",
                 schema$flag("out"), " folder; ", schema$literal("maybe"), " is not ", schema$literal(list("a", "b")),
                 "; ", schema$setting("confidence", 95))
  expect_identical(schema$render(text, "r"),
                   "pass `resume = TRUE` with the `out` folder; \"maybe\" is not c(\"a\", \"b\"); `conf_level = 95`")
  expect_identical(schema$render(text, "python"),
                   "pass resume=True (CLI: --resume) with the --out folder; 'maybe' is not ['a', 'b']; confidence=95.0")
})

test_that("a model that predicts one class for every image, and unreadable images, give warnings", {
  trains()
  fit <- binary_fit()
  images <- file.path(sample_data(), "new_images")
  # threshold 0: every image is called positive
  w <- expect_warning(predict(fit, images, threshold = 0), class = "imagesasdata_warning_one_class")
  expect_match(conditionMessage(w), "predicts \"positive\" for every one of the 12 images", fixed = TRUE)
  expect_identical(deparse(conditionCall(w)[[1]]), "predict")
  expect_warning(augment(fit, images, threshold = 0), class = "imagesasdata_warning_one_class")
  expect_warning(predict(fit, list.files(images, full.names = TRUE)[1:3], threshold = 0), NA)   # too few to say
  broken <- broken_image()
  w <- expect_warning(predict(fit, c(list.files(images, full.names = TRUE)[1:2], broken)),
                      class = "imagesasdata_warning_unreadable")
  expect_match(conditionMessage(w), "1 of 3 images could not be read; their predictions are NA.", fixed = TRUE)
  expect_match(conditionMessage(w), "not an image", fixed = TRUE)
  frame <- data.frame(path = c(broken, list.files(images, full.names = TRUE)[1]), retweets = 1:2)
  expect_warning(augmented <- augment(fit, frame), class = "imagesasdata_warning_unreadable")
  expect_identical(is.na(augmented$.pred_class), c(TRUE, FALSE))
  expect_identical(augmented$retweets, 1:2)
})

test_that("fits without out live in R's tempdir(), and a failed fit leaves nothing behind", {
  trains()
  fit <- factor_fit()
  expect_identical(normalizePath(dirname(fit$path)), normalizePath(tempdir()))
  expect_match(basename(fit$path), "^imagesasdata-run-")
  runs <- function() list.files(tempdir(), pattern = "^imagesasdata-(run|grid|tasks)-")
  before <- runs()
  expect_error(finetune_cnn(file.path(sample_data(), "new_images"), progress = FALSE), class = "imagesasdata_error",
               regexp = "have no label")
  expect_error(tune_cnn(file.path(sample_data(), "new_images"), list(learning_rate = 0.01), progress = FALSE),
               class = "imagesasdata_error")
  expect_identical(runs(), before)
  grid <- small_grid()
  expect_true(dir.exists(grid$path))
})

test_that("plots: accuracy on 0-1 with the majority-class rate, row-normalised confusion, readable facets, titles", {
  trains()
  fit <- binary_fit()
  plot <- autoplot(fit)
  built <- ggplot2::ggplot_build(plot)
  accuracy_panel <- built$layout$layout$PANEL[built$layout$layout$measure == "accuracy"]
  range <- built$layout$panel_params[[as.integer(accuracy_panel)]]$y.range
  expect_true(range[1] <= 0 && range[2] >= 1)
  val <- fit$splits[fit$splits$split %in% "val", ]
  majority <- max(table(val$label)) / nrow(val)
  hline <- Filter(function(layer) "yintercept" %in% names(layer), built$data)
  expect_equal(hline[[1]]$yintercept, majority)
  expect_match(gsub("\\s+", " ", plot$labels$subtitle), sprintf("always predicting the largest class (%.2f)", majority),
               fixed = TRUE)   # the subtitle wraps to fit the plot; its words are what matters
  free <- ggplot2::ggplot_build(autoplot(fit, accuracy_limits = NULL))
  expect_false(isTRUE(all.equal(free$layout$panel_params[[as.integer(accuracy_panel)]]$y.range, range)))
  expect_identical(autoplot(fit, title = "Person s1")$labels$title, "Person s1")
  expect_null(autoplot(fit, title = NULL, subtitle = NULL)$labels$title)

  confusion <- autoplot(fit, type = "confusion", normalize = "row")
  data <- confusion$data
  shares <- tapply(data$share, data$truth, sum)
  expect_equal(as.vector(shares[!is.na(shares)]), rep(1, sum(!is.na(shares))))
  expect_match(as.character(unique(data$facet)), "^validation \\([0-9]+ images\\)$")
  counts <- ggplot2::ggplot_build(autoplot(fit, type = "confusion"))
  breaks <- counts$plot$scales$get_scales("fill")$get_breaks()
  breaks <- breaks[!is.na(breaks)]
  expect_true(length(breaks) > 0 && all(breaks == round(breaks)))
  expect_identical(autoplot(fit, type = "confusion", split = "test", title = "Test")$labels$title, "Test")
  expect_error(autoplot(fit, type = "confusion", normalize = "column"), class = "imagesasdata_argument_error",
               regexp = "`normalize` must be one of")
  grid_plot <- ggplot2::ggplot_build(autoplot(small_grid(), measure = "accuracy"))
  expect_true(all(vapply(grid_plot$layout$panel_params, function(p) p$y.range[1] <= 0 && p$y.range[2] >= 1,
                         logical(1))))
})

test_that("the vignettes are installed with the package and listed by vignette()", {
  skip_if(identical(Sys.getenv("IMAGESASDATA_BUILD_VIGNETTES"), "false"), "vignettes not built")
  listed <- utils::vignette(package = "imagesasdata")$results
  expect_setequal(listed[, "Item"], c("autotaggers-and-grids", "how-a-computer-sees", "person-vs-others",
                                      "predicted-labels-regression", "vlm-coding", "who-is-this"))
  expect_true(all(file.exists(file.path(system.file("doc", package = "imagesasdata"),
                                        paste0(listed[, "Item"], ".html")))))
})
