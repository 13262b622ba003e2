# ggplot diagnostics: the layers hold the right data.

test_that("autoplot() draws loss and accuracy by epoch for training and validation, the kept epoch marked", {
  trains()
  fit <- faces_fit()
  plot <- autoplot(fit)
  expect_s3_class(plot, "ggplot")
  built <- ggplot2::ggplot_build(plot)
  lines <- built$plot$data
  expect_setequal(as.character(unique(lines$measure)), c("loss", "accuracy"))
  expect_setequal(as.character(unique(lines$split)), c("training", "validation"))
  history <- cnn_history(fit)
  expect_equal(sort(lines$value[lines$measure == "loss"]), sort(history$loss))
  vline <- built$data[[length(built$data)]]
  expect_equal(unique(vline$xintercept), fit$description$best_epoch)
})

test_that("autoplot(type = 'confusion') is a heatmap of the counts", {
  trains()
  fit <- faces_fit()
  plot <- autoplot(fit, type = "confusion")
  tiles <- ggplot2::ggplot_build(plot)$data[[1]]
  expect_equal(nrow(tiles), 36)
  expect_equal(sum(plot$data$count), sum(fit$splits$split == "val"))
})

test_that("autoplot(type = 'misclassified') shows each mistake with its true and predicted label", {
  trains()
  fit <- faces_fit()
  wrong <- cnn_misclassified(fit)
  plot <- autoplot(fit, type = "misclassified", n = 4)
  expect_s3_class(plot, "ggplot")
  if (nrow(wrong) == 0) {
    expect_match(ggplot2::ggplot_build(plot)$data[[1]]$label, "No misclassified images")
  } else {
    shown <- levels(plot$data$caption)
    expect_length(shown, min(4, nrow(wrong)))
    expect_match(shown[1], sprintf("true: %s\npredicted: %s", wrong$label[1], wrong$.pred_class[1]), fixed = TRUE)
  }
})

test_that("image_gallery() draws real pixels and counts images it cannot read", {
  skip_if_no_engine()
  faces <- image_table(file.path(sample_data(), "faces"))
  first <- faces[1:2, ]
  plot <- image_gallery(first, size = 46)
  pixels <- plot$data
  expect_identical(levels(pixels$caption), c("s1/1.png", "s1/2.png"))
  # ORL photos are 92 x 112 grey: shrunk to fit 46 px they are 38 x 46, every pixel a shade of grey
  expect_equal(max(pixels$x), 38)
  expect_equal(max(pixels$y), 46)
  expect_equal(nrow(pixels), 2 * 38 * 46)
  rgb <- col2rgb(pixels$colour)
  expect_true(all(rgb[1, ] == rgb[2, ] & rgb[2, ] == rgb[3, ]))
  expect_gt(length(unique(pixels$colour)), 50)
  with_broken <- rbind(first[, c("image_id", "path")], data.frame(image_id = "broken", path = broken_image()))
  plot <- image_gallery(with_broken)
  expect_identical(plot$labels$caption, "1 image(s) could not be read")
  expect_s3_class(ggplot2::ggplot_build(plot), "ggplot_built")
})
