# From predicted labels to defensible estimates, from R: intervals on every metric, calibration, thresholds, a gold
# sample drawn from a labelled corpus of real images (ORL faces; person s1 is the positive class, so the folder names
# are the truth), coded, topped up and read back, design-weighted metrics, corrected regressions and prevalence.
#
# The gold-sample and corrected-estimate tests are about estimators, not about a fit: a tiny fine-tune learns
# differently on different CPUs (on one it predicted "negative" for every image, and the regression on its
# predictions was singular), so their corpus is predicted from the truth with a known pattern of mistakes
# (corpus_predictions()), the same on every machine. The fit-based tests start with trains() (DEVELOPERS.md, Tests).

# The true class from the photo's folder (orl_faces/s1/3.pgm), whatever form its image_id takes.
truth_of <- function(image_id) ifelse(basename(dirname(image_id)) == "s1", "positive", "negative")

# 120 real photos (people s1-s12, photos 1-10) in predict()'s shape, predicted without a model: the truth, except
# photos 9 and 10 of s1 (2 false negatives of 10) and photo 1 of s2, s4, ..., s12 (6 false positives of 110). The
# probability of the predicted class grows with the photo's number (0.55 to 1.0).
corpus_predictions <- function() {
  folder <- file.path(shared_datasets(), "orl_faces")
  person <- rep(1:12, each = 10)
  photo <- rep(1:10, times = 12)
  truth <- ifelse(person == 1, "positive", "negative")
  wrong <- (person == 1 & photo >= 9) | (person %% 2 == 0 & photo == 1)
  predicted <- ifelse(wrong, ifelse(truth == "positive", "negative", "positive"), truth)
  sure <- 0.5 + 0.05 * photo
  positive <- ifelse(predicted == "positive", sure, 1 - sure)
  tibble::tibble(image_id = sprintf("s%d/%d.pgm", person, photo), path = file.path(folder, sprintf("s%d", person),
                 sprintf("%d.pgm", photo)), .pred_class = factor(predicted, levels = c("negative", "positive")),
                 .pred_negative = 1 - positive, .pred_positive = positive)
}

code_sheet <- function(path, codes = NULL) {
  sheet <- utils::read.csv(path, stringsAsFactors = FALSE, na.strings = "")
  sheet$code <- codes %||% truth_of(sheet$image_id)
  utils::write.csv(sheet, path, row.names = FALSE, na = "")
}

test_that("every metrics table carries its interval, and prints it", {
  trains()
  fit <- faces_fit()
  metrics <- cnn_metrics(fit)
  expect_identical(names(metrics), c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high",
                                     "interval"))
  engine <- py_json(sprintf("__import__('imagesasdata').load_run(%s).metrics.to_pylist()", shQuote(fit$path)))
  expect_identical(metrics$conf.low, engine$lower)
  expect_identical(metrics$interval, engine$interval)
  wilson <- metrics[metrics$interval %in% "wilson", ]
  expect_true(nrow(wilson) > 0 && all(wilson$conf.low <= wilson$.estimate & wilson$.estimate <= wilson$conf.high))
  accuracy <- metrics[metrics$.metric == "accuracy", ]
  expect_true(any(grepl(sprintf("accuracy %.3f [%.3f, %.3f]", accuracy$.estimate, accuracy$conf.low, accuracy$conf.high),
                        capture.output(print(fit)), fixed = TRUE)))
  calibrated <- cnn_metrics(fit, calibration = TRUE)
  expect_setequal(unique(calibrated$.metric[calibrated$.estimator %in% c("uncalibrated", "temperature")]),
                  c("ece", "brier"))
  expect_match(paste(capture.output(print(fit)), collapse = "\n"), "calibration: ")
})

