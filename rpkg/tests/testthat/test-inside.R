# Looking inside models and corpora from R (issue 15): heatmaps and their gallery, metrics by subgroup, image
# embeddings (the same vectors as the command line's), maps, clusters and neighbours, and the selection sheet that
# carries the images to label next out to coders and back.

orl_files <- function(people = 1:3, photos = 1:10) {
  grid <- expand.grid(photo = photos, person = people)
  file.path(shared_datasets(), "orl_faces", sprintf("s%d", grid$person), sprintf("%d.pgm", grid$photo))
}

shared_inside <- new.env(parent = emptyenv())

orl_embeddings <- function() {
  skip_if_no_engine()
  if (is.null(shared_inside$embeddings)) {
    # The table gives each face its id ("s1/1.pgm": person/photo), as a user's own table does (a vector of paths
    # would keep each path as written as its id).
    files <- orl_files()
    images <- data.frame(image_id = sub(".*/orl_faces/", "", files), path = files)
    shared_inside$embeddings <- image_embeddings(images, image_size = 128L)
  }
  shared_inside$embeddings
}

test_that("cnn_heatmaps() returns one heatmap per image with its overlay, and autoplot() shows the gallery", {
  trains()
  fit <- faces_fit()
  images <- file.path(sample_data(), "new_images")
  maps <- cnn_heatmaps(fit, images)
  expect_s3_class(maps, "tbl_df")
  expect_equal(nrow(maps), 12)
  expect_true(all(is.na(maps$error)))
  expect_true(all(file.exists(maps$overlay)))
  expect_equal(unique(lengths(maps$heatmap)), 56L^2)
  expect_true(all(vapply(maps$heatmap, function(h) min(h) >= 0 && max(h) <= 1 + 1e-6, logical(1))))
  expect_identical(levels(maps$target), fit$classes)
  expect_identical(as.character(maps$target), as.character(predict(fit, images)$.pred_class))
  gallery <- heatmap_gallery(maps, n = 4)
  expect_s3_class(gallery, "ggplot")
  expect_length(levels(gallery$data$caption), 4)
  top <- autoplot(fit, type = "heatmap", n = 3)
  expect_s3_class(top, "ggplot")
  expect_length(levels(top$data$caption), 3)
  layers <- cnn_heatmap_layers(fit)
  expect_identical(layers$name[layers$default], "bn2")
})

test_that("heatmaps name a class or layer the model does not have", {
  trains()
  fit <- faces_fit()
  images <- file.path(sample_data(), "new_images")
  expect_error(cnn_heatmaps(fit, images, target = "s99"), class = "imagesasdata_error",
               regexp = "s99.* is not a class of this model")
  expect_error(cnn_heatmaps(fit, images, layer = "no_such_layer"), class = "imagesasdata_error",
               regexp = "no_such_layer.* is not a module")
  expect_error(cnn_heatmaps(fit, images, method = 3), class = "imagesasdata_argument_error", regexp = "`method`")
})

test_that("subgroup_metrics() gives each group's metrics with intervals, the gap and a plot", {
  trains()
  fit <- faces_fit()
  val <- fit$predictions[fit$predictions$split == "val", ]
  half <- data.frame(image_id = val$image_id, half = rep(c("first", "second"), length.out = nrow(val)))
  audit <- subgroup_metrics(fit, half, "half", min_size = 1L, permutations = 200L)
  expect_s3_class(audit, "subgroup_audit")
  accuracy <- audit$metrics[audit$metrics$.metric == "accuracy", ]
  for (group in c("first", "second")) {
    ids <- half$image_id[half$half == group]
    rows <- val[val$image_id %in% ids, ]
    expect_equal(accuracy$.estimate[accuracy$group == group], mean(as.character(rows$label) == as.character(rows$.pred_class)))
  }
  expect_true(all(accuracy$conf.low <= accuracy$.estimate & accuracy$.estimate <= accuracy$conf.high))
  expect_identical(unique(accuracy$interval), "wilson")
  expect_true(all(c("largest_group", "gap", "p_value") %in% names(audit$gaps)))
  expect_output(print(audit), "subgroup audit by half")
  expect_s3_class(ggplot2::ggplot_build(autoplot(audit)), "ggplot_built")
  expect_error(subgroup_metrics(fit, half, "gender"), class = "imagesasdata_error", regexp = "gender")
})

