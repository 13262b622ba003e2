# Sharing results without the pictures (the book's sections 8.1-8.2): identifiers, hashes and labels with a
# datasheet, and re-joining a shared corpus to one's own copy of the images. Mirrors python/imagesasdata/infer/share.py.

#' Share labels without the pictures
#'
#' Writes `labels.parquet` and `labels.csv` (image_id, the SHA-256 of each image file, the engine's own label,
#' prediction (`.pred_*`), split, error, face, OCR, tagger and video columns, and the columns you name in
#' `columns`), `datasheet.json` and `datasheet.md` (provenance, file hashes, split sizes, the fit's options
#' and metrics with 95% intervals, the ethical questions of the book's section 8 with your answers). No pixel and
#' no local path is written: path columns are never shared, and a local path in any text (an error message, a
#' note, an `image_id`, the title) is replaced by its file name. Columns left out are named in a warning.
#'
#' @param labels A data frame of images with a `path` column: predictions, a coded sheet, [image_table()].
#' @param out The folder to write (new or empty, or `overwrite = TRUE`).
#' @param fit The `cnn_fit` whose labels these are, for the datasheet's model section.
#' @param title,sources A title, and where the images came from, when and how they were selected.
#' @param answers A named list answering the questions `copyright`, `privacy`, `annotators`, `representation`,
#'   `access`, `intended_use`; unanswered ones are listed as such.
#' @param ids Keep `image_id` (file names can identify people; `FALSE` shares hashes only).
#' @param columns More columns to share, e.g. your own codes (`c("protest", "violence")`); other columns are left
#'   out, and columns of paths are never shared.
#' @param drop Columns to leave out although they are shared by default.
#' @param overwrite Replace a shared corpus already in `out`.
#' @return The shared table (a tibble), with the datasheet's path as attribute `datasheet`.
#' @export
share_corpus <- function(labels, out, fit = NULL, title = NULL, sources = NULL, answers = list(), ids = TRUE,
                         columns = NULL, drop = NULL, overwrite = FALSE) {
  if (!is.data.frame(labels)) abort_argument("`labels` must be a data frame with a path column")
  if (!is.list(answers) || (length(answers) && is.null(names(answers)))) {
    abort_argument("`answers` must be a named list, e.g. list(privacy = \"public figures only\")")
  }
  result <- engine_call(
    engine()$share_corpus, engine_table(atomic_columns(labels), kind = "predictions"), path.expand(arg_string(out, "out")),
    run = if (is.null(fit)) NULL else run_of(fit), title = arg_string(title, "title", null = TRUE),
    sources = arg_string(sources, "sources", null = TRUE),
    answers = lapply(answers, function(a) arg_string(a, "answers")), ids = arg_flag(ids, "ids"),
    columns = as.list(arg_strings(columns, "columns", null = TRUE)), drop = as.list(arg_strings(drop, "drop", null = TRUE)),
    overwrite = arg_flag(overwrite, "overwrite")
  )
  shared <- as_tibble_engine(result$labels)
  attr(shared, "datasheet") <- file.path(path.expand(out), "datasheet.md")
  shared
}

#' Match a shared corpus to your own copy of the images
#'
#' @param shared A folder written by [share_corpus()].
#' @param images Your images: a folder, image paths, or a data frame with a path column.
#' @return The shared rows with `local_image_id` and `path` (yours; `NA` where you lack the image, or where your
#'   copy's bytes differ, e.g. a re-encoded file).
#' @export
rejoin_shared <- function(shared, images) {
  as_tibble_engine(engine_call(engine()$rejoin_shared, path.expand(arg_string(shared, "shared")),
                               arg_images(images, "images")))
}
