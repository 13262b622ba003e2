#!/usr/bin/env bash
# Build the R package with R's own tools and install it where a plain library(imagesasdata) finds it, recording
# this checkout's engine in the installed copy so that it works without any setting (engine_python() explains the
# order of choices).
#   rpkg/tools/install.sh PYTHON SOURCE BUILD_DIR
# PYTHON: the engine's Python (the checkout's .venv/bin/python); SOURCE: the checkout; BUILD_DIR: for the tarball.
# The tarball is what `R CMD build rpkg` makes anywhere (the route of remotes::install_github(subdir = "rpkg")):
# it carries the engine's source (inst/engine, links into the checkout that R CMD build follows) and the vignettes
# (rpkg/vignettes). They fine-tune real models when the engine is found: IMAGESASDATA_VIGNETTE_QUICK=true (the
# Makefile's CI targets) knits them at small settings, and IMAGESASDATA_BUILD_VIGNETTES=false leaves them unbuilt.
set -euo pipefail
python=$1 source=$2 build=$3
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build"
build=$(cd "$build" && pwd)
# Left in the source tree by older versions of this script; R CMD build ignores them (.Rbuildignore).
rm -rf "$here/inst/engine.dcf" "$here/inst/python"
vignettes=--no-build-vignettes
if [ "${IMAGESASDATA_BUILD_VIGNETTES:-true}" = true ]; then vignettes=; fi
rm -f "$build"/imagesasdata_*.tar.gz
(cd "$build" && IMAGESASDATA_PYTHON="${IMAGESASDATA_PYTHON:-$python}" R CMD build $vignettes --no-manual "$here" \
  >"$build/build.log" 2>&1) || { cat "$build/build.log"; exit 1; }
tarball=$(ls "$build"/imagesasdata_*.tar.gz)
# The first writable library on R's search path (R_LIBS first; as root on Debian: /usr/local/lib/R/site-library),
# else the user's own library, created if needed.
library=$(Rscript -e 'lib <- Filter(function(p) file.access(p, 2) == 0, .libPaths()); if (!length(lib)) { lib <- Sys.getenv("R_LIBS_USER"); dir.create(lib, recursive = TRUE, showWarnings = FALSE) }; cat(lib[[1]])')
R CMD INSTALL --no-multiarch -l "$library" "$tarball" >"$build/install.log" 2>&1 || { cat "$build/install.log"; exit 1; }
# The installed copy (not the tarball) records this checkout's engine: its Python and source folder.
printf 'Python: %s\nSource: %s\n' "$python" "$source" > "$library/imagesasdata/engine.dcf"
echo "installed the R package imagesasdata into $library (engine: $python)"