test_that("calibration, thresholds and their plots on the binary fit", {
  trains()
  fit <- binary_fit()
  table <- cnn_calibration(fit)
  expect_identical(names(table), c("probabilities", "split", "bin", "lower", "upper", "images", "predicted", "observed",
                                   "ece", "temperature"))
  expect_setequal(unique(table$probabilities), c("uncalibrated", "temperature"))
  expect_identical(unique(table$temperature[table$probabilities == "temperature"]),
                   fit$description$calibration$temperature)
  for (type in c("calibration", "pr", "roc")) {
    expect_s3_class(ggplot2::ggplot_build(autoplot(fit, type = type))$plot, "ggplot")
  }
  curves <- cnn_thresholds(fit)
  expect_identical(names(curves)[1:3], c("threshold", "true_positives", "false_positives"))
  choice <- choose_threshold(fit, recall = 0.5)
  expect_s3_class(choice, "cnn_threshold")
  expect_true(choice$threshold >= 0 && choice$threshold <= 1)
  expect_output(print(choice), "recall")
  expect_identical(names(choice$metrics), c(".metric", ".estimator", ".estimate", "class", "n", "conf.low", "conf.high",
                                            "interval"))
  expect_error(choose_threshold(fit, recall = 0.5, precision = 0.5), class = "imagesasdata_error", "exactly one")
  expect_error(choose_threshold(faces_fit(), recall = 0.5), class = "imagesasdata_error", "binary")

  images <- file.path(sample_data(), "new_images")
  raw <- predict(fit, images, type = "prob")
  calibrated <- predict(fit, images, type = "prob", calibrate = TRUE)
  expect_identical(calibrated$.pred_class, raw$.pred_class)
  low <- predict(fit, images, type = "prob", threshold = 0.2)
  expect_identical(as.character(low$.pred_class), ifelse(raw$.pred_positive >= 0.2, "positive", "negative"))
  expect_error(predict(fit, images, threshold = "high"), class = "imagesasdata_argument_error", "`threshold`")
  expect_error(predict(faces_fit(), images, threshold = 0.3), class = "imagesasdata_error", "binary tasks")
  truth <- image_table(images)
  truth$label <- ifelse(startsWith(truth$image_id, "s1_"), "positive", "negative")
  evaluation <- cnn_evaluate(fit, truth, threshold = 0.2, progress = FALSE)
  accuracy <- cnn_metrics(evaluation)
  expect_equal(accuracy$.estimate[accuracy$.metric == "accuracy"], mean(as.character(low$.pred_class) == truth$label))
})

test_that("a gold sample is drawn from a labelled corpus, coded, topped up and read back", {
  skip_if_no_engine()
  labels <- corpus_predictions()
  expect_setequal(as.character(labels$.pred_class), c("negative", "positive"))
  sample <- draw_gold_sample(labels, 30, strata = "predicted", allocation = "equal", seed = 4L)
  expect_identical(nrow(sample), 30L)
  expect_true(all(c("image_id", "stratum", "inclusion_probability", "weight", "wave") %in% names(sample)))
  expect_true(nzchar(attr(sample, "gold_design")))
  sizes <- table(as.character(labels$.pred_class))
  expected <- as.numeric(table(sample$stratum)[sample$stratum]) / as.numeric(sizes[sample$stratum])
  expect_equal(sample$inclusion_probability, expected)
  expect_equal(sample$weight, 1 / sample$inclusion_probability)
  folder <- write_coding_sheet(sample, tempfile("gold"))
  expect_true(all(c("coding_sheet_wave1.csv", "coding_sheet_wave1.html", "sample.parquet", "gold.json") %in%
                    list.files(folder)))
  sheet <- file.path(folder, "coding_sheet_wave1.csv")
  expect_identical(names(utils::read.csv(sheet)), c("image_id", "path", "code", "note"))
  expect_error(read_coding_sheet(folder), class = "imagesasdata_error", "sampled images have no code")
  code_sheet(sheet)
  gold <- read_coding_sheet(folder)
  expect_identical(levels(gold$label), levels(labels$.pred_class))   # factors with the fit's classes
  expect_identical(as.character(gold$label), truth_of(gold$image_id))
  metrics <- gold_metrics(gold)
  expect_identical(names(metrics), c(".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high",
                                     "interval"))
  correct <- gold$label == as.character(gold$.pred_class)
  expect_equal(metrics$.estimate[metrics$.metric == "accuracy"], stats::weighted.mean(correct, gold$weight))

  more <- draw_gold_sample(labels, 10, previous = folder, seed = 4L)
  expect_identical(sort(unique(more$wave)), 1:2)
  expect_length(intersect(more$image_id[more$wave == 2], sample$image_id), 0)
  write_coding_sheet(more, folder)
  code_sheet(file.path(folder, "coding_sheet_wave2.csv"))
  expect_identical(nrow(read_coding_sheet(folder)), 40L)

  # bad codes are R conditions naming the file and row
  codes <- truth_of(utils::read.csv(sheet, stringsAsFactors = FALSE)$image_id)
  codes[4] <- "maybe"
  code_sheet(sheet, codes)
  e <- expect_error(read_coding_sheet(folder), class = "imagesasdata_error", "coding_sheet_wave1.csv line 5: \"maybe\"")
  expect_identical(basename(e$path), "coding_sheet_wave1.csv")   # the file and line as the condition's fields
  expect_identical(as.integer(e$row), 5L)
  expect_error(draw_gold_sample(labels, "ten"), class = "imagesasdata_argument_error", "`size`")
})

