# One naming scheme (tidymodels), from the engine's schema: the column names of what exported functions return,
# checked against python/imagesasdata/schema.py; and every autoplot() rendered at the default 7 x 5 in with no text
# wider or taller than the device.

scheme <- function() {
  schema <- imagesasdata:::engine_schema()
  r_names <- function(kind) {
    engine <- as.character(unlist(schema$tables[[kind]]))
    renamed <- unlist(c(schema$r_columns[[kind]], schema$r_prediction_columns))
    ifelse(engine %in% names(renamed), renamed[engine], engine)
  }
  list(metrics = r_names("metrics"), coefficients = r_names("coefficients"), prevalence = r_names("prevalence"),
       predictions = r_names("predictions"), confusion = r_names("confusion"))
}

# The text elements of a plot drawn at width x height inches (ggplot2's grobs measured on that device) that are
# wider (titles, x-axis title, caption) or taller (y-axis title) than the device; and "edge" when anything is drawn
# on the outermost pixels of the PNG (text or an image running off the device: a title too long for the space
# right of the axis labels, a caption pushed out, a strip label cut).
clipped_text <- function(plot, file, width = 7, height = 5) {
  grDevices::png(file, width = width, height = height, units = "in", res = 96)
  table <- ggplot2::ggplotGrob(plot)
  grid::grid.newpage()
  grid::grid.draw(table)
  out <- character()
  for (name in c("title", "subtitle", "caption", "xlab-b", "ylab-l")) {
    at <- which(table$layout$name == name)
    if (!length(at)) next
    grob <- table$grobs[[at[[1]]]]
    wide <- grid::convertWidth(grid::grobWidth(grob), "in", valueOnly = TRUE)
    tall <- grid::convertHeight(grid::grobHeight(grob), "in", valueOnly = TRUE)
    if ((name != "ylab-l" && wide > width) || (name == "ylab-l" && tall > height)) out <- c(out, name)
  }
  grDevices::dev.off()
  pixels <- png::readPNG(file)
  ink <- if (length(dim(pixels)) == 3) apply(pixels[, , 1:3, drop = FALSE], c(1, 2), min) < 0.9 else pixels < 0.9
  border <- c(ink[1:2, ], ink[nrow(ink) - 0:1, ], ink[, 1:2], ink[, ncol(ink) - 0:1])
  if (any(border)) out <- c(out, "edge")
  out
}

# Each plot written to IMAGESASDATA_PLOTS/plots/<name>.png (or tempdir()): no text clipped, nothing on the edge,
# no facet titled "NA".
expect_plots_fit <- function(plots) {
  folder <- file.path(Sys.getenv("IMAGESASDATA_PLOTS", tempdir()), "plots")
  dir.create(folder, recursive = TRUE, showWarnings = FALSE)
  for (name in names(plots)) {
    expect_s3_class(plots[[name]], "ggplot")
    file <- file.path(folder, paste0(name, ".png"))
    clipped <- clipped_text(plots[[name]], file)
    expect_identical(clipped, character(), info = name)
    expect_true(file.size(file) > 0)
    built <- ggplot2::ggplot_build(plots[[name]])
    strips <- unlist(lapply(built$layout$layout, as.character))
    expect_false(any(strips %in% "NA"), info = name)
  }
}

# No column of the engine's own spelling where R has another one.
engine_spellings <- c("predicted", "metric", "estimator", "estimate_lower", "lower", "upper", "std_error", "p_value",
                      "conf_low", "conf_high", "f1")
expect_r_names <- function(table, what) {
  expect_false(any(names(table) %in% engine_spellings), info = paste(what, ":", paste(names(table), collapse = ", ")))
  expect_false(any(startsWith(names(table), "prob_")), info = what)
  expect_false(any(names(table) %in% c(".lower", ".upper")), info = what)   # one interval naming: conf.low/high
}

