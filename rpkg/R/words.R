# Coding images with words: a codebook read by a vision-language model through the OpenAI-compatible chat API,
# and classes written as sentences for CLIP; both validated against human coders and corrected like any tagger.
# Mirrors python/imagesasdata/autotag/{codebooks,vlm,zero_shot,validation}.py.

#' A codebook: categories, their definitions, and the coder instructions
#'
#' A codebook is data. The same categories and definitions your human coders read become the prompt a
#' vision-language model reads ([vlm_code()]): built from the codebook by one deterministic function, so the same
#' codebook gives the same prompt bytes on any machine, and its SHA-256 (`prompt_sha256`) keys the response cache
#' and is recorded on every coded row. Change one word of a definition and every image is asked again.
#'
#' @param x A named character vector (`c(protest = "People gathered in public to ...")`), a data frame with
#'   `category` and `definition` columns (and optionally `examples`: image paths, several separated by `;`, or a
#'   list column), a YAML/JSON/CSV file, or a codebook (returned with any option given replacing its own).
#' @param instructions The coder instructions every request starts with (`NULL`: the package's default, the
#'   book's advice: code what is visible, apply definitions literally, do not code a category that is not clearly
#'   shown, give a one-sentence reason).
#' @param kind `"each"` (every category is a yes/no question) or `"one"` (the categories exclude each other: the
#'   coder picks exactly one; give an "other" category). `NULL`: the codebook's own, else `"each"`.
#' @param name The codebook's name (shown in the prompt).
#' @param category,definition,examples Column names of a data frame or CSV codebook.
#' @return An `imagesasdata_codebook`: `name`, `kind`, `instructions`, `categories` (a tibble: `category`,
#'   `definition`, `examples`, a list column), `prompt` (the exact system prompt) and `prompt_sha256`.
#'   [write_codebook()] saves it as YAML or JSON.
#' @seealso [vlm_code()], [coder_agreement()], [prompt_sensitivity()]
#' @export
#' @examplesIf engine_available()
#' book <- codebook(c(glasses = "The person wears glasses or spectacles.",
#'                    beard = "Hair on the chin and cheeks; a moustache alone does not count."))
#' book
#' cat(book$prompt)
codebook <- function(x, instructions = NULL, kind = NULL, name = NULL, category = "category",
                     definition = "definition", examples = "examples") {
  source <- arg_codebook_source(x, category, definition, examples)
  book <- engine_call(engine()$codebook, source, instructions = arg_string(instructions, "instructions", null = TRUE),
                      kind = if (is.null(kind)) NULL else arg_choice(kind, c("each", "one"), "kind"),
                      name = arg_string(name, "name", null = TRUE), category = arg_string(category, "category"),
                      definition = arg_string(definition, "definition"), examples = arg_string(examples, "examples"))
  r_codebook(book)
}

#' @rdname codebook
#' @param book An `imagesasdata_codebook`.
#' @param path A `.yaml`/`.yml` or `.json` file to write.
#' @return `write_codebook()`: the path, invisibly.
#' @export
write_codebook <- function(book, path) {
  if (!inherits(book, "imagesasdata_codebook")) abort_argument("`book` must be a codebook from codebook()")
  path <- path.expand(arg_string(path, "path"))
  engine_call(engine()$codebook, engine_codebook(book))$write(path)
  invisible(path)
}

# What the engine's codebook() reads, from what an R user has.
arg_codebook_source <- function(x, category, definition, examples) {
  if (inherits(x, "imagesasdata_codebook")) return(engine_codebook(x))
  if (is.character(x) && length(x) == 1 && is.null(names(x)) && !is.na(x)) return(path.expand(x))
  if (is.character(x) && length(x) >= 1 && !is.null(names(x)) && all(nzchar(names(x))) && !anyNA(x)) {
    return(as.list(x))
  }
  if (is.data.frame(x)) {
    for (column in c(category, definition)) {
      if (!column %in% names(x)) {
        abort_argument(sprintf("`x` has no `%s` column (columns: %s); name it with `%s =`", column,
                               paste(names(x), collapse = ", "), if (column == category) "category" else "definition"),
                       argument = "x", class = "imagesasdata_column_error")
      }
    }
    files <- if (examples %in% names(x)) x[[examples]] else vector("list", nrow(x))
    rows <- lapply(seq_len(nrow(x)), function(i) {
      example <- files[[i]]
      if (is.character(example) && length(example) == 1 && !is.na(example)) example <- trimws(strsplit(example, ";")[[1]])
      example <- as.character(example[!is.na(example) & nzchar(example)])
      list(name = as.character(x[[category]][[i]]), definition = as.character(x[[definition]][[i]]),
           examples = as.list(path.expand(example)))
    })
    return(list(categories = rows))
  }
  abort_argument(sprintf(paste0("`x` must be a named character vector (category = definition), a data frame with ",
                                "category and definition columns, a codebook file, or a codebook, not %s"),
                         describe_value(x)))
}

