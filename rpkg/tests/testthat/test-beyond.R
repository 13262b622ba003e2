# Beyond one label per image, from R: faces boxed on the book's tweeted examples, text on the TIME cover, the
# prescreen's flags and sheets, a video encoded here from ORL photos on a timeline, and a corpus shared without
# its pictures and re-joined by hash. Every result is a tibble; every plot a ggplot.

orl_faces <- function() file.path(shared_datasets(), "orl_faces")

test_that("detect_faces() counts faces, and autoplot() boxes them on the images", {
  skip_if_no_engine()
  faces <- detect_faces(rekognition_examples(), progress = FALSE)
  expect_s3_class(faces, "tbl_df")
  expect_s3_class(faces, "image_faces")
  found <- faces[!is.na(faces$face_id), ]
  expect_true(is.list(found$landmarks) && all(c("name", "x", "y") %in% names(found$landmarks[[1]])))
  expect_null(faces$landmarks[[which(faces$image_id == "ex_1.jpg")]])
  counts <- face_counts(faces)
  expect_identical(counts$faces[counts$image_id == "ex_1.jpg"], 0L)        # a mug: no face, no error
  expect_identical(counts$faces[counts$image_id == "ex_5.jpg"], 4L)        # a family of four
  expect_gte(counts$faces[counts$image_id == "ex_4.jpg"], 10L)             # a crowd (13 measured)
  plot <- autoplot(faces, n = 2L, size = 160L)
  expect_s3_class(plot, "ggplot")
  built <- ggplot2::ggplot_build(plot)
  rects <- built$data[[2]]
  expect_equal(nrow(rects), 13L + 4L)                                       # the two images with most faces
  # Inside the drawn images (y is reversed, so ggplot_build reports it negated).
  expect_true(all(rects$xmin >= 0 & rects$xmax <= 161 & abs(rects$ymin) <= 161 & abs(rects$ymax) <= 161))
})

test_that("ocr_text() reads the real cover; a missing language pack is an error naming the fix", {
  skip_if_no_engine()
  skip_if(!nzchar(Sys.which("tesseract")), "tesseract-ocr is not installed")
  cover <- ocr_text(file.path(rekognition_examples(), "ex_3.jpg"), progress = FALSE)
  expect_s3_class(cover, "tbl_df")
  expect_match(gsub("\\s+", " ", cover$text), "BLACK LIVES MATTER", fixed = TRUE)
  words <- ocr_words(file.path(rekognition_examples(), "ex_3.jpg"), progress = FALSE)
  expect_true(all(c("word", "confidence", "left", "top", "line") %in% names(words)))
  expect_true(all(c("eng", "deu") %in% ocr_languages()))
  expect_error(ocr_text(file.path(rekognition_examples(), "ex_3.jpg"), languages = "xyz", progress = FALSE),
               "apt-get install tesseract-ocr-xyz", class = "imagesasdata_error")
})

test_that("the prescreen: no flag on benign photos, a coding sheet, a contact sheet drawn as a ggplot", {
  skip_if_no_engine()
  tags <- moderation_local(rekognition_examples(), detectors = "nudity", progress = FALSE)
  expect_s3_class(tags, "tbl_df")
  screen <- screen_images(tags)
  expect_s3_class(screen, "image_screen")
  expect_identical(sum(screen$flagged), 0L)
  sheet <- coding_sheet(screen, variables = c("protest", "crowd"))
  expect_identical(names(sheet), c("image_id", "path", "protest", "crowd"))
  expect_identical(nrow(sheet), 5L)
  # A screen with one flag (as Rekognition would give for a violent image): hidden from coders, blurred on the sheet.
  flagged <- screen
  flagged$flagged[flagged$image_id == "ex_3.jpg"] <- TRUE
  flagged$reasons[[which(flagged$image_id == "ex_3.jpg")]] <- "Violence: Graphic Violence (91%)"
  expect_false("ex_3.jpg" %in% coding_sheet(flagged)$image_id)
  shown <- coding_sheet(flagged, show_flagged = TRUE)
  expect_identical(shown$warning[shown$image_id == "ex_3.jpg"], "Violence: Graphic Violence (91%)")
  expect_s3_class(autoplot(flagged, thumb_size = 64L), "ggplot")
  expect_true(file.exists(screening_sheet(flagged)))
})

