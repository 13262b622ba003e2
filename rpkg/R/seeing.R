# How a computer sees an image (the book's section 3): an image as numbers, a small network's arithmetic, activation
# functions, convolution and pooling worked cell by cell, and a real photo through a network's first convolution.
# The arithmetic is the engine's (imagesasdata/teach/seeing.py, infer/feature_maps.py); R converts and prints.

# An R vector, matrix or array as nested Python lists (first index outermost), as the engine's numpy reads them.
nested_list <- function(x, name) {
  if (!is.numeric(x) && !is.logical(x)) abort_argument(sprintf("`%s` must be numbers, not %s", name, describe_value(x)))
  if (anyNA(x)) abort_argument(sprintf("`%s` must not contain NA", name))
  dims <- dim(x)
  if (length(dims) <= 1) return(as.list(as.numeric(x)))
  rest <- dims[-1]
  lapply(seq_len(dims[[1]]), function(i) {
    slice <- x[seq(i, length(x), by = dims[[1]])]
    nested_list(if (length(rest) > 1) array(slice, dim = rest) else slice, name)
  })
}

#' An image as numbers: a height x width x 3 array
#'
#' What a network starts from (the book's section 3): every pixel is three integers from 0 to 255, the intensity of
#' red, green and blue. `image_array()` reads any image the engine reads (JPEG, PNG, PGM, ...) into an R array with
#' dimensions height, width and 3.
#'
#' @param image An image file.
#' @param size Shrink the image so that its longer side is at most this many pixels (keeps the numbers
#'   printable); `NULL` keeps every pixel.
#' @return An integer array, `dim = c(height, width, 3)`; `[, , 1]` is red, `[, , 2]` green, `[, , 3]` blue.
#' @export
#' @examplesIf engine_available()
#' face <- image_array(file.path(sample_data(), "faces", "s1", "1.png"), size = 12)
#' dim(face)
#' face[1:3, 1:4, 1]   # the red intensities of the top-left corner
image_array <- function(image, size = NULL) {
  pixels <- as_tibble_engine(engine_call(engine()$pixel_table, path.expand(arg_string(image, "image")),
                                         size = arg_count(size, "size", null = TRUE)))
  out <- array(0L, dim = c(max(pixels$row), max(pixels$col), 3L))
  index <- cbind(pixels$row, pixels$col)
  out[cbind(index, 1L)] <- as.integer(pixels$red)
  out[cbind(index, 2L)] <- as.integer(pixels$green)
  out[cbind(index, 3L)] <- as.integer(pixels$blue)
  out
}

#' A small network's arithmetic, unit by unit (the book's Figure 3.2)
#'
#' Forward propagation written out: each unit multiplies its inputs by its weights, adds its bias (the sum the book
#' calls Z) and passes the sum through its activation function; the outputs of one layer are the inputs of the
#' next. Type in a figure's numbers to check them.
#'
#' @param inputs The input values.
#' @param layers A list of layers, each a list with `weights` (a matrix: one row per unit, one column per input),
#'   `bias` (one per unit; default 0) and `activation` (`"relu"`, `"sigmoid"`, `"tanh"` or `"identity"`; default
#'   `"relu"`).
#' @return A tibble, one row per unit: `layer`, `unit`, `z` (weighted sum plus bias), `output` (after the
#'   activation), `activation` and `working` (the sum written out).
#' @export
#' @examplesIf engine_available()
#' network_arithmetic(c(1, 2), list(
#'   list(weights = rbind(c(0.2, 0.8), c(-0.5, 1)), bias = c(0.1, 0), activation = "relu"),
#'   list(weights = rbind(c(1.5, -0.7)), bias = 0.2, activation = "sigmoid")))
network_arithmetic <- function(inputs, layers) {
  if (!is.list(layers) || !length(layers)) {
    abort_argument("`layers` must be a list of layers, e.g. list(list(weights = rbind(c(0.2, 0.8)), bias = 0.1))")
  }
  spec <- lapply(seq_along(layers), function(k) {
    layer <- layers[[k]]
    if (!is.list(layer) || is.null(layer$weights)) {
      abort_argument(sprintf("`layers[[%d]]` must be a list with `weights` (one row per unit), `bias` and `activation`", k))
    }
    weights <- layer$weights
    if (is.null(dim(weights))) weights <- matrix(weights, nrow = 1)
    list(weights = nested_list(weights, sprintf("layers[[%d]]$weights", k)),
         bias = nested_list(layer$bias %||% 0, sprintf("layers[[%d]]$bias", k)),
         activation = arg_string(layer$activation %||% "relu", sprintf("layers[[%d]]$activation", k)))
  })
  as_tibble_engine(engine_call(engine()$network_arithmetic, nested_list(inputs, "inputs"), spec))
}

