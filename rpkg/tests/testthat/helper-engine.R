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

# ../shared/datasets beside the repository (ORL faces, the five tweeted images with their recorded Rekognition
# answers): IMAGESASDATA_DATASETS, else beside the checkout the package was installed from, else beside the
# working directory. Tests that need them skip when they are absent, except under `make test`
# (IMAGESASDATA_REQUIRE_DATASETS=true), where a skip would hide tests that never ran.
shared_datasets <- function() {
  source <- imagesasdata:::build_record()$source
  candidates <- c(Sys.getenv("IMAGESASDATA_DATASETS"),
                  if (!is.null(source)) file.path(dirname(source), "shared", "datasets"),
                  file.path(dirname(getwd()), "shared", "datasets"))
  for (candidate in candidates[nzchar(candidates)]) {
    if (dir.exists(file.path(candidate, "rekognition_examples"))) return(normalizePath(candidate))
  }
  why <- "the shared datasets are missing: set IMAGESASDATA_DATASETS to the folder holding orl_faces/"
  if (identical(Sys.getenv("IMAGESASDATA_REQUIRE_DATASETS"), "true")) stop(why, call. = FALSE)
  skip(why)
}

rekognition_examples <- function() file.path(shared_datasets(), "rekognition_examples")

# A grid of 2 learning rates x 2 momentums on the sample faces: 64 px, 2 epochs, frozen backbone, no random crops
# (features computed once: seconds per configuration), a quarter held out as a test split.
small_grid <- function() {
  skip_finetune()
  if (is.null(shared_fits$grid)) {
    shared_fits$grid <- tune_cnn(file.path(sample_data(), "faces"),
                                 grid = list(learning_rate = c(0.001, 0.01), momentum = c(0.7, 0.9)),
                                 epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE,
                                 test_fraction = 0.25, out = file.path(tempdir(), "small-grid"), progress = FALSE)
  }
  shared_fits$grid
}
