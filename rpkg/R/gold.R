# A gold-standard sample from a labelled corpus: drawn, written as coding sheets, read back checked, and used to
# measure the classifier on the corpus. Mirrors python/imagesasdata/analysis/gold.py.

#' Draw a gold-standard sample from a labelled corpus
#'
#' Validation metrics come from the curated set the model was trained on; what matters for an analysis is how often
#' the model is right on the corpus itself. Draw a random sample of the labelled corpus for people to code: simple,
#' or stratified (e.g. by predicted class, to oversample a rare class), seeded, with each image's inclusion
#' probability recorded so that estimates can be weighted back to the corpus. Write it out with
#' [write_coding_sheet()], code it, and read it back with [read_coding_sheet()].
#'
#' @param labels The labelled corpus: a `cnn_labelling` from [label_corpus()], its folder, a predictions table
#'   from [predict()] (a data frame or a CSV/Parquet file). Unreadable images cannot be coded and are left out.
#' @param size How many images to draw (with `previous`: how many more).
#' @param strata `NULL` for a simple random sample; `".pred_class"` (or the engine's name, `"predicted"`) to
#'   stratify by predicted class; or any column of the labelled corpus (an account, a day).
#' @param allocation `"proportional"` (each stratum in proportion to its size), `"equal"` (the same number per
#'   stratum), or a named vector of numbers per stratum.
#' @param seed Random seed.
#' @param previous An earlier sample to top up (its folder, or what this function returned): more images are drawn
#'   within the same strata from those not drawn yet, and the inclusion probabilities of all are updated.
#' @param min_per_stratum Every stratum gets at least this many images (2: a stratum's variance needs two).
#' @return A tibble, one row per sampled image (every wave): `image_id`, `path`, `wave`, `draw` (the annotators'
#'   order), `stratum`, `stratum_size`, `stratum_sample_size`, `inclusion_probability`, `weight`, then the corpus's
#'   `.pred_class` and `.pred_<class>` columns. The design travels with it (attribute `gold_design`).
#' @seealso [write_coding_sheet()], [read_coding_sheet()], [gold_metrics()], [corrected_glm()]
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "person_vs_others.csv"), epochs = 1, image_size = 64)
#' labels <- predict(fit, file.path(sample_data(), "new_images"), type = "prob")
#' sample <- draw_gold_sample(labels, 10, strata = "predicted", min_per_stratum = 1)
#' folder <- write_coding_sheet(sample, tempfile("gold"))
#' list.files(folder)
#' }
draw_gold_sample <- function(labels, size, strata = NULL, allocation = "proportional", seed = 0L, previous = NULL,
                             min_per_stratum = 2L) {
  allocation <- if (is.numeric(allocation) && !is.null(names(allocation))) {
    as.list(stats::setNames(as.integer(allocation), names(allocation)))
  } else {
    arg_string(allocation, "allocation")
  }
  result <- engine_call(
    engine()$draw_gold_sample, arg_labels(labels, "labels"), arg_count(size, "size", null = TRUE),
    strata = engine_column_name(arg_string(strata, "strata", null = TRUE)), allocation = allocation, seed = arg_count(seed, "seed"),
    previous = if (is.null(previous)) NULL else arg_gold(previous, "previous"),
    min_per_stratum = arg_count(min_per_stratum, "min_per_stratum"),
    positive_class = positive_of_labels(labels)
  )
  gold_tibble(result)
}

#' Write coding sheets for a gold sample
#'
#' Writes, into the folder `out`, what annotators need: `coding_sheet_wave<k>.csv` (image_id, path, an empty `code`
#' column to fill with one of the classes, and `note`) and `coding_sheet_wave<k>.html` (the images as a contact sheet
#' to look at), plus `sample.parquet` and `gold.json` (the design). The sheets never show the model's predictions.
#' Sheets already written are never overwritten, so a topped-up sample only adds a new wave.
#'
#' @param sample A sample from [draw_gold_sample()].
#' @param out The folder (created).
#' @param classes The codes annotators may use (default: the model's classes, recorded with the sample).
#' @return The folder's path, invisibly.
#' @export
write_coding_sheet <- function(sample, out, classes = NULL) {
  folder <- engine_call(engine()$write_coding_sheet, arg_gold(sample, "sample"),
                        path.expand(arg_string(out, "out")),
                        classes = if (is.null(classes)) NULL else as.list(as.character(classes)))
  invisible(reticulate::py_str(folder))
}