test_that("metrics, predictions and regressions use the schema's R names", {
  skip_if_no_engine()
  s <- scheme()
  expect_identical(s$metrics, c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high",
                                "interval"))
  expect_true(all(c(".pred_class", "image_id", "path") %in% s$predictions))
  expect_identical(s$coefficients, c("term", "estimate", "std.error", "statistic", "p.value", "conf.low",
                                     "conf.high", "method", "lambda", "df", "flag"))
  set.seed(3)
  n <- 600
  truth <- stats::rbinom(n, 1, 0.3)
  corpus <- data.frame(image_id = paste0("img", seq_len(n)), z = stats::rnorm(n))
  corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
  corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)
  coded <- sample(n, 150)
  gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
  fit <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "srs")
  expect_identical(names(tidy(fit)), s$coefficients)
  # broom's conf.int and conf.level
  expect_false(any(c("conf.low", "conf.high") %in% names(tidy(fit, conf.int = FALSE))))
  narrow <- tidy(fit, conf.level = 0.5)
  wide <- tidy(fit)
  expect_true(all(narrow$conf.high - narrow$conf.low < wide$conf.high - wide$conf.low))
  # the same quantile as the fit's own intervals: Student's t on each coefficient's degrees of freedom, else normal
  quantile <- ifelse(is.na(narrow$df), stats::qnorm(0.75), stats::qt(0.75, pmax(narrow$df, 1)))
  expect_equal(narrow$conf.high - narrow$estimate, quantile * narrow$std.error)
  # model-based naive errors, as glm() and broom give them
  model <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", naive_variance = "model",
                         design = "srs")
  naive <- summary(stats::glm(y ~ protest + z, data = corpus))$coefficients
  expect_equal(tidy(model, method = "naive")$std.error, unname(naive[, "Std. Error"]), tolerance = 1e-6)
  expect_equal(tidy(model, method = "corrected")$std.error, tidy(fit, method = "corrected")$std.error)
})

test_that("a fit's tables, predictions and plots follow the scheme, and every plot's text fits at 7 x 5 in", {
  trains()
  fit <- binary_fit()
  s <- scheme()
  metrics <- cnn_metrics(fit)
  expect_identical(names(metrics), s$metrics)
  expect_true("roc_auc" %in% metrics$.metric)   # yardstick's name, with the positive class
  expect_identical(unique(metrics$class[metrics$.metric == "roc_auc"]), fit$positive_class)
  expect_r_names(cnn_confusion(fit), "cnn_confusion")
  expect_true(".pred_class" %in% names(cnn_confusion(fit)))
  expect_r_names(cnn_misclassified(fit), "cnn_misclassified")
  images <- file.path(sample_data(), "new_images")
  labels <- predict(fit, images, type = "prob")
  expect_r_names(labels, "predict")
  expect_identical(attr(labels, "positive_class"), fit$positive_class)
  expect_r_names(tidy(fit), "tidy(cnn_fit)")
  expect_r_names(glance(fit), "glance(cnn_fit)")
  narrow <- tidy(fit, conf.level = 0.5)
  wide <- tidy(fit)
  expect_identical(names(narrow), s$metrics)
  for (split in unique(wide$split)) {
    pick <- function(table) table[table$.metric == "accuracy" & table$split == split, ]
    expect_equal(pick(narrow)$.estimate, pick(wide)$.estimate)
    expect_lt(pick(narrow)$conf.high - pick(narrow)$conf.low, pick(wide)$conf.high - pick(wide)$conf.low)
  }
  expect_false("conf.low" %in% names(tidy(fit, conf.int = FALSE)))

  plots <- list(curves = autoplot(fit), confusion = autoplot(fit, type = "confusion"),
                misclassified = autoplot(fit, type = "misclassified"), calibration = autoplot(fit, type = "calibration"),
                pr = autoplot(fit, type = "pr"), roc = autoplot(fit, type = "roc"),
                gallery = image_gallery(labels))
  expect_match(plots$roc$labels$title, "AUC")
  expect_match(plots$roc$labels$subtitle, fit$positive_class, fixed = TRUE)
  expect_plots_fit(plots)
})

