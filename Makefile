# imagesasdata — everything installs from nothing on a fresh Debian machine as root.
#   make demo    install, fine-tune on the bundled sample, label new images
#   make test    install what is missing, run the whole test suite (Python, R, rpy2, R CMD check, a vignette), then
#                the training tests again under two other CPU instruction sets (test-other-cpus)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CI and the demo pin the torch build that lies on this machine's disk; pyproject.toml keeps broad ranges for users.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# The MTCNN face detector (weights in the wheel). Its metadata pins torch<2.3, torchvision<0.18, numpy<2 and
# Pillow<10.3, which would replace our torch; it runs on the current ones (tests/test_faces.py), so it is installed
# without its dependencies (those it imports, torch, torchvision, numpy, Pillow and requests, we install anyway).
FACENET := facenet-pytorch==2.6.0
PY_STAMP := $(VENV)/.imagesasdata-installed
APT_PACKAGES := python3 python3-venv python3-dev build-essential \
	r-base-core r-base-dev r-cran-reticulate r-cran-ggplot2 r-cran-dplyr r-cran-tibble r-cran-tidyr \
	r-cran-testthat r-cran-knitr r-cran-rmarkdown r-cran-roxygen2 r-cran-generics r-cran-lifecycle r-cran-vctrs \
	r-cran-png pandoc \
	tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu fonts-dejavu-core shellcheck
R_PACKAGES := reticulate ggplot2 dplyr tibble tidyr testthat knitr rmarkdown roxygen2 generics lifecycle vctrs png
RUN_DIR ?= runs/demo
# The real test images (ORL faces, the tweeted Rekognition examples): beside the checkout, or the project's shared
# folder. Tests use them; `make test` fails rather than skips when they are missing.
DATASETS ?= $(firstword $(abspath $(wildcard ../shared/datasets /work/shared/datasets)))
export IMAGESASDATA_DATASETS ?= $(DATASETS)

.PHONY: help install system-deps python-deps r-deps demo test test-python test-r test-other-cpus check-r test-r-install vignettes vignette-ci benchmark clean

help:
	@echo "make demo        install everything, fine-tune on data/, print metrics, label new images"
	@echo "make test        install what is missing and run every test"
	@echo "make test-other-cpus  rerun the tests that train under other CPU instruction sets (part of make test)"
	@echo "make vignettes   knit the R Markdown vignettes to HTML"
	@echo "make benchmark   measure training and inference speed (results in benchmarks/README.md)"

install: system-deps python-deps r-deps

# Debian packages, when root on Debian and something is missing; elsewhere, say what is needed.
system-deps:
	@if command -v dpkg >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	    echo "installing Debian packages: $(APT_PACKAGES)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	  fi; \
	elif ! command -v Rscript >/dev/null 2>&1; then \
	  echo "R not found: install R (https://cran.r-project.org) for the R package; the Python engine works without it"; \
	fi

python-deps: $(PY_STAMP)

$(PY_STAMP): pyproject.toml | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[dev,ray]' $(TORCH_PINS)
	$(PIP) install -q --no-deps $(FACENET)
	@touch $@

# R packages: Debian's r-cran-* when root on Debian (above); otherwise install.packages() for any missing.
r-deps: system-deps
	@if command -v Rscript >/dev/null 2>&1 && ! (command -v dpkg >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]); then \
	  Rscript -e 'need <- setdiff(strsplit("$(R_PACKAGES)", " ")[[1]], rownames(installed.packages())); if (length(need)) install.packages(need, repos = "https://cloud.r-project.org")'; \
	fi

demo: install
	$(PY) -m imagesasdata.cli finetune data/faces --out $(RUN_DIR) --epochs 8 --learning-rate 0.005 --no-augment-crop --no-progress
	$(PY) -m imagesasdata.cli predict $(RUN_DIR) data/new_images --out $(RUN_DIR)/new_images.csv --no-progress

test: install test-python test-r test-other-cpus

