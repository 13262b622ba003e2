# Finding the engine, explaining when it is missing, and turning its errors into R conditions.

rscript <- function() file.path(R.home("bin"), "Rscript")

# Run R code in a fresh R process (Python can only be chosen once per process) with these environment
# variables; return its output lines.
run_fresh_r <- function(code, env) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  env <- c(env, R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep), RETICULATE_PYTHON = "")
  suppressWarnings(system2(rscript(), script, stdout = TRUE, stderr = TRUE,
                           env = sprintf("%s=%s", names(env), shQuote(env))))
}

python_without_engine <- function() {
  python <- Sys.which("python3")
  if (!nzchar(python)) skip("no python3 on the PATH to make an engine-less virtualenv from")
  folder <- file.path(tempdir(), "no-engine-venv")
  if (!file.exists(file.path(folder, "bin", "python"))) {
    status <- system2(python, c("-m", "venv", "--without-pip", shQuote(folder)), stdout = FALSE, stderr = FALSE)
    if (status != 0) skip("python3 -m venv is not available")
  }
  file.path(folder, "bin", "python")
}

test_that("library(imagesasdata) starts no Python", {
  out <- run_fresh_r(c(
    "library(imagesasdata)",
    "cat('started:', reticulate::py_available(initialize = FALSE), '\\n')"
  ), c(IMAGESASDATA_PYTHON = "/nonexistent/python"))
  expect_true("started: FALSE " %in% out, info = paste(out, collapse = "\n"))
})

test_that("a Python without the engine: engine_available() is FALSE and the error says to run install_engine()", {
  python <- python_without_engine()
  out <- run_fresh_r(c(
    "library(imagesasdata)",
    "cat('available:', engine_available(), '\\n')",
    "e <- tryCatch(image_table('.'), error = function(e) e)",
    "cat('class:', class(e), '\\n')",
    "cat(conditionMessage(e), '\\n')"
  ), c(IMAGESASDATA_PYTHON = python, PYTHONPATH = ""))   # nor an engine on PYTHONPATH (a checkout's python/)
  text <- paste(out, collapse = "\n")
  expect_match(text, "available: FALSE", fixed = TRUE)
  expect_match(text, "class: imagesasdata_engine_missing imagesasdata_error rlang_error error condition", fixed = TRUE)
  expect_match(text, "imagesasdata::install_engine()", fixed = TRUE)
  expect_match(text, python, fixed = TRUE)
  expect_match(text, "IMAGESASDATA_PYTHON", fixed = TRUE)
  expect_match(text, "No module named 'imagesasdata'", fixed = TRUE)
})

test_that("IMAGESASDATA_PYTHON naming a missing file is reported as such", {
  out <- run_fresh_r(c(
    "library(imagesasdata)",
    "cat('available:', engine_available(), '\\n')",
    "cat(tryCatch(sample_data(), error = conditionMessage), '\\n')"
  ), c(IMAGESASDATA_PYTHON = "/nonexistent/bin/python"))
  text <- paste(out, collapse = "\n")
  expect_match(text, "available: FALSE", fixed = TRUE)
  expect_match(text, "IMAGESASDATA_PYTHON is set to /nonexistent/bin/python, which does not exist", fixed = TRUE)
  expect_match(text, "install_engine()", fixed = TRUE)
})

test_that("IMAGESASDATA_PYTHON outranks RETICULATE_PYTHON", {
  withr::local_envvar(IMAGESASDATA_PYTHON = "/opt/engine/python", RETICULATE_PYTHON = "/usr/bin/python3")
  if (reticulate::py_available(initialize = FALSE)) {
    expect_true(engine_python()$started)
  } else {
    expect_identical(imagesasdata:::python_choice(), list(python = "/opt/engine/python", from = "IMAGESASDATA_PYTHON"))
  }
  withr::local_envvar(IMAGESASDATA_PYTHON = "")
  expect_identical(imagesasdata:::python_choice(), list(python = "/usr/bin/python3", from = "RETICULATE_PYTHON"))
})

test_that("the engine in use is the one configured", {
  skip_if_no_engine()
  wanted <- Sys.getenv("IMAGESASDATA_PYTHON")
  skip_if(!nzchar(wanted), "IMAGESASDATA_PYTHON not set")
  expect_true(engine_python()$started)
  expect_identical(normalizePath(reticulate::py_exe()), normalizePath(wanted))
})

test_that("engine errors become imagesasdata_error conditions carrying the engine's message", {
  skip_if_no_engine()
  missing <- file.path(tempdir(), "no-such-folder")
  e <- tryCatch(image_table(missing), error = function(e) e)
  expect_identical(class(e), c("imagesasdata_error", "rlang_error", "error", "condition"))
  expect_identical(conditionMessage(e), sprintf("%s: no such folder; check the path", missing))
  expect_false(grepl("Traceback", conditionMessage(e)))
  expect_identical(e$python_type, "ImagesAsDataError")
  expect_match(deparse(conditionCall(e)), "image_table", fixed = TRUE)
})