# An R codebook as the engine's mapping (name, kind, instructions, categories).
engine_codebook <- function(book) {
  categories <- lapply(seq_len(nrow(book$categories)), function(i) {
    list(name = book$categories$category[[i]], definition = book$categories$definition[[i]],
         examples = as.list(as.character(book$categories$examples[[i]])))
  })
  list(name = book$name, kind = book$kind, instructions = book$instructions, categories = categories)
}

r_codebook <- function(book) {
  spec <- py_value(book$to_dict())
  categories <- spec$categories
  structure(list(
    name = spec$name, kind = spec$kind, instructions = spec$instructions,
    categories = tibble::tibble(
      category = vapply(categories, function(c) c$name, character(1)),
      definition = vapply(categories, function(c) c$definition, character(1)),
      examples = lapply(categories, function(c) as.character(unlist(c$examples)))
    ),
    prompt = py_value(book$prompt()), prompt_sha256 = py_value(book$prompt_sha256)
  ), class = "imagesasdata_codebook")
}

#' @export
print.imagesasdata_codebook <- function(x, ...) {
  kind <- if (identical(x$kind, "each")) "yes/no per category" else "one category per image"
  cat(sprintf("<codebook \"%s\": %s, %d categories, prompt sha256 %s>\n", x$name, kind, nrow(x$categories),
              substr(x$prompt_sha256, 1, 12)))
  for (i in seq_len(nrow(x$categories))) {
    examples <- length(x$categories$examples[[i]])
    text <- sprintf("%s: %s%s", x$categories$category[[i]], x$categories$definition[[i]],
                    if (examples) sprintf(" (%d example image%s)", examples, if (examples > 1) "s" else "") else "")
    cat(paste0(strwrap(text, width = 100, indent = 2, exdent = 4), "\n"), sep = "")
  }
  invisible(x)
}

