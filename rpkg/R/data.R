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
#' @param label,path,image_id,split Columns of a table source (defaults: `label`; the first of `path`, `file`,
#'   `filename`, `image`, ...; `image_id` and `split` when present): strings, or bare column names as in dplyr
#'   (`label = is_s1`). A column named but absent is an error that names the closest one.
#' @param root Folder that relative paths in a data frame are resolved against (default: the working
#'   directory; for a table file, the file's folder).
#' @section image_id: Every image gets an `image_id` that does not depend on which other files come with it, so a
#'   file has the same id in every call and every batch (ids of batches never collide, and always join):
#'   * a folder: the path below that folder, `s1/1.png` (a folder in the book's layout: `train/s1/1.png`);
#'   * a vector of image paths: each path as written (`~` expanded);
#'   * a data frame or CSV/Parquet table: its `image_id` column (or the column named by `image_id =`) when it has
#'     one -- pass your own ids this way -- else each path as the table writes it.
#'
#'   [predict()], [augment()][predict.cnn_fit()], [label_corpus()] and every other function that reads images name
#'   them the same way, so their results join to your data by `image_id`.
#' @return A tibble with `image_id` (see above), `path` (absolute), `label` (a factor: a factor label keeps its
#'   levels, a logical one becomes `"TRUE"`/`"FALSE"`; other labels are in natural order, `s2` before `s10`,
#'   except that of two classes the positive one comes first (`"positive"`, else the second in natural order), so
#'   that [finetune_cnn()] reads the table with the same positive class as its source; `NA` for unlabelled images) and `split` (`"train"`, `"val"`, `"test"` or `NA`), plus any further columns of a table
#'   source. A table without a label column is read as unlabelled, with a warning (class
#'   `imagesasdata_warning_unlabelled`) when one of its columns could hold labels.
#' @export
#' @examplesIf engine_available()
#' faces <- image_table(file.path(sample_data(), "faces"))
#' faces
#' table(faces$label)
image_table <- function(source, label = NULL, path = NULL, image_id = NULL, split = NULL, root = NULL) {
  env <- parent.frame()
  label <- column_arg(substitute(label), env, source, "label", "source")
  path <- column_arg(substitute(path), env, source, "path", "source")
  image_id <- column_arg(substitute(image_id), env, source, "image_id", "source")
  split <- column_arg(substitute(split), env, source, "split", "source")
  labelled <- labelled_data(source, label, path, data_arg = "source", required = FALSE)
  if (is.data.frame(source)) {
    if (!is.null(image_id)) require_column(source, image_id, "image_id", "source")
    if (!is.null(split)) require_column(source, split, "split", "source")
    if (is.null(labelled$label)) warn_unlabelled(source, "source")
  } else if (is_text_table(source) && is.null(label)) {
    header <- text_table_columns(source)
    if (!is.null(header) && !"label" %in% names(header)) warn_unlabelled(header, "source")
  }
  result <- engine_call(
    engine()$image_table, labelled$images, label = labelled$label, path = labelled$path,
    image_id = image_id, split = split,
    root = if (is.null(root)) NULL else path.expand(arg_string(root, "root"))
  )
  label_tibble(result, labelled$levels)
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
