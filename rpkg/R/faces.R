# Faces as data (the book's sections 1.1.2 and 7.8): find faces, crop and align them, train on crops, and ask a
# fitted model about every face. Mirrors python/imagesasdata/infer/faces.py (MTCNN, offline).

#' Find the faces in images
#'
#' MTCNN (the detector of facenet-pytorch, whose weights install with it; nothing is downloaded) finds each face
#' with its box, a score and five landmarks (eyes, nose, mouth corners). It misses faces under about
#' `min_face_size` pixels, strong profiles and covered faces; see the README.
#'
#' @param images A folder, image paths (a character vector), a CSV/Parquet file or a data frame with a path
#'   column.
#' @param min_face_size The smallest face searched for, in pixels (smaller: slower, more faces in crowds, and
#'   more false ones).
#' @param threshold The detector's score (0-1) a face needs.
#' @param device `"auto"` (a GPU when there is one), `"cpu"`, `"cuda"`, ...
#' @param progress Show a progress bar (default: only in an interactive session).
#' @return A tibble of class `image_faces`, one row per face: `image_id`, `path`, `face_id` (1 = most confident),
#'   `left`, `top`, `width`, `height` (pixels), `score`, `landmarks` (a list column of data frames: `name`, `x`,
#'   `y`), `image_width`, `image_height`, `detector`, `error`. An image without a face is one row with `NA`
#'   `face_id`; an unreadable one a row with its `error`. `autoplot()` draws the faces boxed on the images.
#' @seealso [face_counts()], [face_crops()], [classify_faces()]
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' faces <- detect_faces(file.path(sample_data(), "new_images"), progress = FALSE)
#' face_counts(faces)
#' autoplot(faces, n = 4)
#' }
detect_faces <- function(images, min_face_size = 20L, threshold = 0.9, device = "auto", progress = interactive()) {
  result <- engine_call(
    engine()$detect_faces, arg_images(images, "images"), min_face_size = arg_count(min_face_size, "min_face_size"),
    threshold = arg_number(threshold, "threshold"), device = arg_string(device, "device"),
    progress = arg_flag(progress, "progress")
  )
  faces <- as_tibble_engine(result)
  class(faces) <- c("image_faces", class(faces))
  faces
}

#' Faces per image
#'
#' @param faces The result of [detect_faces()].
#' @return A tibble, one row per image: `image_id`, `path`, `faces` (0 when none was found, `NA` when the image
#'   could not be read) and `error`.
#' @export
face_counts <- function(faces) {
  if (!is.data.frame(faces)) abort_argument("`faces` must be the result of detect_faces()")
  as_tibble_engine(engine_call(engine()$face_counts, engine_table(atomic_columns(faces))))
}

#' Crop and align faces into files: training data made of faces
#'
#' Each face is rotated so that its eyes are level, cropped with a margin and written as a PNG into a class
#' folder; its image's label and split are kept, so the result goes straight into [finetune_cnn()] (pass
#' `group = "source_image_id"` to keep the faces of one image in one split). Images without a face, and
#' unreadable ones, are listed with the reason in `skipped.parquet` in `out`, and a warning says how many.
#'
#' @inheritParams detect_faces
#' @param out The folder for the crops (it must be new or empty, or `overwrite = TRUE`).
#' @param size Side of each crop in pixels.
#' @param margin Room around the detector's box, as a share of its longer side.
#' @param align Rotate each face so that its eyes are level.
#' @param largest_only One crop per image: its largest face (for labels that describe one person per photo).
#' @param label,path Column names of the labels and paths in a table of images.
#' @param overwrite Replace crops already in `out`.
#' @return A tibble: `image_id` (`<source>#face<k>`), `path` (the crop), `label` (a factor), `split`,
#'   `source_image_id`, `source_path`, `face_id`, `left`, `top`, `width`, `height`, `score`.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' crops <- face_crops(file.path(sample_data(), "faces"), file.path(tempdir(), "crops"), size = 96L,
#'                     largest_only = TRUE, progress = FALSE)
#' fit <- finetune_cnn(crops, group = "source_image_id", epochs = 2, image_size = 64, progress = FALSE)
#' }
face_crops <- function(images, out, size = 160L, margin = 0.2, align = TRUE, largest_only = FALSE,
                       min_face_size = 20L, threshold = 0.9, label = NULL, path = NULL, overwrite = FALSE,
                       device = "auto", progress = interactive()) {
  result <- engine_call(
    engine()$face_crops, arg_images(images, "images"), path.expand(arg_string(out, "out")),
    size = arg_count(size, "size"), margin = arg_number(margin, "margin"), align = arg_flag(align, "align"),
    largest_only = arg_flag(largest_only, "largest_only"), min_face_size = arg_count(min_face_size, "min_face_size"),
    threshold = arg_number(threshold, "threshold"), label = arg_string(label, "label", null = TRUE),
    path = arg_string(path, "path", null = TRUE), overwrite = arg_flag(overwrite, "overwrite"),
    device = arg_string(device, "device"), progress = arg_flag(progress, "progress")
  )
  label_tibble(result, input_levels(images))
}

