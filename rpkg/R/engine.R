# The Python engine: which Python runs it, installing it, importing it lazily, and turning its errors into R
# conditions. Nothing here starts Python until a function needs the engine, so library(imagesasdata) never fails.

.engine <- new.env(parent = emptyenv())

ENGINE_ENVNAME <- "r-imagesasdata"
ENGINE_TORCH <- "torch==2.14.1"
ENGINE_TORCHVISION <- "torchvision==0.29.1"

.onLoad <- function(libname, pkgname) {
  # A delay-loaded module tells reticulate, should it choose a Python by itself, to prefer one that has
  # imagesasdata (it looks for a virtualenv named "r-imagesasdata", the keras convention); before_load applies
  # our own choice first. The calls themselves go through engine(), which checks and explains.
  .engine$proxy <- reticulate::import(
    "imagesasdata", convert = FALSE,
    delay_load = list(before_load = function() configure_python(), priority = 10)
  )
  register_tune_methods()
}

#' Is the imagesasdata Python engine available?
#'
#' Starts Python if needed (see [engine_python()] for which one) and tries to import the engine.
#' Use it to guard code, e.g. `if (engine_available()) image_table(sample_data())`.
#'
#' @return `TRUE` or `FALSE`. When `FALSE`, any engine function fails with a message that says what to run.
#' @seealso [install_engine()], [engine_python()]
#' @export
#' @examples
#' engine_available()
engine_available <- function() {
  isTRUE(tryCatch({
    engine()
    TRUE
  }, error = function(e) FALSE))
}

#' Which Python runs the engine, and why
#'
#' The engine's Python is chosen, before Python starts, in this order:
#' 1. the `IMAGESASDATA_PYTHON` environment variable (a path to a Python executable);
#' 2. the `RETICULATE_PYTHON` environment variable (reticulate's own setting);
#' 3. the virtualenv `"r-imagesasdata"` made by [install_engine()];
#' 4. the Python of the checkout this package was installed from (`make install` records its `.venv`);
#' 5. otherwise reticulate's own search.
#'
#' Once Python has started in an R session it cannot be changed: restart R to switch.
#'
#' @return A list with `python` (path, or `NA` when reticulate will search) and `from` (why), plus
#'   `started` (whether Python is already running in this session, and then `python` is the one in use).
#' @export
#' @examples
#' engine_python()
engine_python <- function() {
  if (reticulate::py_available(initialize = FALSE)) {
    return(list(python = reticulate::py_exe(), from = "already running in this R session", started = TRUE))
  }
  choice <- python_choice()
  c(choice, started = FALSE)
}

python_choice <- function() {
  own <- Sys.getenv("IMAGESASDATA_PYTHON", "")
  if (nzchar(own)) return(list(python = own, from = "IMAGESASDATA_PYTHON"))
  theirs <- Sys.getenv("RETICULATE_PYTHON", "")
  if (nzchar(theirs)) return(list(python = theirs, from = "RETICULATE_PYTHON"))
  if (isTRUE(tryCatch(reticulate::virtualenv_exists(ENGINE_ENVNAME), error = function(e) FALSE))) {
    return(list(python = reticulate::virtualenv_python(ENGINE_ENVNAME),
                from = sprintf("the %s virtualenv made by install_engine()", ENGINE_ENVNAME)))
  }
  built <- build_record()$python
  if (!is.null(built) && file.exists(built)) {
    return(list(python = built, from = "the checkout this package was installed from"))
  }
  list(python = NA_character_, from = "reticulate's own search")
}

# engine.dcf in the installed package, written by rpkg/tools/install.sh (the Makefile's install) after it installs
# the package from a checkout: that checkout's engine Python (its .venv) and source folder. Absent elsewhere.
build_record <- function() {
  file <- system.file("engine.dcf", package = "imagesasdata")
  if (!nzchar(file)) return(list())
  record <- read.dcf(file)
  fields <- list()
  if ("Python" %in% colnames(record)) fields$python <- unname(record[1, "Python"])
  if ("Source" %in% colnames(record)) fields$source <- unname(record[1, "Source"])
  fields
}

