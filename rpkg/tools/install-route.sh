#!/usr/bin/env bash
# The route of an R user without the Debian shortcut (README, "Install"), which is also what
# remotes::install_github(subdir = "rpkg") does: plain `R CMD build rpkg` (it follows the links in inst/engine, so
# the tarball carries the engine's source, and builds the vignettes), the tarball into a fresh library,
# install_engine() with no arguments into a fresh virtualenv root, then in a new R session the README's tour,
# corrected_glm(), cnn_heatmaps() and the installed vignettes. Nothing of the checkout's engine is visible: no
# IMAGESASDATA_PYTHON, no RETICULATE_PYTHON, no virtualenv, no record of this checkout's .venv.
#   rpkg/tools/install-route.sh PYTHON SOURCE BUILD_DIR
# (PYTHON and SOURCE are not used: the route needs nothing of the checkout but rpkg/ and what it links to.)
set -euo pipefail
mkdir -p "$3"; build=$(cd "$3" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imagesasdata-route.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib" "$work/virtualenvs" "$work/build"
clean=(env -u IMAGESASDATA_PYTHON -u RETICULATE_PYTHON -u IMAGESASDATA_SOURCE -u PYTHONPATH -u VIRTUAL_ENV
       -u IMAGESASDATA_VIGNETTE_QUICK R_LIBS="$work/lib" RETICULATE_VIRTUALENV_ROOT="$work/virtualenvs"
       WORKON_HOME="$work/virtualenvs")
echo "install route: R CMD build rpkg"
(cd "$work/build" && "${clean[@]}" R CMD build --no-manual "$here" >"$build/route-build.log" 2>&1) \
  || { cat "$build/route-build.log"; exit 1; }
tarball=$(ls "$work"/build/imagesasdata_*.tar.gz)
tar tzf "$tarball" > "$work/contents.txt"
grep -q '^imagesasdata/inst/engine/python/imagesasdata/__init__.py$' "$work/contents.txt" \
  || { echo "the tarball carries no engine source"; exit 1; }
R CMD INSTALL --no-multiarch -l "$work/lib" "$tarball" >"$build/route-install.log" 2>&1 \
  || { cat "$build/route-install.log"; exit 1; }
echo "install route: install_engine() with no arguments into $work/virtualenvs"
(cd "$work" && "${clean[@]}" Rscript -e 'imagesasdata::install_engine()')
echo "install route: a new R session, the README tour"
(cd "$work" && "${clean[@]}" Rscript -e '
library(imagesasdata)
choice <- engine_python()   # before Python starts: which one the package will choose, and why
cat("engine:", choice$python, "(", choice$from, ")\n")
stopifnot(grepl("install_engine", choice$from), startsWith(choice$python, Sys.getenv("WORKON_HOME")))
stopifnot(engine_available())
listed <- vignette(package = "imagesasdata")$results[, "Item"]
print(listed)
stopifnot(setequal(listed, c("autotaggers-and-grids", "how-a-computer-sees", "person-vs-others",
                             "predicted-labels-regression", "vlm-coding", "who-is-this")))
faces <- file.path(sample_data(), "faces")
fit <- finetune_cnn(faces, epochs = 2, image_size = 64, freeze = "backbone")
print(fit)
labels <- predict(fit, file.path(sample_data(), "new_images"), type = "prob")
print(labels)
stopifnot(nrow(labels) == 12, all(is.na(labels$error)))
maps <- cnn_heatmaps(fit, file.path(sample_data(), "new_images"))
stopifnot(nrow(maps) == 12, all(file.exists(maps$overlay)))
set.seed(3)
n <- 600
truth <- stats::rbinom(n, 1, 0.3)
corpus <- data.frame(image_id = paste0("img", seq_len(n)), z = stats::rnorm(n))
corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)
coded <- sample(n, 150)
gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
model <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "srs")
print(tidy(model))
stopifnot(nrow(tidy(model, method = "corrected")) == 3)
')
echo "install route: passed"
