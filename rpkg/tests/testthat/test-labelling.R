# label_corpus(): resumable Parquet shards, the same answers as predict(), here and on a local Ray cluster.

test_that("a corpus is labelled into shards with predict()'s answers, and a rerun resumes", {
  trains()
  fit <- faces_fit()
  images <- c(sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE)), broken_image())
  out <- tempfile("labelling")
  job <- label_corpus(fit, images, out = out, shard_size = 5L, max_shards = 2L)
  expect_s3_class(job, "cnn_labelling")
  expect_identical(c(job$images, job$shards, job$shards_done, job$labelled), c(13L, 3L, 2L, 10L))
  expect_false(job$complete)
  expect_output(print(job), "run label_corpus\\(\\) again to finish")

  again <- label_corpus(fit, images, out = out, shard_size = 5L)
  expect_identical(c(again$labelled, again$shards_done), c(3L, 3L))   # only the missing shard was labelled
  expect_true(again$complete)

  expect_warning(labels <- labelled_images(again), class = "imagesasdata_warning_unreadable")
  expect_warning(direct <- predict(fit, images, type = "prob"), class = "imagesasdata_warning_unreadable")
  expect_identical(names(labels), names(direct))
  expect_identical(labels$path, direct$path)
  expect_identical(levels(labels$.pred_class), fit$classes)
  expect_identical(as.character(labels$.pred_class), as.character(direct$.pred_class))
  expect_equal(labels$.pred_s1, direct$.pred_s1, tolerance = 1e-6)
  expect_true(is.na(labels$.pred_class[13]) && grepl("not an image", labels$error[13]))
  expect_identical(suppressWarnings(labelled_images(out))$image_id, labels$image_id)   # by path too
})

test_that("backend = 'ray' gives the local answers", {
  trains()
  fit <- faces_fit()
  images <- sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE))
  on_ray <- predict(fit, images, type = "prob", backend = "ray")
  here <- predict(fit, images, type = "prob")
  expect_identical(as.character(on_ray$.pred_class), as.character(here$.pred_class))
  expect_equal(on_ray$.pred_s2, here$.pred_s2, tolerance = 1e-5)
})

test_that("bad labelling arguments are R errors naming the argument", {
  trains()
  fit <- faces_fit()
  expect_error(label_corpus(fit, "x", out = tempfile(), shard_size = 2.5), "`shard_size` must be a whole number")
  expect_error(label_corpus(fit, "x", out = tempfile(), backend = "slurm"), class = "imagesasdata_argument_error",
               "`backend` must be one of \"local\" or \"ray\", not \"slurm\"")
  expect_error(label_corpus("not a fit", "x", out = tempfile()), "must be a cnn_fit")
})