# Point reticulate at the chosen Python; only possible before Python starts.
configure_python <- function() {
  if (reticulate::py_available(initialize = FALSE)) return(invisible(FALSE))
  choice <- python_choice()
  if (identical(choice$from, "IMAGESASDATA_PYTHON") && !file.exists(choice$python)) {
    engine_missing(sprintf("IMAGESASDATA_PYTHON is set to %s, which does not exist", choice$python))
  }
  if (!is.na(choice$python) && !identical(choice$from, "RETICULATE_PYTHON")) {
    # RETICULATE_PYTHON outranks everything in reticulate's search, including its guess that a folder with a
    # pyproject.toml is a Poetry project; use_python() alone does not.
    Sys.setenv(RETICULATE_PYTHON = choice$python)
    reticulate::use_python(choice$python, required = TRUE)
  }
  invisible(TRUE)
}

# The imported engine module (convert = FALSE: results stay Python objects until the bridge converts them).
engine <- function() {
  if (!is.null(.engine$module)) return(.engine$module)
  started_before <- reticulate::py_available(initialize = FALSE)
  configure_python()
  imported <- tryCatch(import_engine(), error = function(e) e)
  if (inherits(imported, "error")) {
    problem <- first_line(conditionMessage(imported))
    if (started_before) problem <- paste0(problem, " (Python was already running in this R session; restart R ",
                                          "so imagesasdata can choose its Python)")
    engine_missing(problem)
  }
  .engine$bridge <- imported$bridge
  .engine$module <- imported$module
  # A Ray session (backend = "ray") must end before R finalises Python at exit, or R crashes on its way out.
  reg.finalizer(.engine, function(env) {
    try(.engine$bridge$shutdown(), silent = TRUE)
  }, onexit = TRUE)
  .engine$module
}

# reticulate puts the working directory first on Python's path, so a folder named "imagesasdata" there (an
# R package being checked, a checkout's parent folder) would be imported as an empty namespace package instead
# of the engine. Import with the working directory left out of the path.
IMPORT_ENGINE <- "
import importlib, os, sys
here = os.getcwd()
saved = list(sys.path)
sys.path[:] = [p for p in sys.path if p not in ('', '.') and os.path.abspath(p) != here]
try:
    module = importlib.import_module('imagesasdata')
    bridge = importlib.import_module('imagesasdata.interop.bridge')
finally:
    sys.path[:] = saved
"

import_engine <- function() {
  scope <- reticulate::py_dict(list(), list(), convert = FALSE)
  reticulate::import_builtins(convert = FALSE)$exec(IMPORT_ENGINE, scope)
  list(module = reticulate::py_get_item(scope, "module"), bridge = reticulate::py_get_item(scope, "bridge"))
}

# The engine's bridge module (imagesasdata.interop.bridge): with the engine's public functions, all R calls.
bridge <- function() {
  engine()
  .engine$bridge
}

engine_missing <- function(problem) {
  choice <- engine_python()
  python <- if (is.na(choice$python)) "none found" else choice$python
  rlang::abort(c(
    "The imagesasdata Python engine is not available.",
    i = sprintf("Python: %s (%s)", python, choice$from),
    x = sprintf("Problem: %s", problem),
    i = "To install the engine into its own virtualenv, run `imagesasdata::install_engine()`, then restart R.",
    i = paste("Or set IMAGESASDATA_PYTHON to a Python that has the engine (e.g. the .venv/bin/python that",
              "`make install` builds in the imagesasdata repository) and restart R.")
  ), class = c("imagesasdata_engine_missing", "imagesasdata_error"), call = user_env())
}

first_line <- function(text) {
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  lines <- lines[nzchar(trimws(lines))]
  if (length(lines)) lines[[1]] else text
}

# Call an engine function. Errors come back from Python as data (bridge.call) rather than as reticulate's own
# condition, whose shape differs between reticulate versions: an ImagesAsDataError becomes an R condition of
# class "imagesasdata_error" built from the error's fields (option, value, expected, choices, path, row, hint:
# condition_from_fields(), the fields in its `fields`, `argument`, `path` and `row` fields); where the fields make
# no sentence of their own, its message is the engine's as the engine spelt it for R (`r_message`, never parsed
# here; Python's spelling is in the `engine_message` field). Any other Python exception becomes an
# "imagesasdata_python_error" whose `traceback` field holds the Python traceback (not printed). The engine's own
# warnings (rows left out, unbalanced classes, ...) become R warnings of class "imagesasdata_warning", with the
# text the engine spelt for R. Conditions show the call the user typed (user_env()).
engine_call <- function(fun, ...) {
  call <- user_env()
  outcome <- bridge()$call(fun, ...)
  engine_outcome(outcome, call)
}

