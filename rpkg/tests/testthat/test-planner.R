# Planning from R: plan_gold_sample() (a table of designs side by side, an allocation draw_gold_sample() takes, a plot)
# and learning_curve() (tiny fits on real ORL faces; shapes and nesting only, never an accuracy).

rare_corpus <- function(n = 4000, seed = 1) {
  set.seed(seed)
  truth <- ifelse(stats::runif(n) < 0.05, "protest", "other")
  right <- stats::runif(n)
  predicted <- ifelse(truth == "protest", ifelse(right < 0.8, "protest", "other"),
                      ifelse(right < 0.03, "protest", "other"))
  list(corpus = tibble::tibble(image_id = sprintf("img%05d", seq_len(n)), .pred_class = predicted),
       truth = stats::setNames(truth, sprintf("img%05d", seq_len(n))))
}

test_that("plan_gold_sample() puts the designs side by side and its allocation draws the sample", {
  skip_if_no_engine()
  made <- rare_corpus()
  validation <- tibble::tibble(truth = c("other", "other", "protest", "protest"),
                               .pred_class = c("other", "protest", "other", "protest"), count = c(97, 3, 20, 80))
  plan <- plan_gold_sample(made$corpus, target_width = 0.04, validation = validation, target_class = "protest")
  expect_s3_class(plan, "gold_plan")
  expect_identical(names(plan), c("design", "strata", "gold_size", "expected_width", "gold_only_width",
                                  "target_width", "reaches_target", "allocation", "note"))
  expect_identical(as.character(plan$design), c("srs", "proportional", "neyman", "equal"))
  expect_true(all(plan$reaches_target & plan$expected_width <= 0.04))
  expect_identical(attr(plan, "recommended"), "neyman")
  allocation <- gold_allocation(plan)
  expect_identical(sum(allocation), plan$gold_size[plan$design == "neyman"])
  sample <- draw_gold_sample(made$corpus, size = NULL, strata = ".pred_class", allocation = allocation, seed = 2L)
  expect_identical(nrow(sample), sum(allocation))
  expect_identical(as.integer(table(sample$stratum)[names(allocation)]), unname(allocation))
  expect_match(paste(capture.output(print(plan)), collapse = "\n"), "prevalence of protest")
  expect_s3_class(autoplot(plan), "ggplot")
  expect_error(plan_gold_sample(made$corpus, target_width = 0.04), class = "imagesasdata_error")
  expect_error(plan_gold_sample(made$corpus, target_width = 0.04, validation = validation, designs = "cluster"),
               "designs")
})

test_that("plan_gold_sample() plans a coefficient from a corrected_glm fitted on a first wave", {
  skip_if_no_engine()
  set.seed(3)
  n <- 3000
  truth <- stats::rbinom(n, 1, 0.3)
  corpus <- data.frame(image_id = paste0("img", 1:n), z = stats::rnorm(n))
  corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
  corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)
  coded <- sample(n, 150)
  gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
  fit <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", design = "srs")
  plan <- plan_gold_sample(target_width = 0.3, fit = fit, term = "protest")
  expect_identical(as.character(plan$design), "srs")
  expect_true(plan$reaches_target && plan$expected_width <= 0.3 && plan$gold_only_width > plan$expected_width)
  expect_match(attr(plan, "target"), "coefficient protest")
})

test_that("learning_curve() fits nested fractions and scores them on one split", {
  trains()
  faces <- file.path(tempfile("faces"), "faces")
  for (person in c("s1", "s2", "s3", "s4")) {
    dir.create(file.path(faces, person), recursive = TRUE)
    file.copy(file.path(shared_datasets(), "orl_faces", person, sprintf("%d.pgm", 1:10)), file.path(faces, person))
  }
  curve <- learning_curve(faces, fractions = c(0.5, 1), image_size = 32L, epochs = 1L, freeze = "backbone",
                          augment_crop = FALSE, augment_flip = FALSE, batch_size = 8L, progress = FALSE)
  expect_s3_class(curve, "cnn_learning_curve")
  expect_identical(names(curve), c("fraction", "train_images", "split", "accuracy", "conf.low", "conf.high", "n", "run"))
  expect_identical(curve$fraction, c(0.5, 1))
  expect_identical(curve$train_images, c(16L, 32L))
  expect_true(all(curve$conf.low <= curve$accuracy & curve$accuracy <= curve$conf.high))
  step <- attr(curve, "last_step")
  expect_identical(c(step$from_images, step$to_images), c(16L, 32L))
  expect_match(attr(curve, "answer"), "^From 16 to 32 training images")
  expect_s3_class(autoplot(curve), "ggplot")
})

test_that("calibrate_to_corpus() recalibrates and the estimates say so", {
  skip_if_no_engine()
  set.seed(5)
  n <- 3000
  truth <- ifelse(stats::runif(n) < 0.1, "cat", "dog")
  score <- pmin(pmax(ifelse(truth == "cat", 0.75, 0.3) + stats::rnorm(n, 0, 0.2), 0.01), 0.99)
  ids <- sprintf("i%04d", seq_len(n))
  corpus <- tibble::tibble(image_id = ids, .pred_class = factor(ifelse(score > 0.5, "cat", "dog")),
                           .pred_cat = score, .pred_dog = 1 - score,
                           likes = stats::rpois(n, 3) + 2 * (truth == "cat"))
  chosen <- sample.int(n, 300)
  gold <- tibble::tibble(image_id = ids[chosen], label = truth[chosen], inclusion_probability = 300 / n)
  expect_message(calibrated <- calibrate_to_corpus(corpus, gold = gold, temperature = "gold", prior_shift = "gold",
                                                     source_priors = c(cat = 0.5, dog = 0.5)),
                 "temperature .* fitted on gold", class = "imagesasdata_message")
  record <- jsonlite::fromJSON(attr(calibrated, "calibration"))
  expect_equal(record$temperature_fitted_on, "gold (design-weighted)")
  # the prior shift moves the probabilities towards the gold sample's 10% of cats
  expect_lt(mean(calibrated$.pred_cat), mean(corpus$.pred_cat))
  expect_true(all(abs(calibrated$.pred_cat + calibrated$.pred_dog - 1) < 1e-9))
  expect_s3_class(calibrated$.pred_class, "factor")
  fit <- suppressWarnings(corrected_glm(likes ~ I(.pred_class == "cat"), calibrated, gold, predicted = ".pred_class"))
  expect_match(glance(fit)$calibration, "^probabilities calibrated to the corpus")
  expect_output(print(fit), "note: probabilities calibrated to the corpus")
  plain <- suppressWarnings(corrected_glm(likes ~ I(.pred_class == "cat"), corpus, gold, predicted = ".pred_class"))
  expect_true(is.na(glance(plain)$calibration))
  shares <- suppressWarnings(corrected_prevalence(calibrated, gold))
  expect_match(attr(shares, "calibration"), "class shares moved")
  expect_error(calibrate_to_corpus(corpus, gold = gold), class = "imagesasdata_error")
  expect_error(calibrate_to_corpus(corpus, gold = gold, prior_shift = "gold"), "run", class = "imagesasdata_error")
  expect_error(calibrate_to_corpus(corpus, prior_shift = c(0.1, 0.9)), class = "imagesasdata_error")
  expect_error(calibrate_to_corpus(corpus, temperature = "gold"), class = "imagesasdata_error")
})
