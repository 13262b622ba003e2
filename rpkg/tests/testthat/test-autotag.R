# Autotaggers from R (the book's section 6): Rekognition over real HTTP to a local moto server started here (fake
# credentials, set for the test only), the offline ImageNet tagger on the five real example images, and tags
# validated against manual labels with the book's recorded Rekognition answers. No request leaves the machine.

# The recorded DetectLabels answers (May 2019) of the five example images, one row per image x label, as a tag
# table built in R from the CSV's own columns.
recorded_labels <- function() {
  rows <- utils::read.csv(file.path(rekognition_examples(), "awsrekognition_detect_labels.csv"), stringsAsFactors = FALSE)
  data.frame(image_id = rows$image_id, tagger = "rekognition", label = rows$label_str, confidence = rows$label_conf,
             label_rank = rows$label_num)
}

# Coded by looking at the images: does the photo show a person? ex_1 (a C-SPAN mug) no; ex_2 (a TV studio),
# ex_3 (a magazine cover with photos of people), ex_4 (a press conference), ex_5 (a family) yes.
manual_person <- function() {
  data.frame(image_id = sprintf("ex_%d.jpg", 1:5), person = c("no", "yes", "yes", "yes", "yes"))
}

# AWS settings for this test only, in the engine's own environment (boto3 reads Python's os.environ, which R's
# Sys.setenv() does not reach), restored when the test ends; no ~/.aws files or instance metadata to fall back on.
local_fake_aws <- function(credentials = TRUE, env = parent.frame()) {
  os <- reticulate::import("os", convert = FALSE)
  settings <- list(AWS_DEFAULT_REGION = "us-east-1", AWS_CONFIG_FILE = file.path(tempdir(), "no-aws-config"),
                   AWS_SHARED_CREDENTIALS_FILE = file.path(tempdir(), "no-aws-credentials"),
                   AWS_EC2_METADATA_DISABLED = "true", AWS_ACCESS_KEY_ID = NULL, AWS_SECRET_ACCESS_KEY = NULL,
                   AWS_SESSION_TOKEN = NULL, AWS_PROFILE = NULL)
  if (credentials) {
    settings$AWS_ACCESS_KEY_ID <- "AKIAIMAGESASDATARTST"
    settings$AWS_SECRET_ACCESS_KEY <- "imagesasdata/R+Test/Secret0123456789"
  }
  environ <- os$environ
  saved <- lapply(names(settings), function(name) reticulate::py_to_r(environ$get(name)))
  names(saved) <- names(settings)
  set <- function(values) {
    for (name in names(values)) {
      if (is.null(values[[name]])) environ$pop(name, NULL) else reticulate::py_set_item(environ, name, values[[name]])
    }
  }
  set(settings)
  withr::defer(set(saved), envir = env)
}

# A real moto server on a free localhost port, in the engine's Python, stopped when the test ends.
local_moto_server <- function(env = parent.frame()) {
  skip_if_no_engine()
  if (!reticulate::py_module_available("moto")) skip("moto[server] is not installed in the engine's Python")
  reticulate::import("logging")$getLogger("werkzeug")$setLevel(40L)   # no request log on the console
  server <- reticulate::import("moto.server")$ThreadedMotoServer(ip_address = "127.0.0.1", port = 0L, verbose = FALSE)
  server$start()
  withr::defer(server$stop(), envir = env)
  sprintf("http://127.0.0.1:%d", server$get_host_and_port()[[2]])
}

