# Preparing a corpus from R: inventory, small files, duplicates (and their contact sheet), several annotators,
# emotion labels and Figures 7.1/7.2, splits and the book's layout — on real images.

faces_folder <- function() file.path(sample_data(), "faces")

# Copies of real ORL photos: s1/1 twice (byte-identical), s2/1 and a half-size JPEG re-encoding of it, plus
# photos of two other people and an unreadable file.
duplicates_folder <- function() {
  skip_if_no_engine()
  folder <- tempfile("dups")
  dir.create(folder)
  faces <- faces_folder()
  file.copy(file.path(faces, "s1", "1.png"), file.path(folder, "a_s1_1.png"))
  file.copy(file.path(faces, "s1", "1.png"), file.path(folder, "b_s1_1_copy.png"))
  file.copy(file.path(faces, "s2", "1.png"), file.path(folder, "c_s2_1.png"))
  file.copy(file.path(faces, "s3", "1.png"), file.path(folder, "e_s3_1.png"))
  file.copy(file.path(faces, "s4", "1.png"), file.path(folder, "f_s4_1.png"))
  reticulate::py_run_string(sprintf(
    "from PIL import Image\nImage.open(%s).convert('RGB').resize((46, 56)).save(%s, quality=70)",
    shQuote(file.path(faces, "s2", "1.png")), shQuote(file.path(folder, "d_s2_1_small.jpg"))))
  writeLines("not an image", file.path(folder, "g_broken.png"))
  folder
}

test_that("image_inventory() gives one typed row per file, NA error when readable, the reason when not", {
  skip_if_no_engine()
  faces <- image_table(faces_folder())
  input <- rbind(faces[1:3, c("image_id", "path")], data.frame(image_id = "broken", path = broken_image()))
  inventory <- image_inventory(input, progress = FALSE)
  expect_s3_class(inventory, "tbl_df")
  expect_identical(names(inventory)[1:12], c("image_id", "path", "label", "split", "bytes", "width", "height",
                                             "format", "mode", "sha256", "readable", "error"))
  expect_identical(inventory$image_id, c(faces$image_id[1:3], "broken"))
  expect_type(inventory$bytes, "integer")
  expect_type(inventory$width, "integer")
  expect_type(inventory$readable, "logical")
  expect_identical(inventory$bytes, as.integer(file.size(inventory$path)))
  expect_identical(inventory$width[1:3], rep(92L, 3))       # ORL photos: 92 x 112 grey PNG
  expect_identical(inventory$height[1:3], rep(112L, 3))
  expect_identical(inventory$format[1:3], rep("PNG", 3))
  expect_identical(inventory$readable, c(TRUE, TRUE, TRUE, FALSE))
  expect_identical(inventory$error[1:3], rep(NA_character_, 3))
  expect_match(inventory$error[4], "not an image")
  expect_identical(inventory$width[4], NA_integer_)
  expect_identical(nchar(inventory$sha256[1:3]), rep(64L, 3))
  # a folder of class folders: labels are a factor in natural order
  whole <- image_inventory(faces_folder(), checksum = FALSE, progress = FALSE)
  expect_equal(nrow(whole), 48)
  expect_s3_class(whole$label, "factor")
  expect_identical(levels(whole$label), paste0("s", 1:6))
  expect_true(all(is.na(whole$sha256)))
})

