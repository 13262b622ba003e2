# Image embeddings and what to do with them: maps (PCA, UMAP) with thumbnails, k-means clusters with a contact
# sheet each, nearest neighbours. Mirrors python/imagesasdata/infer/embeddings.py and explore/.

#' Image embeddings: what the network sees, as numbers
#'
#' The penultimate-layer features of each image (the input of the classifier), from a fitted CNN or, before
#' anything is labelled, from the offline ImageNet network: the book's exploratory use of images (section 1.2).
#' Computed in batches by the same forward pass as [predict.cnn_fit()]; with `cache`, each file's vector is kept
#' by its content hash and never computed twice.
#'
#' @param images A folder, image paths, a CSV/Parquet file or a data frame with a `path` column.
#' @param fit A `cnn_fit` (its network and preprocessing), or `NULL` for the ImageNet network `architecture`.
#' @param architecture,image_size Without `fit`: the ImageNet network (default `efficientnet_lite0`, whose weights
#'   install with the engine) and the image size (the book's resize 256 / crop 224 scaled to it); or a CLIP model,
#'   `"open_clip/ViT-B-32"`: its normalised image embedding, with CLIP's own preprocessing (the space in which
#'   [zero_shot_labels()] compares images with sentences).
#' @param weights For a CLIP `architecture`: an open_clip pretrained tag (`NULL`: `"openai"`) or a `.safetensors`
#'   file.
#' @param cache A folder keeping the vectors by file hash and model, reused by later calls.
#' @param shape `"list"`: one row per image with an `embedding` list column; `"wide"`: one numeric column per
#'   dimension (`dim_0001`, ...), readable images only.
#' @param batch_size,device,num_workers,progress As in [predict.cnn_fit()].
#' @return A tibble: `image_id`, `path`, `sha256`, `embedding` (a list of numeric vectors of equal length), `cached`
#'   and `error` (an unreadable image has no embedding); or, with `shape = "wide"`, `image_id`, `path` and the
#'   dimensions. [embedding_map()], [embedding_clusters()] and [nearest_images()] take either shape.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' faces <- image_embeddings(file.path(sample_data(), "faces"), image_size = 128)
#' autoplot(embedding_map(faces))
#' }
image_embeddings <- function(images, fit = NULL, architecture = "efficientnet_lite0", image_size = 224L, cache = NULL,
                             shape = c("list", "wide"), batch_size = 32L, device = "auto", num_workers = NULL,
                             progress = interactive(), weights = NULL) {
  shape <- match.arg(shape)
  if (!is.null(fit) && !inherits(fit, "cnn_fit")) abort_argument("`fit` must be a cnn_fit or NULL")
  result <- engine_call(
    engine()$image_embeddings, arg_images(images, "images"), if (is.null(fit)) NULL else run_of(fit),
    architecture = arg_string(architecture, "architecture"), image_size = arg_count(image_size, "image_size"),
    cache = if (is.null(cache)) NULL else path.expand(arg_string(cache, "cache")),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress"),
    weights = if (is.null(weights)) NULL else path_or_tag(arg_string(weights, "weights"))
  )
  embeddings <- as_tibble_engine(result)
  if (shape == "list") return(embeddings)
  unreadable <- !is.na(embeddings$error)
  if (any(unreadable)) {
    warning(sprintf("%d unreadable image(s) have no embedding and are left out of the wide table", sum(unreadable)),
            call. = FALSE)
  }
  wide_embeddings(embeddings[!unreadable, ])
}

# Embeddings as the engine reads them from R: image_id, path and one numeric column per dimension (the bridge
# carries plain columns; a list column of vectors becomes dim_0001, ...). Rows without a vector stay, as NA, so
# the engine can name them.
wide_embeddings <- function(embeddings) {
  if (!is.data.frame(embeddings) || !"image_id" %in% names(embeddings)) {
    abort_argument("`embeddings` must be a data frame from image_embeddings()")
  }
  if (!"embedding" %in% names(embeddings)) {
    keep <- c("image_id", intersect("path", names(embeddings)), grep("^dim_", names(embeddings), value = TRUE))
    return(tibble::as_tibble(embeddings[keep]))
  }
  vectors <- embeddings$embedding
  width <- max(c(0L, lengths(vectors)))
  matrix <- t(vapply(vectors, function(v) if (length(v) == width) as.double(v) else rep(NA_real_, width),
                     numeric(width)))
  if (width == 1) matrix <- t(matrix)
  colnames(matrix) <- sprintf(paste0("dim_%0", max(4L, nchar(width)), "d"), seq_len(width))
  out <- tibble::tibble(image_id = as.character(embeddings$image_id))
  if ("path" %in% names(embeddings)) out$path <- as.character(embeddings$path)
  tibble::as_tibble(c(as.list(out), as.data.frame(matrix)))
}

#' A 2-D map of images from their embeddings
#'
#' @param embeddings A tibble from [image_embeddings()] (either shape).
#' @param method `"pca"` (the two directions of largest variance; needs nothing more) or `"umap"` (keeps
#'   neighbourhoods; needs the Python package umap-learn).
#' @param seed,n_neighbors,min_dist UMAP's seed and options.
#' @return A tibble of class `embedding_map`: `image_id`, `path`, `x`, `y`, `method`. `autoplot()` draws it with
#'   thumbnails; join your own columns by `image_id` to colour the points.
#' @export
embedding_map <- function(embeddings, method = c("pca", "umap"), seed = 0L, n_neighbors = 15L, min_dist = 0.1) {
  method <- match.arg(method)
  result <- engine_call(engine()$embedding_map, engine_table(wide_embeddings(embeddings)), method,
                        seed = arg_count(seed, "seed"), n_neighbors = arg_count(n_neighbors, "n_neighbors"),
                        min_dist = arg_number(min_dist, "min_dist"))
  out <- as_tibble_engine(result)
  class(out) <- c("embedding_map", class(out))
  out
}

