# Coding images with words from R: a codebook, the VLM coder against the stand-in OpenAI-compatible server started
# here on 127.0.0.1 (not a model: it answers from a key with simulated mistakes, and counts what it receives),
# agreement with human coders, prompt sensitivity, the codes as predictions for a gold sample and a corrected
# prevalence, and zero-shot CLIP on a local file of random open_clip weights.

faces_key <- function() {
  paths <- list.files(file.path(sample_data(), "faces"), pattern = "\\.png$", recursive = TRUE, full.names = TRUE)
  paths <- paths[grepl("/[1-4]\\.png$", paths)]                      # 6 people x 4 photos
  person <- basename(dirname(paths))
  data.frame(path = paths, image_id = paste0(person, "_", basename(paths)),
             glasses = person %in% c("s1", "s4"), smiling = grepl("/[12]\\.png$", paths))
}

local_standin <- function(key, env = parent.frame(), ...) {
  server <- standin_vlm_server(key, ...)
  withr::defer(server$stop(), envir = env)
  server
}

book <- function() {
  codebook(c(glasses = "The person wears glasses or spectacles.", smiling = "The person smiles with the mouth open."),
           name = "faces")
}

test_that("a codebook from a vector, a data frame and a file gives the same prompt and hash", {
  skip_if_no_engine()
  from_vector <- book()
  expect_s3_class(from_vector, "imagesasdata_codebook")
  expect_identical(from_vector$categories$category, c("glasses", "smiling"))
  from_frame <- codebook(data.frame(category = c("glasses", "smiling"),
                                    definition = from_vector$categories$definition), name = "faces")
  expect_identical(from_frame$prompt_sha256, from_vector$prompt_sha256)
  file <- write_codebook(from_vector, tempfile(fileext = ".yaml"))
  expect_identical(codebook(file)$prompt, from_vector$prompt)
  expect_identical(codebook(from_vector)$prompt_sha256, from_vector$prompt_sha256)
  # the engine's own hash of the same prompt
  expect_identical(from_vector$prompt_sha256,
                   reticulate::py_to_r(imagesasdata:::engine()$codebook(imagesasdata:::engine_codebook(from_vector))$prompt_sha256))
  expect_match(paste(capture.output(print(from_vector)), collapse = "\n"), "yes/no per category, 2 categories")
  expect_false(codebook(from_vector, kind = "one")$prompt_sha256 == from_vector$prompt_sha256)
  expect_error(codebook(data.frame(category = "a", text = "b")), class = "imagesasdata_column_error")
  expect_error(codebook(c(a = "")), "no definition", class = "imagesasdata_error")
})

test_that("vlm_code() codes over HTTP, caches, and its dry run counts what is sent", {
  skip_if_no_engine()
  key <- faces_key()
  server <- local_standin(key[c("path", "glasses", "smiling")], false_positive = 0.2, false_negative = 0.3)
  cache <- tempfile("cache")
  expect_message(plan <- vlm_code(key$path, book(), model = "standin", endpoint = server$url, cache = cache,
                                  dry_run = TRUE),
                 "24 requests")
  expect_identical(plan$requests, 24L)
  expect_identical(server$requests(), 0L)
  codes <- vlm_code(key$path, book(), model = "standin", endpoint = server$url, cache = cache)
  expect_identical(server$requests(), plan$requests)
  expect_s3_class(codes, "tbl_df")
  expect_identical(nrow(codes), 48L)
  expect_true(all(is.na(codes$error)))
  expect_type(codes$present, "logical")
  expect_true(all(codes$probability >= 0 & codes$probability <= 1))
  expect_identical(unique(codes$prompt_sha256), book()$prompt_sha256)
  again <- vlm_code(key$path, book(), model = "standin", endpoint = server$url, cache = cache)
  expect_identical(server$requests(), 24L)                         # all from the cache
  expect_identical(again, codes)
  expect_error(vlm_code(key$path, book(), model = "x", endpoint = "http://192.0.2.1:9/v1", cache = cache),
               "allow_remote", class = "imagesasdata_error")

  predictions <- vlm_predictions(codes, "glasses")
  expect_named(predictions, c("image_id", "path", "image_sha256", ".pred_class", ".pred_yes", ".pred_no", "error"))
  expect_identical(levels(predictions$.pred_class), c("yes", "no"))
  expect_equal(predictions$.pred_yes + predictions$.pred_no, rep(1, 24))
})

