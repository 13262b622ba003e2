# testthat against the installed package and the real engine; ends with a plain "N passed, N failed" line.
#   Rscript rpkg/tools/run-tests.R rpkg/tests/testthat
# With IMAGESASDATA_ONLY_TRAINING=true only the test_that() blocks that call trains() run (`make test-other-cpus`
# reruns them under other instruction sets; DEVELOPERS.md, Tests): each test file is copied with every other block
# blanked out line for line, so that failures keep their file and line numbers.
args <- commandArgs(trailingOnly = TRUE)
folder <- if (length(args)) args[[1]] else "rpkg/tests/testthat"

# TRUE for a call test_that(description, { ...; trains(); ... }) whose block calls trains() as a statement.
block_trains <- function(expression) {
  if (!is.call(expression) || !identical(expression[[1]], as.name("test_that")) || length(expression) < 3) {
    return(FALSE)
  }
  code <- expression[[3]]
  statements <- if (is.call(code) && identical(code[[1]], as.name("{"))) as.list(code)[-1] else list(code)
  any(vapply(statements, function(s) is.call(s) && identical(s[[1]], as.name("trains")), logical(1)))
}

is_test_block <- function(expression) is.call(expression) && identical(expression[[1]], as.name("test_that"))

# A copy of the test folder in which only the training blocks remain; NULL when no file has one.
training_only <- function(folder) {
  copy <- file.path(tempfile("training-tests"), "testthat")
  dir.create(copy, recursive = TRUE)
  kept <- 0L
  for (path in list.files(folder, full.names = TRUE, all.files = TRUE, no.. = TRUE)) {
    name <- basename(path)
    if (!grepl("^test.*\\.[rR]$", name)) {
      file.copy(path, copy, recursive = TRUE)   # helpers, setup files, snapshots
      next
    }
    lines <- readLines(path, warn = FALSE)
    expressions <- parse(path, keep.source = TRUE)
    sources <- attr(expressions, "srcref")
    training <- 0L
    for (k in seq_along(expressions)) {
      if (!is_test_block(expressions[[k]])) next
      if (block_trains(expressions[[k]])) {
        training <- training + 1L
      } else {
        lines[sources[[k]][1]:sources[[k]][3]] <- ""
      }
    }
    if (training > 0L) {
      writeLines(lines, file.path(copy, name))
      kept <- kept + training
    }
  }
  cat(sprintf("IMAGESASDATA_ONLY_TRAINING=true: %d test_that() blocks call trains()\n", kept))
  if (kept == 0L) NULL else copy
}

if (identical(tolower(Sys.getenv("IMAGESASDATA_ONLY_TRAINING")), "true")) {
  folder <- training_only(folder)
  if (is.null(folder)) stop("no test_that() block calls trains(): nothing to rerun under other instruction sets")
}
results <- as.data.frame(testthat::test_dir(folder, package = "imagesasdata", load_package = "installed",
                                            reporter = testthat::SummaryReporter$new(show_praise = FALSE),
                                            stop_on_failure = FALSE))
# Counted by test (a test_that() block), as pytest counts.
failed <- sum(results$failed > 0 | results$error)
skipped <- sum(results$skipped & !(results$failed > 0 | results$error))
passed <- nrow(results) - failed - skipped
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
if (failed > 0) quit(status = 1)