test_that("other Python exceptions become imagesasdata_python_error with the traceback kept aside", {
  skip_if_no_engine()
  divide <- reticulate::py_eval("lambda: 1 / 0", convert = FALSE)
  e <- tryCatch(engine_call(divide), error = function(e) e)
  expect_s3_class(e, "imagesasdata_python_error")
  expect_match(conditionMessage(e), "Python ZeroDivisionError: division by zero", fixed = TRUE)
  expect_false(grepl("Traceback", conditionMessage(e)))
  expect_match(e$traceback, "Traceback (most recent call last)", fixed = TRUE)
})

test_that("install_engine() needs a real engine source and says how to give one", {
  withr::local_envvar(IMAGESASDATA_SOURCE = "")
  folder <- tempfile("not-a-checkout")
  dir.create(folder)
  expect_error(install_engine(source = folder), class = "imagesasdata_argument_error", regexp = "pyproject.toml")
  withr::local_envvar(IMAGESASDATA_SOURCE = folder)
  expect_error(install_engine(), class = "imagesasdata_argument_error", regexp = "IMAGESASDATA_SOURCE")
})

test_that("the package carries its engine's source at its own version, and install_engine() says what pip will install", {
  withr::local_envvar(IMAGESASDATA_SOURCE = "")
  source <- imagesasdata:::engine_source(NULL)
  expect_identical(source, normalizePath(system.file("engine", package = "imagesasdata")))
  expect_true(file.exists(file.path(source, "python", "imagesasdata", "interop", "bridge.py")))
  expect_identical(imagesasdata:::engine_version(source), as.character(utils::packageVersion("imagesasdata")))
  skip_if_no_engine()
  requirement <- imagesasdata:::engine_requirement(source)
  expect_false(identical(requirement, source))   # pip builds in a copy, never in the R library
  plan <- imagesasdata:::install_plan(engine_python()$python, requirement,
                                      c("--no-deps", "--force-reinstall", "--no-build-isolation"))
  expect_match(plan[[1]], "^pip will install 1 packages: imagesasdata ")
  expect_error(install_engine(extras = "everything"), class = "imagesasdata_argument_error", "`extras`")
  expect_error(install_engine(torch_build = "gpu"), class = "imagesasdata_argument_error", "`torch_build`")
})

test_that("Pythons started from R load their own libpython, so pip's ssl works under R", {
  skip_if_no_engine()
  python <- engine_python()$python
  import_ssl <- function() system2(python, c("-c", shQuote("import ssl")), stdout = FALSE, stderr = FALSE)
  before <- Sys.getenv("LD_LIBRARY_PATH")
  expect_equal(imagesasdata:::with_own_libpython(python, import_ssl()), 0L)
  expect_equal(Sys.getenv("LD_LIBRARY_PATH"), before)
})

test_that("install_engine() builds a virtualenv and installs the engine into it", {
  # pip builds the engine from source (fetching setuptools from the package index), so this runs only when
  # asked: `make test` sets IMAGESASDATA_TEST_INSTALL=true. torch is left out to keep it to seconds.
  skip_if_not(identical(Sys.getenv("IMAGESASDATA_TEST_INSTALL"), "true"), "IMAGESASDATA_TEST_INSTALL is not true")
  skip_if_no_engine()
  source <- dirname(dirname(dirname(reticulate::py_to_r(engine()$`__file__`))))
  skip_if_not(file.exists(file.path(source, "pyproject.toml")), "the engine is not installed from a checkout")
  envname <- file.path(tempdir(), "engine-venv")
  python <- install_engine(source = source, envname = envname, python = Sys.which("python3"), torch = NULL,
                           torchvision = NULL, pip_options = c("--no-deps", "--quiet"))
  expect_true(file.exists(python))
  version <- system2(python, c("-c", shQuote("import importlib.metadata as m; print(m.version('imagesasdata'))")),
                     stdout = TRUE)
  expect_identical(version, reticulate::py_to_r(engine()$`__version__`))
  # installed into the virtualenv (a copy, not a link to the checkout)
  site <- system2(python, c("-c", shQuote("import sysconfig; print(sysconfig.get_paths()['purelib'])")), stdout = TRUE)
  bridge_file <- file.path(site, "imagesasdata", "interop", "bridge.py")
  expect_true(file.exists(bridge_file))
  expect_match(site, basename(envname), fixed = TRUE)
})

test_that("the first call of a session may be any wrapper, e.g. load_cnn()", {
  trains()
  fit <- faces_fit()
  # reticulate's py_to_r() starts a Python before evaluating its argument: the engine must still choose its own
  out <- run_fresh_r(c(
    "library(imagesasdata)",
    sprintf("fit <- load_cnn('%s')", fit$path),
    "cat('loaded:', class(fit)[1], length(fit$classes), '\\n')"
  ), c(IMAGESASDATA_PYTHON = Sys.getenv("IMAGESASDATA_PYTHON")))
  expect_true("loaded: cnn_fit 6 " %in% out, info = paste(out, collapse = "\n"))
})
