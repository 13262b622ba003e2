# Text in images (the book's section 1.2: memes, screenshots, covers) as data for text-as-data tools. Mirrors
# python/imagesasdata/prepare/ocr.py (Tesseract, offline).

#' Read the text in images
#'
#' Tesseract 5 (the system's `tesseract-ocr`, with a language pack per language: Debian's
#' `tesseract-ocr-<code>`) reads each image on this machine. `ocr_text()` gives one row per image, its text in
#' reading order (lines joined by newlines), ready for quanteda or tidytext; `ocr_words()` one row per word with
#' its confidence and box. Stylised meme fonts (white letters, black outline, straight on a photo) are read
#' poorly; `readings = c("original", "bright")` helps somewhat (see the README).
#'
#' @param images A folder, image paths (a character vector), a CSV/Parquet file or a data frame with a path
#'   column (and, for `language_column`, that column).
#' @param languages Tesseract language codes for every image: `"eng"`, `"deu"`, `c("eng", "deu")`. A pack that is
#'   not installed is an error saying how to install it; see [ocr_languages()].
#' @param language_column A column of `images` giving each image's languages instead; an image whose pack is
#'   missing becomes a row with that error and the others are read.
#' @param layout `"auto"` (blocks and lines: captions, screenshots, covers), `"sparse"` (scattered text, more
#'   nonsense from photos), `"block"`, `"line"` or `"word"`.
#' @param readings One or more of `"original"`, `"inverted"` and `"bright"` (near-white pixels only: meme
#'   letters); their words are merged. Each costs one Tesseract call.
#' @param min_side Enlarge images whose shorter side is below this many pixels (at most 3x; 0: never).
#' @param min_confidence Drop words below this confidence (0-100): photos' textures read as nonsense words.
#' @param timeout Seconds allowed per image.
#' @param progress Show a progress bar (default: only in an interactive session).
#' @return `ocr_text()`: a tibble, one row per image: `image_id`, `path`, `languages`, `text` (`NA` when nothing was
#'   read), `words`, `mean_confidence`, `error`. `ocr_words()`: one row per word: `image_id`, `path`, `languages`,
#'   `word_id`, `line`, `word`, `confidence`, `left`, `top`, `width`, `height` (pixels), `reading`, `error`.
#' @export
#' @examplesIf engine_available() && nzchar(Sys.which("tesseract"))
#' \donttest{
#' text <- ocr_text(file.path(sample_data(), "new_images"), progress = FALSE)
#' }
ocr_text <- function(images, languages = "eng", language_column = NULL, layout = "auto", readings = "original",
                     min_side = 0L, min_confidence = 50, timeout = 120, progress = interactive()) {
  as_tibble_engine(engine_call_list(engine()$ocr_text, ocr_arguments(
    images, languages, language_column, layout, readings, min_side, min_confidence, timeout, progress)))
}

#' @rdname ocr_text
#' @export
ocr_words <- function(images, languages = "eng", language_column = NULL, layout = "auto", readings = "original",
                      min_side = 0L, min_confidence = 50, timeout = 120, progress = interactive()) {
  as_tibble_engine(engine_call_list(engine()$ocr_words, ocr_arguments(
    images, languages, language_column, layout, readings, min_side, min_confidence, timeout, progress)))
}

ocr_arguments <- function(images, languages, language_column, layout, readings, min_side, min_confidence, timeout,
                          progress) {
  if (!is.character(languages) || !length(languages) || anyNA(languages)) {
    abort_argument("`languages` must be Tesseract language codes, e.g. \"eng\" or c(\"eng\", \"deu\")")
  }
  list(arg_images(images, "images"), languages = paste(languages, collapse = "+"),
       language_column = arg_string(language_column, "language_column", null = TRUE),
       layout = arg_string(layout, "layout"), readings = as.list(arg_strings(readings, "readings")),
       min_side = arg_count(min_side, "min_side"), min_confidence = arg_number(min_confidence, "min_confidence"),
       timeout = arg_number(timeout, "timeout"), progress = arg_flag(progress, "progress"))
}

#' The Tesseract language packs installed here
#'
#' @return A character vector of language codes (e.g. `"deu"`, `"eng"`, `"osd"`).
#' @export
ocr_languages <- function() {
  as.character(unlist(py_value(engine_call(engine()$ocr_languages))))
}