#' Code images with a vision-language model and a codebook
#'
#' Each image, with the codebook's prompt, goes to a vision-language model through the OpenAI-compatible chat API
#' (the Python `openai` client): a model served on this machine by Ollama, vLLM or llama.cpp, or a hosted one.
#' The answer is forced into the codebook's JSON schema (structured output; where a server refuses it, the schema
#' goes in the prompt and answers are validated and asked again), and comes back as one row per image and
#' category with the model's stated reason and a probability.
#'
#' * **Never pay twice.** Answers are cached by endpoint, model, prompt hash, options and image SHA-256, the
#'   moment they arrive; a rerun (after an interruption, or with more images) asks only for what is missing; two
#'   R sessions sharing a cache claim each image, so none is sent twice; a killed run repeats only the requests
#'   that were in flight. `dry_run = TRUE` counts the requests and estimates tokens and cost, sending nothing.
#' * **Private by default.** An endpoint outside this machine needs `allow_remote = TRUE`, and the run says how
#'   many images leave the machine and to which host. Images are downscaled to `max_side` pixels first.
#' * **Rate limits** (HTTP 429, honouring Retry-After), timeouts and server errors are retried with backoff; at
#'   most `concurrency` requests are in flight. A refusal or an answer that never became valid is a row with an
#'   `error`, never the end of the run.
#' * The API key comes from the environment variable `api_key_env` of the engine's Python (set it before the
#'   first call, e.g. in `~/.Renviron`); it is never an argument and never written anywhere.
#'
#' @param images A folder, image paths, a CSV/Parquet file or a data frame with a `path` column.
#' @param codebook A [codebook()], or anything it reads (a named character vector, a data frame, a file).
#' @param model The model's name at the endpoint (`"qwen2.5vl:7b"` in Ollama, `"gpt-4o-mini"` at OpenAI).
#' @param endpoint The server's OpenAI-compatible base URL (default: `IMAGESASDATA_VLM_ENDPOINT`, else Ollama's
#'   `http://localhost:11434/v1`; vLLM serves `http://localhost:8000/v1`, OpenAI `https://api.openai.com/v1`).
#' @param allow_remote Allow sending the images to an endpoint outside this machine.
#' @param api_key_env The environment variable holding the API key (local servers need none).
#' @param max_side Images are downscaled so that their longest side is at most this many pixels.
#' @param detail OpenAI's image detail: `"auto"`, `"low"` or `"high"` (other servers ignore it).
#' @param probability Where each answer's probability comes from: `"logprobs"` (the answer token's
#'   log-probabilities), `"samples"` (the share of `samples` answers drawn at temperature 1) or `"none"`.
#' @param samples Answers per image with `probability = "samples"`.
#' @param temperature Sampling temperature (`NULL`: 0, or 1 with `probability = "samples"`).
#' @param seed Sent for servers that honour it.
#' @param structured `"auto"` (JSON schema output, falling back to the schema in the prompt), `"json_schema"` or
#'   `"prompt"`.
#' @param retries Further requests when an answer is not valid JSON of the schema (each is paid for).
#' @param max_retries,timeout The client's retries on rate limits, timeouts and server errors, and its timeout
#'   per request in seconds.
#' @param concurrency Requests in flight at once.
#' @param cache Folder of the response cache (default: `IMAGESASDATA_AUTOTAG_CACHE`, else
#'   `~/.cache/imagesasdata/autotag`).
#' @param retry_errors Ask again for images whose cached answer is an error (a refusal, an invalid answer).
#' @param dry_run Count the requests and estimate tokens and cost; send nothing.
#' @param prices `c(input_per_million = , output_per_million = )` in USD, for the estimate (default: OpenAI's
#'   published prices for gpt-4o and gpt-4o-mini, nothing for a local endpoint).
#' @param progress Show a progress bar.
#' @return A tibble, one row per image x category: `image_id`, `path`, `image_sha256`, `tagger`, `category`,
#'   `present` (the category is in the image; for a pick-one codebook, it is the one chosen), `probability`
#'   (P(present), `NA` when the server gave none), `reason`, `samples`, `codebook_kind`, `model`, `prompt_sha256`,
#'   `error`. With `dry_run = TRUE`: a one-row plan (`requests`, `estimated_input_tokens`,
#'   `estimated_output_tokens`, `estimated_cost_usd`, `remote`, ...) and the estimate as a message.
#'   [vlm_predictions()] turns the codes into [predict()]'s shape for gold samples and corrected estimates.
#' @seealso [codebook()], [vlm_predictions()], [coder_agreement()], [prompt_sensitivity()], [compare_tags()],
#'   [zero_shot_labels()]
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' server <- standin_vlm_server()        # a stand-in on 127.0.0.1, not a model: see its help page
#' book <- codebook(c(glasses = "The person wears glasses or spectacles."))
#' faces <- file.path(sample_data(), "new_images")
#' vlm_code(faces, book, model = "any", endpoint = server$url, cache = tempfile(), dry_run = TRUE)
#' codes <- vlm_code(faces, book, model = "any", endpoint = server$url, cache = tempfile())
#' server$stop()
#' }
vlm_code <- function(images, codebook, model, endpoint = NULL, allow_remote = FALSE, api_key_env = "OPENAI_API_KEY",
                     max_side = 1024L, detail = c("auto", "low", "high"),
                     probability = c("logprobs", "samples", "none"), samples = 5L, temperature = NULL, seed = 0L,
                     structured = c("auto", "json_schema", "prompt"), retries = 2L, max_retries = 6L, timeout = 120,
                     concurrency = 4L, cache = NULL, retry_errors = FALSE, dry_run = FALSE, prices = NULL,
                     progress = interactive()) {
  detail <- arg_match(detail)
  probability <- arg_match(probability)
  structured <- arg_match(structured)
  dry_run <- arg_flag(dry_run, "dry_run")
  if (!is.null(prices) && (!is.numeric(prices) || is.null(names(prices)) || anyNA(prices))) {
    abort_argument("`prices` must be c(input_per_million = <USD>, output_per_million = <USD>) or NULL")
  }
  args <- list(
    arg_images(images, "images"), arg_codebook_source(codebook, "category", "definition", "examples"),
    model = arg_string(model, "model"), endpoint = arg_string(endpoint, "endpoint", null = TRUE),
    allow_remote = arg_flag(allow_remote, "allow_remote"), api_key_env = arg_string(api_key_env, "api_key_env"),
    max_side = arg_count(max_side, "max_side"), detail = detail, probability = probability,
    samples = arg_count(samples, "samples"), temperature = arg_number(temperature, "temperature", null = TRUE),
    seed = arg_count(seed, "seed"), structured = structured, retries = arg_count(retries, "retries"),
    max_retries = arg_count(max_retries, "max_retries"), timeout = arg_number(timeout, "timeout"),
    concurrency = arg_count(concurrency, "concurrency"),
    cache = if (is.null(cache)) NULL else path.expand(arg_string(cache, "cache")),
    retry_errors = arg_flag(retry_errors, "retry_errors"), dry_run = dry_run,
    prices = if (is.null(prices)) NULL else stats::setNames(as.list(as.double(prices)), names(prices)),
    progress = arg_flag(progress, "progress")
  )
  result <- if (dry_run) engine_call_printed(engine()$vlm_code, args) else engine_call_list(engine()$vlm_code, args)
  as_tibble_engine(result)
}