test_that("rekognition_labels() over HTTP: a dry-run plan first, then typed tables with list columns, then the cache", {
  url <- local_moto_server()
  local_fake_aws()
  examples <- rekognition_examples()
  cache <- tempfile("cache")
  expect_message(plan <- rekognition_labels(examples, endpoint_url = url, cache = cache, dry_run = TRUE,
                                            price_per_1000 = 1.25, progress = FALSE),
                 "DetectLabels dry run: 5 files, 5 distinct readable images, 0 already answered in the cache .* 5 calls")
  expect_identical(names(plan), c("operation", "images", "distinct_images", "unreadable", "cached", "calls",
                                  "price_per_1000", "estimated_cost_usd"))
  expect_identical(plan$calls, 5L)
  expect_equal(plan$estimated_cost_usd, 5 * 1.25 / 1000)
  expect_false(dir.exists(cache))                                          # nothing was sent, nothing cached

  tags <- rekognition_labels(examples, endpoint_url = url, cache = cache, progress = FALSE)
  expect_identical(tags$image_id, sprintf("ex_%d.jpg", 1:5))               # moto answers one label per image
  expect_identical(unique(tags$label), "Mobile Phone")
  expect_identical(unique(tags$tagger), "rekognition")
  expect_type(tags$confidence, "double")
  expect_true(all(tags$confidence > 1 & tags$confidence <= 100))         # percentages, as the service gives them
  expect_type(tags$label_rank, "integer")
  expect_type(tags$instances, "integer")
  expect_identical(tags$error, rep(NA_character_, 5))
  expect_type(tags$parents, "list")
  expect_identical(tags$parents[[1]], "Phone")
  expect_identical(tags$aliases[[1]], "Cell Phone")
  expect_type(tags$bounding_boxes, "list")
  box <- tags$bounding_boxes[[1]]
  expect_s3_class(box, "data.frame")
  expect_identical(names(box), c("left", "top", "width", "height", "confidence"))
  expect_equal(box$width, 0.26779675483703613)
  expect_identical(tags$label_model_version[1], "3.0")
  sha <- py_json(sprintf("[__import__('imagesasdata.io.images', fromlist=['x']).sha256_file(p) for p in %s]",
                         paste0("[", paste(shQuote(tags$path), collapse = ", "), "]")))
  expect_identical(tags$image_sha256, sha)
  # every answer is cached: the plan now has nothing to send, and the table comes back from the cache alone
  plan <- suppressMessages(rekognition_labels(examples, endpoint_url = url, cache = cache, dry_run = TRUE, progress = FALSE))
  expect_identical(c(plan$cached, plan$calls), c(5L, 0L))
  expect_identical(rekognition_labels(examples, endpoint_url = url, cache = cache, progress = FALSE), tags)
  # no key in the table or the cache
  written <- paste(c(unlist(lapply(list.files(cache, recursive = TRUE, full.names = TRUE), readLines, warn = FALSE)),
                     capture.output(print(as.data.frame(tags[c("image_id", "label", "error")])))), collapse = "\n")
  expect_false(grepl("AKIAIMAGESASDATARTST", written, fixed = TRUE))
  expect_false(grepl("Secret0123456789", written, fixed = TRUE))
})

test_that("without credentials Rekognition stops with the engine's explanation; celebrities can be priced", {
  skip_if_no_engine()
  local_fake_aws(credentials = FALSE)
  examples <- rekognition_examples()
  expect_error(rekognition_labels(examples, cache = tempfile("cache"), progress = FALSE),
               class = "imagesasdata_error", regexp = "no AWS credentials found")
  expect_message(plan <- rekognition_celebrities(examples, cache = tempfile("cache"), dry_run = TRUE, progress = FALSE),
                 "RecognizeCelebrities dry run")
  expect_identical(plan$operation, "RecognizeCelebrities")
  expect_identical(plan$distinct_images, 5L)
  expect_error(rekognition_labels(examples, min_confidence = 120, dry_run = TRUE), class = "imagesasdata_error",
               regexp = "`min_confidence` must be between 0 and 100, not 120")
  expect_error(rekognition_labels(examples, concurrency = "four"), class = "imagesasdata_argument_error",
               regexp = "`concurrency`")
})