# engine_call() with the arguments in a list (fixed options plus those a user gave through `...`).
engine_call_list <- function(fun, args, call = user_env()) {
  force(call)
  outcome <- do.call(bridge()$call, c(list(fun), args))
  engine_outcome(outcome, call)
}

# Arguments arrive evaluated: reticulate starts Python before a lazy argument would choose it.
engine_outcome <- function(outcome, call) {
  for (text in as.character(unlist(py_value(outcome$warnings)))) warn_imagesasdata(text, call = call)
  error <- py_value(outcome$error)
  if (!is.null(error)) raise_engine_error(error, call = call)
  outcome$value
}

# An engine function that prints what it did (e.g. a dry run's cost estimate): its value, with the printed
# text shown as an R message.
engine_call_printed <- function(fun, args, call = user_env()) {
  force(call)
  result <- engine_call_list(bridge()$printed, c(list(fun), args), call)
  text <- trimws(as.character(py_value(reticulate::py_get_item(result, "output"))))
  if (nzchar(text)) message(text)
  reticulate::py_get_item(result, "value")
}

raise_engine_error <- function(error, call = NULL) {
  fields <- error$fields %||% list()
  if (isTRUE(error$engine) && !is.null(fields$extra)) {
    # an optional package of the engine is missing: the R way to install it, from the error's fields
    rlang::abort(c(sprintf("This needs the engine's \"%s\" extra%s, which is not installed.", fields$extra,
                           if (is.null(fields$option)) "" else sprintf(" (the Python package %s)", fields$option)),
                   i = sprintf("Run `imagesasdata::install_engine(extras = \"%s\")`, then restart R.", fields$extra)),
                 class = c("imagesasdata_missing_extra", "imagesasdata_error"), call = call, python_type = error$type,
                 engine_message = error$message, extra = fields$extra, fields = fields)
  }
  if (isTRUE(error$engine)) {
    # The condition is built from the error's fields (errors.py: option_error(), unknown_option(), ...); where they
    # make no sentence of their own, the message is the engine's, spelt for R by the engine (never parsed here).
    translated <- condition_from_fields(fields) %||%
      list(headline = error$r_message %||% error$message, bullets = character())
    argument <- fields$option
    what <- fields$what %||% ""
    class <- c(if (identical(what, "column")) "imagesasdata_column_error",
               if (!is.null(argument)) "imagesasdata_argument_error", "imagesasdata_error")
    rlang::abort(c(translated$headline, stats::setNames(translated$bullets, rep("i", length(translated$bullets)))),
                 class = class, call = call, python_type = error$type, engine_message = error$message,
                 argument = argument, path = fields$path, row = fields$row, fields = fields)
  }
  rlang::abort(c(sprintf("The imagesasdata engine failed with Python %s: %s", error$type, first_line(error$message)),
                 i = "The Python traceback is in this condition's `traceback` field; please report it."),
               class = c("imagesasdata_python_error", "imagesasdata_error"), call = call, python_type = error$type,
               engine_message = error$message, traceback = error$traceback)
}

# An engine error's headline, bullets and argument in R's words, from its fields: a bad value of an option
# (what = "option", with `expected` or `choices` or both: "must be one of the classes, "a" or "b"") or an unknown
# option. NULL when the fields make no sentence of their own (the engine's message, spelt for R, is then used).
# `expected` and `hint` arrive spelt for R.
condition_from_fields <- function(fields) {
  what <- fields$what %||% ""
  option <- fields$option
  if (is.null(option)) return(NULL)
  choices <- as.character(unlist(fields$choices))
  if (identical(what, "unknown_option")) {
    hint <- closest(option, choices)
    return(list(headline = sprintf("Unknown argument `%s`.", option),
                bullets = as.character(c(if (length(hint)) sprintf("Did you mean `%s`?", hint),
                                         if (length(choices)) sprintf("The options: %s.", paste(choices, collapse = ", ")))),
                argument = option))
  }
  if (!identical(what, "option") || (is.null(fields$expected) && !length(choices))) return(NULL)
  given <- if ("value" %in% names(fields)) sprintf(", not %s", r_literal(fields$value)) else ""
  hint <- fields$hint
  if (length(choices)) {
    shown <- vapply(choices, r_choice, character(1), USE.NAMES = FALSE)
    allowed <- if (length(shown) == 1) shown else paste("one of", and_list(shown, "or"))
    if (!is.null(fields$expected)) allowed <- sprintf("%s, %s", fields$expected, and_list(shown, "or"))
    close <- if (is.character(fields$value)) closest(fields$value, setdiff(choices, c("True", "False", "None")))
    return(list(headline = sprintf("`%s` must be %s%s.", option, allowed, given),
                bullets = as.character(c(if (length(close)) sprintf("Did you mean %s?", r_choice(close[[1]])),
                                         if (!is.null(hint)) sentence(hint))),
                argument = option))
  }
  aside <- if (is.null(hint)) "" else sprintf(" (%s)", hint)
  list(headline = sprintf("`%s` must be %s%s%s.", option, fields$expected, given, aside),
       bullets = character(), argument = option)
}

