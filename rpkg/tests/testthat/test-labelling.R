# label_corpus(): resumable Parquet shards, the same answers as predict(), here and on a local Ray cluster.

test_that("a corpus is labelled into shards with predict()'s answers, and a rerun resumes", {
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

  labels <- labelled_images(again)
  direct <- predict(fit, images, type = "prob")
  expect_identical(names(labels), names(direct))
  expect_identical(labels$path, direct$path)
  expect_identical(levels(labels$predicted), fit$classes)
  expect_identical(as.character(labels$predicted), as.character(direct$predicted))
  expect_equal(labels$prob_s1, direct$prob_s1, tolerance = 1e-6)
  expect_true(is.na(labels$predicted[13]) && grepl("not an image", labels$error[13]))
  expect_identical(labelled_images(out)$image_id, labels$image_id)   # by path too
})

test_that("backend = 'ray' gives the local answers", {
  fit <- faces_fit()
  images <- sort(list.files(file.path(sample_data(), "new_images"), full.names = TRUE))
  on_ray <- predict(fit, images, type = "prob", backend = "ray")
  here <- predict(fit, images, type = "prob")
  expect_identical(as.character(on_ray$predicted), as.character(here$predicted))
  expect_equal(on_ray$prob_s2, here$prob_s2, tolerance = 1e-5)
})

test_that("bad labelling arguments are R errors naming the argument", {
  fit <- faces_fit()
  expect_error(label_corpus(fit, "x", out = tempfile(), shard_size = 2.5), "`shard_size` must be a whole number")
  expect_error(label_corpus(fit, "x", out = tempfile(), backend = "slurm"), "should be one of")
  expect_error(label_corpus("not a fit", "x", out = tempfile()), "must be a cnn_fit")
})