#' @rdname embedding_map
#' @param object An `embedding_map`.
#' @param colour A column of `object` to colour the points by (e.g. a cluster or a label you joined).
#' @param thumbnails Draw a thumbnail of each image at its point (the first `n` images).
#' @param n Most thumbnails drawn.
#' @param thumb_size Thumbnail size as a share of the map's width.
#' @param ... Not used.
#' @method autoplot embedding_map
#' @export
autoplot.embedding_map <- function(object, colour = NULL, thumbnails = TRUE, n = 100L, thumb_size = 0.06, ...) {
  aesthetics <- ggplot2::aes(x = .data$x, y = .data$y)
  # coloured by the label when the map has one and no other column is asked for
  if (is.null(colour) && "label" %in% names(object) && any(!is.na(object$label))) colour <- "label"
  if (!is.null(colour)) {
    if (!arg_string(colour, "colour") %in% names(object)) abort_argument(sprintf("no column `%s` in the map", colour))
    aesthetics$colour <- rlang::quo(factor(.data[[colour]]))
  }
  plot <- ggplot2::ggplot(object, aesthetics) +
    ggplot2::geom_point(alpha = 0.6) +
    ggplot2::labs(x = sprintf("%s 1", toupper(object$method[[1]])), y = sprintf("%s 2", toupper(object$method[[1]])),
                  colour = colour,
                  title = sprintf("Images mapped by their embeddings (%s)", toupper(object$method[[1]]))) +
    ggplot2::theme_minimal() + text_spans_plot()
  if (!arg_flag(thumbnails, "thumbnails") || !nrow(object)) return(plot)
  shown <- utils::head(object[!is.na(object$path), ], arg_count(n, "n"))
  pixels <- as_tibble_engine(engine_call(bridge()$thumbnails, as.list(as.character(shown$path)), max_side = 48L))
  half <- arg_number(thumb_size, "thumb_size") * diff(range(object$x)) / 2
  half_y <- arg_number(thumb_size, "thumb_size") * diff(range(object$y)) / 2
  for (i in unique(pixels$image[is.na(pixels$error)])) {
    one <- pixels[pixels$image == i, ]
    raster <- matrix(one$colour[order(one$y, one$x)], nrow = max(one$y), ncol = max(one$x), byrow = TRUE)
    plot <- plot + ggplot2::annotation_raster(grDevices::as.raster(raster), xmin = shown$x[[i]] - half,
                                              xmax = shown$x[[i]] + half, ymin = shown$y[[i]] - half_y,
                                              ymax = shown$y[[i]] + half_y)
  }
  plot
}

#' Clusters of images (k-means on their embeddings)
#'
#' @param embeddings A tibble from [image_embeddings()] (either shape).
#' @param k Number of clusters.
#' @param seed k-means seed.
#' @return A tibble: `image_id`, `path`, `cluster` (1 = the largest), `cluster_size`, `distance` (to the cluster's
#'   centre) and `rank` (1 = the image nearest the centre, the cluster's most typical image), sorted by cluster
#'   and rank. [cluster_sheets()] draws one contact sheet per cluster; [image_gallery()] shows one cluster.
#' @export
embedding_clusters <- function(embeddings, k, seed = 0L) {
  as_tibble_engine(engine_call(engine()$embedding_clusters, engine_table(wide_embeddings(embeddings)),
                               arg_count(k, "k"), seed = arg_count(seed, "seed")))
}

#' A contact sheet per cluster
#'
#' @param clusters A tibble from [embedding_clusters()].
#' @param out A new folder for the sheets (`cluster-01.png`, ...).
#' @param per_cluster Most images per sheet, nearest the centre first.
#' @param overwrite Replace sheets already in `out`.
#' @return A tibble: `cluster`, `cluster_size`, `shown`, `sheet` (the PNG's path).
#' @export
cluster_sheets <- function(clusters, out, per_cluster = 24L, overwrite = FALSE) {
  if (!is.data.frame(clusters)) abort_argument("`clusters` must be a tibble from embedding_clusters()")
  as_tibble_engine(engine_call(engine()$cluster_sheets, engine_table(clusters), path.expand(arg_string(out, "out")),
                               per_cluster = arg_count(per_cluster, "per_cluster"),
                               overwrite = arg_flag(overwrite, "overwrite")))
}

#' The most similar images
#'
#' @param embeddings A tibble from [image_embeddings()] (either shape).
#' @param images Image ids to find neighbours of (`NULL`: every image).
#' @param k Neighbours per image.
#' @return A tibble: `image_id`, `neighbour_id`, `neighbour_path`, `rank` (1 = most similar) and `similarity`
#'   (cosine, -1 to 1).
#' @export
nearest_images <- function(embeddings, images = NULL, k = 5L) {
  as_tibble_engine(engine_call(engine()$nearest_images, engine_table(wide_embeddings(embeddings)),
                               arg_strings(images, "images", null = TRUE), k = arg_count(k, "k")))
}
