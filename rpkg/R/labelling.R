# Labelling a whole corpus into resumable Parquet shards (in a folder or under an s3:// prefix), on this machine
# or on a Ray cluster, and where the cluster's work ran. Mirrors python/imagesasdata/infer/labelling.py.

#' Label a whole corpus with a fitted CNN, resumably, here or on a Ray cluster
#'
#' Every image of a manifest becomes a row in Parquet shards under `out`, each shard written the moment it is
#' finished: run the same call again after an interruption and finished shards are skipped. With
#' `backend = "ray"` decoding and a pool of model replicas (one per GPU) run on Ray Data -- the cluster in
#' `RAY_ADDRESS`, or one started on this machine -- with the same answers as the local backend. On a cluster whose
#' machines share no disk, write the shards to S3: `out = "s3://bucket/prefix"`.
#'
#' @param fit A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param manifest The images: a CSV/Parquet file of paths (on disk or at an `s3://` URI; paths may be local or
#'   `s3://` URIs), a folder, a character vector of paths, or a data frame with a path column.
#' @param out The labelling directory (created; reuse it to resume), or an `s3://bucket/prefix` (each shard is
#'   one S3 object, written whole; the prefix is claimed while the job runs, and a second job on it is refused).
#'   On a Ray cluster of several machines, a local `out` must be a folder every node sees; this is checked before
#'   anything starts.
#' @param backend `"local"` (this machine) or `"ray"`.
#' @param shard_size Images per Parquet shard.
#' @param batch_size Images per forward pass.
#' @param device,precision As in [finetune_cnn()].
#' @param replicas,cpus_per_replica,gpus_per_replica Ray: how many model replicas and what each uses (default:
#'   one per GPU, or one per core on a cluster without GPUs). `cpus_per_replica` also sets the threads of the
#'   local backend (1 can be much faster on a machine shared with other work).
#' @param max_shards Label at most this many unfinished shards (to time a trial run); `NULL`: all.
#' @param endpoint_url An S3-compatible endpoint (MinIO, Ceph) for `s3://` images and outputs; default AWS.
#'   Credentials come from the standard AWS chain only.
#' @param progress Show a progress bar.
#' @param allow_unfinished Label with a fit whose training did not finish; refused by default.
#' @param calibrate,threshold As in [predict.cnn_fit()]: apply the fit's temperature; a binary task's threshold.
#'   Recorded with the labelling; a resumed labelling must use the same.
#' @return A `cnn_labelling`: a list with `path`, `images`, `shards`, `shards_done`, `labelled` (by this call),
#'   `unreadable`, `seconds`, `images_per_second`, `backend`, `complete`, `temperature` and `threshold` (as
#'   applied, or `NULL`), `note` (when the fit was trained on a balanced or rule-filtered set: its validation
#'   metrics may not hold on this corpus, and a gold sample ([draw_gold_sample()]) measures what does),
#'   `endpoint_url`, and `cluster` (`NULL` unless this call ran on Ray): `nodes` (the cluster's nodes when it
#'   started), `workers` (model replicas), `by_node` (a tibble of `node` and `images` labelled there), `nodes_lost`
#'   and `retried` (what Ray ran again after a node was lost). [labelled_images()] reads the labels; `print()`
#'   and `glance()` ([cnn_labelling_tidiers]) summarise it.
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
#' @param labelling A `cnn_labelling` from [label_corpus()], or the path of its directory (or its `s3://`
#'   prefix).
#' @param classes Level order of `predicted` (default: the fit's classes when `labelling` is a `cnn_labelling`).
#' @param endpoint_url For an `s3://` labelling: the S3-compatible endpoint (default: the labelling's own, or AWS).
#' @return A tibble with one row per finished image, in manifest order: `image_id`, `path`, `.pred_class` (a
#'   factor), `.pred_<class>` for every class, and `error` -- the same columns as [predict()] with `type = "prob"`,
#'   and the same warnings about unreadable images and a single predicted class.
#'   For tens of millions of rows, read the `shards` folder lazily instead (e.g. `arrow::open_dataset()`).
#' @export
labelled_images <- function(labelling, classes = NULL, endpoint_url = NULL) {
  if (inherits(labelling, "cnn_labelling")) {
    classes <- classes %||% labelling$classes
    endpoint_url <- endpoint_url %||% labelling$endpoint_url
    labelling <- labelling$path
  }
  path <- path.expand(arg_string(labelling, "labelling"))
  endpoint_url <- arg_string(endpoint_url, "endpoint_url", null = TRUE)
  job <- engine_call(engine()$load_labelling, path, endpoint_url = endpoint_url)
  labels <- prediction_tibble(engine_call(bridge()$labelled_table, path, endpoint_url = endpoint_url), classes)
  positive <- py_value(reticulate::py_get_attr(job, "positive_class"))
  if (!is.null(positive)) attr(labels, "positive_class") <- as.character(positive)
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
    temperature = field("temperature"), threshold = field("threshold"), note = field("note"),
    endpoint_url = field("endpoint_url"), cluster = cluster_object(job)
  ), class = "cnn_labelling")
}

