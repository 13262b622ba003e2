# Where a fitted CNN looks: class-activation heatmaps (Grad-CAM and its relatives; gradient-free Score-CAM,
# Ablation-CAM and Eigen-CAM) and their overlays. Mirrors python/imagesasdata/infer/heatmaps.py.

#' Where a fitted CNN looks: class-activation heatmaps
#'
#' The book's advice (section 4.5) is to look at what a model keys on: the husky classifier that learned snow.
#' A heatmap shows where in an image the evidence for a class lies. Without `images`, the validation images
#' with the largest losses are shown (where the model was most wrong).
#'
#' @param fit A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @param images The images: a folder, image paths, a CSV/Parquet file or a data frame with a `path` column (and
#'   `image_id`, `label`). `NULL`: the `n` validation (and test) images with the largest losses.
#' @param target Whose heatmap: `"predicted"` (each image's predicted class), `"label"` (its `label` column) or a
#'   class name.
#' @param method `"gradcam"` (default), `"gradcam++"`, `"xgradcam"`, `"layercam"`, `"hirescam"`; gradient-free
#'   `"scorecam"`, `"ablationcam"` (one forward pass per channel: slow without a GPU) and `"eigencam"` (the same
#'   map for every class).
#' @param layer The layer to read the map from ([cnn_heatmap_layers()] lists them); default: the network's last
#'   feature map.
#' @param out A new folder for the overlay images and `heatmaps.parquet` (default: a temporary folder).
#' @param n,split Without `images`: how many top-loss images, and from which split (`NULL`: validation and test).
#' @param overwrite Replace heatmaps already in `out`.
#' @param heatmap_size Side of the heatmap kept in the `heatmap` column.
#' @param alpha Opacity of the heatmap in the overlays (0 to 1).
#' @param batch_size,device,num_workers,progress,allow_unfinished As in [predict.cnn_fit()].
#' @return A tibble with one row per image: `image_id`, `path`, (`label`), `target` (the class of the heatmap),
#'   `probability` (of that class), `predicted`, `method`, `layer`, `heatmap` (a list column: `heatmap_size`^2
#'   numbers from 0 to 1, row by row from the top left), `heatmap_size`, `centre_x` and `centre_y` (the heatmap's
#'   centre of mass, 0 to 1 from the left and the top), `overlay` (the overlay PNG) and `error`; for top losses
#'   also `split`, `loss` and `probability_of_label`. [heatmap_gallery()] and `autoplot(fit, type = "heatmap")`
#'   draw the overlays.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' fit <- finetune_cnn(file.path(sample_data(), "faces"), epochs = 2, image_size = 64)
#' maps <- cnn_heatmaps(fit, file.path(sample_data(), "new_images"))
#' heatmap_gallery(maps)
#' }
cnn_heatmaps <- function(fit, images = NULL, target = "predicted", method = "gradcam", layer = NULL, out = NULL,
                         n = 16L, split = NULL, overwrite = FALSE, heatmap_size = 56L, alpha = 0.5, batch_size = 16L,
                         device = "auto", num_workers = NULL, progress = interactive(), allow_unfinished = FALSE) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  out <- path.expand(arg_string(out, "out", null = TRUE) %||% tempfile("heatmaps-"))
  options <- list(
    target = arg_string(target, "target"), method = arg_string(method, "method"),
    layer = arg_string(layer, "layer", null = TRUE), out = out, overwrite = arg_flag(overwrite, "overwrite"),
    heatmap_size = arg_count(heatmap_size, "heatmap_size"), alpha = arg_number(alpha, "alpha"),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress"),
    allow_unfinished = arg_flag(allow_unfinished, "allow_unfinished")
  )
  result <- if (is.null(images)) {
    engine_call_list(engine()$top_loss_heatmaps, c(list(run_of(fit), arg_count(n, "n")),
                                                   list(split = arg_string(split, "split", null = TRUE)), options))
  } else {
    engine_call_list(engine()$heatmaps, c(list(run_of(fit), arg_images(images, "images")), options))
  }
  as_tibble_engine(result, factors = c("label", "target", "predicted"), levels = fit$classes)
}

#' The layers of a fitted CNN that a heatmap can be read from
#'
#' @param fit A `cnn_fit`.
#' @return A tibble, one row per module with a spatial output before the classifier, in the order they run:
#'   `name`, `type`, `channels`, `height` and `width` of its feature map at the fit's image size, and `default`
#'   (`TRUE` for the layer [cnn_heatmaps()] uses unless told otherwise).
#' @export
cnn_heatmap_layers <- function(fit) {
  if (!inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit from finetune_cnn() or load_cnn()")
  as_tibble_engine(engine_call(engine()$heatmap_layers, run_of(fit)))
}

#' A gallery of heatmap overlays
#'
#' @param heatmaps A tibble from [cnn_heatmaps()].
#' @param n Show at most this many images.
#' @param ... Passed to [image_gallery()] (`ncol`, `size`).
#' @return A ggplot object: each image the model saw with its heatmap on top (red: where the evidence for the
#'   class lies), captioned with its id, the class and the model's probability for it.
#' @export
heatmap_gallery <- function(heatmaps, n = 16L, ...) {
  if (!is.data.frame(heatmaps) || !all(c("overlay", "target") %in% names(heatmaps))) {
    abort_argument("`heatmaps` must be a tibble from cnn_heatmaps()")
  }
  shown <- heatmaps[!is.na(heatmaps$overlay), ]
  if (!nrow(shown)) return(empty_plot("No heatmaps (every image was unreadable)"))
  truth <- if ("label" %in% names(shown)) ifelse(is.na(shown$label), "", sprintf("\ntrue: %s", shown$label)) else ""
  captions <- sprintf("%s%s\n%s: %.2f", short_id(shown$image_id), truth, shown$target, shown$probability)
  gallery <- data.frame(image_id = shown$image_id, path = shown$overlay, caption = captions, stringsAsFactors = FALSE)
  image_gallery(gallery, caption = "caption", n = n, ...) +
    ggplot2::labs(title = wrap_text(sprintf("Where the model looks (%s, layer %s)", shown$method[[1]], shown$layer[[1]]), 60L),
                  subtitle = "heatmap: evidence for the class named under each image")
}