# A value from the engine (a field of its error) as R code: -1 (not -1.0), "adm", TRUE, c("a", "b").
r_literal <- function(value) {
  if (is.null(value)) return("NULL")
  value <- unlist(value)
  one <- function(v) {
    if (is.logical(v)) return(if (is.na(v)) "NA" else toupper(as.character(v)))
    if (is.numeric(v)) return(format(v, scientific = FALSE, drop0trailing = TRUE, trim = TRUE))
    sprintf("\"%s\"", v)
  }
  shown <- vapply(value, one, character(1), USE.NAMES = FALSE)
  if (length(shown) == 1) shown else sprintf("c(%s)", paste(shown, collapse = ", "))
}

# One of an option's choices as R code: Python's True/False/None as TRUE/FALSE/NULL, anything else quoted.
r_choice <- function(choice) {
  switch(choice, True = "TRUE", False = "FALSE", None = "NULL", sprintf("\"%s\"", choice))
}

# A hint as a sentence: capitalised, with a full stop.
sentence <- function(text) {
  text <- paste0(toupper(substr(text, 1, 1)), substring(text, 2))
  if (grepl("[.?!]$", text)) text else paste0(text, ".")
}

#' Install or update the imagesasdata Python engine
#'
#' Creates (or updates) a Python virtualenv holding the engine and its dependencies, in one call, the way
#' `keras::install_keras()` does. With no arguments it installs the engine this R package carries (its source,
#' at the package's own version) with everything the package's functions use -- corrected estimates (the `stats`
#' extra) and heatmaps, maps and selection (`inside`) -- into the virtualenv `"r-imagesasdata"`, where
#' [engine_python()] finds it after a restart of R.
#'
#' Before anything is downloaded it says which PyTorch build it chose, what pip will install and how much that
#' is. PyTorch is the big part. On a machine without an NVIDIA GPU (and on macOS) it installs PyTorch's CPU-only
#' build (about 200 MB, from PyTorch's own package index, https://download.pytorch.org/whl/cpu); with a GPU, or
#' with `torch_build = "cuda"`, the build of your package index (on Linux: with NVIDIA's CUDA libraries, about
#' 2.5 GB to download and 5.5 GB on disk). When PyTorch's CPU index cannot be reached, the default choice says so
#' and installs the build your package index offers instead.
#'
#' @param source The engine to install: a wheel or source archive of it, or a checkout of the imagesasdata
#'   repository (the folder holding `pyproject.toml`). Default: the `IMAGESASDATA_SOURCE` environment variable,
#'   else the engine this package carries.
#' @param envname Name of the virtualenv (found by name later) or a path to one.
#' @param python The Python used to create the virtualenv (default: `python3` on the PATH).
#' @param torch,torchvision pip requirements for PyTorch; the defaults are the versions the engine is tested
#'   with. `NULL` leaves them to the engine's own (broader) requirements.
#' @param torch_build `"auto"` (the default: CPU-only without an NVIDIA GPU, else CUDA), `"cpu"` (CPU-only, from
#'   PyTorch's index; an error when that index cannot be reached) or `"cuda"` (your package index's build: with
#'   CUDA on Linux). The environment variable `IMAGESASDATA_TORCH_BUILD` sets the default.
#' @param extras Further engine extras beyond the default ones (`"stats"` and `"inside"`, always installed):
#'   `"beyond"` (faces, text in images, the prescreen, video; also installs the face detector facenet-pytorch),
#'   `"aws"` (Amazon Rekognition), `"dedupe"` (near-duplicate search), `"ray"` (labelling on a cluster).
#' @param pip_options Further options for `pip install`, e.g. `"--index-url=..."`.
#' @return The path of the virtualenv's Python, invisibly.
#' @seealso [engine_available()], [engine_python()]
#' @export
#' @examples
#' \dontrun{
#' install_engine()                              # the engine this package carries, with PyTorch
#' install_engine(extras = "beyond")             # add faces, OCR, the prescreen and video
#' install_engine(torch_build = "cuda")          # insist on the CUDA build
#' install_engine(source = "~/src/imagesasdata")  # a checkout elsewhere
#' }
install_engine <- function(source = NULL, envname = ENGINE_ENVNAME, python = NULL, torch = ENGINE_TORCH,
                           torchvision = ENGINE_TORCHVISION,
                           torch_build = Sys.getenv("IMAGESASDATA_TORCH_BUILD", "auto"),
                           extras = character(), pip_options = character()) {
  source <- engine_source(source)
  envname <- arg_string(envname, "envname")
  torch_build <- arg_string(torch_build, "torch_build")
  if (!torch_build %in% TORCH_BUILDS) {
    abort_argument(sprintf("`torch_build` must be one of %s, not \"%s\".",
                           and_list(sprintf("\"%s\"", TORCH_BUILDS), "or"), torch_build))
  }
  python <- if (is.null(python)) unname(Sys.which("python3")) else arg_string(python, "python")
  if (!nzchar(python)) abort_argument("no python3 on the PATH: install Python 3.9 or later, or pass `python =`")
  extras <- arg_extras(extras)
  requirement <- sprintf("%s[%s]", engine_requirement(source), paste(unique(c(ENGINE_EXTRAS, extras)), collapse = ","))
  torch_packages <- c(torch, torchvision)
  torch_options <- if (length(torch_packages)) torch_index(torch_build) else character()
  if (!reticulate::virtualenv_exists(envname)) {
    message("Creating the virtualenv ", envname)
    with_own_libpython(python, reticulate::virtualenv_create(envname, python = python, packages = NULL))
  }
  interpreter <- reticulate::virtualenv_python(envname)
  packages <- c(torch_packages, requirement)
  plan <- with_own_libpython(interpreter, install_plan(interpreter, packages, c("--upgrade", pip_options, torch_options)))
  if (length(plan)) message(paste(plan, collapse = "\n"))
  # PyTorch first, from the index chosen above; then the engine from the user's own indexes (PyTorch is then
  # already there at the pinned version, so pip keeps it).
  if (length(torch_packages)) {
    message("Installing ", paste(torch_packages, collapse = ", "))
    with_own_libpython(interpreter, reticulate::virtualenv_install(
      envname, packages = torch_packages, ignore_installed = FALSE, pip_options = c("--upgrade", pip_options, torch_options)))
  }
  message("Installing the imagesasdata engine ", engine_version(source), " with the extras ",
          paste(unique(c(ENGINE_EXTRAS, extras)), collapse = ", "))
  with_own_libpython(interpreter, reticulate::virtualenv_install(
    envname, packages = c(torch_packages, requirement), ignore_installed = FALSE,
    pip_options = c("--upgrade", pip_options)))
  if ("beyond" %in% extras) {
    # Its metadata pins old torch, numpy and Pillow; it runs on current ones, so without its dependencies.
    with_own_libpython(interpreter, reticulate::virtualenv_install(
      envname, packages = ENGINE_FACENET, ignore_installed = FALSE, pip_options = c("--no-deps", pip_options)))
  }
  restart <- if (reticulate::py_available(initialize = FALSE)) "Restart R, then run" else "Next, run"
  setting <- if (identical(envname, ENGINE_ENVNAME)) "" else
    sprintf("Sys.setenv(IMAGESASDATA_PYTHON = \"%s\")   # this virtualenv is not the default one\n  ", interpreter)
  message("The imagesasdata engine is installed in ", interpreter, ".\n", restart, ":\n  ", setting,
          "library(imagesasdata); engine_available()")
  invisible(interpreter)
}

