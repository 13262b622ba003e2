# Shared by every test file: skips when the engine is missing, and one tiny fine-tune per kind of task for the
# whole test run (fine-tunes take a minute on 2 CPU cores, so files share them).

skip_if_no_engine <- function() {
  if (!engine_available()) skip("the imagesasdata Python engine is not available (set IMAGESASDATA_PYTHON)")
}

# `make test` runs testthat first, then R CMD check, which runs the tests again: the second time, the fine-tunes
# are skipped (IMAGESASDATA_SKIP_FINETUNE=true) since they already passed minutes before.
skip_finetune <- function() {
  skip_if_no_engine()
  if (identical(tolower(Sys.getenv("IMAGESASDATA_SKIP_FINETUNE")), "true")) {
    skip("fine-tuning tests already ran (IMAGESASDATA_SKIP_FINETUNE=true)")
  }
}

shared_fits <- new.env(parent = emptyenv())

# 6 people x 8 photos at 64 px, 2 epochs: about 30 s on 2 cores.
faces_fit <- function() {
  skip_finetune()
  if (is.null(shared_fits$faces)) {
    shared_fits$faces <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64,
                                      out = file.path(tempdir(), "faces-run"), progress = FALSE)
  }
  shared_fits$faces
}

# Person s1 against the others (binary), 1 epoch, with a held-out test split.
binary_fit <- function() {
  skip_finetune()
  if (is.null(shared_fits$binary)) {
    shared_fits$binary <- finetune_cnn(file.path(sample_data(), "person_vs_others.csv"), epochs = 1,
                                       image_size = 64, test_fraction = 0.25, out = file.path(tempdir(), "binary-run"),
                                       progress = FALSE)
  }
  shared_fits$binary
}

# Python values as R sees them through JSON, independent of the bridge under test.
py_json <- function(code) {
  jsonlite::fromJSON(reticulate::py_eval(sprintf("__import__('json').dumps(%s)", code), convert = TRUE),
                     simplifyVector = TRUE)
}

# A file that looks like an image but is not one.
broken_image <- function() {
  folder <- tempfile("broken")
  dir.create(folder)
  path <- file.path(folder, "broken.png")
  writeLines("this is not a PNG", path)
  path
}