test_that("corrected_glm() and corrected_prevalence() on the labelled corpus, in broom's shape", {
  skip_if_no_engine()
  labels <- corpus_predictions()
  sample <- draw_gold_sample(labels, 40, seed = 9L)
  folder <- write_coding_sheet(sample, tempfile("gold"))
  code_sheet(file.path(folder, "coding_sheet_wave1.csv"))
  gold <- read_coding_sheet(folder)
  set.seed(2020)
  shows <- truth_of(labels$image_id) == "positive"
  labels$followers <- stats::rlnorm(nrow(labels), 8, 1)
  labels$retweets <- stats::rpois(nrow(labels), exp(0.5 + 0.7 * shows + 0.2 * (log(labels$followers) - 8)))
  labels$shows <- labels$.pred_class == "positive"
  gold$shows <- gold$label == "positive"
  # 40 gold images of a corpus with 10 positives: the rare class is seen a few times only, and the fit says so
  expect_warning(fit <- corrected_glm(retweets ~ shows + log(followers), labels, gold, predicted = "shows",
                                      family = "poisson"),
                 class = "imagesasdata_warning", "rest on few gold images")
  expect_true(all(!is.na(tidy(fit, method = "corrected")$flag)))
  expect_s3_class(fit, "corrected_glm")
  tidied <- tidy(fit)
  expect_identical(names(tidied), c("term", "estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high",
                                    "method", "lambda", "df", "flag"))
  corrected <- tidy(fit, method = "corrected")
  covariance <- vcov(fit)
  expect_identical(dimnames(covariance), list(unique(tidied$term), unique(tidied$term)))
  expect_equal(sqrt(diag(covariance)), stats::setNames(corrected$std.error, corrected$term), tolerance = 1e-10)
  expect_identical(dim(vcov(fit, method = "gold_only")), c(3L, 3L))
  expect_true(all(corrected$lambda >= 0 & corrected$lambda <= 1))
  expect_identical(unique(tidied$term), c("(Intercept)", "showsTRUE", "log(followers)"))
  expect_identical(levels(tidied$method), c("naive", "gold_only", "corrected"))
  expect_identical(nrow(tidy(fit, method = "corrected")), 3L)
  glanced <- glance(fit)
  expect_identical(glanced$n_gold, 40L)
  expect_identical(glanced$n_corpus, 120L)
  expect_output(print(fit), "corrected by")
  expect_s3_class(ggplot2::ggplot_build(autoplot(fit, truth = c(showsTRUE = 0.7)))$plot, "ggplot")
  # the naive fit is glm() on the predictions (same estimates; robust standard errors)
  naive <- stats::glm(retweets ~ shows + log(followers), family = stats::poisson, data = labels)
  expect_equal(tidy(fit, method = "naive")$estimate, unname(stats::coef(naive)), tolerance = 1e-5)

  prevalence <- corrected_prevalence(labels, gold)
  expect_s3_class(prevalence, "corrected_prevalence")
  expect_identical(names(prevalence), c("class", "method", "estimate", "std.error", "conf.low", "conf.high",
                                        "n_corpus", "n_gold", "interval"))
  naive_share <- prevalence$estimate[prevalence$class == "positive" & prevalence$method == "naive"]
  expect_equal(naive_share, mean(labels$.pred_class == "positive"))
  expect_s3_class(ggplot2::ggplot_build(autoplot(prevalence))$plot, "ggplot")

  # bad input is an R condition that says what to do
  expect_error(corrected_glm(retweets ~ protest, labels, gold, predicted = "protest"),
               class = "imagesasdata_error", "\"protest\", which the corpus does not have")
  expect_error(corrected_glm(retweets ~ shows, labels, gold[1:3, ], predicted = "shows"),
               class = "imagesasdata_error", "has 3 coded images")
  zero <- gold
  zero$inclusion_probability[1] <- 0
  expect_error(corrected_glm(retweets ~ shows, labels, zero, predicted = "shows"), class = "imagesasdata_error",
               "inclusion probabilities must lie in")
  stray <- gold
  stray$image_id[2] <- "s99/1.pgm"
  expect_error(corrected_glm(retweets ~ shows, labels, stray, predicted = "shows"), class = "imagesasdata_error",
               "gold images not in the corpus: s99/1.pgm")
  expect_error(corrected_glm("retweets ~ shows", labels, gold, predicted = "shows"),
               class = "imagesasdata_argument_error", "`formula` must be a formula")
  expect_error(corrected_glm(retweets ~ shows, labels, gold, predicted = 1), class = "imagesasdata_argument_error",
               "`predicted`")
})