test_that("filter_small() applies the byte and pixel rules to an inventory tibble, with reasons", {
  skip_if_no_engine()
  inventory <- image_inventory(faces_folder(), progress = FALSE)
  cut <- as.integer(stats::median(inventory$bytes))
  checked <- filter_small(inventory, min_bytes = cut, progress = FALSE)
  expect_identical(checked$image_id, inventory$image_id)
  expect_type(checked$kept, "logical")
  expect_identical(checked$kept, inventory$bytes >= cut)
  expect_identical(is.na(checked$reason), checked$kept)
  small <- which(!checked$kept)[1]
  expect_identical(checked$reason[small],
                   sprintf("file smaller than %s bytes (%s)", format(cut, big.mark = ","),
                           format(inventory$bytes[small], big.mark = ",")))
  by_pixels <- filter_small(faces_folder(), min_bytes = NULL, min_width = 100L, progress = FALSE)
  expect_false(any(by_pixels$kept))
  expect_match(by_pixels$reason[1], "narrower than 100 pixels (92)", fixed = TRUE)
  broken <- filter_small(data.frame(path = broken_image()), progress = FALSE)
  expect_false(broken$kept)
  expect_match(broken$reason, "^unreadable: ")
  expect_error(filter_small(inventory, min_bytes = NULL), class = "imagesasdata_error", regexp = "nothing to filter on")
  expect_error(filter_small(inventory, min_bytes = 5.5), class = "imagesasdata_argument_error", regexp = "`min_bytes`")
})

test_that("find_duplicates() groups exact and near copies of real photos and leaves others alone", {
  folder <- duplicates_folder()
  duplicates <- find_duplicates(folder, progress = FALSE)
  expect_s3_class(duplicates, c("image_duplicates", "tbl_df"))
  expect_type(duplicates$group_id, "integer")
  expect_type(duplicates$distance_to_representative, "integer")
  expect_type(duplicates$is_representative, "logical")
  rows <- split(duplicates, duplicates$image_id)
  expect_identical(rows$b_s1_1_copy.png$representative, "a_s1_1.png")
  expect_true(rows$b_s1_1_copy.png$exact_duplicate)
  expect_identical(rows$b_s1_1_copy.png$distance_to_representative, 0L)
  # the half-size JPEG joins its original, which is kept (more pixels), a few bits away
  expect_identical(rows$d_s2_1_small.jpg$representative, "c_s2_1.png")
  expect_false(rows$d_s2_1_small.jpg$exact_duplicate)
  expect_gt(rows$d_s2_1_small.jpg$distance_to_representative, 0L)
  expect_lte(rows$d_s2_1_small.jpg$distance_to_representative, 24L)
  for (alone in c("e_s3_1.png", "f_s4_1.png")) expect_identical(rows[[alone]]$group_size, 1L)
  # the unreadable file stays alone, its distance NA and its error given
  expect_identical(rows$g_broken.png$distance_to_representative, NA_integer_)
  expect_match(rows$g_broken.png$error, "not an image")
  expect_identical(sort(unique(duplicates$group_size)), c(1L, 2L))
  # exact copies only: no image decoded, the JPEG no longer joins
  exact <- find_duplicates(folder, near = FALSE, progress = FALSE)
  expect_identical(exact$group_size[exact$image_id == "d_s2_1_small.jpg"], 1L)
  expect_error(find_duplicates(folder, keep = "biggest", progress = FALSE), class = "imagesasdata_error",
               regexp = "keep must be one of largest, first")
})

