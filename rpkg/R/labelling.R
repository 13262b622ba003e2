# Labelling a whole corpus into resumable Parquet shards, on this machine or on a Ray cluster. Mirrors
# python/imagesasdata/labelling.py.

#' Label a whole corpus with a fitted CNN, resumably, here or on a Ray cluster
#'
#' Every image of a manifest becomes a row in Parquet shards under `out`, each shard written the moment it is
#' finished: run the same call again after an interruption and finished shards are skipped. With
#' `backend = "ray"` decoding and a pool of model replicas (one per GPU) run on Ray Data — the cluster in
#' `RAY_ADDRESS`, or one started on this machine — with the same answers as the local backend.
#'
#' @param fit A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param manifest The images: a CSV/Parquet file of paths (on disk or at an `s3://` URI; paths may be local or
#'   `s3://` URIs), a folder, a character vector of paths, or a data frame with a path column.
#' @param out The labelling directory (created; reuse it to resume).
#' @param backend `"local"` (this machine) or `"ray"`.
#' @param shard_size Images per Parquet shard.
#' @param batch_size Images per forward pass.
#' @param device,precision As in [finetune_cnn()].
#' @param replicas,cpus_per_replica,gpus_per_replica Ray: how many model replicas and what each uses (default:
#'   one per GPU, or one per core on a cluster without GPUs). `cpus_per_replica` also sets the threads of the
#'   local backend (1 can be much faster on a machine shared with other work).
#' @param max_shards Label at most this many unfinished shards (to time a trial run); `NULL`: all.
#' @param endpoint_url An S3-compatible endpoint (MinIO, Ceph); default AWS. Credentials come from the standard
#'   AWS chain only.
#' @param progress Show a progress bar.
#' @param allow_unfinished Label with a fit whose training did not finish; refused by default.
#' @param calibrate,threshold As in [predict.cnn_fit()]: apply the fit's temperature; a binary task's threshold.
#'   Recorded with the labelling; a resumed labelling must use the same.
#' @return A `cnn_labelling`: a list with `path`, `images`, `shards`, `shards_done`, `labelled` (by this call),
#'   `unreadable`, `seconds`, `images_per_second`, `backend`, `complete`, `temperature` and `threshold` (as
#'   applied, or `NULL`) and `note` (when the fit was trained on a balanced or rule-filtered set: its validation
#'   metrics may not hold on this corpus, and a gold sample ([draw_gold_sample()]) measures what does).
#'   [labelled_images()] reads the labels.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 1, image_size = 64)
#' job <- label_corpus(fit, file.path(sample_data(), "new_images"), out = tempfile())
#' labelled_images(job)
#' }
label_corpus <- function(fit, manifest, out, backend = c("local", "ray"), shard_size = 1000L, batch_size = 32L,
                         device = "auto", precision = "auto", replicas = NULL, cpus_per_replica = NULL,
                         gpus_per_replica = NULL, max_shards = NULL, endpoint_url = NULL, progress = interactive(),
                         allow_unfinished = FALSE, calibrate = FALSE, threshold = NULL) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  backend <- arg_match(backend)
  job <- engine_call(
    engine()$label_corpus, run_of(fit), arg_images(manifest, "manifest"), out = path.expand(arg_string(out, "out")),
    backend = backend, shard_size = arg_count(shard_size, "shard_size"), batch_size = arg_count(batch_size, "batch_size"),
    device = arg_string(device, "device"), precision = arg_string(precision, "precision"),
    replicas = arg_count(replicas, "replicas", null = TRUE),
    cpus_per_replica = arg_number(cpus_per_replica, "cpus_per_replica", null = TRUE),
    gpus_per_replica = arg_number(gpus_per_replica, "gpus_per_replica", null = TRUE),
    max_shards = arg_count(max_shards, "max_shards", null = TRUE),
    endpoint_url = arg_string(endpoint_url, "endpoint_url", null = TRUE), progress = arg_flag(progress, "progress"),
    allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished"), calibrate = arg_flag(calibrate, "calibrate"),
    threshold = arg_number(threshold, "threshold", null = TRUE)
  )
  labelling_object(job, fit$classes)
}

#' The labels of a labelled corpus
#'
#' @param labelling A `cnn_labelling` from [label_corpus()], or the path of its directory.
#' @param classes Level order of `predicted` (default: the fit's classes when `labelling` is a `cnn_labelling`).
#' @return A tibble with one row per finished image, in manifest order: `image_id`, `path`, `.pred_class` (a
#'   factor), `.pred_<class>` for every class, and `error` -- the same columns as [predict()] with `type = "prob"`,
#'   and the same warnings about unreadable images and a single predicted class.
#'   For tens of millions of rows, read the `shards` folder lazily instead (e.g. `arrow::open_dataset()`).
#' @export
labelled_images <- function(labelling, classes = NULL) {
  if (inherits(labelling, "cnn_labelling")) {
    classes <- classes %||% labelling$classes
    labelling <- labelling$path
  }
  table <- engine_call(bridge()$labelled_table, path.expand(arg_string(labelling, "labelling")))
  labels <- prediction_tibble(table, classes)
  attr(labels, "positive_class") <- labelling_positive(labelling)
  warn_unreadable(labels)
  warn_one_class(labels$.pred_class)
  labels
}

# The positive class a labelling folder records in labelling.json (NULL when none).
labelling_positive <- function(folder) {
  spec <- file.path(path.expand(folder), "labelling.json")
  if (!file.exists(spec)) return(NULL)
  positive <- py_value(reticulate::import("json", convert = FALSE)$loads(paste(readLines(spec, warn = FALSE),
                                                                               collapse = "\n")))$positive_class
  if (is.null(positive)) NULL else as.character(positive)
}

labelling_object <- function(job, classes) {
  field <- function(name) py_value(reticulate::py_get_attr(job, name))
  structure(list(
    path = reticulate::py_str(reticulate::py_get_attr(job, "path")), images = as.integer(field("images")),
    shards = as.integer(field("shards")), shards_done = as.integer(field("shards_done")),
    labelled = as.integer(field("labelled")), unreadable = as.integer(field("unreadable")),
    seconds = as.double(field("seconds")), images_per_second = as.double(field("images_per_second")),
    backend = as.character(field("backend")), complete = isTRUE(field("complete")), classes = classes,
    temperature = field("temperature"), threshold = field("threshold"), note = field("note")
  ), class = "cnn_labelling")
}

#' @export
print.cnn_labelling <- function(x, ...) {
  cat(sprintf("<cnn_labelling> %s (%s backend)\n", x$path, x$backend))
  cat(sprintf("  %d images in %d shards; %d shards done%s\n", x$images, x$shards, x$shards_done,
              if (x$complete) " (complete)" else " - run label_corpus() again to finish"))
  cat(sprintf("  this call: %d images labelled (%d unreadable) in %.1f s, %.1f images/s\n", x$labelled, x$unreadable,
              x$seconds, x$images_per_second))
  if (!is.null(x$temperature)) cat(sprintf("  probabilities calibrated (temperature %.3g)\n", x$temperature))
  if (!is.null(x$threshold)) cat(sprintf("  threshold %g\n", x$threshold))
  print_note(x$note)
  invisible(x)
}