#' VLM codes as predictions: for gold samples, thresholds and corrected estimates
#'
#' @param codes The tibble [vlm_code()] returned.
#' @param category For a yes/no codebook, the category to predict: `.pred_class` is `yes` or `no` (a factor,
#'   `yes` first: the event), `.pred_yes` the model's probability that the category is present. `NULL`: a pick-one
#'   codebook's choice: `.pred_class` is the category, `.pred_<category>` its probability.
#' @return A tibble in [predict()]'s shape: `image_id`, `path`, `image_sha256`, `.pred_class`, `.pred_<class>`,
#'   `error`; [draw_gold_sample()], [corrected_prevalence()] and [corrected_glm()] take it as it is.
#' @export
#' @examplesIf engine_available()
#' \donttest{
#' server <- standin_vlm_server()        # not a model: see its help page
#' codes <- vlm_code(file.path(sample_data(), "new_images"), c(glasses = "The person wears glasses."),
#'                   model = "any", endpoint = server$url, cache = tempfile())
#' vlm_predictions(codes, "glasses")
#' server$stop()
#' }
vlm_predictions <- function(codes, category = NULL) {
  result <- engine_call(engine()$vlm_predictions, arg_codes(codes, "codes"),
                        arg_string(category, "category", null = TRUE))
  prediction_tibble(result, as.character(unlist(py_value(bridge()$prediction_classes(result)))))
}