test_that("the contact sheet shows each group's thumbnails with the copy to keep and the distances", {
  duplicates <- find_duplicates(duplicates_folder(), progress = FALSE)
  plot <- autoplot(duplicates, size = 40)
  expect_s3_class(plot, "ggplot")
  built <- ggplot2::ggplot_build(plot)
  expect_identical(levels(plot$data$group), c("group 1 (2)", "group 2 (2)"))
  expect_identical(sort(unique(as.character(built$layout$layout$group))), c("group 1 (2)", "group 2 (2)"))
  captions <- built$plot$layers[[3]]$data
  expect_setequal(captions$label, c("a_s1_1.png\nkeep", "b_s1_1_copy.png\nexact", "c_s2_1.png\nkeep",
                                    sprintf("d_s2_1_small.jpg\n%d bits",
                                            duplicates$distance_to_representative[duplicates$image_id == "d_s2_1_small.jpg"])))
  # real pixels: the ORL photo shrunk to fit 40 px is 33 x 40, every pixel grey
  first <- plot$data[plot$data$group == "group 1 (2)" & plot$data$member == "1", ]
  expect_identical(c(max(first$x), max(first$y)), c(33L, 40L))
  rgb <- col2rgb(first$colour)
  expect_true(all(rgb[1, ] == rgb[2, ]))
  expect_identical(nrow(built$plot$layers[[2]]$data), 2L)          # a frame around each copy kept
  # after dplyr-style subsetting the class stays, and a corpus without duplicates says so
  expect_s3_class(duplicate_gallery(duplicates[duplicates$group_size == 1, ]), "ggplot")
  none <- find_duplicates(faces_folder(), progress = FALSE)
  expect_identical(ggplot2::ggplot_build(autoplot(none))$data[[1]]$label, "No duplicate groups")
  expect_error(duplicate_gallery(data.frame(path = "x")), class = "imagesasdata_argument_error", regexp = "find_duplicates")
})

# Krippendorff (2011), Computing Krippendorff's Alpha-Reliability, section C: four observers, twelve units, values
# 1-5 with missing data; the paper reports alpha = 0.743 (nominal) and 0.849 (interval).
krippendorff_2011 <- function() {
  values <- list(A = c(1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA), B = c(1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3),
                 C = c(NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA), D = c(1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA))
  long <- do.call(rbind, lapply(names(values), function(observer) {
    data.frame(image_id = sprintf("unit%d", 1:12), annotator = observer, value = values[[observer]])
  }))
  long[!is.na(long$value), ]
}

test_that("annotation_reliability() reproduces Krippendorff's published example", {
  skip_if_no_engine()
  reliability <- annotation_reliability(krippendorff_2011(), value = "value")
  expect_identical(names(reliability), c("label", "metric", "level", "estimate", "n_units", "n_coders", "n_ratings", "note"))
  alpha <- reliability[reliability$metric == "krippendorff_alpha", ]
  expect_identical(alpha$level, c("nominal", "interval"))
  expect_equal(alpha$estimate, c(0.743, 0.849), tolerance = 5e-4)
  expect_equal(alpha$estimate[1], 1 - 312 / 1216)
  agreement <- reliability[reliability$metric == "percent_agreement", ]
  expect_identical(agreement$level, NA_character_)                 # None in the engine
  expect_equal(agreement$estimate, 32 / 40)
  expect_identical(c(agreement$n_units, agreement$n_coders, agreement$n_ratings), c(11L, 4L, 40L))
  expect_type(agreement$n_units, "integer")
  expect_identical(agreement$note, NA_character_)
})

test_that("aggregate_annotations(): the book's any rule, majority votes with ties NA, mean scores", {
  skip_if_no_engine()
  coded <- data.frame(image_id = c("a", "a", "a", "b", "b", "c", "c", "d", "d"),
                      annotator = c("ann", "bob", "cat", "ann", "bob", "ann", "bob", "ann", "bob"),
                      protest = c("yes", "no", "no", "no", "no", "yes", "yes", "no", NA),
                      anger = c(6, 3, 0, 0, 0, 10, 8, 1, NA))
  any <- aggregate_annotations(coded, method = "any", value = "protest")
  expect_identical(names(any), c("image_id", "n_annotators", "protest", "protest_n", "protest_votes"))
  expect_identical(any$protest, c(TRUE, FALSE, TRUE, FALSE))
  expect_identical(any$protest_votes, c(1L, 0L, 2L, 0L))
  expect_identical(any$protest_n, c(3L, 2L, 2L, 1L))                 # NA answers are skipped
  majority <- aggregate_annotations(coded, method = "majority", value = "protest")
  expect_identical(majority$protest, c("no", "no", "yes", "no"))
  expect_equal(majority$protest_agreement, c(2 / 3, 1, 1, 1))
  tied <- aggregate_annotations(coded[coded$image_id == "a", ][1:2, ], method = "majority", value = "protest")
  expect_identical(tied$protest, NA_character_)
  mean <- aggregate_annotations(coded, method = "mean", value = "anger", score_range = c(0, 10))
  expect_equal(mean$anger, c(3, 0, 9, 1))
  expect_error(aggregate_annotations(coded, method = "mean", value = "protest"), class = "imagesasdata_error",
               regexp = "column \"protest\" must hold numbers")
  expect_error(aggregate_annotations(coded, value = "protset"), class = "imagesasdata_error", regexp = "protest")
  # annotated images that are not on disk get an error and a warning
  on_disk <- data.frame(image_id = c("s1/1.png", "s1/2.png", "gone.png"), annotator = "ann", protest = "yes")
  expect_warning(found <- aggregate_annotations(on_disk, value = "protest", images = faces_folder()),
                 class = "imagesasdata_warning", regexp = "not on disk")
  expect_identical(found$path[1], file.path(faces_folder(), "s1", "1.png"))
  expect_identical(is.na(found$error), c(TRUE, TRUE, FALSE))
})

