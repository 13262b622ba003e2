# image_table() and sample_data(): what the engine reads, as R sees it.

test_that("a folder of class folders becomes image_id, path, label (factor), split", {
  skip_if_no_engine()
  faces <- image_table(file.path(sample_data(), "faces"))
  expect_s3_class(faces, "tbl_df")
  expect_identical(names(faces), c("image_id", "path", "label", "split"))
  expect_equal(nrow(faces), 48)
  expect_type(faces$image_id, "character")
  expect_true(all(file.exists(faces$path)))
  expect_true(all(startsWith(faces$path, "/")))
  expect_identical(levels(faces$label), paste0("s", 1:6))
  expect_identical(as.vector(table(faces$label)), rep(8L, 6))
  expect_identical(faces$split, rep(NA_character_, 48))
  expect_identical(faces$image_id[1:2], c("s1/1.png", "s1/2.png"))
  # exactly what the engine produced
  engine_rows <- py_json(sprintf("__import__('imagesasdata').image_table(%s).to_pylist()",
                                 shQuote(file.path(sample_data(), "faces"))))
  expect_identical(faces$image_id, engine_rows$image_id)
  expect_identical(faces$path, engine_rows$path)
  expect_identical(as.character(faces$label), engine_rows$label)
})

test_that("unlabelled images get NA labels; a data frame and a CSV are read like the engine reads them", {
  skip_if_no_engine()
  new <- image_table(file.path(sample_data(), "new_images"))
  expect_equal(nrow(new), 12)
  expect_true(all(is.na(new$label)))
  expect_s3_class(new$label, "factor")
  expect_identical(levels(new$label), character())

  csv <- image_table(file.path(sample_data(), "person_vs_others.csv"))
  # two classes: the positive one first (R's rule: the first level is the event), as the engine chooses it
  expect_identical(levels(csv$label), c("positive", "negative"))
  expect_identical(sum(csv$label == "positive"), 8L)
  expect_true(all(file.exists(csv$path)))

  frame <- data.frame(file = csv$path[1:3], group = c("a", NA, "b"), votes = c(2L, NA, 5L), outcome = c("x", "y", "x"))
  from_frame <- image_table(frame, path = "file", label = "outcome")
  expect_identical(from_frame$path, csv$path[1:3])
  expect_identical(as.character(from_frame$label), c("x", "y", "x"))
  expect_identical(from_frame$group, c("a", NA, "b"))      # extra columns travel with their NA
  expect_identical(from_frame$votes, c(2L, NA, 5L))
})

test_that("a vector of paths is a list of images; mistakes are named by the engine", {
  skip_if_no_engine()
  files <- list.files(file.path(sample_data(), "new_images"), full.names = TRUE)[1:3]
  tb <- image_table(files)
  expect_identical(tb$path, normalizePath(files))
  expect_error(image_table(data.frame(path = files[1], label = "a"), label = "lable"),
               class = "imagesasdata_column_error", regexp = "Did you mean `label = label`?", fixed = TRUE)
  expect_error(image_table(42), class = "imagesasdata_argument_error", regexp = "`source` must be")
  expect_error(image_table(c("a.png", NA)), class = "imagesasdata_argument_error")
})

test_that("sample_data() is the engine's sample folder", {
  skip_if_no_engine()
  folder <- sample_data()
  expect_true(dir.exists(file.path(folder, "faces")))
  expect_true(file.exists(file.path(folder, "person_vs_others.csv")))
  expect_length(list.files(file.path(folder, "new_images")), 12)
})
