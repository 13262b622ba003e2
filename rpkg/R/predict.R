# Labelling new images with a fitted CNN, and evaluating it on labelled images it never saw. Mirrors
# python/imagesasdata/predict.py.

#' Label images with a fitted CNN
#'
#' `predict()` labels images; `augment()` binds the predictions onto your own data (tidymodels' convention).
#'
#' @section Prediction columns: R's names follow parsnip: the engine's `predicted` is `.pred_class` (a factor whose
#'   levels are the fit's classes, in the fit's order) and its `prob_<class>` columns are `.pred_<class>` (one per
#'   class, in the same order). This holds wherever predictions reach R: `predict()`, `augment()`,
#'   [labelled_images()], a fit's and an evaluation's `predictions`, [cnn_misclassified()], gold samples and the
#'   per-face and per-frame tables. Tables sent back to the engine (a gold sample, a corpus for
#'   [corrected_prevalence()], a formula of [corrected_glm()]) are renamed back, so both spellings work there.
#'
#' @section image_id: Each row's `image_id` is stable: a file gets the same id whichever call or batch it comes in,
#'   so ids computed batch by batch never collide and always join. For a folder it is the path below that folder
#'   (`s1/9.png`); for a vector of paths, each path as written (`~` expanded); for a data frame or CSV/Parquet
#'   table, its `image_id` column when it has one (pass your own ids that way), else its path as the table writes
#'   it. See [image_table()].
#'
#' @param object,x A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param new_data The images: a folder, a vector of image paths, a CSV/Parquet file, or a data frame with a path
#'   column (and optionally an `image_id` column, kept as the join key). For `augment()`, `NULL` gives the fit's
#'   own images: on the data frame it was trained on, that data frame with your rows, columns and label name kept
#'   and `split` (train, val or test), `.pred_class` and `.pred_<class>` added, as parsnip's `augment()` does. The
#'   predictions are those made as training ended, of the validation and test images; training images have `NA`
#'   (`augment(fit, data)` predicts every row). For a fit trained on a folder or read by [load_cnn()], its
#'   predictions table.
#' @param type `"class"` for the predicted class; `"prob"` adds one probability column per class.
#' @param batch_size Images per forward pass.
#' @param device,precision As in [finetune_cnn()]: `"auto"` uses a GPU when there is one.
#' @param num_workers Threads decoding images (`NULL`: up to 8).
#' @param progress Show a progress bar (default: only in an interactive session).
#' @param allow_unfinished Use a fit whose training did not finish (it was interrupted, killed or failed);
#'   refused by default.
#' @param backend `"local"` (this R session's machine) or `"ray"` (the Ray cluster in `RAY_ADDRESS`, or one started
#'   here; same answers). For a whole corpus, [label_corpus()] writes resumable shards instead.
#' @param calibrate Divide the logits by the temperature fitted on the validation split when the model was trained
#'   (see [cnn_calibration()]), so the probabilities are calibrated; the predicted classes do not change.
#' @param threshold Binary tasks: call an image positive when the positive class's probability is at least this
#'   (default `NULL`: the most probable class, i.e. 0.5). [choose_threshold()] finds one for a target recall.
#' @param ... For `predict()`, must be empty: a misspelt argument (`tpye = "prob"`) or `newdata` is an error. For
#'   `augment()`, arguments of `predict()` (e.g. `threshold`, `batch_size`).
#' @return `predict()`: a tibble with one row per image, in the order given: `image_id`, `path` (absolute),
#'   `.pred_class`, for `type = "prob"` `.pred_<class>` for every class, and `error` (`NA`, or why the image could
#'   not be read: its predictions are then `NA`; one bad image never stops the run). Join it to your own data by
#'   `image_id` or `path`.
#'
#'   `augment()`: `new_data` as a tibble (for a folder or file, its [image_table()]) with `.pred_class` and
#'   `.pred_<class>` bound on, row for row.
#'
#'   Both warn (class `imagesasdata_warning_unreadable`) when images could not be read, and (class
#'   `imagesasdata_warning_one_class`) when the model predicts one class for every one of at least 10 images: a
#'   regression on such predictions cannot be estimated (`glm()`'s "contrasts can be applied only to factors with 2
#'   or more levels").
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' predict(fit, file.path(sample_data(), "new_images"), type = "prob")
#' augment(fit, image_table(file.path(sample_data(), "new_images")))
#' }
predict.cnn_fit <- function(object, new_data, type = c("class", "prob"), ..., batch_size = 32L, device = "auto",
                            precision = "auto", num_workers = NULL, progress = interactive(),
                            backend = c("local", "ray"), allow_unfinished = FALSE, calibrate = FALSE,
                            threshold = NULL) {
  check_dots(...)
  if (missing(new_data)) {
    abort_argument(c("`new_data` is missing.",
                     i = "Give the images to label: a folder, image paths, or a data frame with a path column."))
  }
  type <- arg_choice(type, c("class", "prob"), "type")
  backend <- arg_choice(backend, c("local", "ray"), "backend")
  result <- engine_call(
    run_of(object)$predict, arg_images(new_data, "new_data"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    precision = arg_string(precision, "precision"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress"), backend = backend,
    allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished"), calibrate = arg_flag(calibrate, "calibrate"),
    threshold = arg_number(threshold, "threshold", null = TRUE)
  )
  predictions <- prediction_tibble(result, object$classes)
  warn_unreadable(predictions)
  warn_one_class(predictions$.pred_class)
  if (type == "class") predictions <- predictions[c("image_id", "path", ".pred_class", "error")]
  attr(predictions, "positive_class") <- object$positive_class   # travels into gold samples drawn from them
  predictions
}

#' @importFrom generics augment
#' @export
generics::augment

#' @rdname predict.cnn_fit
#' @export
augment.cnn_fit <- function(x, new_data = NULL, ...) {
  check_dots(..., .allowed = setdiff(names(formals(predict.cnn_fit)), c("object", "new_data", "type", "...")))
  if (is.null(new_data)) return(augment_training(x))
  predictions <- predict(x, new_data, type = "prob", ...)
  base <- if (is.data.frame(new_data)) tibble::as_tibble(new_data) else image_table(new_data)
  bind_predictions(base, predictions, x$classes)
}

# augment(fit): the fit's images bound onto the data frame it was trained on -- the user's rows, columns and label
# name kept, with `split` (from the run's splits table: train, val or test) and `.pred_class` and `.pred_<class>` (the
# predictions the engine made as training ended: validation and test images; NA for training images and for rows
# the engine left out). A fit loaded from disk, or trained on a folder, gives its predictions table.
augment_training <- function(x) {
  training <- x$training
  predictions <- x$predictions
  if (is.null(training) || is.null(predictions) || is.null(training$key) || is.na(training$key)) return(predictions)
  data <- training$data
  ids <- as.character(data[[training$key]])
  at <- match(ids, as.character(predictions$image_id))
  if (all(is.na(at))) return(predictions)
  columns <- intersect(c(".pred_class", paste0(".pred_", x$classes)), names(predictions))
  splits <- x$splits %||% predictions
  split <- as.character(splits$split)[match(ids, as.character(splits$image_id))]
  data <- as.list(data[setdiff(names(data), columns)])
  data[["split"]] <- split   # in place of a split column of the user's (image_table()'s), else at the end
  tibble::as_tibble(c(data, lapply(predictions[columns], function(column) column[at])))
}

# `base` with .pred_class and .pred_<class> of `predictions` (the same rows, in the same order) bound on; columns of
# those names already in `base` are replaced.
bind_predictions <- function(base, predictions, classes) {
  columns <- c(".pred_class", paste0(".pred_", classes))
  if (nrow(base) != nrow(predictions)) {
    rlang::abort(sprintf("predict() returned %d rows for %d; please report this", nrow(predictions), nrow(base)),
                 class = "imagesasdata_error", call = user_env())
  }
  base <- base[setdiff(names(base), columns)]
  tibble::as_tibble(c(as.list(base), as.list(predictions[columns])))
}

# The engine's predictions as a tibble: parsnip's names (.pred_class, .pred_<class>) come from the engine's schema
# (as_tibble_engine(kind = "predictions")); class columns are factors in the fit's class order.
prediction_tibble <- function(result, classes, factors = "predicted") {
  as_tibble_engine(result, factors = factors, levels = classes, kind = "predictions")
}

# Warnings on predictions ---------------------------------------------------------------------------------------

warn_unreadable <- function(predictions) {
  if (!"error" %in% names(predictions)) return(invisible())
  bad <- which(!is.na(predictions$error))
  if (!length(bad)) return(invisible())
  shown <- utils::head(bad, 3)
  examples <- sprintf("%s: %s", predictions$image_id[shown], predictions$error[shown])
  warn_imagesasdata(c(
    sprintf("%d of %d images could not be read; their predictions are NA.", length(bad), nrow(predictions)),
    stats::setNames(c(examples, if (length(bad) > 3) sprintf("... and %d more.", length(bad) - 3)),
                    rep("x", length(shown) + (length(bad) > 3))),
    i = "The `error` column of predict() says why for each image."
  ), class = "imagesasdata_warning_unreadable")
}

# A model that gives one class to every image (of at least `minimum`) is almost always a failed fit; and a
# regression on its predictions cannot be estimated.
warn_one_class <- function(predicted, minimum = 10L, what = "images") {
  predicted <- predicted[!is.na(predicted)]
  if (length(predicted) < minimum || !is.factor(predicted) || nlevels(predicted) < 2) return(invisible())
  seen <- unique(as.character(predicted))
  if (length(seen) != 1) return(invisible())
  warn_imagesasdata(c(
    sprintf("The model predicts \"%s\" for every one of the %d %s.", seen, length(predicted), what),
    i = "A regression on these predictions cannot estimate a class's effect (a factor needs 2 or more levels).",
    i = "Check the fit: `cnn_metrics(fit)`, `autoplot(fit, type = \"confusion\")`; train longer or on more balanced classes."
  ), class = "imagesasdata_warning_one_class")
}

#' Evaluate a fitted CNN on labelled images it never saw
#'
#' The held-out check the book recommends: predict labelled images that played no part in training (nor in
#' choosing the epoch) and compare with their labels, with the same metrics as the fit's own validation.
#'
#' @inheritParams predict.cnn_fit
#' @param object A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param data Labelled images, as for [finetune_cnn()]; their labels must be classes of the fit.
#' @param label,path The label and path columns of a table: a string or a bare column name (`label = is_s1`).
#' @param positive_class In a binary task, the class whose precision, recall and F1 are reported. Default: the
#'   first level of a factor (or logical) label, as in yardstick; otherwise the fit's.
#' @param split Name given to this evaluation in the `split` column of its tables.
#' @return A `cnn_evaluation`: a list with `metrics` (as [cnn_metrics()], with 95% intervals), `confusion` (as
#'   [cnn_confusion()]) and `predictions` (one row per image with `label`, `.pred_class`, the `.pred_<class>`
#'   probabilities and `error`). [cnn_metrics()], [cnn_confusion()], [cnn_misclassified()], [autoplot()],
#'   `tidy()` (the metrics), `glance()` (one row) and `augment()` (the predictions) accept it.
#' @export
cnn_evaluate <- function(object, data, label = NULL, path = NULL, positive_class = NULL, split = "evaluation",
                         batch_size = 32L, device = "auto", precision = "auto", num_workers = NULL,
                         progress = interactive(), allow_unfinished = FALSE, calibrate = FALSE, threshold = NULL) {
  if (!inherits(object, "cnn_fit")) abort_argument("`object` must be a cnn_fit from finetune_cnn() or load_cnn()")
  label <- column_arg(substitute(label), parent.frame(), data, "label")
  path <- column_arg(substitute(path), parent.frame(), data, "path")
  labelled <- labelled_data(data, label, path, positive_class = positive_class)
  positive <- labelled$positive_class
  if (!is.null(labelled$levels) && is.null(positive_class)) {
    used <- intersect(labelled$levels, object$classes)
    positive <- if (length(object$classes) == 2 && length(used) >= 1) used[[1]] else NULL
  }
  evaluation <- engine_call(
    engine()$evaluate, run_of(object), labelled$images,
    label = labelled$label, path = labelled$path,
    positive_class = positive, split = arg_string(split, "split"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    precision = arg_string(precision, "precision"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress"), allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished"),
    calibrate = arg_flag(calibrate, "calibrate"), threshold = arg_number(threshold, "threshold", null = TRUE)
  )
  labels <- c("label", "predicted", "truth")
  predictions <- prediction_tibble(evaluation$predictions, object$classes, factors = labels)
  warn_unreadable(predictions)
  warn_one_class(predictions$.pred_class)
  structure(list(
    classes = object$classes,
    metrics = metric_tibble(as_tibble_engine(evaluation$metrics, kind = "metrics")),
    confusion = as_tibble_engine(evaluation$confusion, factors = labels, levels = object$classes, kind = "confusion"),
    predictions = predictions
  ), class = "cnn_evaluation")
}

#' @export
print.cnn_evaluation <- function(x, ...) {
  errors <- sum(!is.na(x$predictions$error))
  cat(sprintf("<cnn_evaluation> %d images%s\n", nrow(x$predictions),
              if (errors) sprintf(" (%d unreadable, left out)", errors) else ""))
  for (split in unique(x$metrics$split)) cat(sprintf("  %s\n", headline_metrics(x$metrics, split)))
  invisible(x)
}

#' Tidy, glance at and augment an evaluation
#'
#' @param x A `cnn_evaluation` from [cnn_evaluate()].
#' @param conf.int,conf.level As in broom: `conf.int = FALSE` leaves out the interval (`conf.low`, `conf.high`,
#'   `interval`); `conf.level` other than 0.95 recomputes the intervals (by the engine, as the fit's) at that level.
#' @param ... Must be empty.
#' @return `tidy()`: the metrics, as [cnn_metrics()]. `glance()`: one row: `images`, `unreadable`, `classes`,
#'   `positive_class` (`NA` in a multiclass task), then `accuracy`, `precision`, `recall` and `f_meas` (the binary
#'   or, in a multiclass task, macro-averaged ones). `augment()`: the predictions, one row per image with its
#'   `label`, `.pred_class`, `.pred_<class>` and `error`.
#' @name cnn_evaluation_tidiers
#' @export
tidy.cnn_evaluation <- function(x, conf.int = TRUE, conf.level = 0.95, ...) {
  check_dots(...)
  tidy_interval(x$metrics, conf.int, conf.level, 0.95, function(level) {
    metrics_at_level(x$metrics, x$predictions, x$classes, positive_of(x$metrics), level)
  })
}

#' @rdname cnn_evaluation_tidiers
#' @export
glance.cnn_evaluation <- function(x, ...) {
  check_dots(...)
  predictions <- x$predictions
  tibble::as_tibble(c(
    list(images = nrow(predictions), unreadable = sum(!is.na(predictions$error)), classes = length(x$classes),
         positive_class = positive_of(x$metrics)),
    headline_values(x$metrics)
  ))
}

#' @rdname cnn_evaluation_tidiers
#' @export
augment.cnn_evaluation <- function(x, ...) {
  check_dots(...)
  x$predictions
}