ENGINE_EXTRAS <- c("stats", "inside")
ENGINE_OPTIONAL_EXTRAS <- c("beyond", "aws", "dedupe", "ray", "pandas")
ENGINE_FACENET <- "facenet-pytorch==2.6.0"
TORCH_BUILDS <- c("auto", "cpu", "cuda")
TORCH_CPU_INDEX <- "https://download.pytorch.org/whl/cpu"

arg_extras <- function(extras) {
  extras <- as.character(extras %||% character())
  unknown <- setdiff(extras, c(ENGINE_EXTRAS, ENGINE_OPTIONAL_EXTRAS))
  if (length(unknown)) {
    abort_argument(sprintf("`extras` must be among %s, not %s.",
                           and_list(sprintf("\"%s\"", c(ENGINE_EXTRAS, ENGINE_OPTIONAL_EXTRAS))),
                           and_list(sprintf("\"%s\"", unknown))), argument = "extras")
  }
  extras
}

# pip options that choose the PyTorch build, after saying which build and why (before anything is downloaded).
torch_index <- function(build) {
  mac <- identical(Sys.info()[["sysname"]], "Darwin")
  gpu <- nzchar(Sys.which("nvidia-smi"))
  if (identical(build, "cuda") || mac || (identical(build, "auto") && gpu)) {
    why <- if (mac) "on macOS the package index's build is the one for this machine"
      else if (identical(build, "cuda")) "torch_build = \"cuda\""
      else "an NVIDIA GPU was found"
    message("PyTorch: the build your package index offers (", why, "; on Linux it comes with CUDA, several GB).")
    return(character())
  }
  reachable <- tryCatch({
    curlGetHeaders(paste0(TORCH_CPU_INDEX, "/torch/"), timeout = 15)
    TRUE
  }, error = function(e) trimws(gsub("\\s+", " ", conditionMessage(e))))
  if (isTRUE(reachable)) {
    message("PyTorch: the CPU-only build (about 200 MB) from ", TORCH_CPU_INDEX,
            if (identical(build, "auto")) " as no NVIDIA GPU was found; torch_build = \"cuda\" insists on CUDA" else "",
            ".")
    return(c(paste0("--index-url=", TORCH_CPU_INDEX), "--extra-index-url=https://pypi.org/simple"))
  }
  if (identical(build, "cpu")) {
    abort_argument(c(sprintf("`torch_build = \"cpu\"` needs PyTorch's CPU index, %s, which cannot be reached: %s",
                             TORCH_CPU_INDEX, reachable),
                     i = "Use `torch_build = \"auto\"` to take the build your package index offers."),
                   argument = "torch_build")
  }
  message("PyTorch: no NVIDIA GPU was found, but PyTorch's CPU-only index (", TORCH_CPU_INDEX, ") cannot be ",
          "reached (", reachable, "), so pip takes the build your package index offers (on Linux usually with ",
          "CUDA: several GB).")
  character()
}

