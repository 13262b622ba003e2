# Which images to label next (uncertainty mixed with diversity), and the sheet that carries them to coders and
# back into the training table. Mirrors python/imagesasdata/infer/selection.py and prepare/selection_sheets.py.

#' Which images to label next
#'
#' Hand-labelling is the expensive step (the book's section 5): every image a coder labels should be worth it.
#' From a fitted CNN and a pool of unlabelled images, picks the images the model is least sure of, spread over
#' the embedding space so the batch is not twenty near-copies. The fit's own images are never proposed.
#'
#' @param fit A `cnn_fit`.
#' @param pool The unlabelled images: a folder, image paths, a CSV/Parquet file or a data frame with `path`.
#' @param n How many images to select.
#' @param strategy `"uncertainty+diversity"` (default: the most uncertain `candidates`, grouped by weighted
#'   k-means into `n` groups, the image nearest each centre), `"uncertainty"`, `"diversity"` or `"random"`.
#' @param uncertainty `"entropy"` (default), `"margin"` or `"least_confidence"`.
#' @param candidates How many of the most uncertain images to choose from (default 10 x `n`).
#' @param exclude Images already labelled (a data frame with `path` or `image_id`), never selected.
#' @param seed Seed of k-means and of random selection.
#' @param batch_size,device,num_workers,progress As in [predict.cnn_fit()].
#' @return A tibble in the order to code the images: `rank`, `image_id`, `path`, `predicted`, `probability`,
#'   `uncertainty` (0 = certain, 1 = every class equally likely), `strategy` and the `prob_<class>` columns.
#'   [write_selection_sheet()] turns it into a sheet for coders.
#' @export
select_images <- function(fit, pool, n = 20L, strategy = "uncertainty+diversity", uncertainty = "entropy",
                          candidates = NULL, exclude = NULL, seed = 0L, batch_size = 32L, device = "auto",
                          num_workers = NULL, progress = interactive()) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  result <- engine_call(
    engine()$select_images, run_of(fit), arg_images(pool, "pool"), arg_count(n, "n"),
    strategy = arg_string(strategy, "strategy"), uncertainty = arg_string(uncertainty, "uncertainty"),
    candidates = arg_count(candidates, "candidates", null = TRUE),
    exclude = if (is.null(exclude)) NULL else arg_table(exclude, "exclude"), seed = arg_count(seed, "seed"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress")
  )
  as_tibble_engine(result, factors = "predicted", levels = fit$classes)
}

#' Selection sheets: images out to coders, labels back into the training table
#'
#' `write_selection_sheet()` writes the selected images as a sheet to fill in (CSV opens in any spreadsheet) with
#' the columns of the gold-sample coding sheets: `image_id`, `path` and empty `code` and `note`, in the order to
#' code the images. It shows no model output, so the model's guess cannot anchor the coder.
#' `read_selection_sheet()` reads the coded rows back, checking every code against the classes;
#' `add_coded_images()` adds them to the training table for the next [finetune_cnn()].
#'
#' @param images A tibble from [select_images()] (or any data frame with `image_id` and `path`).
#' @param path The sheet to write (`.csv` or `.parquet`).
#' @param classes The codes coders may use (e.g. `fit$classes`): written beside the sheet
#'   (`<name>.classes.txt`), and checked when the sheet is read back.
#' @return `write_selection_sheet()`: the sheet's path (invisibly).
#' @export
write_selection_sheet <- function(images, path, classes = NULL) {
  if (!is.data.frame(images)) abort_argument("`images` must be a data frame from select_images()")
  plain <- images[intersect(c("rank", "image_id", "path"), names(images))]
  written <- engine_call(engine()$write_selection_sheet, engine_table(plain), path.expand(arg_string(path, "path")),
                         classes = if (is.null(classes)) NULL else as.list(as.character(classes)))
  invisible(as.character(reticulate::py_str(written)))
}

#' @rdname write_selection_sheet
#' @param sheet The coded sheet: its path, or a data frame.
#' @return `read_selection_sheet()`: a tibble of the coded rows (`image_id`, `path`, `label` (the code), `note`);
#'   rows without a code are left out with a warning.
#' @export
read_selection_sheet <- function(sheet, classes = NULL) {
  as_tibble_engine(engine_call(engine()$read_selection_sheet, arg_table(sheet, "sheet"),
                               classes = if (is.null(classes)) NULL else as.list(as.character(classes))))
}

#' @rdname write_selection_sheet
#' @param training The labelled images so far: anything [finetune_cnn()] reads.
#' @param coded A tibble from `read_selection_sheet()`.
#' @param split The split the new images join: `"auto"` (`"train"` when `training` has splits, so the validation
#'   images stay the same; none otherwise).
#' @return `add_coded_images()`: the new training table (`image_id`, `path`, `label`, `split`).
#' @export
add_coded_images <- function(training, coded, split = "auto") {
  if (!is.data.frame(coded)) abort_argument("`coded` must be a tibble from read_selection_sheet()")
  as_tibble_engine(engine_call(engine()$add_coded_images, arg_images(training, "training"), engine_table(coded),
                               split = arg_string(split, "split", null = TRUE)))
}
