# Fail when man/ or NAMESPACE are not what roxygen2 makes from the R sources (someone forgot to re-document).
#   Rscript rpkg/tools/check-docs.R rpkg
args <- commandArgs(trailingOnly = TRUE)
package <- normalizePath(if (length(args)) args[[1]] else "rpkg")
copy <- file.path(tempfile("roxygen"), "pkg")
dir.create(copy, recursive = TRUE)
invisible(file.copy(list.files(package, full.names = TRUE, all.files = TRUE, no.. = TRUE), copy, recursive = TRUE))
suppressMessages(roxygen2::roxygenise(copy))
generated <- c("NAMESPACE", file.path("man", list.files(file.path(copy, "man"))))
committed <- c("NAMESPACE", file.path("man", list.files(file.path(package, "man"))))
differ <- Filter(function(f) {
  !file.exists(file.path(package, f)) || !file.exists(file.path(copy, f)) ||
    !identical(readLines(file.path(package, f)), readLines(file.path(copy, f)))
}, union(generated, committed))
if (length(differ)) {
  message("R documentation is out of date: ", paste(differ, collapse = ", "),
          "\nRun: Rscript -e 'roxygen2::roxygenise(\"rpkg\")' and commit rpkg/man and rpkg/NAMESPACE")
  quit(status = 1)
}
cat("R documentation (man/, NAMESPACE) is up to date\n")
