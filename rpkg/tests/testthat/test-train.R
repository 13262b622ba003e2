# finetune_cnn(): every engine option, the book's defaults, explicit integers, documentation from the engine.

test_that("finetune_cnn() exposes every engine option with the engine's default", {
  skip_if_no_engine()
  reticulate::py_run_string("import dataclasses, json, imagesasdata.train.config as _c
_defaults = json.dumps({f.name: f.default for f in dataclasses.fields(_c.TrainConfig)})", convert = FALSE)
  defaults <- jsonlite::fromJSON(reticulate::py_to_r(reticulate::import_main(convert = FALSE)[["_defaults"]]),
                                 simplifyVector = FALSE)
  formals <- formals(finetune_cnn)
  expect_setequal(setdiff(names(formals), c("data", "label", "path", "out", "resume", "overwrite")), names(defaults))
  for (name in setdiff(names(defaults), "progress")) {
    r_default <- eval(formals[[name]])
    py_default <- defaults[[name]]
    if (is.null(py_default)) {
      expect_null(r_default, label = name)
    } else {
      expect_equal(r_default, py_default, label = name)
    }
  }
  expect_identical(formals$progress, "epochs")   # a line per epoch, also when knitting or under Rscript
})

test_that("each option's documentation is the engine's OPTION_HELP text", {
  skip_if_no_engine()
  help <- reticulate::py_to_r(reticulate::import("imagesasdata.train.config", convert = FALSE)$OPTION_HELP)
  rd <- tools::Rd_db("imagesasdata")[["finetune_cnn.Rd"]]
  if (is.null(rd)) skip("the installed package has no Rd database")
  # The Rd source, whitespace squashed and non-ASCII dropped (the locale may not be UTF-8 under R CMD check).
  squash <- function(x) gsub("[[:space:]]+", " ", iconv(enc2utf8(x), "UTF-8", "ASCII", sub = ""))
  text <- squash(paste(as.character(rd), collapse = ""))
  for (name in names(help)) {
    expect_true(grepl(squash(help[[name]]), text, fixed = TRUE), label = sprintf("documentation of %s", name))
  }
})

test_that("type and shape mistakes are caught in R, with the option's name", {
  expect_error(finetune_cnn("x", epochs = 2.5), class = "imagesasdata_argument_error", regexp = "`epochs` must be a whole number")
  expect_error(finetune_cnn("x", epochs = "many"), class = "imagesasdata_argument_error", regexp = "`epochs`")
  expect_error(finetune_cnn("x", learning_rate = c(0.1, 0.01)), class = "imagesasdata_argument_error", regexp = "`learning_rate`")
  expect_error(finetune_cnn("x", augment_flip = NA), class = "imagesasdata_argument_error", regexp = "`augment_flip`")
  expect_error(finetune_cnn("x", architecture = 18), class = "imagesasdata_argument_error", regexp = "`architecture`")
  expect_error(finetune_cnn("x", progressive_resize = 100.5), class = "imagesasdata_argument_error",
               regexp = "`progressive_resize` must be a whole number")
})

test_that("meaningless values are left to the engine, whose message reaches R", {
  skip_if_no_engine()
  faces <- file.path(sample_data(), "faces")
  expect_error(finetune_cnn(faces, epochs = 0, out = tempfile()), class = "imagesasdata_argument_error",
               regexp = "`epochs` must be at least 1, not 0.", fixed = TRUE)
  expect_error(finetune_cnn(faces, optimizer = "adagrad", out = tempfile()), class = "imagesasdata_argument_error",
               regexp = "`optimizer` must be one of \"sgd\", \"adam\" or \"adamw\", not \"adagrad\".", fixed = TRUE)
  expect_error(finetune_cnn(faces, momentum = 1, out = tempfile()), class = "imagesasdata_argument_error",
               regexp = "`momentum` must be at least 0 and below 1, not 1 (the book uses 0.9)", fixed = TRUE)
  expect_error(finetune_cnn(faces, schedule = "cosine", out = tempfile()), class = "imagesasdata_argument_error",
               regexp = "`schedule` must be one of \"step\", \"one_cycle\" or \"warmup_cosine\", not \"cosine\"",
               fixed = TRUE)
  expect_error(finetune_cnn(faces, lr_decay_per_block = 2, out = tempfile()), class = "imagesasdata_argument_error",
               regexp = "`lr_decay_per_block` must be above 0 and at most 1", fixed = TRUE)
  unlabelled <- file.path(sample_data(), "new_images")
  expect_error(finetune_cnn(unlabelled, out = tempfile()), class = "imagesasdata_error", regexp = "have no label")
})

test_that("whole numbers reach Python as ints and are recorded as such", {
  trains()
  fit <- faces_fit()
  settings <- fit$description$hyperparameters
  expect_identical(settings$epochs, 2L)
  expect_identical(settings$image_size, 64L)
  expect_identical(settings$batch_size, 4L)
  expect_identical(settings$learning_rate, 0.004)   # the default recipe's one-cycle peak
})