test_that("autotag_local() tags the five real images on this machine, in Rekognition's table shape", {
  skip_if_no_engine()
  tags <- autotag_local(rekognition_examples(), top_k = 3, progress = FALSE)
  expect_identical(tags$image_id, rep(sprintf("ex_%d.jpg", 1:5), each = 3))
  expect_identical(tags$label_rank, rep(1:3, 5))
  expect_identical(unique(tags$tagger), "efficientnet_lite0")
  for (image in unique(tags$image_id)) {
    expect_false(is.unsorted(rev(tags$confidence[tags$image_id == image])))
  }
  expect_true(all(tags$confidence >= 0 & tags$confidence <= 100))
  expect_lt(sum(tags$confidence[tags$image_id == "ex_1.jpg"]), 100 + 1e-6)
  expect_identical(tags$label[1], "coffee mug")                            # ex_1 is a C-SPAN mug
  expect_type(tags$parents, "list")
  expect_true(all(vapply(tags$parents, is.null, logical(1))))              # no hierarchy: None in the engine
  expect_identical(tags$instances, rep(NA_integer_, 15))
  above <- autotag_local(rekognition_examples(), top_k = 3, min_confidence = 50, progress = FALSE)
  expect_true(all(is.na(above$confidence) | above$confidence >= 50))
  expect_identical(sort(unique(above$image_id)), sprintf("ex_%d.jpg", 1:5)) # every image appears, tagged or not
})

test_that("compare_tags() scores recorded Rekognition tags against manual coding, in yardstick's shape", {
  skip_if_no_engine()
  comparison <- compare_tags(recorded_labels(), manual_person(), "Person", manual_label = "person")
  expect_s3_class(comparison, "tag_comparison")
  expect_identical(comparison$manual_positive, "yes")
  metrics <- comparison$metrics
  expect_identical(names(metrics), c(".metric", ".estimator", ".estimate", "class", "n", "conf.low", "conf.high", "interval"))
  binary <- metrics[metrics$.estimator == "binary", ]
  expect_identical(binary$.metric, c("accuracy", "precision", "recall", "f_meas"))   # yardstick's names
  expect_identical(binary$.estimate, c(1, 1, 1, 1))
  expect_identical(binary$class, c(NA, "positive", "positive", "positive"))
  confusion <- comparison$confusion
  expect_identical(levels(confusion$truth), c("negative", "positive"))
  expect_identical(confusion$count[confusion$cell == "true positive"], 4L)
  expect_identical(confusion$count[confusion$cell == "true negative"], 1L)
  printed <- capture.output(print(comparison))
  expect_identical(printed[1], "<tag_comparison>")
  expect_true(any(grepl("accuracy 100.0%", printed, fixed = TRUE)))
  # ex_2's "Person" has confidence 99.49: a 99.6 floor turns it into a false negative
  strict <- compare_tags(recorded_labels(), manual_person(), "person", manual_label = "person", min_confidence = 99.6)
  per_image <- strict$per_image
  expect_identical(per_image$image_id[per_image$cell == "false negative"], "ex_2.jpg")
  expect_type(per_image$matched_tags, "list")
  expect_identical(per_image$matched_tags[[which(per_image$image_id == "ex_2.jpg")]], character())
  expect_identical(per_image$matched_tags[[which(per_image$image_id == "ex_5.jpg")]], "Person")
  expect_identical(is.na(per_image$max_confidence), per_image$.pred_class == "negative")
  recall <- strict$metrics$.estimate[strict$metrics$.metric == "recall" & strict$metrics$.estimator == "binary"]
  expect_identical(recall, 0.75)
  heatmap <- autoplot(strict)
  expect_equal(nrow(ggplot2::ggplot_build(heatmap)$data[[1]]), 4)           # the 2 x 2 table
  expect_identical(sum(heatmap$data$count), 5L)
})

test_that("subgroup_metrics() audits a tag comparison by group, as the engine's TagComparison.by_group() does", {
  skip_if_no_engine()
  strict <- compare_tags(recorded_labels(), manual_person(), "person", manual_label = "person", min_confidence = 99.6)
  groups <- data.frame(image_id = sprintf("ex_%d.jpg", 1:5), source = c("tv", "tv", "print", "tv", "print"))
  audit <- subgroup_metrics(strict, groups, "source", min_size = 1L, permutations = 100L)
  accuracy <- audit$metrics[audit$metrics$.metric == "accuracy", ]
  # ex_2 (tv) is the one false negative: tv 2 of 3 right, print 2 of 2
  expect_equal(accuracy$.estimate[accuracy$group == "tv"], 2 / 3)
  expect_equal(accuracy$.estimate[accuracy$group == "print"], 1)
  expect_equal(accuracy$n[accuracy$group == "tv"], 3)
})