test_that("coder_agreement() and prompt_sensitivity() treat the VLM as one more coder; autoplot draws it", {
  skip_if_no_engine()
  key <- faces_key()
  server <- local_standin(key[c("path", "glasses", "smiling")], false_positive = 0.2, false_negative = 0.3)
  codes <- vlm_code(key$path, book(), model = "standin", endpoint = server$url, cache = tempfile("cache"))
  # two human coders: the key, and a second coder who disagrees on two photos about glasses
  human <- rbind(
    data.frame(image_id = key$path, annotator = "A", glasses = key$glasses, smiling = key$smiling),
    data.frame(image_id = key$path, annotator = "B", glasses = xor(key$glasses, seq_len(nrow(key)) %in% c(3, 9)),
               smiling = key$smiling)
  )
  agreement <- coder_agreement(human, list(vlm = codes))
  expect_s3_class(agreement, "coder_agreement")
  present <- codes$present[codes$category == "glasses"]
  by_hand <- mean(present == key$glasses[match(codes$path[codes$category == "glasses"], key$path)])
  row <- agreement[agreement$variable == "glasses" & agreement$coder %in% "vlm" & agreement$versus == "A" &
                     agreement$metric == "percent_agreement", ]
  expect_equal(row$estimate, by_hand)
  alphas <- agreement[agreement$metric == "krippendorff_alpha" & agreement$versus == "humans", ]
  expect_identical(nrow(alphas), 4L)                                  # humans alone, and with the VLM; per category
  plot <- autoplot(agreement)
  expect_s3_class(plot, "ggplot")
  built <- ggplot2::ggplot_build(plot)
  expect_true(nrow(built$data[[2]]) > 0)

  reworded <- vlm_code(key$path, c(glasses = "Spectacles are worn.", smiling = "A visible smile."),
                       model = "standin", endpoint = server$url, cache = tempfile("cache"))
  sensitivity <- prompt_sensitivity(codes, reworded)
  changed <- sensitivity$estimate[sensitivity$metric == "changed"]
  expect_identical(sort(unique(sensitivity$variable)), c("glasses", "smiling"))
  expect_true(sum(changed) > 0)                                       # the stand-in's mistakes follow the wording
})

test_that("VLM codes flow into a gold sample and corrected_prevalence() without glue", {
  skip_if_no_engine()
  orl <- file.path(shared_datasets(), "orl_faces")
  skip_if_not(dir.exists(orl), "ORL faces not available")
  paths <- file.path(orl, rep(paste0("s", 1:10), each = 6), paste0(rep(1:6, 10), ".pgm"))
  truth <- basename(dirname(paths)) %in% c("s4", "s6", "s7")
  server <- local_standin(data.frame(path = paths, glasses = truth), false_positive = 0.03, false_negative = 0.35)
  codes <- vlm_code(paths, c(glasses = "The person wears glasses or spectacles."), model = "standin",
                    endpoint = server$url, cache = tempfile("cache"))
  predictions <- vlm_predictions(codes, "glasses")
  gold <- draw_gold_sample(predictions, 30, seed = 2)
  gold$label <- ifelse(truth[match(gold$path, normalizePath(paths))], "yes", "no")
  estimates <- corrected_prevalence(predictions, gold, classes = c("yes", "no"))
  expect_setequal(unique(estimates$method), c("naive", "gold_only", "corrected"))
  naive <- estimates$estimate[estimates$method == "naive" & estimates$class == "yes"]
  expect_equal(naive, mean(predictions$.pred_class == "yes"))
})

test_that("zero_shot_labels() gives open_clip's probabilities with .pred_ names", {
  skip_if_no_engine()
  skip_if_not(reticulate::py_module_available("open_clip"), "open_clip is not installed in the engine's Python")
  weights <- tempfile(fileext = ".safetensors")
  reticulate::py_run_string(sprintf(paste(
    "import torch, open_clip",
    "from safetensors.torch import save_file",
    "torch.manual_seed(0)",
    "save_file(open_clip.create_model('ViT-S-32', pretrained=None).state_dict(), %s)", sep = "\n"), deparse(weights)))
  photos <- list.files(file.path(sample_data(), "new_images"), full.names = TRUE)[1:3]
  labels <- zero_shot_labels(photos, c("glasses", "no glasses"),
                             prompts = list(glasses = c("a person wearing glasses.", "spectacles."),
                                            `no glasses` = "a person without glasses."),
                             model = "ViT-S-32", weights = weights, embeddings = TRUE)
  expect_named(labels, c("image_id", "path", "image_sha256", "tagger", ".pred_class", ".pred_glasses",
                         ".pred_no glasses", "embedding", "error"))
  expect_identical(levels(labels$.pred_class), c("glasses", "no glasses"))
  expect_equal(labels$.pred_glasses + labels$`.pred_no glasses`, rep(1, 3), tolerance = 1e-6)
  expect_identical(lengths(labels$embedding), rep(384L, 3))
})
