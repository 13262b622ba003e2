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

# Training tests (DEVELOPERS.md, Tests). A test_that() block that fine-tunes, tunes or finds a learning rate, or
# uses a fit made during the test run (faces_fit(), binary_fit(), small_grid(), ...), starts with trains(). Training
# numerics differ between CPUs (AVX-512, AVX2, SSE kernels), so `make test-other-cpus` reruns exactly these blocks
# under other instruction sets (rpkg/tools/run-tests.R with IMAGESASDATA_ONLY_TRAINING=true selects the blocks that
# call trains()). Everywhere else the engine refuses to train (IMAGESASDATA_TRAINING=forbidden, which the engine's
# Trainer checks) and the shared fits refuse to be used, so a block that trains without saying so fails at once.
TRAINING_GUARD <- "IMAGESASDATA_TRAINING"
training_state <- new.env(parent = emptyenv())
training_state$allowed <- FALSE

set_training_guard <- function(value) {
  do.call(Sys.setenv, stats::setNames(list(value), TRAINING_GUARD))
  if (reticulate::py_available(initialize = FALSE)) {   # Python keeps its own copy of the environment
    reticulate::py_run_string(sprintf("import os; os.environ['%s'] = '%s'", TRAINING_GUARD, value), local = TRUE)
  }
}

trains <- function(env = parent.frame()) {
  skip_finetune()
  training_state$allowed <- TRUE
  set_training_guard("allowed")
  withr::defer({
    training_state$allowed <- FALSE
    set_training_guard("forbidden")
  }, envir = env)
  invisible(TRUE)
}

require_trains <- function(what) {
  if (!isTRUE(training_state$allowed)) {
    stop(what, " is a fit made during the test run: start this test_that() block with trains() so that ",
         "`make test-other-cpus` reruns it under other instruction sets (DEVELOPERS.md, Tests)", call. = FALSE)
  }
}

set_training_guard("forbidden")

# A fixture's fit must have learned its task before a test relies on what it learned: every true class is
# predicted at least once, and balanced accuracy (the mean over true classes of the share predicted right) is at
# least `margin` above chance, 1/k for k classes, however unbalanced the images (tests/learned.py is the same check
# in Python). The failure names the fixture, not the function under test.
expect_learned <- function(predicted, truth, fixture, margin = 0.2) {
  predicted <- as.character(predicted)
  truth <- as.character(truth)
  keep <- !is.na(predicted) & !is.na(truth)
  predicted <- predicted[keep]
  truth <- truth[keep]
  classes <- sort(unique(truth))
  chance <- 1 / max(length(classes), 1)
  accuracy <- if (length(truth)) mean(vapply(classes, function(c) mean(predicted[truth == c] == c), numeric(1))) else 0
  never <- setdiff(classes, predicted)
  learned <- length(truth) > 0 && length(never) == 0 && accuracy >= chance + margin - 1e-12
  found <- table(predicted)
  counts <- table(truth)
  testthat::expect(learned, sprintf(paste0(
    "%s did not learn its task on this CPU, so the test's assertions would not mean anything: balanced accuracy ",
    "%.3f on %d images of %d classes against %.3f for guessing (needed: at least %.3f, chance + %s)%s; predicted %s, ",
    "true %s. Fix the fixture (an easier task, more epochs), not the code under test."),
    fixture, accuracy, length(truth), length(classes), chance, chance + margin, format(margin),
    if (length(never)) paste0("; it never predicts ", paste(never, collapse = ", ")) else "",
    paste(names(found), found, sep = "=", collapse = " "), paste(names(counts), counts, sep = "=", collapse = " ")))
  invisible(accuracy)
}

shared_fits <- new.env(parent = emptyenv())

# 6 people x 8 photos at 64 px, 2 epochs: about 30 s on 2 cores.
faces_fit <- function() {
  skip_finetune()
  require_trains("faces_fit()")
  if (is.null(shared_fits$faces)) {
    shared_fits$faces <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64,
                                      out = file.path(tempdir(), "faces-run"), progress = FALSE)
  }
  shared_fits$faces
}

# Person s1 against the others (binary), 1 epoch, with a held-out test split.
binary_fit <- function() {
  skip_finetune()
  require_trains("binary_fit()")
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
  require_trains("small_grid()")
  if (is.null(shared_fits$grid)) {
    shared_fits$grid <- tune_cnn(file.path(sample_data(), "faces"),
                                 grid = list(learning_rate = c(0.001, 0.01), momentum = c(0.7, 0.9)),
                                 epochs = 2, image_size = 64, freeze = "backbone", augment_crop = FALSE,
                                 test_fraction = 0.25, out = file.path(tempdir(), "small-grid"), progress = FALSE)
  }
  shared_fits$grid
}
