# The book, exactly: Table 7.1 in one call, the grid presets of section 7 (Table 7.2 and Figures 7.4/7.5) drawn as
# the book lays them out, and the arithmetic of section 3 against hand computations.

test_that("data_summary() counts each task by class and split, as the fits will see them (Table 7.1)", {
  skip_if_no_engine()
  sample <- sample_data()
  summary <- data_summary(list(who = file.path(sample, "faces"), s1 = file.path(sample, "person_vs_others.csv")))
  expect_s3_class(summary, "tbl_df")
  expect_identical(names(summary), c("task", "class", "train", "val", "test", "total", "share", "split_source",
                                     "no_test"))
  who <- summary[summary$task == "who", ]
  expect_identical(who$class, paste0("s", 1:6))
  expect_true(all(who$train == 6 & who$val == 2 & who$test == 0 & who$total == 8))
  s1 <- summary[summary$task == "s1", ]
  expect_identical(s1$total[s1$class == "positive"], 8L)
  expect_identical(s1$total[s1$class == "negative"], 40L)
  expect_match(s1$no_test[[1]], "at least 20 images in every class")
  text <- format_data_summary(summary)
  expect_identical(names(text), c("Task", "Class", "Training", "Validation", "Test", "Total", "Share"))
  expect_identical(text$Total[text$Task == "s1" & text$Class == "all"], 48L)
  expect_identical(text$Share[text$Task == "s1" & text$Class == "positive"], "16.7%")
  # a data frame is one task
  expect_identical(unique(data_summary(image_table(file.path(sample, "faces")))$task), "task")
  expect_error(data_summary(list(1, 2)), class = "imagesasdata_argument_error", regexp = "named list")
})

test_that("tune_cnn(grid = \"table7.2\") runs the book's 12 configurations and draws Table 7.2's layout", {
  trains()
  skip_finetune()
  grid <- tune_cnn(file.path(sample_data(), "faces"), grid = "table7.2", epochs = 1, image_size = 32,
                   freeze = "backbone", augment_crop = FALSE, out = file.path(tempdir(), "table72"), progress = FALSE)
  expect_identical(nrow(grid$results), 12L)
  expect_setequal(grid$parameters, c("learning_rate", "momentum", "batch_size"))
  expect_setequal(paste(grid$results$learning_rate, grid$results$momentum, grid$results$batch_size),
                  paste(rep(c(0.0005, 0.001, 0.005), each = 4), rep(c(0.7, 0.7, 0.9, 0.9), 3), rep(c(1, 4), 6)))
  printed <- capture.output(print(grid))
  expect_true(any(grepl("optimistic: the validation split chose this configuration", printed, fixed = TRUE)))
  # Figures 7.4/7.5: facets by learning rate, colour by momentum, line type by batch size
  curves <- autoplot(grid, measure = "loss")
  expect_s3_class(curves, "ggplot")
  expect_setequal(levels(curves$data$facet), paste("learning_rate =", c("0.0005", "0.001", "0.005")))
  # Table 7.2: one row per task, the book's columns in its order
  table <- autoplot(grid, type = "table")
  expect_s3_class(table, "ggplot")
  expect_identical(levels(table$data$column)[1:8], c("Task", "Accuracy", "F1", "Precision", "Recall",
                                                     "Learning rate", "Momentum", "Batch size"))
  best <- grid$results[grid$results$config_id == grid$best_config, ]
  cell <- function(column) table$data$label[table$data$column == column]
  expect_identical(cell("Learning rate"), format(best$learning_rate, scientific = FALSE, drop0trailing = TRUE))
  expect_identical(cell("Accuracy"), sprintf("%.1f%%", 100 * best$val_accuracy))
  several <- structure(list(faces = grid, again = grid), class = "cnn_grids")
  expect_identical(as.character(autoplot(several)$data$label[autoplot(several)$data$column == "Task"]),
                   c("faces", "again"))
  expect_error(autoplot(grid, type = "tabel"), class = "imagesasdata_argument_error", regexp = "Did you mean \"table\"")
})

test_that("an image is a height x width x 3 array of integers", {
  skip_if_no_engine()
  path <- file.path(sample_data(), "faces", "s1", "1.png")
  face <- image_array(path)
  expect_identical(dim(face), c(112L, 92L, 3L))
  expect_type(face, "integer")
  expect_true(all(face >= 0L & face <= 255L))
  # the engine's own pixels, element by element
  engine <- py_json(sprintf("__import__('imagesasdata').image_array(%s)[:2, :3, 0].tolist()", shQuote(path)))
  expect_equal(face[1:2, 1:3, 1], engine)
  expect_identical(dim(image_array(path, size = 23)), c(23L, 19L, 3L))
})