test_that("every other autoplot() of a fit, an evaluation, heatmaps, subgroups and grids fits at 7 x 5 in", {
  trains()
  fit <- binary_fit()
  images <- list.files(file.path(sample_data(), "new_images"), full.names = TRUE)
  labelled <- image_table(file.path(sample_data(), "person_vs_others.csv"))
  evaluation <- suppressWarnings(cnn_evaluate(fit, labelled, progress = FALSE))
  scored <- fit$predictions   # validation and test images
  half <- data.frame(image_id = scored$image_id, half = rep(c("first", "second"), length.out = nrow(scored)))
  audit <- subgroup_metrics(fit, half, "half", min_size = 1L, permutations = 50L)
  finder <- lr_find(file.path(sample_data(), "faces"), num_steps = 15L, image_size = 64L, freeze = "backbone",
                    augment_crop = FALSE, progress = FALSE)
  plots <- list(heatmap = autoplot(fit, type = "heatmap", n = 3),
                heatmap_gallery = heatmap_gallery(cnn_heatmaps(fit, images[1:4], progress = FALSE), n = 4),
                evaluation_confusion = autoplot(evaluation),
                evaluation_misclassified = autoplot(evaluation, type = "misclassified", n = 6),
                subgroups = autoplot(audit), grid = autoplot(small_grid()), lr_finder = autoplot(finder))
  expect_plots_fit(plots)
})

test_that("the autoplot() of every result that needs no fine-tune fits at 7 x 5 in", {
  skip_if_no_engine()
  set.seed(3)
  n <- 600
  truth <- stats::rbinom(n, 1, 0.3)
  corpus <- data.frame(image_id = paste0("img", seq_len(n)), z = stats::rnorm(n))
  corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
  corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)
  coded <- sample(n, 150)
  model <- corrected_glm(y ~ protest + z, corpus, data.frame(image_id = corpus$image_id[coded], protest = truth[coded]),
                         predicted = "protest", design = "srs")
  classes <- c("protest", "other")
  corpus$.pred_class <- factor(ifelse(corpus$protest == 1, "protest", "other"), levels = classes)
  gold <- data.frame(image_id = corpus$image_id[coded], .pred_class = corpus$.pred_class[coded],
                     label = factor(ifelse(truth[coded] == 1, "protest", "other"), levels = classes))
  shares <- corrected_prevalence(corpus, gold, design = "srs")
  scores <- data.frame(image_id = sprintf("img%d", 1:8),
                       anger = c(8, 4, 0, 0, 5, 0, 0, 0), disgust = c(2, 3.5, 0, 0, 5, 0, 0, 0),
                       enthusiasm = c(0, 0, 6, 0, 0, 0, 0, 7), fear = c(0, 0, 0, 0, 0, 0, 0, 1),
                       sadness = c(0, 0, 0, 0, 4, 0, 0, 0))
  examples <- rekognition_examples()
  rows <- utils::read.csv(file.path(examples, "awsrekognition_detect_labels.csv"), stringsAsFactors = FALSE)
  tags <- data.frame(image_id = rows$image_id, tagger = "rekognition", label = rows$label_str,
                     confidence = rows$label_conf, label_rank = rows$label_num)
  manual <- data.frame(image_id = sprintf("ex_%d.jpg", 1:5), person = c("no", "yes", "yes", "yes", "yes"))
  faces <- image_table(file.path(sample_data(), "faces"))
  copies <- tempfile("copies")
  dir.create(copies)
  file.copy(faces$path[c(1, 1, 9, 17)], file.path(copies, c("a.png", "a_copy.png", "b.png", "c.png")))
  embeddings <- image_embeddings(faces[seq(1, 48, by = 4), ], image_size = 64L, progress = FALSE)
  map <- embedding_map(embeddings)
  map$person <- sub("/.*", "", map$image_id)
  plots <- list(corrected_glm = autoplot(model, truth = c(protest = 0.5)), prevalence = autoplot(shares),
                emotion_counts = autoplot(emotion_counts(scores)),
                emotion_cooccurrence = autoplot(emotion_cooccurrence(scores)),
                emotion_max_class = autoplot(emotion_max_class(scores)),
                label_frequencies = autoplot(label_frequencies(tags), n = 8),
                tag_comparison = autoplot(compare_tags(tags, manual, "person", manual_label = "person")),
                duplicates = autoplot(find_duplicates(copies, progress = FALSE)),
                embedding_map = autoplot(map, n = 6),
                embedding_map_by_person = autoplot(map, colour = "person", thumbnails = FALSE),
                faces = autoplot(detect_faces(examples, progress = FALSE), n = 2L),
                screen = autoplot(screen_images(moderation_local(examples, detectors = "nudity", progress = FALSE))))
  expect_plots_fit(plots)
})