# Scores of 8 images on the book's five emotions, worked by hand below.
emotion_scores <- function() {
  data.frame(
    image_id = sprintf("img%d", 1:8),
    path = file.path(faces_folder(), rep(c("s1", "s2", "s3", "s4"), each = 2), paste0(rep(1:2, 4), ".png")),
    anger = c(8, 4, 0, 0, 5, 0, 0, 0), disgust = c(2, 3.5, 0, 0, 5, 0, 0, 0), enthusiasm = c(0, 0, 6, 0, 0, 0, 0, 7),
    fear = c(0, 0, 0, 0, 0, 0, 0, 1), sadness = c(0, 0, 0, 0, 4, 0, 0, 0)
  )
}

test_that("emotion_labels() keeps the book's clear cases and balances with real zero-score negatives", {
  skip_if_no_engine()
  scores <- emotion_scores()
  labels <- emotion_labels(scores)
  expect_identical(names(labels)[1:6], c("emotion", "image_id", "label", "score", "margin", "path"))
  expect_identical(levels(labels$label), c("positive", "negative"))   # the positive class first
  positives <- labels[labels$label == "positive", ]
  # anger: img1 (8, 6 above disgust); img2 (4, only 0.5 above 3.5) and img5 (5 ties 5) are not clear
  # enthusiasm: img3 (6) and img8 (7, 6 above fear 1)
  expect_identical(positives$image_id, c("img1", "img3", "img8"))
  expect_identical(positives$emotion, c("anger", "enthusiasm", "enthusiasm"))
  expect_equal(positives$margin, c(6, 6, 6))
  negatives <- labels[labels$label == "negative", ]
  expect_true(all(negatives$image_id %in% c("img4", "img6", "img7")))    # zero on every emotion
  expect_identical(as.vector(table(negatives$emotion)[c("anger", "enthusiasm")]), c(1L, 2L))
  expect_identical(labels, emotion_labels(scores))                        # seeded
  expect_warning(emotion_labels(scores, emotions = c("anger", "disgust"), negative_max = -1), class = "imagesasdata_warning",
                 regexp = "anger: only 0 images score .* for 1 positives; all are used and the classes are unbalanced")
  expect_true(all(file.exists(labels$path)))                              # ready for split_images()
  expect_error(emotion_labels(scores[, -6]), class = "imagesasdata_error", regexp = "lacks fear")
  bad <- scores
  bad$anger[2] <- 11
  expect_error(emotion_labels(bad), class = "imagesasdata_error", regexp = "img2\\) anger = 11.0 is outside 0")
})

