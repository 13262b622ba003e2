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
# wider (titles, x-axis title, caption) or taller (y-axis title) than the device.
clipped_text <- function(plot, file, width = 7, height = 5) {
  grDevices::png(file, width = width, height = height, units = "in", res = 96)
  on.exit(grDevices::dev.off())
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
  out
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
                                     "conf.high", "method", "lambda"))
  set.seed(3)
  n <- 600
  truth <- stats::rbinom(n, 1, 0.3)
  corpus <- data.frame(image_id = paste0("img", seq_len(n)), z = stats::rnorm(n))
  corpus$y <- 1 + 0.5 * truth + 0.3 * corpus$z + stats::rnorm(n)
  corpus$protest <- ifelse(stats::runif(n) < 0.85, truth, 1 - truth)
  coded <- sample(n, 150)
  gold <- data.frame(image_id = corpus$image_id[coded], protest = truth[coded])
  fit <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest")
  expect_identical(names(tidy(fit)), s$coefficients)
  # broom's conf.int and conf.level
  expect_false(any(c("conf.low", "conf.high") %in% names(tidy(fit, conf.int = FALSE))))
  narrow <- tidy(fit, conf.level = 0.5)
  wide <- tidy(fit)
  expect_true(all(narrow$conf.high - narrow$conf.low < wide$conf.high - wide$conf.low))
  expect_equal(narrow$conf.high - narrow$estimate, stats::qnorm(0.75) * narrow$std.error)
  # model-based naive errors, as glm() and broom give them
  model <- corrected_glm(y ~ protest + z, corpus, gold, predicted = "protest", naive_variance = "model")
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

  folder <- file.path(Sys.getenv("IMAGESASDATA_PLOTS", tempdir()), "plots")
  dir.create(folder, recursive = TRUE, showWarnings = FALSE)
  plots <- list(curves = autoplot(fit), confusion = autoplot(fit, type = "confusion"),
                misclassified = autoplot(fit, type = "misclassified"), calibration = autoplot(fit, type = "calibration"),
                pr = autoplot(fit, type = "pr"), roc = autoplot(fit, type = "roc"),
                gallery = image_gallery(labels))
  expect_match(plots$roc$labels$title, "AUC")
  expect_match(plots$roc$labels$subtitle, fit$positive_class, fixed = TRUE)
  for (name in names(plots)) {
    file <- file.path(folder, paste0(name, ".png"))
    clipped <- clipped_text(plots[[name]], file)
    expect_identical(clipped, character(), info = name)
    expect_true(file.size(file) > 0)
    built <- ggplot2::ggplot_build(plots[[name]])
    strips <- unlist(lapply(built$layout$layout, as.character))
    expect_false(any(strips %in% "NA"), info = name)
  }
})