#' Zero-shot labels with CLIP: classes written as sentences
#'
#' CLIP (via the Python package open_clip) embeds an image and sentences in one space; the probability of a
#' class is the softmax of the scaled similarities between the image and the class's sentences (a prompt
#' ensemble: several sentences per class, averaged). No training images, nothing leaves the machine. The result
#' has [predict()]'s shape, so gold samples, thresholds, calibration and corrected estimates apply unchanged, and
#' [compare_tags()] and [coder_agreement()] validate it like any tagger.
#'
#' Weights: an open_clip pretrained tag (`"openai"`, `"laion2b_s34b_b79k"`, ...), downloaded once by open_clip
#' into the Hugging Face cache, or a local `.safetensors` file of a whole CLIP model (open_clip's key names; for
#' OpenAI's weights name the model `"ViT-B-32-quickgelu"`). Pickled checkpoints are refused.
#'
#' @param images A folder, image paths, a CSV/Parquet file or a data frame with a `path` column.
#' @param classes The class names (at least two), e.g. `c("protest", "other")`.
#' @param prompts `NULL` (`"a photo of {}."` per class), one template with `{}` or a character vector of them (an
#'   ensemble applied to every class), or a named list `class = sentence(s)` written out per class.
#' @param model An open_clip model name: `"ViT-B-32"`, `"ViT-B-16"`, `"ViT-L-14"`, `"RN50"`, ...
#' @param weights A pretrained tag, the path of a `.safetensors` file, or `NULL` (random weights: tests only).
#' @param batch_size,device,num_workers,progress As in [predict()].
#' @param precision `"fp32"` (default: the same probabilities on a GPU and a CPU), `"bf16"` or `"fp16"`.
#' @param embeddings Add each image's normalised CLIP embedding (an `embedding` list column, for
#'   [embedding_map()] and [embedding_clusters()]).
#' @return A tibble: `image_id`, `path`, `image_sha256`, `tagger`, `.pred_class` (a factor with the classes as
#'   levels), `.pred_<class>`, optionally `embedding`, and `error`.
#' @seealso [vlm_code()], [image_embeddings()] (`architecture = "open_clip/ViT-B-32"`), [finetune_cnn()]
#'   (`architecture = "open_clip/ViT-B-32"`, `freeze = "backbone"`: a linear probe on CLIP features)
#' @export
#' @examples
#' \dontrun{
#' # needs open_clip's weights: downloaded once on a machine with a network
#' labels <- zero_shot_labels("photos/", c("protest", "other"),
#'                            prompts = list(protest = c("a photo of a protest.", "people holding signs in a street."),
#'                                           other = "a photo of people at home."))
#' }
zero_shot_labels <- function(images, classes, prompts = NULL, model = "ViT-B-32", weights = "openai",
                             batch_size = 32L, device = "auto", precision = "fp32", num_workers = NULL,
                             embeddings = FALSE, progress = interactive()) {
  classes <- arg_strings(classes, "classes")
  prompts <- if (is.null(prompts)) NULL
    else if (is.list(prompts)) lapply(prompts, function(p) as.list(as.character(p)))
    else if (is.character(prompts)) (if (length(prompts) == 1) prompts else as.list(prompts))
    else abort_argument(sprintf("`prompts` must be NULL, template(s) with {} or a named list of sentences, not %s",
                                describe_value(prompts)))
  result <- engine_call(
    engine()$zero_shot_labels, arg_images(images, "images"), if (is.list(classes)) classes else list(classes),
    prompts = prompts, model = arg_string(model, "model"),
    weights = if (is.null(weights)) NULL else path_or_tag(arg_string(weights, "weights")),
    batch_size = arg_count(batch_size, "batch_size"), device = arg_string(device, "device"),
    precision = arg_string(precision, "precision"), num_workers = arg_count(num_workers, "num_workers", null = TRUE),
    embeddings = arg_flag(embeddings, "embeddings"), progress = arg_flag(progress, "progress")
  )
  prediction_tibble(result, as.character(unlist(classes)))
}

# A weights file's path expanded (~), a pretrained tag as it is.
path_or_tag <- function(x) if (grepl("[/\\\\.]", x) || startsWith(x, "~")) path.expand(x) else x

# A machine coder's table for the engine: engine column names, without list and data-frame columns.
arg_codes <- function(x, name) {
  if (is.character(x) && length(x) == 1 && !is.na(x)) return(path.expand(x))
  if (!is.data.frame(x)) {
    abort_argument(sprintf("`%s` must be a table from vlm_code(), zero_shot_labels() or predict(), not %s", name,
                           describe_value(x)))
  }
  atomic <- vapply(x, function(column) is.atomic(column) && !is.data.frame(column), logical(1))
  engine_table(as.data.frame(x)[atomic], kind = "predictions")
}