# What pip would install for `packages` into `python`'s environment and how much it is, as lines to show before
# installing (pip's own dry run and installation report; sizes of files it would take from a local folder, and of
# PyTorch's known builds). character() when pip cannot say (an old pip): the install then just goes ahead.
install_plan <- function(python, packages, pip_options) {
  report <- tempfile(fileext = ".json")
  on.exit(unlink(report))
  status <- suppressWarnings(system2(python, c("-m", "pip", "install", "--dry-run", "--quiet", "--report", shQuote(report),
                                               pip_options, shQuote(packages)), stdout = FALSE, stderr = FALSE))
  if (!identical(status, 0L) || !file.exists(report)) return(character())
  summary <- system2(python, c("-c", shQuote(INSTALL_PLAN_SUMMARY), shQuote(report)), stdout = TRUE, stderr = FALSE)
  if (!length(summary)) character() else summary
}

INSTALL_PLAN_SUMMARY <- "
import json, os, sys, urllib.parse
items = json.load(open(sys.argv[1]))['install']
known = sum(os.path.getsize(p) for p in (urllib.parse.unquote(urllib.parse.urlparse(i['download_info']['url']).path)
            for i in items if i['download_info']['url'].startswith('file:')) if os.path.exists(p))
names = ', '.join(sorted(i['metadata']['name'] + ' ' + i['metadata']['version'] for i in items))
print(f'pip will install {len(items)} packages: {names}.')
cuda = [i for i in items if i['metadata']['name'].startswith('nvidia-')]
if any(i['metadata']['name'] == 'torch' for i in items):
    print('PyTorch with CUDA is about 2.5 GB to download and 5.5 GB on disk' if cuda else
          'PyTorch without CUDA is about 200 MB to download')
if known:
    print(f'{known / 1e9:.1f} GB of it comes from files on this machine.')
"