test_that("a video from real photos: frames with timestamps, labels on a timeline, a summary", {
  skip_if_no_engine()
  if (!reticulate::py_module_available("av")) skip("PyAV is not installed in the engine's Python")
  video <- file.path(tempfile("video"), "clip.avi")
  dir.create(dirname(video))
  reticulate::py_run_string(sprintf(paste(
    "import av", "from PIL import Image",
    "with av.open(%s, 'w') as out:",
    "    s = out.add_stream('mpeg4', rate=4); s.width, s.height, s.pix_fmt = 92, 112, 'yuv420p'",
    "    for p in (%s, %s):",
    "        f = av.VideoFrame.from_image(Image.open(p).convert('RGB'))",
    "        for _ in range(8):",
    "            for packet in s.encode(f): out.mux(packet)",
    "    for packet in s.encode(): out.mux(packet)", sep = "\n"),
    shQuote(video), shQuote(file.path(orl_faces(), "s1", "1.pgm")), shQuote(file.path(orl_faces(), "s2", "1.pgm"))))
  frames <- video_frames(video, file.path(tempdir(), "frames-r"), every = 1, overwrite = TRUE, progress = FALSE)
  expect_identical(frames$timestamp, c(0, 1, 2, 3))
  expect_true(all(file.exists(frames$path)))
  labels <- label_video("local", video, file.path(tempdir(), "labelled-r"), every = 1, top_k = 2L, overwrite = TRUE,
                        progress = FALSE)
  expect_s3_class(labels, "video_labels")
  expect_identical(nrow(labels), 8L)                                        # 4 frames x 2 labels
  plot <- autoplot(labels)
  expect_s3_class(plot, "ggplot")
  expect_identical(nrow(ggplot2::ggplot_build(plot)$data[[1]]), 4L)         # one tile per frame on the timeline
  summary <- video_summary(labels)
  expect_true(all(summary$frames_total == 4L) && all(summary$share > 0 & summary$share <= 1))
  expect_error(label_video(42, video, tempfile()), "cnn_fit", class = "imagesasdata_error")
})

test_that("share_corpus() writes no pixels, and rejoin_shared() finds the images by hash", {
  skip_if_no_engine()
  images <- image_table(rekognition_examples())
  images$protest <- c("no", "no", "yes", "yes", "no")
  images$source_file <- images$path
  images$note <- paste("downloaded to", images$path)
  out <- file.path(tempfile("shared"))
  expect_warning(
    shared <- share_corpus(images, out, sources = paste("tweets, May 2019, kept in", tempdir()), columns = c("protest", "note"),
                           answers = list(copyright = "the tweets' authors; not redistributed")),
    "left out 1 column\\(s\\) .*: source_file", class = "imagesasdata_warning"
  )
  expect_false(any(c("path", "source_file") %in% names(shared)))
  expect_identical(shared$note, paste("downloaded to", basename(images$path)))
  expect_identical(sort(list.files(out)), c("datasheet.json", "datasheet.md", "labels.csv", "labels.parquet"))
  # no written file names this machine's folders
  for (file in list.files(out, full.names = TRUE, all.files = TRUE, no.. = TRUE)) {
    text <- paste(rawToChar(readBin(file, "raw", file.size(file)), multiple = TRUE), collapse = "")
    for (folder in unique(c(tempdir(), normalizePath(tempdir()), path.expand("~"), rekognition_examples()))) {
      expect_false(grepl(folder, text, fixed = TRUE, useBytes = TRUE), label = paste(basename(file), "names", folder))
    }
  }
  expect_match(paste(readLines(attr(shared, "datasheet")), collapse = "\n"), "not redistributed", fixed = TRUE)
  mine <- tempfile("mine")
  dir.create(mine)
  file.copy(file.path(rekognition_examples(), c("ex_1.jpg", "ex_4.jpg")), mine)
  joined <- rejoin_shared(out, mine)
  expect_identical(sum(!is.na(joined$path)), 2L)
  expect_identical(joined$protest[!is.na(joined$path)], c("no", "yes"))
})

test_that("face crops train a fit, which classify_faces() applies per face", {
  trains()
  source <- tempfile("people")
  for (person in c("s1", "s2")) {
    for (k in 1:10) {
      split <- if (k <= 8) "train" else "val"
      dir.create(file.path(source, split, person), recursive = TRUE, showWarnings = FALSE)
      file.copy(file.path(orl_faces(), person, sprintf("%d.pgm", k)), file.path(source, split, person))
    }
  }
  crops <- suppressWarnings(face_crops(source, tempfile("crops"), size = 96L, largest_only = TRUE, progress = FALSE))
  expect_s3_class(crops$label, "factor")
  expect_gte(nrow(crops), 19L)                                              # 20 photos, 19 with a face measured
  fit <- finetune_cnn(crops, group = "source_image_id", epochs = 6L, image_size = 64L, freeze = "backbone",
                      learning_rate = 0.01, augment_crop = FALSE, progress = FALSE)
  result <- classify_faces(fit, file.path(orl_faces(), "s1", c("9.pgm", "10.pgm")), progress = FALSE)
  expect_s3_class(result, "face_classification")
  expect_identical(result$images$faces, c(1L, 1L))
  expect_true(all(c("faces_s1", "any_s1", "all_s2") %in% names(result$images)))
  expect_s3_class(result$faces$.pred_class, "factor")
  expect_output(print(result), "2 faces in 2 images")
})