#' Read coded sheets back, checked
#'
#' @param coded The folder [write_coding_sheet()] wrote (every `coding_sheet_wave<k>.csv` in it is read), or one
#'   coded CSV/Parquet file or data frame with `image_id` and `code` columns (then give `sample`).
#' @param sample The sample (its folder or tibble) when `coded` is a single file or data frame.
#' @param classes The codes allowed (default: those recorded with the sample).
#' @param code The name of the column holding the codes.
#' @param missing `"error"` when a sampled image has no code; `"drop"` leaves it out with a warning (valid only if
#'   why it is uncoded has nothing to do with what it shows).
#' @return The gold standard: a tibble with the sample's columns and `label` (the code: the truth of
#'   `.pred_class`). Errors name the file and line (the file's own line number: the header is line 1) of ids not in
#'   the sample, of codes outside the classes, of images coded twice differently, and of missing codes. Gold images
#'   that were among the training or validation images of the run the labelling was made with (by file content)
#'   are left out with a warning naming them.
#' @export
read_coding_sheet <- function(coded, sample = NULL, classes = NULL, code = "code", missing = c("error", "drop")) {
  missing <- arg_match(missing)
  coded <- if (is.data.frame(coded)) engine_table(coded, kind = "predictions") else path.expand(arg_string(coded, "coded"))
  result <- engine_call(
    engine()$read_coding_sheet, coded, sample = if (is.null(sample)) NULL else arg_gold(sample, "sample"),
    classes = if (is.null(classes)) NULL else as.list(as.character(classes)), code = arg_string(code, "code"),
    missing = missing
  )
  gold_tibble(result)
}

#' The classifier's accuracy, precision, recall and F1 on the corpus, from a gold sample
#'
#' With a stratified sample every estimate is design-weighted (each image counts 1/inclusion probability times),
#' so it estimates performance on the whole corpus rather than on the sample; the intervals are Wilson intervals on
#' the design's effective sample size (Korn and Graubard 1998) and a bootstrap within strata. With a simple random
#' sample, the usual Wilson and bootstrap intervals.
#'
#' @param gold The coded gold sample from [read_coding_sheet()].
#' @param classes The classes (default: those recorded with the sample).
#' @param positive_class Binary tasks: the class whose precision, recall and F1 are reported.
#' @param conf_level Confidence level of the intervals.
#' @param design `NULL` reads the design from the gold sample's `inclusion_probability` (an error when it has
#'   none); `"srs"` declares a simple random sample.
#' @return A tibble in [cnn_metrics()]'s shape (`split` is `"gold"`), with `conf.low`, `conf.high` and `interval`.
#' @export
gold_metrics <- function(gold, classes = NULL, positive_class = NULL, conf_level = 0.95, design = NULL) {
  result <- engine_call(
    engine()$gold_metrics, arg_gold(gold, "gold"),
    classes = if (is.null(classes)) NULL else as.list(as.character(classes)),
    positive_class = arg_string(positive_class, "positive_class", null = TRUE),
    confidence = arg_share(conf_level, "conf_level", open = TRUE), design = arg_design(design)
  )
  metric_tibble(as_tibble_engine(result, kind = "metrics"))
}

# An engine sample (Arrow table with its design in the metadata) as a tibble that keeps the design in an attribute;
# `.pred_class` and `label` are factors with the fit's classes as levels, and the fit's positive class travels in
# the design (gold_metrics() reports it).
gold_tibble <- function(result) {
  design <- as.character(py_value(engine_call(bridge()$gold_design_json, result)))
  classes <- gold_classes(design)
  out <- as_tibble_engine(result, factors = if (length(classes)) c("predicted", "label"), levels = classes,
                          kind = "predictions")
  attr(out, "gold_design") <- design
  attr(out, "positive_class") <- gold_positive(design)
  out
}

gold_classes <- function(design) {
  if (!nzchar(design)) return(character())
  as.character(unlist(py_value(reticulate::import("json", convert = FALSE)$loads(design))$classes))
}

gold_positive <- function(design) {
  if (!nzchar(design)) return(NULL)
  positive <- py_value(reticulate::import("json", convert = FALSE)$loads(design))$positive_class
  if (is.null(positive)) NULL else as.character(positive)
}

# The positive class a corpus carries: predict()'s and labelled_images()' tibbles hold the fit's in an attribute
# (a labelling folder records it itself).
positive_of_labels <- function(labels) {
  positive <- if (is.data.frame(labels)) attr(labels, "positive_class", exact = TRUE) else NULL
  if (is.character(positive) && length(positive) == 1) positive else NULL
}

# A gold sample for the engine: a folder or file path as is; a data frame as an Arrow table with its design.
arg_gold <- function(x, name) {
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  if (!is.data.frame(x)) {
    abort_argument(sprintf("`%s` must be a gold sample (a data frame from draw_gold_sample() or read_coding_sheet(), or its folder), not %s",
                           name, describe_value(x)))
  }
  table <- engine_table(x, kind = "predictions")
  design <- attr(x, "gold_design")
  if (is.character(design) && length(design) == 1 && nzchar(design)) {
    table <- engine_call(bridge()$with_gold_design, table, design)
  }
  table
}

# The labelled corpus: a cnn_labelling (its folder), a folder or file path, or a data frame.
arg_labels <- function(x, name) {
  if (inherits(x, "cnn_labelling")) return(x$path)
  if (is.data.frame(x)) return(engine_table(x, kind = "predictions"))
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  abort_argument(sprintf("`%s` must be a cnn_labelling from label_corpus(), its folder, or a predictions table, not %s",
                         name, describe_value(x)))
}

# A note such as "the training images were balanced ...: measure corpus-level error on a gold sample", wrapped.
print_note <- function(note) {
  if (is.null(note) || !nzchar(note)) return(invisible())
  cat(paste0(strwrap(paste("note:", note), width = 100, indent = 2, exdent = 4), "\n"), sep = "")
}