# R puts its own LD_LIBRARY_PATH (/usr/lib/R/lib:/usr/lib/x86_64-linux-gnu:...) before a Python's RUNPATH. A Python
# built with a shared libpython (pyenv, a source build) started from R then loads the system's libpython of
# another patch release and fails on its first C extension - measured: pip's `import _ssl` fails with an undefined
# symbol, so pip cannot reach PyPI. Evaluate `code` with that Python's own library folder first (Linux only; the
# engine does the same for the Ray processes it starts).
with_own_libpython <- function(python, code) {
  old <- Sys.getenv("LD_LIBRARY_PATH")
  if (!is.null(python) && nzchar(old) && identical(Sys.info()[["sysname"]], "Linux")) {
    query <- "import sysconfig as s; print((s.get_config_var('LIBDIR') or '') if s.get_config_var('Py_ENABLE_SHARED') else '')"
    libdir <- tryCatch(suppressWarnings(system2(python, c("-c", shQuote(query)), stdout = TRUE, stderr = FALSE)),
                       error = function(e) character())
    if (length(libdir) == 1 && nzchar(libdir) && !startsWith(old, paste0(libdir, ":"))) {
      Sys.setenv(LD_LIBRARY_PATH = paste(libdir, old, sep = ":"))
      on.exit(Sys.setenv(LD_LIBRARY_PATH = old), add = TRUE)
    }
  }
  code
}

engine_source <- function(source) {
  from <- "source"
  if (is.null(source)) {
    source <- Sys.getenv("IMAGESASDATA_SOURCE", "")
    from <- "IMAGESASDATA_SOURCE"
    if (!nzchar(source)) {
      source <- packaged_engine()
      from <- "the engine this package carries"
    }
  }
  source <- arg_string(source, "source")
  if (!nzchar(source)) {
    abort_argument(paste0(
      "install_engine() needs the engine's source and this installation of the package carries none: ",
      "install_engine(source = \"path/to/imagesasdata\") with the folder that holds pyproject.toml, a wheel or a ",
      "source archive (or set IMAGESASDATA_SOURCE)"))
  }
  source <- path.expand(source)
  archive <- grepl("\\.(whl|tar\\.gz|zip)$", source)
  if (!file.exists(source) || (!archive && !file.exists(file.path(source, "pyproject.toml")))) {
    abort_argument(sprintf(
      "%s (%s) is not the imagesasdata engine's source: give the repository folder that holds pyproject.toml, a wheel or a source archive",
      source, from))
  }
  normalizePath(source)
}

# The engine's source this package carries (inst/engine: pyproject.toml, python/, data/, README.md, at the
# package's own version; R CMD build copies them in), or "".
packaged_engine <- function() {
  folder <- system.file("engine", package = "imagesasdata")
  if (nzchar(folder) && file.exists(file.path(folder, "pyproject.toml"))) folder else ""
}

# What pip installs for `source`: an archive as it is; a folder copied first to a temporary one, since pip builds
# in the source tree and an R library may be read-only (and must not collect build debris).
engine_requirement <- function(source) {
  if (!dir.exists(source)) return(source)
  copy <- tempfile("imagesasdata-engine")
  dir.create(copy)
  for (item in c("pyproject.toml", "README.md", "python", "data")) {
    file.copy(file.path(source, item), copy, recursive = TRUE)
  }
  unlink(list.files(copy, pattern = "^(__pycache__|.*\\.egg-info)$", recursive = TRUE, include.dirs = TRUE,
                    full.names = TRUE, all.files = TRUE), recursive = TRUE)
  copy
}

# "0.1.0" from a source folder's pyproject.toml or an archive's name; "" when neither says.
engine_version <- function(source) {
  if (dir.exists(source)) {
    lines <- readLines(file.path(source, "pyproject.toml"), warn = FALSE)
    version <- sub('^version\\s*=\\s*"([^"]*)".*$', "\\1", grep('^version\\s*=', lines, value = TRUE))
    return(if (length(version)) version[[1]] else "")
  }
  found <- regmatches(basename(source), regexpr("[0-9]+\\.[0-9]+[^-]*", basename(source)))
  if (length(found)) found else ""
}

# reticulate::py_to_r() starts Python (reticulate's default one) before it evaluates its argument. When that
# argument is the first engine call of the session, the engine then finds the wrong Python already running. So
# every conversion goes through py_value(), which evaluates the argument first.
py_value <- function(x) {
  force(x)
  reticulate::py_to_r(x)
}
