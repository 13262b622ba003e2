#!/usr/bin/env bash
# Build the R package and install it where a plain library(imagesasdata) finds it, recording this checkout's
# engine so that it works without any setting (engine_python() explains the order of choices).
#   rpkg/tools/install.sh PYTHON SOURCE BUILD_DIR
# PYTHON: the engine's Python (the checkout's .venv/bin/python); SOURCE: the checkout; BUILD_DIR: for the tarball.
set -euo pipefail
python=$1 source=$2 build=$3
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$here/inst" "$build"
build=$(cd "$build" && pwd)
printf 'Python: %s\nSource: %s\n' "$python" "$source" > "$here/inst/engine.dcf"
# The package carries the engine it was built with, as a wheel: install_engine() with no arguments installs it.
rm -rf "$here/inst/python" && mkdir -p "$here/inst/python"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$here/inst/python" "$source" \
  >"$build/wheel.log" 2>&1 || { cat "$build/wheel.log"; exit 1; }
# The vignettes live in the repository's top-level vignettes/ (knitted there by `make vignettes`); the package
# carries a copy, built by R CMD build so that vignette(package = "imagesasdata") lists them. They fine-tune real
# models: IMAGESASDATA_VIGNETTE_QUICK=true (the Makefile's CI targets) knits them at small settings, and
# IMAGESASDATA_BUILD_VIGNETTES=false leaves them unbuilt.
rm -rf "$here/vignettes" && mkdir -p "$here/vignettes"
cp "$source"/vignettes/*.Rmd "$here/vignettes/"
vignettes=--no-build-vignettes
if [ "${IMAGESASDATA_BUILD_VIGNETTES:-true}" = true ]; then vignettes=; fi
rm -f "$build"/imagesasdata_*.tar.gz
(cd "$build" && IMAGESASDATA_PYTHON="${IMAGESASDATA_PYTHON:-$python}" R CMD build $vignettes --no-manual "$here" \
  >"$build/build.log" 2>&1) || { cat "$build/build.log"; exit 1; }
tarball=$(ls "$build"/imagesasdata_*.tar.gz)
# The first writable library on R's search path (as root on Debian: /usr/local/lib/R/site-library), else the
# user's own library, created if needed.
library=$(Rscript -e 'lib <- Filter(function(p) file.access(p, 2) == 0, .libPaths()); if (!length(lib)) { lib <- Sys.getenv("R_LIBS_USER"); dir.create(lib, recursive = TRUE, showWarnings = FALSE) }; cat(lib[[1]])')
R CMD INSTALL --no-multiarch -l "$library" "$tarball" >"$build/install.log" 2>&1 || { cat "$build/install.log"; exit 1; }
echo "installed the R package imagesasdata into $library (engine: $python)"