test_that("the Figure 7.1 and 7.2 tables count what the scores say, and plot as the book draws them", {
  skip_if_no_engine()
  scores <- emotion_scores()
  evoked <- as.matrix(scores[c("anger", "disgust", "enthusiasm", "fear", "sadness")]) >= 3
  counts <- emotion_counts(scores)
  expect_s3_class(counts, "emotion_counts")
  expect_identical(counts$n_emotions, 0:5)
  expect_identical(counts$n_images, as.integer(tabulate(rowSums(evoked) + 1, nbins = 6)))
  expect_equal(sum(counts$share), 1)
  together <- emotion_cooccurrence(scores)
  expect_s3_class(together, "emotion_cooccurrence")
  expect_identical(together$n_images, as.integer(as.vector(t(crossprod(evoked)))))
  expect_identical(together$share[together$emotion == "fear"], rep(NA_real_, 5))  # no image evokes fear
  # anger is evoked by img1, img2 and img5; disgust too by img2 and img5
  expect_equal(together$share[together$emotion == "anger" & together$other_emotion == "disgust"], 2 / 3)
  max_class <- emotion_max_class(scores)
  expect_s3_class(max_class, "emotion_max_class")
  wide <- stats::xtabs(n_images ~ emotion + class_type, data = max_class)
  expect_identical(as.vector(wide["anger", c("max_class", "clear_max_class")]), c(2L, 1L))  # img1, img2; clear img1
  expect_identical(as.vector(wide["enthusiasm", c("max_class", "clear_max_class")]), c(2L, 2L))

  bars <- ggplot2::ggplot_build(autoplot(counts))
  expect_equal(bars$data[[1]]$y, counts$n_images)
  heat <- ggplot2::ggplot_build(autoplot(together))
  expect_equal(nrow(heat$data[[1]]), 25)
  expect_identical(heat$plot$labels$fill, "share")
  dodged <- autoplot(max_class)
  built <- ggplot2::ggplot_build(dodged)
  expect_s3_class(dodged$layers[[1]]$position, "PositionDodge")
  expect_equal(nrow(built$data[[1]]), 10)
  expect_setequal(levels(dodged$data$class_type), c("max class", "clear max class"))
})

test_that("split_images() keeps duplicate groups whole; write_layout() writes the book's folders once", {
  skip_if_no_engine()
  folder <- duplicates_folder()
  duplicates <- find_duplicates(folder, progress = FALSE)
  duplicates$label <- ifelse(grepl("_s1_|_s3_", duplicates$image_id), "one", "other")
  expect_warning(split <- split_images(duplicates, val_fraction = 0.5, seed = 3L), class = "imagesasdata_warning",
                 regexp = "leaving out 1 images with an error")
  expect_false("g_broken.png" %in% split$image_id)
  expect_s3_class(split$label, "factor")
  for (group in unique(split$group_id)) expect_length(unique(split$split[split$group_id == group]), 1)
  expect_setequal(unique(split$split), c("train", "val"))

  faces <- image_table(faces_folder())
  out <- file.path(tempfile("layout"), "book")
  layout <- write_layout(faces, out, val_fraction = 0.25)
  expect_identical(sort(list.files(out)), c("train", "val"))
  expect_identical(sort(list.files(file.path(out, "val"))), paste0("s", 1:6))
  expect_true(all(file.exists(layout$layout_path)))
  expect_identical(unname(Sys.readlink(layout$layout_path)), layout$path)     # symbolic links to the originals
  expect_identical(as.vector(table(layout$split)), c(36L, 12L))
  again <- write_layout(faces, out, val_fraction = 0.25)
  expect_identical(again$layout_path, layout$layout_path)
  # the layout is a labelled source in its own right
  expect_identical(sort(image_table(out)$split), sort(layout$split))
  expect_error(write_layout(faces, out, mode = "hardlink"), class = "imagesasdata_argument_error",
               regexp = "`mode` must be one of")
  expect_error(split_images(image_table(file.path(sample_data(), "new_images"))), class = "imagesasdata_error",
               regexp = "have no label")
})