test_that("the small network, the activations, convolution and pooling equal a hand computation", {
  skip_if_no_engine()
  # Figure 3.2's arithmetic on the vignette's numbers: hidden ReLU(0.2 + 1.6 + 0.1) = 1.9, ReLU(-0.5 + 2) = 1.5;
  # output sigmoid(1.5 * 1.9 - 0.7 * 1.5 + 0.2) = sigmoid(2)
  network <- network_arithmetic(c(1, 2), list(
    list(weights = rbind(c(0.2, 0.8), c(-0.5, 1)), bias = c(0.1, 0), activation = "relu"),
    list(weights = rbind(c(1.5, -0.7)), bias = 0.2, activation = "sigmoid")))
  expect_equal(network$z, c(1.9, 1.5, 2.0))
  expect_equal(network$output[[3]], 1 / (1 + exp(-2)))
  expect_identical(network$working[[1]], "0.2*1 + 0.8*2 + 0.1 = 1.9")
  curves <- activation_table(c(-2, 0, 2))
  expect_s3_class(curves, "activation_curves")
  expect_equal(curves$output[curves$activation == "relu"], c(0, 0, 2))
  expect_equal(curves$output[curves$activation == "tanh"], tanh(c(-2, 0, 2)))
  expect_s3_class(autoplot(curves), "ggplot")
  # Figure 3.4's operation: (1, 2, 3, 4) with the filter (0.5, -1)
  line <- convolution(matrix(1:4, nrow = 1), matrix(c(0.5, -1), nrow = 1))
  expect_equal(line$output, matrix(c(1 * 0.5 + 2 * -1, 2 * 0.5 + 3 * -1, 3 * 0.5 + 4 * -1), nrow = 1))
  # Figure 3.6's set-up: 5 x 5 x 3, padding 1, stride 2, two 3 x 3 x 3 filters, biases 1 and 0
  set.seed(3)
  volume <- array(sample(0:2, 75, replace = TRUE), dim = c(5, 5, 3))
  filters <- list(array(sample(-1:1, 27, replace = TRUE), dim = c(3, 3, 3)),
                  array(sample(-1:1, 27, replace = TRUE), dim = c(3, 3, 3)))
  result <- convolution(volume, filters, bias = c(1, 0), stride = 2, padding = 1)
  expect_identical(dim(result$output), c(3L, 3L, 2L))
  padded <- array(0, dim = c(7, 7, 3))
  padded[2:6, 2:6, ] <- volume
  by_hand <- function(i, j, k, bias) sum(padded[(2 * i - 1):(2 * i + 1), (2 * j - 1):(2 * j + 1), ] * filters[[k]]) + bias
  for (i in 1:3) for (j in 1:3) {
    expect_equal(result$output[i, j, 1], by_hand(i, j, 1, 1))
    expect_equal(result$output[i, j, 2], by_hand(i, j, 2, 0))
  }
  expect_output(print(result), "Z11 = ")
  # Figure 3.7's operation: 2 x 2 windows, the largest of each
  pooled <- max_pooling(rbind(c(1, 3, 2, 4), c(5, 6, 7, 8), c(3, 2, 1, 0), c(1, 2, 3, 4)))
  expect_equal(pooled$output, rbind(c(6, 8), c(3, 4)))
  expect_identical(pooled$steps$window[[1]], "1, 3, 5, 6")
})

test_that("a photo through the first convolution: one map per filter, drawn on a sheet", {
  skip_if_no_engine()
  maps <- feature_maps(file.path(rekognition_examples(), "ex_2.jpg"), n = 8,
                       out = file.path(tempdir(), "book-maps.png"))
  expect_identical(maps$layer, "conv_stem")
  expect_identical(maps$filter_shape, c(32L, 3L, 3L, 3L))
  expect_identical(nrow(maps$maps), 32L)
  expect_true(all(maps$maps$height == 112L & maps$maps$min <= maps$maps$max))
  expect_true(file.exists(maps$sheet))
  expect_output(print(maps), "32 maps of 112 x 112")
})

test_that("emotion_labels(multi_label = TRUE) keeps every emotion an image evokes; notices can be silenced", {
  skip_if_no_engine()
  scores <- data.frame(image_id = c("a", "b", "c"), path = c("a.jpg", "b.jpg", "c.jpg"),
                       anger = c(6, 0, 1), fear = c(4, 0, 0), sadness = c(0, 8, 0))
  labels <- emotion_labels(scores, emotions = c("anger", "fear", "sadness"), multi_label = TRUE)
  expect_identical(labels$emotions, c("anger;fear", "sadness", ""))
  expect_identical(labels$n_emotions, c(2L, 1L, 0L))
  expect_identical(labels$fear, c(TRUE, FALSE, FALSE))
  expect_identical(labels$path, scores$path)
  expect_null(suppress_notices("commercial_tagger"))
  expect_error(suppress_notices("faces"), regexp = "unknown notice")
})
