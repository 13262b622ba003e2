# A sensitive-content prescreen (the book's section 8.3): moderation labels offline or from Rekognition, flags, a
# contact sheet with flagged images blurred, and a coding sheet that hides them. Nothing is deleted. Mirrors
# python/imagesasdata/autotag/moderation.py and prepare/screening.py.

#' Moderation labels: sexual content and violence, offline or from Rekognition
#'
#' `moderation_local()` runs on this machine (nothing is sent anywhere): NudeNet, a detector of exposed
#' (category "Explicit Nudity") and covered ("Suggestive") intimate body parts whose model ships in its package,
#' and the ImageNet weapon categories of the offline EfficientNet-Lite0 (category "Violence", parent "Weapons"): a
#' proxy that finds guns and blades, not blood, injuries or fights. `rekognition_moderation()` asks Amazon
#' Rekognition's DetectModerationLabels, with the response cache, claims and dry run of [rekognition_labels()]:
#' an image is never paid for twice.
#'
#' @param images A folder, image paths (a character vector), a CSV/Parquet file or a data frame with a path
#'   column.
#' @param min_confidence Labels below this confidence (0-100) are dropped (50: Rekognition's default).
#' @param detectors `"nudity"`, `"weapons"` or both.
#' @param batch_size,device,num_workers As in [autotag_local()].
#' @param progress Show a progress bar (default: only in an interactive session).
#' @return A tibble, one row per image x label: `image_id`, `path`, `image_sha256`, `tagger`, `label`,
#'   `confidence` (0-100), `category` (the top-level label), `parent`, `taxonomy_level`, `box` (a data-frame
#'   column, pixels, for NudeNet's detections), `moderation_model_version`, `error`. An image with nothing found
#'   is one row with `NA` label. Pass it to [screen_images()].
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' tags <- moderation_local(file.path(sample_data(), "new_images"), progress = FALSE)
#' screen_images(tags)
#' }
moderation_local <- function(images, min_confidence = 50, detectors = c("nudity", "weapons"), batch_size = 32L,
                             device = "auto", num_workers = NULL, progress = interactive()) {
  result <- engine_call(
    engine()$moderation_local, arg_images(images, "images"), min_confidence = arg_number(min_confidence, "min_confidence"),
    detectors = as.list(arg_strings(detectors, "detectors")), batch_size = arg_count(batch_size, "batch_size"),
    device = arg_string(device, "device"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    progress = arg_flag(progress, "progress")
  )
  as_tibble_engine(result)
}

#' @rdname moderation_local
#' @inheritParams rekognition_labels
#' @export
rekognition_moderation <- function(images, min_confidence = 50, cache = NULL, region = NULL, endpoint_url = NULL,
                                   profile = NULL, concurrency = 4L, max_attempts = 10L, dry_run = FALSE,
                                   price_per_1000 = 1, progress = interactive(), resend_in_flight = TRUE) {
  tag_call(engine()$rekognition_moderation, images, dry_run, c(
    list(min_confidence = arg_number(min_confidence, "min_confidence")),
    aws_options(cache, region, endpoint_url, profile, concurrency, max_attempts, price_per_1000, progress,
                resend_in_flight)
  ))
}

#' Which images to hold back from annotators
#'
#' An image is flagged when one of its moderation labels reaches `min_confidence` (in `categories`, when given);
#' an image that could not be screened is flagged too, with its error as the reason. Nothing is deleted or moved.
#'
#' @param moderation The result of [moderation_local()] or [rekognition_moderation()] (or both, row-bound).
#' @param min_confidence A label at or above this confidence (0-100) flags its image.
#' @param categories Flag only for these top-level categories (e.g. `c("Explicit Nudity", "Violence")`); `NULL`:
#'   any.
#' @return A tibble of class `image_screen`, one row per image: `image_id`, `path`, `flagged`, `reasons` (a list
#'   column: "category: label (confidence%)"), `max_confidence`, `error`. `autoplot()` draws the contact sheet of
#'   [screening_sheet()].
#' @export
screen_images <- function(moderation, min_confidence = 50, categories = NULL) {
  if (!is.data.frame(moderation)) abort_argument("`moderation` must be the result of moderation_local() or rekognition_moderation()")
  result <- engine_call(engine()$screen_images, engine_table(atomic_columns(moderation)),
                        min_confidence = arg_number(min_confidence, "min_confidence"),
                        categories = if (is.null(categories)) NULL else as.list(arg_strings(categories, "categories")))
  screen <- as_tibble_engine(result)
  class(screen) <- c("image_screen", class(screen))
  screen
}

#' A contact sheet on which flagged images are blurred
#'
#' Every image a thumbnail; flagged ones blurred beyond recognition (colours and rough shapes only), framed in
#' red and captioned with their first reason, so that a person can check the flags without seeing what they flag.
#'
#' @param screen The result of [screen_images()].
#' @param out Save the sheet to this `.png` or `.jpg` file (`NULL`: a temporary file).
#' @param blur The blur's radius as a share of a thumbnail's side.
#' @param blur_all Blur every image, not only the flagged ones.
#' @param thumb_size Side of each thumbnail in pixels.
#' @param columns Thumbnails per row.
#' @return The file's path, invisibly.
#' @export
screening_sheet <- function(screen, out = NULL, blur = 0.12, blur_all = FALSE, thumb_size = 128L, columns = 8L) {
  out <- if (is.null(out)) tempfile("screening", fileext = ".png") else path.expand(arg_string(out, "out"))
  engine_call(engine()$screening_sheet, screen_table(screen), out, blur = arg_number(blur, "blur"),
              blur_all = arg_flag(blur_all, "blur_all"), thumb_size = arg_count(thumb_size, "thumb_size"),
              columns = arg_count(columns, "columns"))
  invisible(out)
}

#' The sheet annotators fill in, without the flagged images
#'
#' @param screen The result of [screen_images()].
#' @param out Also write the sheet to this `.csv` or `.parquet` file.
#' @param variables Names of the columns coders fill in.
#' @param show_flagged Keep flagged images, with a `flagged` column and a `warning` (their reasons).
#' @return A tibble: `image_id`, `path`, (`flagged`, `warning`,) and an empty column per variable. Flagged images
#'   are only left out of the sheet: no file is deleted or moved.
#' @export
coding_sheet <- function(screen, out = NULL, variables = "label", show_flagged = FALSE) {
  result <- engine_call(engine()$coding_sheet, screen_table(screen),
                        if (is.null(out)) NULL else path.expand(arg_string(out, "out")),
                        variables = as.list(arg_strings(variables, "variables")),
                        show_flagged = arg_flag(show_flagged, "show_flagged"))
  as_tibble_engine(result)
}

# A screen for the engine: the reasons list column travels as one string per image.
screen_table <- function(screen) {
  if (!is.data.frame(screen) || !all(c("image_id", "path", "flagged") %in% names(screen))) {
    abort_argument("`screen` must be the result of screen_images()")
  }
  table <- atomic_columns(screen)
  if ("reasons" %in% names(screen)) table$reasons_text <- vapply(screen$reasons, function(r) paste(r, collapse = "; "), "")
  engine_table(table)
}

#' @export
#' @rdname screen_images
#' @param object For `autoplot()`: the result of [screen_images()].
#' @param ... Passed to [screening_sheet()].
autoplot.image_screen <- function(object, ...) {
  sheet <- screening_sheet(object, ...)
  pixels <- as_tibble_engine(engine_call(bridge()$thumbnails, list(sheet), max_side = 4000L))
  ggplot2::ggplot(pixels, ggplot2::aes(x = .data$x, y = .data$y, fill = .data$colour)) +
    ggplot2::geom_raster() +
    ggplot2::scale_fill_identity() +
    ggplot2::scale_y_reverse() +
    ggplot2::coord_fixed() +
    ggplot2::theme_void() + text_spans_plot()
}
