#!/usr/bin/env bash
# The route an R user takes on a machine without the Debian shortcut (README, "Install"): the package tarball
# installed into a fresh library, install_engine() with no arguments into a fresh virtualenv root, R restarted,
# then the README's tour. Nothing of the checkout's engine is visible: no IMAGESASDATA_PYTHON, no
# RETICULATE_PYTHON, and the tarball is built without the record of this checkout's .venv.
#   rpkg/tools/install-route.sh PYTHON SOURCE BUILD_DIR
set -euo pipefail
python=$1 source=$2 build=$3
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imagesasdata-route.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib" "$work/virtualenvs" "$work/package" "$build"
# A copy of the package without inst/engine.dcf (which names this checkout's engine), with the engine wheel.
cp -r "$here" "$work/package/imagesasdata"
rm -f "$work/package/imagesasdata/inst/engine.dcf"
rm -rf "$work/package/imagesasdata/inst/python" && mkdir -p "$work/package/imagesasdata/inst/python"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$work/package/imagesasdata/inst/python" "$source" >"$build/route-wheel.log" 2>&1 || { cat "$build/route-wheel.log"; exit 1; }
(cd "$work/package" && R CMD build --no-build-vignettes --no-manual imagesasdata >/dev/null)
R CMD INSTALL --no-multiarch -l "$work/lib" "$work"/package/imagesasdata_*.tar.gz >"$build/route-install.log" 2>&1 \
  || { cat "$build/route-install.log"; exit 1; }
clean=(env -u IMAGESASDATA_PYTHON -u RETICULATE_PYTHON -u IMAGESASDATA_SOURCE -u PYTHONPATH R_LIBS="$work/lib"
       RETICULATE_VIRTUALENV_ROOT="$work/virtualenvs" WORKON_HOME="$work/virtualenvs")
echo "install route: install_engine() with no arguments into $work/virtualenvs"
"${clean[@]}" Rscript -e 'imagesasdata::install_engine()'
echo "install route: a new R session, the README tour"
"${clean[@]}" Rscript -e '
library(imagesasdata)
choice <- engine_python()   # before Python starts: which one the package will choose, and why
cat("engine:", choice$python, "(", choice$from, ")\n")
stopifnot(grepl("install_engine", choice$from), startsWith(choice$python, Sys.getenv("WORKON_HOME")))
stopifnot(engine_available())
faces <- file.path(sample_data(), "faces")
fit <- finetune_cnn(faces, epochs = 2, image_size = 64)
print(fit)
labels <- predict(fit, file.path(sample_data(), "new_images"), type = "prob")
print(labels)
stopifnot(nrow(labels) == 12, all(is.na(labels$error)))
'
echo "install route: passed"
