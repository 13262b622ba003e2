# Labelling new images with a fitted CNN, and evaluating it on labelled images it never saw. Mirrors
# python/imagesasdata/predict.py.

#' Label images with a fitted CNN
#'
#' @param object A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param new_data The images: a folder, a vector of image paths, a CSV/Parquet file, or a data frame with a path
#'   column (and optionally an `image_id` column, kept as the join key).
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
#' @param ... Not used.
#' @return A tibble with one row per image, in the order given: `image_id`, `path` (absolute), `predicted` (a
#'   factor with the fit's classes as levels), for `type = "prob"` `prob_<class>` for every class, and `error`
#'   (`NA`, or why the image could not be read — its prediction is then `NA`; one bad image never stops the
#'   run). Join it to your own data by `image_id` or `path`, or bind it to a data frame you passed.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' predict(fit, file.path(sample_data(), "new_images"), type = "prob")
#' }
predict.cnn_fit <- function(object, new_data, type = c("class", "prob"), batch_size = 32L, device = "auto",
                            precision = "auto", num_workers = NULL, progress = interactive(),
                            backend = c("local", "ray"), allow_unfinished = FALSE, calibrate = FALSE,
                            threshold = NULL, ...) {
  type <- match.arg(type)
  backend <- match.arg(backend)
  result <- engine_call(
    run_of(object)$predict, arg_images(new_data, "new_data"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    precision = arg_string(precision, "precision"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress"), backend = backend,
    allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished"), calibrate = arg_flag(calibrate, "calibrate"),
    threshold = arg_number(threshold, "threshold", null = TRUE)
  )
  predictions <- as_tibble_engine(result, factors = "predicted", levels = object$classes)
  if (type == "class") predictions <- predictions[c("image_id", "path", "predicted", "error")]
  predictions
}

#' Evaluate a fitted CNN on labelled images it never saw
#'
#' The held-out check the book recommends: predict labelled images that played no part in training (nor in
#' choosing the epoch) and compare with their labels, with the same metrics as the fit's own validation.
#'
#' @inheritParams predict.cnn_fit
#' @param data Labelled images, as for [finetune_cnn()]; their labels must be classes of the fit.
#' @param label,path Column names of the labels and paths in a table.
#' @param positive_class In a binary task, the class whose precision, recall and F1 are reported (default: the
#'   fit's).
#' @param split Name given to this evaluation in the `split` column of its tables.
#' @return A `cnn_evaluation`: a list with `metrics` (as [cnn_metrics()], with 95% intervals), `confusion` (as [cnn_confusion()]) and
#'   `predictions` (one row per image with `label`, `predicted`, the probabilities and `error`). [cnn_metrics()],
#'   [cnn_confusion()], [cnn_misclassified()] and [autoplot()] accept it.
#' @export
cnn_evaluate <- function(object, data, label = NULL, path = NULL, positive_class = NULL, split = "evaluation",
                         batch_size = 32L, device = "auto", precision = "auto", num_workers = NULL,
                         progress = interactive(), allow_unfinished = FALSE, calibrate = FALSE, threshold = NULL) {
  if (!inherits(object, "cnn_fit")) abort_argument("`object` must be a cnn_fit from finetune_cnn() or load_cnn()")
  evaluation <- engine_call(
    engine()$evaluate, run_of(object), arg_images(data, "data"),
    label = arg_string(label, "label", null = TRUE), path = arg_string(path, "path", null = TRUE),
    positive_class = arg_string(positive_class, "positive_class", null = TRUE), split = arg_string(split, "split"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    precision = arg_string(precision, "precision"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress"), allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished"),
    calibrate = arg_flag(calibrate, "calibrate"), threshold = arg_number(threshold, "threshold", null = TRUE)
  )
  labels <- c("label", "predicted", "truth")
  structure(list(
    classes = object$classes,
    metrics = metric_tibble(as_tibble_engine(evaluation$metrics)),
    confusion = as_tibble_engine(evaluation$confusion, factors = labels, levels = object$classes),
    predictions = as_tibble_engine(evaluation$predictions, factors = labels, levels = object$classes)
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