test_that("a labelling made with a balanced fit says its metrics may not transfer", {
  trains()
  fit <- binary_fit()
  balanced <- finetune_cnn(file.path(sample_data(), "person_vs_others.csv"), epochs = 1, image_size = 64, balance = TRUE,
                           freeze = "backbone", augment_crop = FALSE, out = file.path(tempdir(), "balanced-run"),
                           progress = FALSE)
  expect_match(paste(capture.output(print(balanced)), collapse = " "), "gold sample")
  job <- label_corpus(balanced, file.path(sample_data(), "new_images"), out = tempfile("labels"), calibrate = TRUE,
                      threshold = 0.5)
  printed <- paste(capture.output(print(job)), collapse = " ")
  expect_match(printed, "note: the training and validation images were balanced")
  expect_match(printed, "threshold 0.5")
  expect_null(label_corpus(fit, file.path(sample_data(), "new_images"), out = tempfile("labels"))$note)
})

test_that("corrected_glm() returns the engine's numbers in broom's shape (no fine-tune needed)", {
  skip_if_no_engine()
  set.seed(3)
  n <- 1500
  truth <- stats::rbinom(n, 1, 0.3)
  corpus <- data.frame(image_id = paste0("img", seq_len(n)), z = stats::rnorm(n))
  corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
  corpus$protest <- ifelse(stats::runif(n) < ifelse(corpus$y > 1.5, 0.75, 0.95), truth, 1 - truth)
  coded <- sample(n, 200)
  gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
  # a gold table that does not say how it was drawn is refused unless declared a simple random sample (issue 21)
  expect_error(corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest"), class = "imagesasdata_error",
               "design")
  expect_error(corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "random"),
               class = "imagesasdata_argument_error", "`design`")
  fit <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "srs")
  expect_identical(fit$corrected_method, "DSL M-estimator (stratified sandwich)")
  expect_identical(glance(fit)$lambda_rule, "per coefficient, in-sample")
  expect_true(all(tidy(fit, method = "corrected")$lambda >= 0))
  # gold codes outside the predictions' coding name the rows
  seven <- gold
  seven$protest[2] <- 7
  expect_error(corrected_glm(y ~ protest + z, corpus, seven, predicted = "protest", design = "srs"),
               class = "imagesasdata_error", "row 2")
  # an interval that cannot be trusted is not reported, and the warning is an imagesasdata condition
  separated <- gold
  separated$protest <- as.integer(corpus$z[match(gold$image_id, corpus$image_id)] > 0)
  expect_warning(flagged <- corrected_glm(protest ~ z, corpus, separated, predicted = "protest", family = "binomial",
                                          design = "srs"),
                 class = "imagesasdata_warning", "cannot be trusted")
  expect_true(all(is.na(tidy(flagged, method = "gold_only")$conf.low)))
  expect_output(print(flagged), "unreliable")
  expect_identical(glance(fit)$design, "simple random sample")
  engine <- reticulate::import("imagesasdata.analysis.estimators", convert = FALSE)$corrected_glm(
    "y ~ protest + z", engine_table(corpus), engine_table(gold), predicted = "protest", design = "srs")
  rows <- as_tibble_engine(engine$coefficients)
  expect_equal(tidy(fit)$estimate, rows$estimate, tolerance = 1e-12)
  expect_equal(tidy(fit)$conf.low, rows$conf_low, tolerance = 1e-12)
  expect_identical(as.character(tidy(fit)$method), rows$method)
  # the naive fit is glm() on the predictions
  naive <- stats::glm(y ~ protest + z, data = corpus)
  expect_equal(tidy(fit, method = "naive")$estimate, unname(stats::coef(naive)), tolerance = 1e-8)
  expect_error(corrected_glm(y ~ protest + w, corpus, gold, predicted = "protest", design = "srs"), class = "imagesasdata_error",
               "\"w\", which the corpus does not have")
  # a formula never runs code (issue 20): R's calls are refused by the engine's allow-list, before any data is read
  withr::local_dir(withr::local_tempdir())
  expect_error(corrected_glm(y ~ protest + I(system("touch pwned")), corpus, gold, predicted = "protest", design = "srs"),
               class = "imagesasdata_error", "not allowed in a formula")
  expect_error(corrected_glm(y ~ protest + I(z + .__import__), corpus, gold, predicted = "protest", design = "srs"),
               class = "imagesasdata_error")
  expect_error(corrected_glm(y ~ protest + I(z$real), corpus, gold, predicted = "protest", design = "srs"), class = "imagesasdata_error")
  expect_false(file.exists("pwned"))
  squared <- corrected_glm(y ~ protest + I(z^2) + I(z > 0 & protest == TRUE), corpus, gold, predicted = "protest", design = "srs")
  expect_true(all(c("I(z^2)", "I(z > 0 & protest == TRUE)TRUE") %in% tidy(squared)$term))
  by_hand <- corpus
  by_hand$both <- by_hand$z > 0 & by_hand$protest == 1
  reference <- stats::coef(stats::glm(y ~ protest + I(z^2) + both, data = by_hand))
  names(reference) <- sub("bothTRUE", "I(z > 0 & protest == TRUE)TRUE", names(reference))
  naive_fit <- tidy(squared, method = "naive")
  expect_equal(naive_fit$estimate, unname(reference[naive_fit$term]), tolerance = 1e-8)
  expect_error(corrected_glm(y ~ protest, corpus, gold[1:3, ], predicted = "protest", design = "srs"), class = "imagesasdata_error",
               "has 3 coded images")
  expect_error(tidy(fit, method = "best"), class = "imagesasdata_argument_error", "naive, gold_only, corrected")
  expect_error(corrected_glm(y ~ protest, corpus, gold, predicted = "protest", lambda = 2),
               class = "imagesasdata_argument_error", "`lambda` must lie between 0 and 1")
  expect_error(corrected_glm(y ~ protest, corpus, gold, predicted = "protest", conf_level = 95),
               class = "imagesasdata_argument_error", "`conf_level` must lie strictly between 0 and 1")
})