#' Activation functions (the book's Figure 3.3)
#'
#' @param z The inputs (default: -4 to 4 in steps of 0.1).
#' @param activations Any of `"relu"`, `"sigmoid"`, `"tanh"` and `"identity"`.
#' @return A tibble of class `activation_curves`: `activation`, `z`, `output`; `autoplot()` draws the curves.
#' @export
#' @examplesIf engine_available()
#' curves <- activation_table()
#' autoplot(curves)
activation_table <- function(z = NULL, activations = c("relu", "sigmoid", "tanh")) {
  if (!is.character(activations) || !length(activations)) abort_argument("`activations` must name activation functions")
  table <- as_tibble_engine(engine_call(engine()$activation_table, if (is.null(z)) NULL else nested_list(z, "z"),
                                        as.list(activations)))
  class(table) <- c("activation_curves", class(table))
  table
}

#' @rdname activation_table
#' @param object An `activation_curves` table.
#' @param ... Must be empty.
#' @method autoplot activation_curves
#' @export
autoplot.activation_curves <- function(object, ...) {
  check_dots(...)
  ggplot2::ggplot(as.data.frame(object), ggplot2::aes(x = .data$z, y = .data$output)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey80") +
    ggplot2::geom_vline(xintercept = 0, colour = "grey80") +
    ggplot2::geom_line(colour = "steelblue", linewidth = 0.9) +
    ggplot2::facet_wrap(ggplot2::vars(.data$activation), scales = "free_y") +
    ggplot2::labs(x = "z (weighted sum plus bias)", y = "activation", title = "Activation functions") +
    ggplot2::theme_minimal()
}

#' Convolution worked cell by cell (the book's Figures 3.4 and 3.6)
#'
#' Slides each filter over the input: every output cell is the sum of the elementwise products of the filter and
#' the window under it, plus the bias. As in every CNN library, the filter is not flipped.
#'
#' @param input A matrix (one channel) or an array `height x width x channels` (e.g. [image_array()]).
#' @param filters One filter (a matrix, or an array `h x w x channels`), or a list of them.
#' @param bias One bias per filter.
#' @param stride Pixels the filter moves each step.
#' @param padding Rows and columns of zeros added around the input first.
#' @return A `convolution`: `output` (a matrix for one filter, an array `height x width x filters` for several)
#'   and `steps` (a tibble: `filter`, `row`, `col` -- counting from 1, as the book's Z11 -- `z` and `working`,
#'   every product written out).
#' @export
#' @examplesIf engine_available()
#' convolution(matrix(1:4, nrow = 1), matrix(c(0.5, -1), nrow = 1))
convolution <- function(input, filters, bias = 0, stride = 1L, padding = 0L) {
  several <- is.list(filters) && !is.data.frame(filters)
  stack <- if (several) lapply(seq_along(filters), function(k) nested_list(filters[[k]], sprintf("filters[[%d]]", k)))
           else nested_list(filters, "filters")
  steps <- as_tibble_engine(engine_call(engine()$convolution_steps, nested_list(input, "input"), stack,
                                        bias = nested_list(bias, "bias"), stride = arg_count(stride, "stride"),
                                        padding = arg_count(padding, "padding")))
  k <- max(steps$filter)
  output <- array(NA_real_, dim = c(max(steps$row), max(steps$col), k))
  output[cbind(steps$row, steps$col, steps$filter)] <- steps$z
  if (k == 1) output <- matrix(output[, , 1], nrow = dim(output)[1])
  structure(list(output = output, steps = steps), class = "convolution")
}

#' @export
print.convolution <- function(x, ...) {
  dims <- dim(x$output)
  cat(sprintf("<convolution> output %s\n", paste(dims, collapse = " x ")))
  print(x$output)
  cat(sprintf("Z11 = %s\n", x$steps$working[[1]]))
  invisible(x)
}

#' Max pooling worked window by window (the book's Figure 3.7)
#'
#' @param input A matrix.
#' @param size The side of each window.
#' @param stride How far the window moves (default: `size`, windows that do not overlap).
#' @return A `pooling`: `output` (a matrix) and `steps` (a tibble: `row`, `col`, `window` -- its values, row by
#'   row -- and `output`, their maximum).
#' @export
#' @examplesIf engine_available()
#' max_pooling(rbind(c(1, 3, 2, 4), c(5, 6, 7, 8), c(3, 2, 1, 0), c(1, 2, 3, 4)))
max_pooling <- function(input, size = 2L, stride = NULL) {
  if (!is.matrix(input)) abort_argument(sprintf("`input` must be a matrix, not %s", describe_value(input)))
  steps <- as_tibble_engine(engine_call(engine()$pooling_steps, nested_list(input, "input"),
                                        size = arg_count(size, "size"), stride = arg_count(stride, "stride", null = TRUE)))
  output <- matrix(NA_real_, nrow = max(steps$row), ncol = max(steps$col))
  output[cbind(steps$row, steps$col)] <- steps$output
  structure(list(output = output, steps = steps), class = "pooling")
}

#' @export
print.pooling <- function(x, ...) {
  cat(sprintf("<pooling> output %s\n", paste(dim(x$output), collapse = " x ")))
  print(x$output)
  invisible(x)
}

#' A photo through a network's first convolution layer: its feature maps as images
#'
#' The last step of the book's section 3, done by a real network: the photo is prepared as the network sees it in
#' evaluation, and each filter of the first convolution layer gives one map of how strongly it responds where.
#' The maps are drawn on a contact sheet (the evaluation view first, then one map per filter, each from its own
#' minimum, black, to its maximum, white).
#'
#' @param image An image file.
#' @param fit A `cnn_fit` (its network and preprocessing), or `NULL` for the offline ImageNet
#'   EfficientNet-Lite0.
#' @param n How many maps to draw on the sheet.
#' @param out The sheet, a `.png` file (default: a file in R's session temporary directory).
#' @return A `feature_maps` object: `layer` (its name), `filter_shape` (filters x channels x height x width),
#'   `maps` (a tibble, one row per map: `map`, `height`, `width`, `mean`, `min`, `max`) and `sheet` (the PNG's
#'   path; `knitr::include_graphics(x$sheet)` shows it in a report).
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' maps <- feature_maps(file.path(sample_data(), "faces", "s1", "1.png"), n = 8)
#' maps
#' }
feature_maps <- function(image, fit = NULL, n = 16L, out = NULL) {
  run <- if (is.null(fit)) NULL else if (inherits(fit, "cnn_fit")) fit$path else
    abort_argument(sprintf("`fit` must be a cnn_fit or NULL, not %s", describe_value(fit)))
  out <- path.expand(arg_string(out %||% tempfile("feature-maps-", fileext = ".png"), "out"))
  result <- engine_call(engine()$feature_maps, path.expand(arg_string(image, "image")), run, n = arg_count(n, "n"),
                        out = out)
  structure(list(layer = as.character(py_value(result$layer)),
                 filter_shape = as.integer(unlist(py_value(result$filter_shape))),
                 maps = as_tibble_engine(result$table), sheet = out), class = "feature_maps")
}

#' @export
print.feature_maps <- function(x, ...) {
  cat(sprintf("<feature_maps> %s: %d filters of %s, %d maps of %d x %d\n", x$layer, x$filter_shape[[1]],
              paste(x$filter_shape[-1], collapse = " x "), nrow(x$maps), x$maps$height[[1]], x$maps$width[[1]]))
  cat(sprintf("  sheet: %s\n", x$sheet))
  invisible(x)
}