#' A machine as one more coder: agreement and Krippendorff's alpha with the human coders
#'
#' Validate a vision-language model (or CLIP, or a fine-tuned CNN) the way intercoder reliability is reported:
#' per variable, the share of images on which the machine agrees with each human coder (beside the humans'
#' agreement with each other, the yardstick), and Krippendorff's alpha (nominal) among the human coders with the
#' machine left out and with it included as one more coder. `autoplot()` draws agreement by category.
#'
#' @param annotations The human codes: one row per image x coder, with `image`, `annotator` and the answer columns
#'   (one yes/no column per category of a yes/no codebook, named like the categories; or `value` for a pick-one
#'   codebook or a classifier's classes).
#' @param coders A machine's table ([vlm_code()], [zero_shot_labels()], [vlm_predictions()], [predict()]), or a
#'   named list of them (two models, two codebook wordings).
#' @param value The answer column of a pick-one variable.
#' @param variables The categories to compare (`NULL`: every one both sides have).
#' @param image,annotator Column names of `annotations`.
#' @return A tibble of class `coder_agreement`: `variable`, `coder` (`NA`: the human coders together), `versus` (a
#'   human coder, or `"humans"`), `metric` (`percent_agreement` or `krippendorff_alpha`), `estimate`, `n_images`,
#'   `note`.
#' @seealso [prompt_sensitivity()], [compare_tags()], [annotation_reliability()]
#' @export
#' @examplesIf engine_available()
#' human <- data.frame(image_id = rep(c("a", "b", "c", "d", "e"), 2), annotator = rep(c("A", "B"), each = 5),
#'                     label = c("cat", "dog", "dog", "cat", "dog", "cat", "dog", "cat", "cat", "dog"))
#' model <- data.frame(image_id = c("a", "b", "c", "d", "e"), .pred_class = c("cat", "dog", "dog", "dog", "dog"))
#' agreement <- coder_agreement(human, list(model = model))
#' agreement
#' autoplot(agreement)
coder_agreement <- function(annotations, coders, value = "label", variables = NULL, image = "image_id",
                            annotator = "annotator") {
  coders <- if (is.data.frame(coders) || is.character(coders)) arg_codes(coders, "coders") else {
    if (!is.list(coders) || is.null(names(coders)) || !all(nzchar(names(coders)))) {
      abort_argument("`coders` must be a machine's table or a named list of them")
    }
    lapply(stats::setNames(seq_along(coders), names(coders)),
           function(k) arg_codes(coders[[k]], sprintf("coders$%s", names(coders)[[k]])))
  }
  result <- engine_call(engine()$coder_agreement, arg_table(annotations, "annotations"), coders,
                        value = arg_string(value, "value"), variables = arg_strings(variables, "variables", null = TRUE),
                        image = arg_string(image, "image"), annotator = arg_string(annotator, "annotator"))
  classed(as_tibble_engine(result), "coder_agreement")
}

#' @rdname coder_agreement
#' @param object A `coder_agreement`.
#' @param title,subtitle The plot's title and subtitle (`NULL` drops it).
#' @param ... Must be empty.
#' @method autoplot coder_agreement
#' @export
autoplot.coder_agreement <- function(object, title = ggplot2::waiver(), subtitle = ggplot2::waiver(), ...) {
  check_dots(...)
  data <- as.data.frame(object)
  data <- data[!is.na(data$estimate), ]
  machines <- unique(data$coder[data$versus == "humans" & !is.na(data$coder)])
  data$comparison <- ifelse(
    data$versus == "humans",
    ifelse(is.na(data$coder), "human coders together", paste("human coders +", data$coder)),
    ifelse(data$coder %in% machines, paste(data$coder, "vs a human coder"), "human vs human coder")
  )
  order <- c("human vs human coder", paste(machines, "vs a human coder"), "human coders together",
             paste("human coders +", machines))
  data$comparison <- factor(data$comparison, levels = intersect(order, unique(data$comparison)))
  data$metric <- factor(ifelse(data$metric == "percent_agreement", "agreement", "Krippendorff's alpha"),
                        levels = c("agreement", "Krippendorff's alpha"))
  variables <- unique(data$variable)
  # one row per category, the comparisons side by side within it
  groups <- nlevels(data$comparison)
  offset <- if (groups > 1) (as.integer(data$comparison) - (groups + 1) / 2) * (0.6 / groups) else 0
  data$row <- match(data$variable, rev(variables)) + offset
  plot <- ggplot2::ggplot(data, ggplot2::aes(x = .data$estimate, y = .data$row, colour = .data$comparison,
                                             shape = .data$comparison)) +
    ggplot2::geom_vline(xintercept = c(0, 1), colour = "grey80") +
    ggplot2::geom_point(size = 2.5, alpha = 0.9) +
    ggplot2::scale_y_continuous(breaks = seq_along(variables), labels = rev(variables),
                                limits = c(0.5, length(variables) + 0.5)) +
    ggplot2::facet_wrap(ggplot2::vars(.data$metric), scales = "free_x") +
    ggplot2::labs(x = "estimate", y = NULL, colour = NULL, shape = NULL,
                  title = "Agreement with human coders, by category",
                  subtitle = "each point: one comparison with a human coder, or alpha of a pool of coders") +
    ggplot2::theme_minimal() +
    ggplot2::theme(legend.position = "bottom", panel.grid.minor.y = ggplot2::element_blank()) +
    ggplot2::guides(colour = ggplot2::guide_legend(ncol = 2), shape = ggplot2::guide_legend(ncol = 2))
  with_titles(plot, title, subtitle)
}