# Where a labelling's or a grid's last call on Ray ran (the engine's record: labelling.json, a grid's cluster.json),
# as an R list; NULL when it did not run on Ray.
cluster_object <- function(result) {
  work <- py_value(bridge()$cluster_work(result))
  if (is.null(work)) return(NULL)
  strings <- function(x) as.character(unlist(x))
  by_node <- tibble::tibble(node = strings(work$node), count = as.integer(unlist(work$count)))
  names(by_node)[2] <- work$unit
  list(unit = work$unit, workers_are = work$workers_are, nodes = strings(work$nodes),
       workers = if (is.null(work$workers)) NA_integer_ else as.integer(work$workers), by_node = by_node,
       nodes_lost = strings(work$nodes_lost), retried = strings(work$retried))
}

# The lines print() shows about a cluster's work: its size, the work per node, lost nodes, what was run again
# (`retried_then`: what followed each retry).
cluster_lines <- function(cluster, job = "job", retried_then = "") {
  if (is.null(cluster)) return(character())
  plural <- function(n, word) sprintf("%d %s%s", n, word, if (identical(as.integer(n), 1L)) "" else "s")
  size <- c(if (length(cluster$nodes)) plural(length(cluster$nodes), "node"),
            if (!is.na(cluster$workers)) plural(cluster$workers, sub("s$", "", cluster$workers_are)))
  counts <- cluster$by_node[[cluster$unit]]
  c(sprintf("  on Ray: %s", paste(size, collapse = ", ")),
    sprintf("    %s: %s", cluster$by_node$node, vapply(counts, function(n) plural(n, sub("s$", "", cluster$unit)),
                                                       character(1))),
    sprintf("  node %s left the cluster during the %s", cluster$nodes_lost, job),
    sprintf("  retried: %s%s", cluster$retried, rep(retried_then, length(cluster$retried))))
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
  lines <- cluster_lines(x$cluster)
  if (length(lines)) cat(lines, sep = "\n")
  print_note(x$note)
  invisible(x)
}

#' Glance at a labelling
#'
#' @param x A `cnn_labelling` from [label_corpus()].
#' @param ... Must be empty.
#' @return `glance()`: one row: `images`, `shards`, `shards_done`, `complete`, and for the call that made `x`:
#'   `labelled`, `unreadable`, `seconds`, `images_per_second`, `backend`; on Ray, `nodes` (in the cluster when it
#'   started), `workers` (model replicas), `nodes_used` (that labelled images), `nodes_lost` and `retried` (counts;
#'   `NA` for the local backend); and `path`. The images per node are in `x$cluster$by_node`.
#' @name cnn_labelling_tidiers
#' @export
glance.cnn_labelling <- function(x, ...) {
  check_dots(...)
  cluster <- x$cluster
  count <- function(value) if (is.null(cluster)) NA_integer_ else as.integer(value)
  tibble::tibble(images = x$images, shards = x$shards, shards_done = x$shards_done, complete = x$complete,
                 labelled = x$labelled, unreadable = x$unreadable, seconds = x$seconds,
                 images_per_second = x$images_per_second, backend = x$backend,
                 nodes = count(length(cluster$nodes)), workers = count(cluster$workers),
                 nodes_used = count(nrow(cluster$by_node)), nodes_lost = count(length(cluster$nodes_lost)),
                 retried = count(length(cluster$retried)), path = x$path)
}
