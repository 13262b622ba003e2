# From what the user has (folders, tables, lists of files) to the engine's image table. Mirrors
# python/imagesasdata/data.py.

#' Inventory images as a table
#'
#' Reads what you have — a folder of class folders, a folder in the book's layout (`train/`, `val/`, `test/`,
#' each with one folder per class), a folder of unlabelled images, a CSV or Parquet file or a data frame with a
#' path column, or a vector of image paths — into the table every later step reads. Nothing is decoded: this is
#' the quick way to check what [finetune_cnn()] and [predict.cnn_fit()] will see.
#'
#' @param source A folder, a table file, a data frame, or a character vector of image paths.
#' @param label,path,image_id,split Column names in a table source (defaults: `label`; the first of `path`,
#'   `file`, `filename`, `image`, ...; `image_id` and `split` when present).
#' @param root Folder that relative paths in a data frame are resolved against (default: the working
#'   directory; for a table file, the file's folder).
#' @return A tibble with `image_id` (the path relative to the source folder, unless given), `path` (absolute),
#'   `label` (a factor, classes in natural order: `s2` before `s10`; `NA` for unlabelled images) and `split`
#'   (`"train"`, `"val"`, `"test"` or `NA`), plus any further columns of a table source.
#' @export
#' @examplesIf engine_available()
#' faces <- image_table(file.path(sample_data(), "faces"))
#' faces
#' table(faces$label)
image_table <- function(source, label = NULL, path = NULL, image_id = NULL, split = NULL, root = NULL) {
  result <- engine_call(
    engine()$image_table, arg_images(source, "source"),
    label = arg_string(label, "label", null = TRUE), path = arg_string(path, "path", null = TRUE),
    image_id = arg_string(image_id, "image_id", null = TRUE), split = arg_string(split, "split", null = TRUE),
    root = if (is.null(root)) NULL else path.expand(arg_string(root, "root"))
  )
  as_tibble_engine(result, factors = "label")
}

#' The sample images shipped with the engine
#'
#' 48 photos of 6 people (8 each, one folder per person) from the ORL face database (Olivetti Research
#' Laboratory, Cambridge; please credit it wherever the images are shown), a table labelling person `s1` as
#' `positive` and the others `negative`, and 12 further photos to label with a fitted model.
#'
#' @return The path of the sample folder: `faces/` (class folders), `person_vs_others.csv` (path, label) and
#'   `new_images/`.
#' @export
#' @examplesIf engine_available()
#' list.files(sample_data())
sample_data <- function() {
  as.character(reticulate::py_str(engine_call(engine()$sample_data)))
}