test_that("compare_tags() lists what it leaves out and explains bad input", {
  skip_if_no_engine()
  tags <- recorded_labels()
  manual <- data.frame(image_id = c("ex_1.jpg", "ex_4.jpg", "missing.jpg"), label = c(FALSE, TRUE, TRUE))
  comparison <- compare_tags(tags, manual, "Crowd")
  expect_identical(comparison$manual_positive, "true")
  reasons <- stats::setNames(comparison$excluded$reason, comparison$excluded$image_id)
  expect_identical(reasons[["missing.jpg"]], "not in the tag table")
  expect_identical(reasons[["ex_2.jpg"]], "no manual label")
  expect_warning(compare_tags(tags, manual, "Crowds"), class = "imagesasdata_warning", regexp = "Did you mean \"Crowd\"")
  expect_error(compare_tags(tags, manual, "Crowd", manual_label = "lable"), class = "imagesasdata_error",
               regexp = "Did you mean \"label\"")
  expect_error(compare_tags(tags, data.frame(image_id = "a.jpg", label = "yes"), "Crowd"), class = "imagesasdata_error",
               regexp = "no image is in both tables")
  expect_error(compare_tags(tags, manual, 3), class = "imagesasdata_argument_error", regexp = "`positive`")
})

test_that("label_frequencies() counts images per label and tagger; the plots are Figures 6.3 and 6.4", {
  skip_if_no_engine()
  recorded <- recorded_labels()
  frequencies <- label_frequencies(recorded, min_confidence = 90)
  expect_s3_class(frequencies, "label_frequencies")
  expect_identical(names(frequencies), c("tagger", "label", "images", "share", "tagged_images", "rank"))
  person <- frequencies[frequencies$label == "Person", ]
  expect_identical(c(person$images, person$tagged_images), c(4L, 5L))        # ex_2 to ex_5, all >= 90
  expect_identical(person$share, 0.8)
  expect_false("Photo" %in% frequencies$label)                               # 60.2 < 90
  expect_false(is.unsorted(rev(frequencies$images)))
  expect_identical(frequencies$rank, seq_len(nrow(frequencies)))
  top <- label_frequencies(recorded, top_n = 3)
  expect_identical(top$label, c("Human", "Person", "People"))

  bars <- autoplot(frequencies, n = 5)
  built <- ggplot2::ggplot_build(bars)
  expect_equal(nrow(built$data[[1]]), 5)
  expect_identical(rev(levels(droplevels(bars$data$bar))), paste0("rekognition\r", frequencies$label[1:5]))
  expect_equal(built$data[[1]]$xmax[order(built$data[[1]]$y, decreasing = TRUE)], frequencies$images[1:5])

  # Figure 6.4: two taggers side by side; a table without a tagger column takes its name in the list
  local <- autotag_local(rekognition_examples(), top_k = 5, progress = FALSE)
  recorded$tagger <- NULL
  both <- label_frequencies(list(rekognition = recorded, local), min_confidence = 10)
  expect_setequal(unique(both$tagger), c("rekognition", "efficientnet_lite0"))
  expect_identical(unique(both$tagged_images), 5L)
  dodged <- autoplot(both, n = 3)
  expect_s3_class(dodged$layers[[1]]$position, "PositionDodge")
  expect_setequal(unique(dodged$data$tagger), c("rekognition", "efficientnet_lite0"))
  expect_identical(nrow(dodged$data), 2L * length(unique(dodged$data$label)))    # zero bars where a tagger lacks a label
  faceted <- ggplot2::ggplot_build(autoplot(both, n = 3, position = "facet", value = "share"))
  expect_identical(nrow(faceted$layout$layout), 2L)
  expect_true(all(faceted$data[[1]]$xmax <= 1))
})
