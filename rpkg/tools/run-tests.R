# testthat against the installed package and the real engine; ends with a plain "N passed, N failed" line.
#   Rscript rpkg/tools/run-tests.R rpkg/tests/testthat
args <- commandArgs(trailingOnly = TRUE)
folder <- if (length(args)) args[[1]] else "rpkg/tests/testthat"
results <- as.data.frame(testthat::test_dir(folder, package = "imagesasdata", load_package = "installed",
                                            reporter = testthat::SummaryReporter$new(show_praise = FALSE),
                                            stop_on_failure = FALSE))
# Counted by test (a test_that() block), as pytest counts.
failed <- sum(results$failed > 0 | results$error)
skipped <- sum(results$skipped & !(results$failed > 0 | results$error))
passed <- nrow(results) - failed - skipped
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
if (failed > 0) quit(status = 1)
