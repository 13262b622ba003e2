# Preparing a corpus: inventory, duplicates, small files, several annotators, emotion labels (section 7.3) and the
# book's folder layout. Mirrors python/imagesasdata/inventory.py, dedupe.py, filters.py, annotations.py,
# emotions.py and layout.py: each function checks its arguments, calls the engine and returns a tibble.

#' Inventory an image corpus
#'
#' One row per file with its size in bytes and pixels, format, colour mode, SHA-256 and whether it can be read.
#' Only headers are read (on a thread pool), so tens of thousands of files take seconds; `verify = TRUE` decodes
#' every image to find truncated files. An unreadable or missing file is a row with `readable = FALSE` and the
#' reason in `error`; it never stops the inventory.
#'
#' @param source The images: a folder (of class folders, the book's layout or plain files), a CSV/Parquet file,
#'   a data frame with a path column, or a character vector of image paths.
#' @param verify Decode every image fully (slower) instead of reading headers.
#' @param checksum Compute each file's SHA-256 (exact duplicates share it).
#' @param num_workers Threads reading files (`NULL`: one per CPU core, up to 8).
#' @param progress Show a progress bar (default: only in an interactive session).
#' @param label,path Column names of the labels and paths in a table source.
#' @return A tibble: `image_id`, `path`, `label` (a factor), `split`, `bytes`, `width` and `height` (as displayed,
#'   after EXIF rotation), `format`, `mode`, `sha256`, `readable` (logical), `error` (`NA` when readable), then
#'   any further columns of a table source.
#' @seealso [filter_small()], [find_duplicates()]
#' @export
#' @examplesIf engine_available()
#' inventory <- image_inventory(file.path(sample_data(), "faces"), progress = FALSE)
#' table(inventory$format, inventory$readable)
image_inventory <- function(source, verify = FALSE, checksum = TRUE, num_workers = NULL, progress = interactive(),
                            label = NULL, path = NULL) {
  labelled <- labelled_data(source, arg_string(label, "label", null = TRUE), arg_string(path, "path", null = TRUE),
                            data_arg = "source", required = FALSE)
  result <- engine_call(
    engine()$image_inventory, labelled$images,
    verify = arg_flag(verify, "verify"), checksum = arg_flag(checksum, "checksum"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress"),
    label = labelled$label, path = labelled$path
  )
  label_tibble(result, labelled$levels)
}

#' Drop images too small to be worth labelling
#'
#' The book's corpus went from about 9,500 to 8,148 images once files under 5 KB (icons, avatars, tracking
#' pixels, broken downloads) were removed. Nothing is deleted: every image gets `kept` and, when removed, the
#' `reason`. Unreadable files are removed ("unreadable: ...").
#'
#' @param source The result of [image_inventory()], or anything it reads (then the inventory is made first).
#' @param min_bytes Files with fewer bytes are removed (default 5,120: the book's "under 5 KB"); `NULL` skips the
#'   rule.
#' @param min_width,min_height Images narrower or shorter than this many pixels are removed; `NULL` skips.
#' @inheritParams image_inventory
#' @return The inventory with two more columns: `kept` (logical) and `reason` (`NA` when kept).
#' @export
#' @examplesIf engine_available()
#' checked <- filter_small(file.path(sample_data(), "faces"), min_bytes = 5120, min_width = 64, progress = FALSE)
#' table(checked$kept)
filter_small <- function(source, min_bytes = 5120L, min_width = NULL, min_height = NULL, num_workers = NULL,
                         progress = interactive()) {
  result <- engine_call(
    engine()$filter_small, arg_images(source, "source"),
    min_bytes = arg_count(min_bytes, "min_bytes", null = TRUE),
    min_width = arg_count(min_width, "min_width", null = TRUE),
    min_height = arg_count(min_height, "min_height", null = TRUE),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress")
  )
  label_tibble(result, input_levels(source))
}

#' Find exact and near-duplicate images
#'
#' "No need to pay twice for the same picture", and no copy of a validation image in the training split. Exact
#' copies share a SHA-256; near duplicates (re-encoded, resized, recompressed or lightly cropped copies) have
#' perceptual hashes within `threshold` bits. Every image is linked to its group's representative, the copy to
#' keep. Look at the groups with [duplicate_gallery()] (or `autoplot()`) before dropping anything; pass the
#' result to [split_images()] so a group never straddles two splits.
#'
#' @param source The images: a folder, a table file, a data frame with a path column or image paths.
#' @param threshold Largest Hamming distance (bits) between near duplicates; `NULL`: 24 for the default 256-bit
#'   hashes, scaled for other sizes. Lower it to group only closer copies.
#' @param method Perceptual hash: `"phash"`, `"dhash"`, `"whash"` or `"average_hash"`.
#' @param hash_size Side of the hash (16 gives 256 bits).
#' @param keep Which member represents its group: `"largest"` (most pixels, then bytes: the best copy) or
#'   `"first"` (first in the table).
#' @param near `FALSE` groups byte-identical copies only, without decoding any image.
#' @inheritParams image_inventory
#' @return A tibble of class `image_duplicates`: the source's columns plus `sha256`, `perceptual_hash`,
#'   `group_id` (1, 2, ...), `representative` (the `image_id` to keep), `group_size`, `is_representative`,
#'   `distance_to_representative` (bits; 0 for exact copies; `NA` when unreadable), `exact_duplicate` and `error`.
#' @seealso [duplicate_gallery()], [split_images()]
#' @export
#' @examplesIf engine_available()
#' duplicates <- find_duplicates(file.path(sample_data(), "faces"), progress = FALSE)
#' table(duplicates$group_size)
find_duplicates <- function(source, threshold = NULL, method = "phash", hash_size = 16L, keep = "largest",
                            near = TRUE, num_workers = NULL, progress = interactive()) {
  result <- engine_call(
    engine()$find_duplicates, arg_images(source, "source"),
    threshold = arg_count(threshold, "threshold", null = TRUE), method = arg_string(method, "method"),
    hash_size = arg_count(hash_size, "hash_size"), keep = arg_string(keep, "keep"), near = arg_flag(near, "near"),
    num_workers = arg_count(num_workers, "num_workers", null = TRUE), progress = arg_flag(progress, "progress")
  )
  duplicates <- label_tibble(result, input_levels(source))
  tibble::new_tibble(duplicates, nrow = nrow(duplicates), class = "image_duplicates")
}

DUPLICATE_COLUMNS <- c("image_id", "path", "group_id", "group_size", "is_representative", "distance_to_representative",
                       "exact_duplicate")

#' A contact sheet of duplicate groups
#'
#' One row of thumbnails per group, the copy to keep first (framed in green), each captioned with its `image_id`
#' and its distance to the representative ("exact" for byte-identical copies), so a person can confirm the
#' groups before anything is dropped, as the book insists. `autoplot()` on a [find_duplicates()] result draws the
#' same.
#'
#' @param duplicates The result of [find_duplicates()] (or a data frame with its columns).
#' @param min_size Show groups with at least this many images.
#' @param max_groups,max_per_group Show at most this many groups, and images per group; the rest are counted in
#'   the caption.
#' @param size Longest side of each thumbnail in pixels.
#' @return A ggplot: one facet row per group, one column per member.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' duplicates <- find_duplicates(file.path(sample_data(), "faces"), progress = FALSE)
#' duplicate_gallery(duplicates)
#' }
duplicate_gallery <- function(duplicates, min_size = 2L, max_groups = 10L, max_per_group = 6L, size = 64L) {
  if (!is.data.frame(duplicates) || !all(DUPLICATE_COLUMNS %in% names(duplicates))) {
    abort_argument(sprintf("`duplicates` must be the result of find_duplicates() (columns %s)",
                           paste(DUPLICATE_COLUMNS, collapse = ", ")))
  }
  min_size <- arg_count(min_size, "min_size")
  max_groups <- arg_count(max_groups, "max_groups")
  max_per_group <- arg_count(max_per_group, "max_per_group")
  size <- arg_count(size, "size")
  plain <- as.data.frame(duplicates)[DUPLICATE_COLUMNS]
  plain$image_id <- as.character(plain$image_id)
  plain$path <- as.character(plain$path)
  members <- as_tibble_engine(engine_call(engine()$duplicate_groups,
                                          engine_table(plain), min_size = min_size))
  groups <- unique(members$group_id)
  if (!length(groups)) return(empty_plot("No duplicate groups"))
  shown <- members[members$group_id %in% utils::head(groups, max_groups) & members$position < max_per_group, ]
  hidden <- nrow(members) - nrow(shown)
  shown$note <- ifelse(shown$is_representative, "keep",
                  ifelse(shown$exact_duplicate, "exact",
                    ifelse(is.na(shown$distance_to_representative), "unreadable",
                           sprintf("%d bits", shown$distance_to_representative))))
  group_labels <- sprintf("group %d (%d)", shown$group_id, shown$group_size)
  shown$group <- factor(group_labels, levels = unique(group_labels))
  shown$member <- factor(shown$position + 1L, levels = seq_len(max(shown$position) + 1L))
  pixels <- as_tibble_engine(engine_call(bridge()$thumbnails, as.list(shown$path), max_side = size))
  pixels <- pixels[is.na(pixels$error), ]
  pixels$group <- shown$group[pixels$image]
  pixels$member <- shown$member[pixels$image]
  # Each thumbnail's own width and height (an unreadable image keeps an empty square).
  width <- tapply(pixels$x, factor(pixels$image, levels = seq_len(nrow(shown))), max)
  height <- tapply(pixels$y, factor(pixels$image, levels = seq_len(nrow(shown))), max)
  width[is.na(width)] <- size
  height[is.na(height)] <- size
  captions <- data.frame(group = shown$group, member = shown$member, x = (width + 1) / 2, y = size + 2,
                         width = as.vector(width), height = as.vector(height),
                         label = sprintf("%s\n%s", shorten(shown$image_id, 18), shown$note),
                         colour = ifelse(shown$is_representative, "#007a00", "black"))
  frames <- captions[shown$is_representative, ]
  caption <- sprintf("%d duplicate group%s, %d of %d images%s", length(groups), if (length(groups) == 1) "" else "s",
                     nrow(members), nrow(duplicates),
                     if (hidden) sprintf("; %d images not drawn (max_groups, max_per_group)", hidden) else "")
  ggplot2::ggplot(pixels, ggplot2::aes(x = .data$x, y = .data$y)) +
    ggplot2::geom_raster(ggplot2::aes(fill = .data$colour)) +
    ggplot2::geom_rect(data = frames, ggplot2::aes(xmin = 0.5, xmax = .data$width + 0.5, ymin = 0.5,
                                                     ymax = .data$height + 0.5),
                       inherit.aes = FALSE, fill = NA, colour = "#007a00", linewidth = 1) +
    ggplot2::geom_text(data = captions, ggplot2::aes(label = .data$label, colour = .data$colour),
                       vjust = 1, size = 2.5, lineheight = 0.9) +
    ggplot2::scale_fill_identity() +
    ggplot2::scale_colour_identity() +
    ggplot2::scale_y_reverse(limits = c(size + 18, 0)) +
    ggplot2::scale_x_continuous(limits = c(0, size + 1)) +
    ggplot2::facet_grid(rows = ggplot2::vars(.data$group), cols = ggplot2::vars(.data$member), drop = FALSE,
                        switch = "y") +
    ggplot2::coord_fixed(clip = "off") +
    ggplot2::labs(title = "Duplicate groups", subtitle = "first: the copy to keep; captions: distance to it",
                  caption = caption) +
    ggplot2::theme_void() + text_spans_plot() +
    ggplot2::theme(strip.text.x = ggplot2::element_blank(), strip.text.y.left = ggplot2::element_text(angle = 0, size = 8),
                   plot.margin = ggplot2::margin(6, 6, 6, 6))
}

#' @rdname duplicate_gallery
#' @param object The result of [find_duplicates()].
#' @param ... Passed to `duplicate_gallery()`.
#' @method autoplot image_duplicates
#' @export
autoplot.image_duplicates <- function(object, ...) duplicate_gallery(object, ...)

shorten <- function(text, width) {
  text <- as.character(text)
  long <- nchar(text) > width
  text[long] <- paste0("...", substring(text[long], nchar(text[long]) - width + 4))
  text
}

# ---------------------------------------------------------------------------------------------- annotations

#' One label per image from several annotators
#'
#' From a long table of annotations (one row per image x annotator) to one row per image. The book labels
#' protest and John Legend images positive if any annotator said so (`"any"`), takes majority votes for
#' categories (`"majority"`), and averages 0-10 emotion scores (`"mean"`). Missing answers (`NA`) are skipped.
#'
#' @param annotations A data frame (or CSV/Parquet file) with one row per image x annotator.
#' @param method `"any"`, `"majority"` (`NA` on a tie) or `"mean"`.
#' @param value The column holding the answer, or several (one per question, e.g. each emotion).
#' @param image,annotator The columns naming the image and the person.
#' @param positive For `"any"`: the answer that counts as positive (default: `TRUE`, 1, "yes", "positive", ...).
#' @param score_range For `"mean"`: `c(low, high)`; scores outside it are an error, e.g. `c(0, 10)`.
#' @param images The images on disk (a folder or table): adds `path` and `error` (for annotated images not found).
#' @return A tibble: `image_id`, `n_annotators`, then for each value column the aggregate, `<value>_n` (answers
#'   given) and `<value>_votes` (any: how many said positive) or `<value>_agreement` (majority: share giving the
#'   majority answer).
#' @seealso [annotation_reliability()], [emotion_labels()]
#' @export
#' @examplesIf engine_available()
#' coded <- data.frame(image_id = c("a", "a", "b", "b"), annotator = c("ann", "bob", "ann", "bob"),
#'                     protest = c("yes", "no", "no", "no"))
#' aggregate_annotations(coded, method = "any", value = "protest")
aggregate_annotations <- function(annotations, method = c("any", "majority", "mean"), value = "label",
                                  image = "image_id", annotator = "annotator", positive = NULL, score_range = NULL,
                                  images = NULL) {
  method <- arg_match(method)
  result <- engine_call(
    engine()$aggregate_annotations, arg_table(annotations, "annotations"), method = method,
    value = arg_strings(value, "value"), image = arg_string(image, "image"),
    annotator = arg_string(annotator, "annotator"), positive = arg_scalar(positive, "positive"),
    score_range = arg_range(score_range, "score_range"),
    images = if (is.null(images)) NULL else arg_images(images, "images")
  )
  as_tibble_engine(result)
}

#' Intercoder reliability: percent agreement and Krippendorff's alpha
#'
#' What social scientists report with hand-coded labels. Only images rated by two or more annotators count.
#'
#' @inheritParams aggregate_annotations
#' @param level `"nominal"`, `"ordinal"`, `"interval"` or `"ratio"` (one or several); default nominal, plus
#'   interval when every answer is a number.
#' @return A tibble, one row per label x measure: `label`, `metric` (`"percent_agreement"` or
#'   `"krippendorff_alpha"`), `level`, `estimate`, `n_units`, `n_coders`, `n_ratings` and `note` (why an estimate
#'   is `NA`).
#' @export
#' @examplesIf engine_available()
#' coded <- data.frame(image_id = rep(c("a", "b", "c"), each = 2), annotator = rep(c("ann", "bob"), 3),
#'                     protest = c("yes", "yes", "no", "no", "yes", "no"))
#' annotation_reliability(coded, value = "protest")
annotation_reliability <- function(annotations, value = "label", image = "image_id", annotator = "annotator",
                                   level = NULL) {
  result <- engine_call(
    engine()$annotation_reliability, arg_table(annotations, "annotations"), value = arg_strings(value, "value"),
    image = arg_string(image, "image"), annotator = arg_string(annotator, "annotator"),
    level = if (is.null(level)) NULL else arg_strings(level, "level")
  )
  as_tibble_engine(result)
}

# ------------------------------------------------------------------------------------------------- emotions

#' Training labels from emotion scores (the book's section 7.3)
#'
#' Annotators score how much an image evokes each emotion, 0-10; averaged ([aggregate_annotations()] with
#' `method = "mean"`), most images evoke several emotions a little. For a classifier of one emotion the book keeps
#' only clear cases: positives score at least `min_score` on that emotion and at least `min_margin` above their
#' second-highest emotion; negatives score at most `negative_max` (0) on every emotion, drawn at random (seeded)
#' to match the number of positives.
#'
#' @param scores A data frame (or table file) with one row per image and a score column per emotion.
#' @param emotions The score columns (default: the book's anger, disgust, enthusiasm, fear, sadness).
#' @param min_score,min_margin The rule for positives.
#' @param negative_max A negative scores at most this on every emotion.
#' @param balance Draw as many negatives as positives (`FALSE` keeps every negative).
#' @param seed Random seed for the negatives.
#' @param image The column naming the image.
#' @param score_range `c(low, high)` of the scale (scores outside it are an error); `NULL` for none.
#' @param multi_label `TRUE`: instead, every image once with every emotion it evokes (score at least `min_score`)
#'   -- one image, several emotions, as half of the book's images do. `min_margin`, `negative_max` and `balance`
#'   then do not apply. The engine's `finetune(table, label = emotions)` trains one sigmoid output per emotion on it.
#' @return A tibble, one row per emotion x selected image: `emotion`, `image_id`, `label` (a factor: negative,
#'   positive), `score`, `margin` (over the second-highest emotion), then the other columns of `scores` (path, ...)
#'   so that, filtered to one emotion, it goes straight to [split_images()] or [write_layout()]. With
#'   `multi_label = TRUE`, one row per image: `image_id`, a logical column per emotion, `n_emotions`, `emotions`
#'   (those evoked, separated by ";"), then the other columns of `scores`.
#' @seealso [emotion_counts()], [emotion_cooccurrence()], [emotion_max_class()]
#' @export
emotion_labels <- function(scores, emotions = NULL, min_score = 3, min_margin = 3, negative_max = 0, balance = TRUE,
                           seed = 0L, image = "image_id", score_range = c(0, 10), multi_label = FALSE) {
  multi_label <- arg_flag(multi_label, "multi_label")
  result <- engine_call(
    engine()$emotion_labels, arg_table(scores, "scores"), emotions = arg_strings(emotions, "emotions", null = TRUE),
    min_score = arg_number(min_score, "min_score"), min_margin = arg_number(min_margin, "min_margin"),
    negative_max = arg_number(negative_max, "negative_max"), balance = arg_flag(balance, "balance"),
    seed = arg_count(seed, "seed"), image = arg_string(image, "image"), score_range = arg_range(score_range, "score_range"),
    multi_label = multi_label
  )
  if (multi_label) return(as_tibble_engine(result))
  as_tibble_engine(result, factors = "label", levels = c("positive", "negative"))   # the event first, as in R
}

#' How many emotions each image evokes, and which come together (the book's Figure 7.1)
#'
#' An image evokes an emotion when its (mean) score is at least `min_score`.
#'
#' @inheritParams emotion_labels
#' @param min_score The score from which an image counts as evoking an emotion.
#' @return `emotion_counts()`: a tibble of class `emotion_counts` with `n_emotions` (0 to the number of emotions),
#'   `n_images` and `share`; `autoplot()` draws the bar chart of Figure 7.1 (left).
#'   `emotion_cooccurrence()`: a tibble of class `emotion_cooccurrence` with `emotion`, `other_emotion`,
#'   `n_images` (evoking both; the diagonal counts images evoking the emotion) and `share` (of the images evoking
#'   `emotion`, the share also evoking `other_emotion`; `NA` when none evoke it); `autoplot()` draws the heatmap of
#'   Figure 7.1 (right).
#' @export
#' @examplesIf engine_available()
#' scores <- data.frame(image_id = c("a", "b", "c", "d"), anger = c(8, 0, 4, 0), disgust = c(5, 0, 0, 0),
#'                      enthusiasm = c(0, 6, 0, 0), fear = c(0, 0, 4, 0), sadness = c(0, 0, 0, 0))
#' emotion_counts(scores)
#' autoplot(emotion_cooccurrence(scores))
emotion_counts <- function(scores, emotions = NULL, min_score = 3, image = "image_id", score_range = c(0, 10)) {
  result <- engine_call(
    engine()$emotion_counts, arg_table(scores, "scores"), emotions = arg_strings(emotions, "emotions", null = TRUE),
    min_score = arg_number(min_score, "min_score"), image = arg_string(image, "image"),
    score_range = arg_range(score_range, "score_range")
  )
  classed(as_tibble_engine(result), "emotion_counts")
}

#' @rdname emotion_counts
#' @export
emotion_cooccurrence <- function(scores, emotions = NULL, min_score = 3, image = "image_id", score_range = c(0, 10)) {
  result <- engine_call(
    engine()$emotion_cooccurrence, arg_table(scores, "scores"),
    emotions = arg_strings(emotions, "emotions", null = TRUE), min_score = arg_number(min_score, "min_score"),
    image = arg_string(image, "image"), score_range = arg_range(score_range, "score_range")
  )
  classed(as_tibble_engine(result), "emotion_cooccurrence")
}

#' Max class and clear max class per emotion (the book's Figure 7.2)
#'
#' The max class of an image is the emotion with its highest score (strictly; ties and all-zero images have
#' none); the clear max class also scores at least `min_score` and at least `min_margin` above the second-highest
#' — the positives of [emotion_labels()]. The gap between the two bars is what the book's rule gives up.
#'
#' @inheritParams emotion_labels
#' @return A tibble of class `emotion_max_class`: `emotion`, `class_type` (`"max_class"`, `"clear_max_class"`)
#'   and `n_images`; `autoplot()` draws the dodged bars of Figure 7.2.
#' @export
emotion_max_class <- function(scores, emotions = NULL, min_score = 3, min_margin = 3, image = "image_id",
                              score_range = c(0, 10)) {
  result <- engine_call(
    engine()$emotion_max_class, arg_table(scores, "scores"), emotions = arg_strings(emotions, "emotions", null = TRUE),
    min_score = arg_number(min_score, "min_score"), min_margin = arg_number(min_margin, "min_margin"),
    image = arg_string(image, "image"), score_range = arg_range(score_range, "score_range")
  )
  classed(as_tibble_engine(result), "emotion_max_class")
}

classed <- function(table, class) tibble::new_tibble(table, nrow = nrow(table), class = class)

#' Plot emotion summaries: the book's Figures 7.1 and 7.2
#'
#' @param object The result of [emotion_counts()] (bars: images by the number of emotions they evoke),
#'   [emotion_cooccurrence()] (heatmap: of the images evoking one emotion, the share also evoking another) or
#'   [emotion_max_class()] (dodged bars: max class against clear max class per emotion).
#' @param ... Must be empty.
#' @return A ggplot.
#' @method autoplot emotion_counts
#' @export
autoplot.emotion_counts <- function(object, ...) {
  check_dots(...)
  object$n_emotions <- factor(object$n_emotions, levels = sort(unique(object$n_emotions)))
  ggplot2::ggplot(object, ggplot2::aes(x = .data$n_emotions, y = .data$n_images)) +
    ggplot2::geom_col(fill = "steelblue") +
    ggplot2::geom_text(ggplot2::aes(label = sprintf("%.0f%%", 100 * .data$share)), vjust = -0.4, size = 3) +
    ggplot2::labs(x = "number of emotions evoked", y = "images",
                  title = "How many emotions an image evokes") +
    ggplot2::theme_minimal() + text_spans_plot()
}

#' @rdname autoplot.emotion_counts
#' @method autoplot emotion_cooccurrence
#' @export
autoplot.emotion_cooccurrence <- function(object, ...) {
  check_dots(...)
  order <- unique(object$emotion)
  object$emotion <- factor(object$emotion, levels = order)
  object$other_emotion <- factor(object$other_emotion, levels = order)
  object$text <- ifelse(is.na(object$share), "", sprintf("%.0f%%", 100 * object$share))
  ggplot2::ggplot(object, ggplot2::aes(x = .data$other_emotion, y = .data$emotion, fill = .data$share)) +
    ggplot2::geom_tile(colour = "white") +
    ggplot2::geom_text(ggplot2::aes(label = .data$text), size = 3) +
    ggplot2::scale_y_discrete(limits = rev) +
    ggplot2::scale_fill_gradient(low = "grey95", high = "firebrick", limits = c(0, 1), labels = function(x) sprintf("%.0f%%", 100 * x),
                                 na.value = "grey85") +
    ggplot2::coord_equal() +
    ggplot2::labs(x = "also evokes", y = "images evoking", fill = "share",
                  title = "Which emotions come together") +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(panel.grid = ggplot2::element_blank(),
                   axis.text.x = ggplot2::element_text(angle = 30, hjust = 1))
}

#' @rdname autoplot.emotion_counts
#' @method autoplot emotion_max_class
#' @export
autoplot.emotion_max_class <- function(object, ...) {
  check_dots(...)
  object$emotion <- factor(object$emotion, levels = unique(object$emotion))
  object$class_type <- factor(object$class_type, levels = c("max_class", "clear_max_class"),
                              labels = c("max class", "clear max class"))
  ggplot2::ggplot(object, ggplot2::aes(x = .data$emotion, y = .data$n_images, fill = .data$class_type)) +
    ggplot2::geom_col(position = ggplot2::position_dodge(width = 0.8), width = 0.75) +
    ggplot2::scale_fill_manual(values = c("max class" = "grey65", "clear max class" = "steelblue")) +
    ggplot2::scale_y_continuous(breaks = function(limits) unique(floor(pretty(limits)))) +   # counts: whole numbers
    ggplot2::labs(x = NULL, y = "images", fill = NULL, title = "Max class and clear max class per emotion") +
    ggplot2::theme_minimal() + text_spans_plot() +
    ggplot2::theme(legend.position = "bottom")
}

# --------------------------------------------------------------------------------------------------- layout

#' Give every image a split, keeping near-duplicate groups whole
#'
#' Stratified by label and seeded, like [finetune_cnn()]'s own split; copies of one picture never land in both
#' train and val (which would inflate validation accuracy). Rows with an `error` (unreadable images) are left out
#' with a warning. A table whose rows already have a split keeps it.
#'
#' @param table Labelled images: a data frame with path and label columns (e.g. a [find_duplicates()] result with
#'   labels, or [emotion_labels()] filtered to one emotion), a table file or a folder.
#' @param val_fraction,test_fraction Share of each class for validation and test.
#' @param seed Random seed.
#' @param balance Downsample every class to the size of the smallest.
#' @param group The column of group ids that must not straddle two splits; `"auto"` uses `group_id` when present,
#'   `NULL` splits image by image.
#' @param label,path Column names of the labels and paths.
#' @return A tibble with its `split` column filled (`label` a factor).
#' @seealso [write_layout()]
#' @export
#' @examplesIf engine_available()
#' faces <- image_table(file.path(sample_data(), "faces"))
#' table(split_images(faces, val_fraction = 0.25)$split)
split_images <- function(table, val_fraction = 0.2, test_fraction = 0, seed = 0L, balance = FALSE, group = "auto",
                         label = NULL, path = NULL) {
  labelled <- labelled_data(table, arg_string(label, "label", null = TRUE), arg_string(path, "path", null = TRUE),
                            data_arg = "table", required = FALSE)
  result <- engine_call(
    engine()$split_images, labelled$images, val_fraction = arg_number(val_fraction, "val_fraction"),
    test_fraction = arg_number(test_fraction, "test_fraction"), seed = arg_count(seed, "seed"),
    balance = arg_flag(balance, "balance"), group = arg_string(group, "group", null = TRUE),
    label = labelled$label, path = labelled$path
  )
  label_tibble(result, labelled$levels)
}

#' Write the book's folder layout
#'
#' `out/train/<class>/`, `out/val/<class>/` (and `out/test/<class>/`), filled with symbolic links to the images (or
#' copies), so the folders can be handed to any tool that reads class folders — including [finetune_cnn()]. The
#' table is split first ([split_images()]) when it has no split yet. The folder is written beside `out` and
#' swapped in at the end; writing the same table again changes nothing; an existing `out` is replaced only if
#' `write_layout()` wrote it.
#'
#' @inheritParams split_images
#' @param out The folder to write.
#' @param mode `"symlink"` (nothing duplicated) or `"copy"`.
#' @return The split tibble with a `layout_path` column (the file written for each image).
#' @export
write_layout <- function(table, out, mode = c("symlink", "copy"), val_fraction = 0.2, test_fraction = 0, seed = 0L,
                         balance = FALSE, group = "auto", label = NULL, path = NULL) {
  mode <- arg_match(mode)
  labelled <- labelled_data(table, arg_string(label, "label", null = TRUE), arg_string(path, "path", null = TRUE),
                            data_arg = "table", required = FALSE)
  result <- engine_call(
    engine()$write_layout, labelled$images, path.expand(arg_string(out, "out")), mode = mode,
    val_fraction = arg_number(val_fraction, "val_fraction"), test_fraction = arg_number(test_fraction, "test_fraction"),
    seed = arg_count(seed, "seed"), balance = arg_flag(balance, "balance"),
    group = arg_string(group, "group", null = TRUE), label = labelled$label, path = labelled$path
  )
  label_tibble(result, labelled$levels)
}