test-python: python-deps
	cd $(CURDIR) && $(VENV)/bin/lint-imports
	shellcheck docs/slurm/*.sbatch
	$(PY) -m pytest -q

test-r: python-deps r-deps
	@if [ -f rpkg/DESCRIPTION ]; then $(MAKE) --no-print-directory check-r vignette-ci test-r-install; fi

# Training numerics depend on the CPU: PyTorch picks its kernels by instruction set (AVX-512, AVX2, plain SSE), and a
# tiny fine-tune amplifies their different rounding, so a test that passes here can fail on a user's machine
# (issue 27). The tests that train or use a fit (pytest marker `trains`; testthat blocks that start with trains())
# run again, here, under two other instruction sets that PyTorch, oneDNN and MKL can be told to use:
#   CPU_SSE   ATen's scalar kernels, oneDNN's SSE4.1 and MKL's SSE4.2 code: the oldest x86-64 path, the farthest from
#             an AVX-512 machine (and what an old or emulated CPU runs)
#   CPU_AVX2  AVX2 throughout: most laptops and CI runners, and the machine of issue 27
# On a machine without AVX-512 a setting may equal the native path; that costs time, not correctness.
CPU_SSE := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
CPU_AVX2 := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
test-other-cpus: python-deps r-deps
	@if [ -f rpkg/DESCRIPTION ] && command -v Rscript >/dev/null 2>&1; then \
	  IMAGESASDATA_BUILD_VIGNETTES=false IMAGESASDATA_PYTHON=$(abspath $(PY)) bash rpkg/tools/install.sh $(abspath $(PY)) $(CURDIR) build/r; fi
	@failed=""; \
	for setting in "$(CPU_SSE)" "$(CPU_AVX2)"; do \
	  echo "== the training tests under $$setting"; \
	  env $$setting $(PY) -m pytest -q -m "trains and not same_cpu" || failed="$$failed; pytest under $$setting"; \
	  if [ -f rpkg/DESCRIPTION ] && command -v Rscript >/dev/null 2>&1; then \
	    env $$setting IMAGESASDATA_ONLY_TRAINING=true IMAGESASDATA_PYTHON=$(abspath $(PY)) IMAGESASDATA_REQUIRE_DATASETS=true \
	      Rscript rpkg/tools/run-tests.R rpkg/tests/testthat || failed="$$failed; testthat under $$setting"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "training tests failed under other instruction sets$$failed"; exit 1; fi; \
	echo "the training tests pass under: $(CPU_SSE); $(CPU_AVX2)"

# The install route of an R user without the Debian shortcut (and of remotes::install_github(subdir = "rpkg")):
# plain `R CMD build rpkg`, the tarball into a fresh library, install_engine() with no arguments into a fresh
# virtualenv (PyTorch and the default extras included), then in a new R session the README tour, corrected_glm(),
# cnn_heatmaps() and vignette(package = "imagesasdata") listing every vignette.
test-r-install: python-deps r-deps
	bash rpkg/tools/install-route.sh $(abspath $(PY)) $(CURDIR) build/r

# The R package: docs up to date, installed for library(imagesasdata), testthat against the real engine, then
# R CMD check on the built tarball (no errors or warnings; its second test run skips the fine-tunes). The package's
# vignettes are built (by R CMD build, then again by R CMD check) at small settings (IMAGESASDATA_VIGNETTE_QUICK).
check-r: export IMAGESASDATA_VIGNETTE_QUICK = true
check-r: python-deps r-deps
	@IMAGESASDATA_PYTHON=$(abspath $(PY)) bash rpkg/tools/install.sh $(abspath $(PY)) $(CURDIR) build/r
	Rscript rpkg/tools/check-docs.R rpkg
	IMAGESASDATA_PYTHON=$(abspath $(PY)) IMAGESASDATA_TEST_INSTALL=true IMAGESASDATA_REQUIRE_DATASETS=true \
	  Rscript rpkg/tools/run-tests.R rpkg/tests/testthat
	cd build/r && IMAGESASDATA_PYTHON=$(abspath $(PY)) IMAGESASDATA_SKIP_FINETUNE=true \
	  _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false _R_CHECK_SYSTEM_CLOCK_=0 _R_CHECK_TESTS_NLINES_=0 \
	  R CMD check --no-manual imagesasdata_*.tar.gz
	@status=$$(grep '^Status:' build/r/imagesasdata.Rcheck/00check.log); echo "R CMD check $$status"; \
	  if echo "$$status" | grep -qE 'ERROR|WARNING'; then exit 1; fi

# Knit the R Markdown vignettes (rpkg/vignettes) to HTML beside their sources (full settings: a few minutes each on a laptop).
vignettes: python-deps r-deps
	@IMAGESASDATA_BUILD_VIGNETTES=false bash rpkg/tools/install.sh $(abspath $(PY)) $(CURDIR) build/r
	@for rmd in rpkg/vignettes/*.Rmd; do \
	  echo "knitting $$rmd"; \
	  IMAGESASDATA_PYTHON=$(abspath $(PY)) Rscript -e 'rmarkdown::render(commandArgs(TRUE)[1], quiet = TRUE)' $$rmd || exit 1; \
	done

# CI: knit the first vignette, the corrected-regression one and section 3's (how a computer sees an image) at small
# settings (64 px, few epochs, a gold sample of 60), and the VLM-coding one against its stand-in server on
# 127.0.0.1; fails if knitting fails.
vignette-ci: python-deps r-deps
	@IMAGESASDATA_BUILD_VIGNETTES=false bash rpkg/tools/install.sh $(abspath $(PY)) $(CURDIR) build/r
	@mkdir -p build/vignettes
	IMAGESASDATA_PYTHON=$(abspath $(PY)) Rscript -e 'rmarkdown::render("rpkg/vignettes/person-vs-others.Rmd", params = list(epochs = 2, image_size = 64), output_dir = "build/vignettes", intermediates_dir = tempdir(), quiet = TRUE)'
	@test -s build/vignettes/person-vs-others.html && echo "knitted build/vignettes/person-vs-others.html"
	IMAGESASDATA_PYTHON=$(abspath $(PY)) Rscript -e 'rmarkdown::render("rpkg/vignettes/predicted-labels-regression.Rmd", params = list(epochs = 4, image_size = 64, gold_size = 60), output_dir = "build/vignettes", intermediates_dir = tempdir(), quiet = TRUE)'
	@test -s build/vignettes/predicted-labels-regression.html && echo "knitted build/vignettes/predicted-labels-regression.html"
	IMAGESASDATA_PYTHON=$(abspath $(PY)) Rscript -e 'rmarkdown::render("rpkg/vignettes/vlm-coding.Rmd", output_dir = "build/vignettes", intermediates_dir = tempdir(), quiet = TRUE)'
	@test -s build/vignettes/vlm-coding.html && echo "knitted build/vignettes/vlm-coding.html"
	IMAGESASDATA_PYTHON=$(abspath $(PY)) Rscript -e 'rmarkdown::render("rpkg/vignettes/how-a-computer-sees.Rmd", params = list(epochs = 1, image_size = 64), output_dir = "build/vignettes", intermediates_dir = tempdir(), quiet = TRUE)'
	@test -s build/vignettes/how-a-computer-sees.html && echo "knitted build/vignettes/how-a-computer-sees.html"

benchmark: python-deps
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf runs .pytest_cache rpkg.Rcheck *.tar.gz