test_that("image_embeddings() gives the command line's vectors, as a list column or wide columns", {
  embeddings <- orl_embeddings()
  expect_equal(nrow(embeddings), 30)
  expect_equal(unique(lengths(embeddings$embedding)), 1280L)
  out <- tempfile(fileext = ".parquet")
  python <- engine_python()$python
  # A Python started from R must load its own libpython (see with_own_libpython()).
  status <- imagesasdata:::with_own_libpython(python, system2(
    python, c("-m", "imagesasdata.cli", "embed", "--image-size", "128", "--out", shQuote(out), "--no-progress",
              shQuote(orl_files(1, 1:2))), stdout = FALSE, stderr = FALSE))
  expect_equal(status, 0L)
  from_cli <- as_tibble_engine(reticulate::import("pyarrow.parquet", convert = FALSE)$read_table(out))
  # Another process, the same arithmetic: equal to float32 rounding.
  expect_equal(from_cli$embedding[[1]], embeddings$embedding[[1]], tolerance = 1e-5)
  expect_equal(from_cli$embedding[[2]], embeddings$embedding[[2]], tolerance = 1e-5)
  wide <- image_embeddings(orl_files(1, 1:2), image_size = 128L, shape = "wide")
  expect_identical(names(wide)[1:3], c("image_id", "path", "dim_0001"))
  # A batch of two rather than thirty: the convolutions may add up in another order (seen: relative differences
  # of about 1e-6, depending on the CPU's threads), so the same float32 tolerance as the command line's.
  expect_equal(unlist(wide[1, -(1:2)], use.names = FALSE), embeddings$embedding[[1]], tolerance = 1e-5)
})

test_that("maps, clusters and neighbours of the embeddings", {
  embeddings <- orl_embeddings()
  map <- embedding_map(embeddings)
  expect_s3_class(map, "embedding_map")
  expect_equal(nrow(map), 30)
  expect_true(all(is.finite(map$x) & is.finite(map$y)))
  expect_s3_class(ggplot2::ggplot_build(autoplot(map, n = 5)), "ggplot_built")
  clusters <- embedding_clusters(embeddings, 3L)
  expect_setequal(unique(clusters$cluster), 1:3)
  sheets <- cluster_sheets(clusters, tempfile("sheets"))
  expect_true(all(file.exists(sheets$sheet)))
  neighbours <- nearest_images(embeddings, "s1/1.pgm", k = 3L)
  expect_equal(neighbours$rank, 1:3)
  # Three people, ten photos each: the three nearest faces to s1's first photo are s1's (measured in Python on 20
  # people: the nearest face is the same person for 97.5% of faces).
  expect_true(all(startsWith(neighbours$neighbour_id, "s1/")))
  expect_error(nearest_images(embeddings, "s99/1.pgm"), class = "imagesasdata_error", regexp = "s99/1.pgm")
  broken <- image_embeddings(c(orl_files(1, 1), broken_image()), image_size = 64L)
  expect_true(is.null(broken$embedding[[2]]) || all(is.na(broken$embedding[[2]])))
  expect_error(embedding_map(broken), class = "imagesasdata_error", regexp = "have no embedding")
})

test_that("select_images() proposes images, and the sheet comes back coded into the training table", {
  trains()
  fit <- faces_fit()
  selection <- select_images(fit, file.path(sample_data(), "new_images"), n = 4L)
  expect_equal(selection$rank, 1:4)
  expect_true(all(selection$uncertainty >= 0 & selection$uncertainty <= 1))
  sheet <- tempfile(fileext = ".csv")
  write_selection_sheet(selection, sheet, classes = fit$classes)
  coded <- utils::read.csv(sheet, stringsAsFactors = FALSE)
  expect_identical(names(coded), c("image_id", "path", "code", "note"))
  coded$code <- sub("_.*", "", coded$image_id)
  utils::write.csv(coded, sheet, row.names = FALSE, na = "")
  back <- read_selection_sheet(sheet, classes = fit$classes)
  expect_equal(nrow(back), 4)
  training <- add_coded_images(file.path(sample_data(), "faces"), back)
  expect_equal(nrow(training), 52)
  coded$code[1] <- "nobody"
  utils::write.csv(coded, sheet, row.names = FALSE, na = "")
  expect_error(read_selection_sheet(sheet, classes = fit$classes), class = "imagesasdata_error", regexp = "nobody")
})
