# Fine-tuning: finetune_cnn() and the fitted-model object it returns (class "cnn_fit"), with print() and
# summary(). Mirrors python/imagesasdata/train/; the options and their defaults are the engine's TrainConfig, and
# each @param below is the engine's OPTION_HELP text.

#' Fine-tune a pretrained CNN on labelled images
#'
#' One call does what chapter 7 of Webb Williams, Casas & Wilkerson (2020) describes: split the labelled images
#' into training and validation sets (stratified, seeded), replace the last layer of an ImageNet-pretrained
#' network with a new one for your classes, train it (by default with the CPU recipe below; `recipe = "book"`
#' for the book's settings: SGD, learning rate 0.001, momentum 0.9, batch size 4, StepLR with step size 7 and
#' gamma 0.1, 25 epochs), keep the epoch with the best validation accuracy, and report validation metrics. The
#' model, its settings, the training history and the metrics are written to a run directory (`out`), which
#' [load_cnn()] opens again later.
#'
#' By default (`recipe = "fast"`) the network is EfficientNet-Lite0 with its stem and first four stages frozen
#' (`freeze = "blocks.3"`): the new last layer trains alone for 2 epochs on features computed once, then the rest
#' trains under a one-cycle learning-rate schedule (`schedule`) with lower rates for earlier layers
#' (`lr_decay_per_block`) and progressive resizing from 128 px (`progressive_resize`), for 8 epochs; on a CPU
#' when `epochs` is not given it stops once the validation loss has not improved for 2 epochs. On a quiet 2-core
#' CPU (3 seeds, `benchmarks/time_to_accuracy.py`) it reached the book loop's best validation accuracy in 0.22 of
#' the loop's time on six politicians' news photos and 0.11 on ORL's 40 faces, and ended more accurate than the
#' loop and than the default before it. `recipe = "head-first"` is that earlier default (10 head epochs, then the
#' whole network with the book's StepLR); `recipe = "book"` runs the book's Listing 1 (ResNet-18 from ImageNet
#' weights, the whole network fine-tuned from the first step). `step_size` and `gamma` only act under
#' `schedule = "step"`; setting them under the default schedule draws a warning.
#' [lr_find()] suggests a peak rate for the default schedule (fastai's valley), to pass as `learning_rate`.
#'
#' @param data The labelled images: a folder of class folders (`faces/s1/1.png`, ...); a folder in the book's
#'   layout (`train/<class>/`, `val/<class>/`, optionally `test/<class>/`); a CSV or Parquet file; or a data
#'   frame with a path column and a label column (character, factor or logical; see "Classes").
#' @param label,path The label and image path columns of a table (defaults: `label`; the first of `path`, `file`,
#'   `filename`, `image`, ...): a string, or a bare column name as in dplyr (`label = is_s1`). A column that is not
#'   there is an error naming the closest one.
#' @param out The run directory to write (default: a new folder in R's session temporary directory, see
#'   [tempdir()], removed when R ends; [save_cnn()] copies a fit elsewhere). A fit that fails leaves no folder
#'   behind.
#' @param resume Continue an interrupted run in `out` from its last finished epoch (a finished run is loaded).
#' @param overwrite Replace a run already in `out`. Without `resume` or `overwrite`, an existing run is never
#'   touched, and a folder holding other files is never written into.
#' @param architecture network to fine-tune: a torchvision name from the book's Table 4.1 (resnet18, vgg16,
#'   densenet121, inception_v3, …), any timm model, or efficientnet_lite0 (ImageNet weights installed, works offline);
#'   default: the recipe's (efficientnet_lite0 for fast and head-first, resnet18 for book). `NULL` for the recipe's.
#' @param weights starting weights: 'imagenet' (pretrained; downloaded once and cached), a .safetensors file,
#'   or 'none'. In R, `NULL` means 'none'.
#' @param image_size side in pixels of the square the network sees (default: the architecture's own, 224; 299
#'   for inception_v3). `NULL` for the default.
#' @param resize how an image becomes a square: squish, crop, pad, or rescale-crop (the book's Resize 256 +
#'   CenterCrop 224).
#' @param resize_size side of the square before the final crop (default 256/224 × image_size for rescale-crop).
#'   `NULL` for the default.
#' @param recipe named defaults for the options it names: 'fast' (the default: efficientnet_lite0 with its first
#'   stages frozen, 2 epochs of the new last layer at 0.01, a one-cycle schedule peaking at 0.004, lower rates for
#'   earlier blocks, progressive resizing from 128 px, 8 epochs, and early stopping with patience 2 on a CPU when no
#'   epoch count is given; on a 2-core CPU it reached the book loop's best accuracy in a third of the loop's time or
#'   less, and ended more accurate), 'head-first' (the default before: efficientnet_lite0; 10 epochs of the new last
#'   layer alone, then everything with the book's StepLR) or 'book' (Listing 1: resnet18 with ImageNet weights,
#'   everything fine-tuned from the first step). Offline, `recipe = "book"` stops with an error saying how to get
#'   ResNet-18's weights; add `architecture = "efficientnet_lite0"` to run the book's recipe on the offline backbone.
#' @param normalize pixel normalisation: 'backbone' (the statistics the weights were trained with), 'imagenet' (the
#'   book's), or 'train' (mean and standard deviation of your training images); default: the recipe's. `NULL`
#'   for the recipe's.
#' @param augment_crop training augmentation: a random crop of 8–100% of the image, resized
#'   (RandomResizedCrop).
#' @param augment_flip training augmentation: mirror half the images left-right.
#' @param val_fraction share of each class held out for validation, used to choose the epoch (the book: 0.2).
#' @param test_fraction share of each class held out as a test set, evaluated once at the end; default: 0.1 when
#'   every class has at least 20 images, else none (the run says why). `NULL` for that default.
#' @param balance downsample every class to the size of the smallest before splitting.
#' @param group a column of group ids (e.g. near-duplicate groups); a group never straddles two splits. `NULL`
#'   for none.
#' @param seed random seed for the split, the new layer's weights, the data order and augmentation.
#' @param epochs passes over the training images (the book's tutorial: 25; its grid: 50); default: the recipe's (8
#'   for fast, which then also stops early on a CPU; 25 for head-first and book). `NULL` for the recipe's.
#' @param batch_size images per gradient step (the book: 4); smaller batches give noisier but more frequent
#'   updates.
#' @param optimizer sgd (the book's), adam or adamw.
#' @param learning_rate size of each step down the loss gradient (the book: 0.001); too high diverges, too low
#'   crawls; with a one_cycle or warmup_cosine schedule, the peak rate; default: the recipe's (0.004 for fast; 0.001
#'   for head-first and book). `NULL` for the recipe's.
#' @param schedule how the learning rate moves: 'step' (the book's StepLR: times gamma every step_size epochs),
#'   'one_cycle' (up from a 25th of learning_rate, then down along a cosine to nearly zero: fastai's fit_one_cycle) or
#'   'warmup_cosine' (a linear warm-up from a 25th, then a cosine to zero); the last two change the rate after every
#'   batch; default: the recipe's ('one_cycle' for fast; 'step' for head-first and book). `NULL` for the recipe's.
#' @param warmup_fraction share of the optimizer steps in which the learning rate rises to its peak (one_cycle,
#'   warmup_cosine); default 0.25 for one_cycle (fastai's), 0.1 for warmup_cosine. `NULL` for that default.
#' @param momentum SGD momentum: the share of the previous step carried into the next, smoothing the path (the
#'   book: 0.9).
#' @param weight_decay L2 penalty on the weights (0 in the book).
#' @param step_size StepLR (schedule 'step'): every step_size epochs the learning rate is multiplied by gamma
#'   (the book: 7).
#' @param gamma StepLR (schedule 'step'): factor applied to the learning rate every step_size epochs (the book:
#'   0.1).
#' @param lr_decay_per_block discriminative learning rates: each block of the network (a stage, from the input to the
#'   new last layer) trains at this multiple of the rate of the block above it, so early layers move least (e.g. 0.7);
#'   1 or none: one rate for every layer (the book); default: the recipe's (0.7 for fast; none for head-first and
#'   book). `NULL` for the recipe's.
#' @param progressive_resize progressive resizing: the side in pixels of the training images in the first epoch; it
#'   grows linearly (rounded down to multiples of 32) to image_size, and the last full_size_epochs run at full size
#'   (validation is always at full size); 0 or none: off (the book); default: the recipe's (128 for fast, off when
#'   image_size is not larger; off for head-first and book). In R, `0` is off and `NULL` the recipe's.
#' @param full_size_epochs with progressive_resize, how many final epochs train at full size (default: half of
#'   the epochs, rounded up). `NULL` for that default.
#' @param head_init how the new last layer starts: 'normal' (weights from N(0, 0.01), bias 0; the book) or
#'   'pytorch' (nn.Linear's own uniform initialisation, as PyTorch's transfer-learning tutorial).
#' @param dropout probability of zeroing a feature before the new last layer during training (0 = none).
#' @param head_epochs epochs of training only the new last layer, on features computed once, before the whole network
#'   is fine-tuned (the book: 0); costs about one forward pass over the training images; default: the recipe's (2 for
#'   fast, 10 for head-first, 0 for book; 0 when starting from random weights). `NULL` for the recipe's.
#' @param head_learning_rate learning rate of the head epochs (constant); default: the recipe's (learning_rate;
#'   0.01 for fast). `NULL` for the recipe's.
#' @param freeze 'none' (fine-tune everything, the book's), 'backbone' (train only the new last layer), or a stage
#'   name such as 'layer3' (frozen up to and including it); default: the recipe's ('blocks.3' for fast on an
#'   EfficientNet-Lite: its stem and first four stages; 'none' for other networks, random weights, head-first and
#'   book). `NULL` for the recipe's.
#' @param patience early stopping: stop after this many epochs without a lower validation loss, counted from the
#'   first epoch past a one_cycle or warmup_cosine warm-up and at full size under progressive_resize (default: the
#'   recipe's: 2 for fast on a CPU when no epoch count is given; never for head-first and book). `NULL` for the
#'   recipe's.
#' @param select_on validation measure that picks the kept epoch: accuracy (the book's), loss or f1. In R,
#'   `"f_meas"` (yardstick's name) is f1.
#' @param positive_class in a binary task, the class whose precision, recall and F1 are reported (default
#'   'positive', else the second class in sorted order; from R, the first level of a factor label). `NULL` for the
#'   default (see "Classes").
#' @param class_order the classes in the order of the probability columns and confusion matrices (default: sorted,
#'   s2 before s10; from R, the levels of a factor label). In R, a character vector; `NULL` for the default.
#' @param device auto (CUDA GPU, else Apple MPS, else CPU), cpu, cuda, cuda:1, mps.
#' @param precision auto (mixed precision on a GPU, fp32 on the CPU), fp32, bf16 or fp16.
#' @param channels_last channels-last memory layout ('auto': on), faster convolutions on most hardware. `TRUE`,
#'   `FALSE` or `"auto"`.
#' @param cache decoded-image cache: auto (memory, or disk when large), memory, disk, or none (decode every
#'   epoch).
#' @param feature_cache 'auto': with a frozen backbone and no random crops, compute each image's features once and
#'   train the last layer on them (same result, far faster); 'off': run the whole network every step.
#' @param num_workers threads decoding images (default: up to 8, one per CPU core). `NULL` for the default.
#' @param progress 'epochs': a line per epoch (losses, accuracies, seconds), which shows in logs, knitted documents and
#'   Rscript; on: progress bars as well; off: silent. In R, `"epochs"` is the default (the lines also show in the
#'   console and in RStudio), `TRUE` is on (bars for decoding images and for each epoch's batches), `FALSE` off.
#' @section Classes: The classes follow R's conventions, as in tidymodels. With a factor label its levels (those
#'   used) are the class order: of the probability columns `.pred_<class>` of [predict()], of the confusion
#'   matrices and of `fit$classes`; and in a binary task the first level is the positive class, the one whose
#'   precision, recall and F1 are reported (yardstick's "event"). A logical label gives the classes `"TRUE"` and
#'   `"FALSE"`, `TRUE` first and positive. `class_order =` and `positive_class =` override both (with
#'   `class_order` given, its first class is the positive one). Character labels and class folders keep the
#'   engine's rule: classes in natural order (`s2` before `s10`), and the positive class is `"positive"` when there
#'   is one, else the second class. The positive class is always printed with the fit.
#' @return A `cnn_fit`: the run directory's path, the classes, the model description and its tables
#'   (history, metrics, confusion matrices, validation predictions). Print it for the validation metrics;
#'   see [cnn_metrics()], [cnn_history()], [cnn_confusion()], [autoplot.cnn_fit()], [predict.cnn_fit()] and
#'   `tidy()`, `glance()` and `augment()` ([cnn_fit_tidiers]). A fit that predicts one class for every validation
#'   image comes with a warning (class `imagesasdata_warning_one_class`).
#' @seealso [image_table()] to check what the engine will read, [load_cnn()], [save_cnn()].
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' faces <- file.path(sample_data(), "faces")
#' fit <- finetune_cnn(faces, epochs = 2, image_size = 64)
#' fit
#' cnn_metrics(fit)
#'
#' # A data frame: one row per image, a path column and a label column. The factor's levels give the class
#' # order, and the first level is the positive class.
#' people <- image_table(faces)
#' people$is_s1 <- factor(ifelse(people$label == "s1", "s1", "other"), levels = c("s1", "other"))
#' binary <- finetune_cnn(people, label = is_s1, epochs = 2, image_size = 64)
#' binary
#' augment(binary, image_table(file.path(sample_data(), "new_images")))
#' }
finetune_cnn <- function(data, label = NULL, path = NULL, out = NULL, resume = FALSE, overwrite = FALSE,
                         architecture = NULL, weights = "imagenet", image_size = NULL,
                         resize = "rescale-crop", resize_size = NULL, recipe = "fast", normalize = NULL,
                         augment_crop = TRUE, augment_flip = TRUE, val_fraction = 0.2, test_fraction = NULL,
                         balance = FALSE, group = NULL, seed = 0L, epochs = NULL, batch_size = 4L,
                         optimizer = "sgd", learning_rate = NULL, schedule = NULL, warmup_fraction = NULL,
                         momentum = 0.9, weight_decay = 0, step_size = 7L, gamma = 0.1,
                         lr_decay_per_block = NULL, progressive_resize = NULL, full_size_epochs = NULL,
                         head_init = "normal", dropout = 0, head_epochs = NULL, head_learning_rate = NULL,
                         freeze = NULL,
                         patience = NULL, select_on = "accuracy", positive_class = NULL, class_order = NULL,
                         device = "auto", precision = "auto", channels_last = "auto", cache = "auto",
                         feature_cache = "auto", num_workers = NULL, progress = "epochs") {
  label <- column_arg(substitute(label), parent.frame(), data, "label")
  path <- column_arg(substitute(path), parent.frame(), data, "path")
  group <- column_arg(substitute(group), parent.frame(), data, "group")
  labelled <- labelled_data(data, label, path, class_order = class_order,
                            positive_class = arg_string(positive_class, "positive_class", null = TRUE))
  if (is.data.frame(data) && !is.null(group)) require_column(data, group, "group")
  run <- run_in_folder(out, "imagesasdata-run-", function(folder) engine_call(
    engine()$finetune, labelled$images, out = folder, label = labelled$label, path = labelled$path,
    resume = arg_flag(resume, "resume"), overwrite = arg_flag(overwrite, "overwrite"),
    architecture = arg_string(architecture, "architecture", null = TRUE),
    weights = arg_string(weights, "weights", null = TRUE) %||% "none",
    image_size = arg_count(image_size, "image_size", null = TRUE),
    resize = arg_string(resize, "resize"), resize_size = arg_count(resize_size, "resize_size", null = TRUE),
    recipe = arg_string(recipe, "recipe"), normalize = arg_string(normalize, "normalize", null = TRUE),
    augment_crop = arg_flag(augment_crop, "augment_crop"), augment_flip = arg_flag(augment_flip, "augment_flip"),
    val_fraction = arg_number(val_fraction, "val_fraction"), test_fraction = arg_number(test_fraction, "test_fraction", null = TRUE),
    balance = arg_flag(balance, "balance"), group = group,
    seed = arg_count(seed, "seed"), epochs = arg_count(epochs, "epochs", null = TRUE),
    batch_size = arg_count(batch_size, "batch_size"), optimizer = arg_string(optimizer, "optimizer"),
    learning_rate = arg_number(learning_rate, "learning_rate", null = TRUE),
    schedule = arg_string(schedule, "schedule", null = TRUE),
    warmup_fraction = arg_number(warmup_fraction, "warmup_fraction", null = TRUE),
    momentum = arg_number(momentum, "momentum"), weight_decay = arg_number(weight_decay, "weight_decay"),
    step_size = arg_count(step_size, "step_size"), gamma = arg_number(gamma, "gamma"),
    lr_decay_per_block = arg_number(lr_decay_per_block, "lr_decay_per_block", null = TRUE),
    progressive_resize = arg_count(progressive_resize, "progressive_resize", null = TRUE),
    full_size_epochs = arg_count(full_size_epochs, "full_size_epochs", null = TRUE),
    head_init = arg_string(head_init, "head_init"), dropout = arg_number(dropout, "dropout"), head_epochs = arg_count(head_epochs, "head_epochs", null = TRUE),
    head_learning_rate = arg_number(head_learning_rate, "head_learning_rate", null = TRUE),
    freeze = arg_string(freeze, "freeze", null = TRUE),
    patience = arg_count(patience, "patience", null = TRUE),
    select_on = engine_select_on(arg_string(select_on, "select_on")),
    positive_class = labelled$positive_class, class_order = labelled$class_order,
    device = arg_string(device, "device"), precision = arg_string(precision, "precision"),
    channels_last = arg_flag_or_string(channels_last, "channels_last"), cache = arg_string(cache, "cache"),
    feature_cache = arg_string(feature_cache, "feature_cache"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_progress(progress)
  ))
  fit <- new_cnn_fit(run)
  if (is.data.frame(data)) {
    # augment(fit) binds the predictions onto the user's own rows, columns and label name
    path_name <- labelled$path %||% intersect(PATH_COLUMNS, names(data))[1]
    fit$training <- list(data = tibble::as_tibble(data), label = labelled$label %||% "label",
                         key = if ("image_id" %in% names(data)) "image_id" else path_name)
  }
  validation <- fit$predictions
  if (!is.null(validation)) warn_one_class(validation$.pred_class[validation$split %in% "val"], minimum = 2L,
                                           what = "validation images")
  fit
}

# A cnn_fit holds the run directory's path and everything read from it; the Python Run (with its loaded
# network) is kept in an environment and reopened from the path when missing (e.g. after readRDS()).
new_cnn_fit <- function(run) {
  description <- py_value(run$description)
  tables <- decode_tables(engine_call(bridge()$run_tables, run))
  classes <- as.character(unlist(description$classes))
  fit <- list(
    path = as.character(reticulate::py_str(run$path)),
    classes = classes,
    positive_class = description$positive_class,
    description = description,
    history = tables$history, metrics = if (is.null(tables$metrics)) NULL else metric_tibble(tables$metrics),
    calibration = if (is.null(tables$calibration)) NULL else metric_tibble(tables$calibration),
    confusion = tables$confusion,
    predictions = tables$predictions,
    splits = tables$splits, skipped = tables$skipped
  )
  fit$cache <- new.env(parent = emptyenv())
  fit$cache$run <- run
  structure(fit, class = "cnn_fit")
}

# The engine's Run behind a fit.
run_of <- function(fit) engine_object(fit, "run", "load_run")

# The engine object behind an R object (a Run behind a cnn_fit, a Grid behind a cnn_grid): kept in the object's
# cache environment, and loaded again from its path by the engine's `loader` when missing or when the Python
# session it belonged to is gone (an object restored with readRDS()).
engine_object <- function(x, slot, loader) {
  object <- x$cache[[slot]]
  if (is.null(object) || reticulate::py_is_null_xptr(object)) {
    object <- engine_call(reticulate::py_get_attr(engine(), loader), x$path)
    if (is.environment(x$cache)) assign(slot, object, envir = x$cache)
  }
  object
}

#' @export
print.cnn_fit <- function(x, ...) {
  d <- x$description
  classes <- x$classes
  shown <- if (length(classes) > 8) c(utils::head(classes, 8), "...") else classes
  cat(sprintf("<cnn_fit> %s fine-tuned for %d classes: %s%s\n", d$architecture, length(classes),
              paste(shown, collapse = ", "),
              if (is.null(x$positive_class)) "" else sprintf("; positive class: %s", x$positive_class)))
  sizes <- split_sizes(x)
  cat(sprintf("  %d images (%s); best epoch %s of %s, chosen on validation %s\n", sum(sizes),
              paste(sprintf("%d %s", sizes, names(sizes)), collapse = ", "),
              format(d$best_epoch %||% NA), format(d$epochs_run %||% NA), d$hyperparameters$select_on %||% "accuracy"))
  if (!identical(d$status, "complete")) cat(sprintf("  status: %s\n", d$status))
  if (!is.null(x$metrics)) {
    for (split in intersect(c("val", "test"), unique(x$metrics$split))) {
      cat(sprintf("  %-4s %s\n", split, headline_metrics(x$metrics, split)))
    }
  }
  if (!is.null(d$test_split$why_none)) cat(sprintf("  no test split: %s\n", d$test_split$why_none))
  calibration_line(x)
  if (!is.null(x$skipped) && nrow(x$skipped)) {
    cat(sprintf("  %d unreadable images were left out (see fit$skipped)\n", nrow(x$skipped)))
  }
  print_note(d$training_selection$note)
  cat(sprintf("  run directory: %s\n", x$path))
  invisible(x)
}

split_sizes <- function(fit) {
  if (is.null(fit$splits)) return(integer())
  counts <- table(factor(fit$splits$split, levels = c("train", "val", "test")))
  counts <- counts[counts > 0]
  stats::setNames(as.integer(counts), names(counts))
}

#' Summarise a fitted CNN
#'
#' @param object A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param ... Must be empty.
#' @return A `summary.cnn_fit` object (a list): `architecture`, `weights`, `classes`, `positive_class`,
#'   `hyperparameters` (a named list: every option the run used), `split_sizes`, `best_epoch`, `epochs_run`,
#'   `metrics` (as [cnn_metrics()]) and `confusion` (as [cnn_confusion()]). Printing it shows the settings, the
#'   metrics of every split and the confusion matrices.
#' @export
summary.cnn_fit <- function(object, ...) {
  check_dots(...)
  d <- object$description
  structure(list(
    path = object$path, architecture = d$architecture, weights = d$weights, classes = object$classes,
    positive_class = object$positive_class, hyperparameters = d$hyperparameters,
    split_sizes = split_sizes(object), best_epoch = d$best_epoch, epochs_run = d$epochs_run,
    metrics = cnn_metrics(object), confusion = cnn_confusion(object)
  ), class = "summary.cnn_fit")
}

#' @export
print.summary.cnn_fit <- function(x, ...) {
  cat(sprintf("CNN fine-tuned from %s (%s)\n", x$architecture, x$weights))
  cat(sprintf("Classes: %s%s\n", paste(x$classes, collapse = ", "),
              if (is.null(x$positive_class)) "" else sprintf(" (positive: %s)", x$positive_class)))
  cat(sprintf("Images: %s\n", paste(sprintf("%d %s", x$split_sizes, names(x$split_sizes)), collapse = ", ")))
  cat(sprintf("Best epoch: %s of %s\n", format(x$best_epoch %||% NA), format(x$epochs_run %||% NA)))
  shown <- c("epochs", "batch_size", "optimizer", "learning_rate", "momentum", "step_size", "gamma",
             "image_size", "resize", "freeze", "seed")
  settings <- x$hyperparameters[intersect(shown, names(x$hyperparameters))]
  settings <- vapply(settings, function(v) if (is.null(v)) "default" else format(v), character(1))
  cat("Settings:", paste(sprintf("%s = %s", names(settings), settings), collapse = ", "), "\n\nMetrics:\n")
  metrics <- x$metrics[x$metrics$.estimator != "per_class", ]
  print(as.data.frame(metrics), row.names = FALSE, digits = 3)
  for (split in unique(as.character(x$confusion$split))) {
    rows <- x$confusion[x$confusion$split == split, ]
    cat(sprintf("\nConfusion matrix (%s; rows = truth, columns = predicted):\n", split))
    print(stats::xtabs(count ~ truth + .pred_class, data = rows))
  }
  invisible(x)
}

#' Tidy and glance at a fitted CNN
#'
#' broom's verbs for a `cnn_fit`; `augment()` is documented with [predict.cnn_fit()].
#'
#' @param x A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param split For `tidy()`: keep only these splits (e.g. `"val"`, `"test"`); `NULL` keeps all.
#' @param conf.int,conf.level As in broom: `conf.int = FALSE` leaves out the interval (`conf.low`, `conf.high`,
#'   `interval`); a `conf.level` other than 0.95 recomputes the intervals (by the engine, as the fit's own) from the
#'   fit's predictions.
#' @param ... Must be empty.
#' @return `tidy()`: the metrics, as [cnn_metrics()] (yardstick's shape and names). `glance()`: one row:
#'   `architecture`, `classes` (how many), `positive_class` (`NA` in a multiclass task), `n_train`, `n_val`,
#'   `n_test`, `epochs_run`, `best_epoch`, `select_on`, the validation `accuracy`, `precision`, `recall` and
#'   `f_meas` (binary, or macro-averaged in a multiclass task), `status` and `path`.
#' @name cnn_fit_tidiers
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' tidy(fit)
#' glance(fit)
#' }
tidy.cnn_fit <- function(x, split = NULL, conf.int = TRUE, conf.level = 0.95, ...) {
  check_dots(...)
  metrics <- cnn_metrics(x, split = split)
  tidy_interval(metrics, conf.int, conf.level, 0.95, function(level) {
    metrics_at_level(metrics, x$predictions, x$classes, x$positive_class, level)
  })
}

#' @rdname cnn_fit_tidiers
#' @export
glance.cnn_fit <- function(x, ...) {
  check_dots(...)
  d <- x$description
  sizes <- split_sizes(x)
  size <- function(split) if (split %in% names(sizes)) sizes[[split]] else 0L
  metrics <- if (is.null(x$metrics)) list(accuracy = NA_real_, precision = NA_real_, recall = NA_real_, f_meas = NA_real_)
             else headline_values(x$metrics, "val")
  tibble::as_tibble(c(
    list(architecture = d$architecture %||% NA_character_, classes = length(x$classes),
         positive_class = x$positive_class %||% NA_character_, n_train = size("train"), n_val = size("val"),
         n_test = size("test"), epochs_run = as.integer(d$epochs_run %||% NA_integer_),
         best_epoch = as.integer(d$best_epoch %||% NA_integer_),
         select_on = r_metric_name(d$hyperparameters$select_on %||% "accuracy")),
    metrics,
    list(status = d$status %||% NA_character_, path = x$path)
  ))
}