#' Who is each face: a fitted model on every face, aggregated per image
#'
#' Faces are found, aligned and cropped in memory, and each goes through the fit (ideally one fitted on
#' [face_crops()] made with the same `margin` and `align`).
#'
#' @param object A `cnn_fit` from [finetune_cnn()] or [load_cnn()].
#' @inheritParams detect_faces
#' @inheritParams face_crops
#' @param batch_size Faces per forward pass.
#' @return A `face_classification`: a list of two tibbles. `$images`, one row per image: `image_id`, `path`,
#'   `faces`, then for each class `faces_<class>` (faces predicted as it), `any_<class>` (at least one) and
#'   `all_<class>` (every face; `NA` without a face), and `error`. `$faces`, one row per face: `image_id`,
#'   `path`, `face_id`, the box, `score`, `.pred_class` (a factor) and `.pred_<class>` (as [predict()] names them).
#' @export
classify_faces <- function(object, images, margin = 0.2, align = TRUE, min_face_size = 20L, threshold = 0.9,
                           batch_size = 32L, device = "auto", progress = interactive()) {
  if (!inherits(object, "cnn_fit")) abort_argument("`object` must be a cnn_fit (finetune_cnn(), load_cnn())")
  result <- engine_call(
    engine()$classify_faces, run_of(object), arg_images(images, "images"), margin = arg_number(margin, "margin"),
    align = arg_flag(align, "align"), min_face_size = arg_count(min_face_size, "min_face_size"),
    threshold = arg_number(threshold, "threshold"), batch_size = arg_count(batch_size, "batch_size"),
    device = arg_string(device, "device"), progress = arg_flag(progress, "progress")
  )
  classes <- as.character(py_value(result$classes))
  structure(list(images = as_tibble_engine(result$images),
                 faces = prediction_tibble(result$faces, classes),
                 classes = classes),
            class = "face_classification")
}

#' @export
print.face_classification <- function(x, ...) {
  counts <- x$images$faces
  cat(sprintf("<face_classification> %d faces in %d images (%d without a face, %d unreadable); classes: %s\n",
              sum(counts, na.rm = TRUE), length(counts), sum(counts == 0, na.rm = TRUE), sum(is.na(counts)),
              paste(x$classes, collapse = ", ")))
  invisible(x)
}

# The columns of a data frame that the engine can take (list and data-frame columns dropped).
atomic_columns <- function(x) {
  keep <- vapply(x, function(column) is.atomic(column) && !is.data.frame(column), logical(1))
  as.data.frame(x)[keep]
}

#' @export
#' @rdname detect_faces
#' @param object For `autoplot()`: the result of [detect_faces()].
#' @param n Draw at most this many images (those with the most faces first).
#' @param size Longest side of each drawn image, in pixels.
#' @param ... Must be empty.
autoplot.image_faces <- function(object, n = 4L, size = 400L, ...) {
  check_dots(...)
  n <- arg_count(n, "n")
  size <- arg_count(size, "size")
  readable <- object[is.na(object$error), ]
  if (!nrow(readable)) return(empty_plot("No readable image"))
  found <- table(factor(readable$image_id[!is.na(readable$face_id)], levels = unique(readable$image_id)))
  shown <- utils::head(names(sort(found, decreasing = TRUE)), n)
  paths <- readable$path[match(shown, readable$image_id)]
  pixels <- as_tibble_engine(engine_call(bridge()$thumbnails, as.list(paths), max_side = size))
  pixels <- pixels[is.na(pixels$error), ]
  pixels$image_id <- factor(shown[pixels$image], levels = shown)
  boxes <- readable[readable$image_id %in% shown & !is.na(readable$face_id), ]
  # Thumbnail pixels per original pixel, per image (the thumbnail keeps the aspect ratio).
  drawn <- tapply(pixels$x, pixels$image_id, max)
  scale <- as.numeric(drawn[as.character(boxes$image_id)]) / boxes$image_width
  rects <- data.frame(image_id = factor(boxes$image_id, levels = shown),
                      xmin = boxes$left * scale + 0.5, xmax = (boxes$left + boxes$width) * scale + 0.5,
                      ymin = boxes$top * scale + 0.5, ymax = (boxes$top + boxes$height) * scale + 0.5,
                      face = as.character(boxes$face_id))
  ggplot2::ggplot() +
    ggplot2::geom_raster(data = pixels, ggplot2::aes(x = .data$x, y = .data$y, fill = .data$colour)) +
    ggplot2::scale_fill_identity() +
    ggplot2::geom_rect(data = rects, ggplot2::aes(xmin = .data$xmin, xmax = .data$xmax, ymin = .data$ymin,
                                                  ymax = .data$ymax), colour = "yellow", fill = NA, linewidth = 0.6) +
    ggplot2::geom_text(data = rects, ggplot2::aes(x = .data$xmin, y = .data$ymin, label = .data$face),
                       colour = "yellow", size = 3, hjust = 0, vjust = 1.2) +
    ggplot2::scale_y_reverse() +
    ggplot2::facet_wrap(ggplot2::vars(.data$image_id)) +
    ggplot2::coord_fixed() +
    ggplot2::labs(caption = sprintf("%d faces in %d images (MTCNN)", nrow(boxes), length(shown))) +
    ggplot2::theme_void() + text_spans_plot() +
    ggplot2::theme(strip.text = ggplot2::element_text(size = 8, margin = ggplot2::margin(3, 0, 3, 0)),
                   plot.margin = ggplot2::margin(6, 6, 6, 6))
}