#' Prompt sensitivity: do two wordings of a codebook code the images alike?
#'
#' Reviewers now ask whether machine codes depend on the exact wording of the prompt. Code the same images with
#' two wordings of the codebook (or two models) and compare: per variable, percent agreement, Krippendorff's
#' alpha between the two, the number of images coded differently, and (when both carry probabilities) the mean
#' absolute difference of the probabilities.
#'
#' @param first,second [vlm_code()] tables (or predictions) of the same images under the two wordings.
#' @param names Labels for the two (default: their prompt hashes' first 12 characters).
#' @param value The answer column name for a pick-one codebook.
#' @return A tibble: `variable`, `metric`, `estimate`, `n_images`, `first`, `second`, `note`.
#' @export
#' @examplesIf engine_available()
#' wording_a <- data.frame(image_id = c("a", "b", "c", "d"), .pred_class = c("yes", "no", "no", "yes"))
#' wording_b <- data.frame(image_id = c("a", "b", "c", "d"), .pred_class = c("yes", "no", "yes", "yes"))
#' prompt_sensitivity(wording_a, wording_b, names = c("short definitions", "long definitions"))
prompt_sensitivity <- function(first, second, names = NULL, value = "label") {
  result <- engine_call(engine()$prompt_sensitivity, arg_codes(first, "first"), arg_codes(second, "second"),
                        names = if (is.null(names)) list("first", "second") else as.list(arg_strings_vector(names, "names")),
                        value = arg_string(value, "value"))
  as_tibble_engine(result)
}

#' A stand-in VLM server on this machine, for examples, tests and the vignette
#'
#' **Not a model.** Serves the OpenAI-compatible chat-completions API on 127.0.0.1 in the engine's Python, with
#' answers shaped like the documented ones (structured output, log-probabilities, samples), so that
#' [vlm_code()] can be tried end to end without a model. It does not look at what a picture shows: it recognises
#' each image by its pixels, looks its codes up in `key`, and then makes mistakes on purpose at the rates given
#' (seeded by the image, the category and the prompt's hash, so another wording of the codebook makes other
#' mistakes). For real coding, run a vision-language model with Ollama, vLLM or llama.cpp, or use a hosted one.
#'
#' @param key A data frame with a `path` column and one yes/no (or logical) column per category, or a `category`
#'   column for a pick-one codebook: the codes the stand-in answers from (images not in it: "no").
#' @param false_positive,false_negative Shares of true "no" answered "yes", and of true "yes" answered "no".
#' @param error_rate Pick-one codebooks: the share answered with another category.
#' @param seed Seeds its mistakes.
#' @return A list: `url` (the base URL to pass as `endpoint`), `requests()` (how many it received) and `stop()`.
#' @export
#' @examplesIf engine_available()
#' server <- standin_vlm_server()
#' server$url
#' server$stop()
standin_vlm_server <- function(key = NULL, false_positive = 0, false_negative = 0, error_rate = 0, seed = 0L) {
  file <- NULL
  if (!is.null(key)) {
    if (!is.data.frame(key) || !"path" %in% names(key)) abort_argument("`key` must be a data frame with a path column")
    file <- tempfile("standin-key", fileext = ".csv")
    on.exit(unlink(file), add = TRUE)
    written <- as.data.frame(lapply(key, function(column) if (is.logical(column)) ifelse(column, "yes", "no") else column))
    written$path <- normalizePath(as.character(key$path), mustWork = TRUE)
    utils::write.csv(written, file, row.names = FALSE)
  }
  server <- engine_call(bridge()$standin_vlm, file, false_positive = arg_number(false_positive, "false_positive"),
                        false_negative = arg_number(false_negative, "false_negative"),
                        error_rate = arg_number(error_rate, "error_rate"), seed = arg_count(seed, "seed"))
  list(url = py_value(reticulate::py_get_attr(server, "url")),
       requests = function() as.integer(py_value(reticulate::py_get_attr(server, "requests"))),
       stop = function() invisible(engine_call(reticulate::py_get_attr(server, "stop"))))
}
