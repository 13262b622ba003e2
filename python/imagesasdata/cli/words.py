"""Verbs codebook, vlm-code, vlm-predictions, zero-shot, coder-agreement and prompt-sensitivity: coding images
with words (a codebook read by a vision-language model; classes as sentences for CLIP)."""

from __future__ import annotations

import argparse
import json

from .common import print_table

VLM_EPILOG = """
The codebook is a YAML/JSON file (name, kind: each|one, instructions, categories: name, definition, examples) or
a CSV with category and definition columns. The prompt is built from it deterministically; its SHA-256 is on
every row and keys the response cache (--cache): running the same command again, after an interruption or with
more images, only asks about what is missing. Images are private by default: an endpoint outside this machine
needs --allow-remote. The API key comes from the environment variable named by --api-key-env (OPENAI_API_KEY).

examples:
  imagesasdata vlm-code photos/ --codebook codebook.yaml --model qwen2.5vl:7b --dry-run
  imagesasdata vlm-code photos/ --codebook codebook.yaml --model qwen2.5vl:7b --out codes.parquet
  imagesasdata vlm-code photos/ --codebook codebook.yaml --model gpt-4o-mini \\
      --endpoint https://api.openai.com/v1 --allow-remote --out codes.parquet
"""


def add_commands(subparsers) -> None:
    from ..autotag.vlm import DEFAULT_MAX_SIDE

    book = subparsers.add_parser("codebook", help="check a codebook and print the prompt built from it, with its hash",
                                 description="Read a codebook (YAML/JSON/CSV), check it, print the prompt a model "
                                             "would get and its SHA-256.")
    book.add_argument("codebook", help="codebook file (.yaml, .json, .csv)")
    book.add_argument("--kind", choices=("each", "one"), help="override the codebook's kind")
    book.set_defaults(handler=run_codebook)

    code = subparsers.add_parser(
        "vlm-code", help="code images with a vision-language model and a codebook (cached, resumable, private)",
        description="Code images with a vision-language model through the OpenAI-compatible chat API: one row per "
                    "image × codebook category, with the model's reason and a probability.",
        epilog=VLM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    code.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")
    code.add_argument("--codebook", required=True, help="codebook file (.yaml, .json, .csv)")
    code.add_argument("--model", required=True, help="the model's name at the endpoint (e.g. qwen2.5vl:7b, gpt-4o-mini)")
    code.add_argument("--endpoint", help="OpenAI-compatible base URL (default: $IMAGESASDATA_VLM_ENDPOINT, else "
                                         "Ollama's http://localhost:11434/v1)")
    code.add_argument("--allow-remote", action="store_true",
                      help="allow sending the images to an endpoint outside this machine")
    code.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    code.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                      help=f"downscale images to at most this many pixels on their longest side (default: {DEFAULT_MAX_SIDE})")
    code.add_argument("--detail", choices=("auto", "low", "high"), default="auto", help="OpenAI's image detail")
    code.add_argument("--probability", choices=("logprobs", "samples", "none"), default="logprobs",
                      help="where the probability comes from (default: the answer token's log-probabilities)")
    code.add_argument("--samples", type=int, default=5, help="answers per image with --probability samples (default: 5)")
    code.add_argument("--temperature", type=float, help="default 0 (1 with --probability samples)")
    code.add_argument("--seed", type=int, default=0, help="sent for servers that honour it (default: 0)")
    code.add_argument("--structured", choices=("auto", "json_schema", "prompt"), default="auto",
                      help="JSON schema output (auto: falls back to the schema in the prompt when refused)")
    code.add_argument("--retries", type=int, default=2, help="further requests when an answer is invalid (default: 2)")
    code.add_argument("--max-retries", type=int, default=6,
                      help="retries on rate limits (honouring Retry-After), timeouts and 5xx (default: 6)")
    code.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")
    code.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default: 4)")
    code.add_argument("--cache", help="response cache folder (default: $IMAGESASDATA_AUTOTAG_CACHE or "
                                      "~/.cache/imagesasdata/autotag)")
    code.add_argument("--retry-errors", action="store_true", help="ask again for images whose cached answer is an error")
    code.add_argument("--dry-run", action="store_true", help="print the requests, tokens and cost; send nothing")
    code.add_argument("--input-price", type=float, help="USD per million input tokens, for the estimate")
    code.add_argument("--output-price", type=float, help="USD per million output tokens, for the estimate")
    code.add_argument("--out", help="output table FILE.parquet or FILE.csv (required unless --dry-run)")
    code.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    code.set_defaults(handler=run_vlm_code)

    predictions = subparsers.add_parser(
        "vlm-predictions", help="VLM codes as a predictions table (for gold samples and corrected estimates)",
        description="Turn vlm-code's table into predict()'s shape: one row per image, predicted and prob_<class>.")
    predictions.add_argument("codes", help="table written by vlm-code")
    predictions.add_argument("--category", help="the category to predict (yes/no); omit for a pick-one codebook")
    predictions.add_argument("--out", required=True, help="output table FILE.csv or FILE.parquet")
    predictions.set_defaults(handler=run_vlm_predictions)

    zero = subparsers.add_parser(
        "zero-shot", help="label images with CLIP's zero-shot classifier (classes as sentences; on this machine)",
        description="Zero-shot labels with CLIP (open_clip): each class is described by one or more sentences.",
        epilog="examples:\n  imagesasdata zero-shot photos/ --classes protest other --out labels.csv\n"
               "  imagesasdata zero-shot photos/ --prompts prompts.json --weights clip.safetensors --out labels.csv\n"
               "prompts.json maps each class to a sentence or a list of sentences.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    zero.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")
    zero.add_argument("--classes", nargs="+", help="class names (with the default prompt 'a photo of {}.')")
    zero.add_argument("--prompts", help="JSON file: {class: sentence or [sentences]}, or [templates with {}]")
    zero.add_argument("--model", default="ViT-B-32", help="open_clip model name (default: ViT-B-32)")
    zero.add_argument("--weights", default="openai",
                      help="open_clip pretrained tag (default: openai; downloaded once) or a .safetensors file")
    zero.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    zero.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    zero.add_argument("--embeddings", action="store_true", help="add each image's CLIP embedding (Parquet output)")
    zero.add_argument("--out", required=True, help="output table FILE.csv or FILE.parquet (a FILE.json beside it "
                                                   "records model, weights and prompts)")
    zero.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    zero.set_defaults(handler=run_zero_shot)

    agreement = subparsers.add_parser(
        "coder-agreement", help="a machine coder against human coders: agreement and Krippendorff's alpha",
        description="Per variable: agreement of the machine with each human coder and of the humans with each "
                    "other; Krippendorff's alpha among the humans, with the machine left out and included.")
    agreement.add_argument("annotations", help="CSV/Parquet: one row per image × coder (image_id, annotator, answers)")
    agreement.add_argument("codes", nargs="+", help="machine tables (vlm-code, zero-shot, predictions); NAME=FILE "
                                                    "names a coder")
    agreement.add_argument("--value", default="label", help="the answer column for a pick-one codebook or classes")
    agreement.add_argument("--image", default="image_id", help="image id column of the annotations")
    agreement.add_argument("--annotator", default="annotator", help="coder column of the annotations")
    agreement.add_argument("--out", help="write the table to FILE.csv or FILE.parquet")
    agreement.set_defaults(handler=run_agreement)

    sensitivity = subparsers.add_parser(
        "prompt-sensitivity", help="two wordings of a codebook: how often do their codes agree?",
        description="Agreement, Krippendorff's alpha and the number of images coded differently by two runs of "
                    "vlm-code with two wordings of the codebook (or two models).")
    sensitivity.add_argument("first", help="codes of the first wording")
    sensitivity.add_argument("second", help="codes of the second wording")
    sensitivity.add_argument("--out", help="write the table to FILE.csv or FILE.parquet")
    sensitivity.set_defaults(handler=run_sensitivity)


def _image_source(items):
    from .train import _image_source as source

    return source(items)


def run_codebook(args) -> int:
    from ..autotag.codebooks import codebook

    book = codebook(args.codebook, kind=args.kind)
    print(book)
    print()
    print(book.prompt(), end="")
    print(f"\nprompt sha256: {book.prompt_sha256}")
    return 0


def run_vlm_code(args) -> int:
    from ..autotag.vlm import vlm_code
    from ..errors import ImagesAsDataError
    from ..io.tables import write_table

    if not args.out and not args.dry_run:
        raise ImagesAsDataError("--out FILE.parquet is required (or use --dry-run to count and price the requests)")
    prices = {}
    if args.input_price is not None:
        prices["input_per_million"] = args.input_price
    if args.output_price is not None:
        prices["output_per_million"] = args.output_price
    table = vlm_code(_image_source(args.images), args.codebook, model=args.model, endpoint=args.endpoint,
                     allow_remote=args.allow_remote, api_key_env=args.api_key_env, max_side=args.max_side,
                     detail=args.detail, probability=args.probability, samples=args.samples,
                     temperature=args.temperature, seed=args.seed, structured=args.structured, retries=args.retries,
                     max_retries=args.max_retries, timeout=args.timeout, concurrency=args.concurrency,
                     cache=args.cache, retry_errors=args.retry_errors, dry_run=args.dry_run, prices=prices or None,
                     progress=not args.no_progress)
    if args.dry_run:
        return 0
    write_table(table, args.out)
    failed = {r["image_id"] for r in table.to_pylist() if r["error"] is not None}
    images = len(set(table["image_id"].to_pylist()))
    print(f"codes: {table.num_rows} rows for {images} images written to {args.out}"
          + (f"; {len(failed)} images have an error (see the error column)" if failed else ""))
    return 0


def run_vlm_predictions(args) -> int:
    from ..autotag.validation import vlm_predictions
    from ..io.tables import write_table

    table = vlm_predictions(args.codes, args.category)
    write_table(table, args.out)
    print(f"predictions for {table.num_rows} images written to {args.out}")
    return 0


def run_zero_shot(args) -> int:
    from pathlib import Path

    from ..autotag.zero_shot import zero_shot_description, zero_shot_labels
    from ..errors import ImagesAsDataError
    from ..io.tables import write_json, write_table

    prompts, classes = None, args.classes
    if args.prompts:
        try:
            prompts = json.loads(Path(args.prompts).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ImagesAsDataError(f"--prompts {args.prompts}: cannot read it as JSON ({error})") from None
        if isinstance(prompts, dict) and classes is None:
            classes = list(prompts)
    if not classes:
        raise ImagesAsDataError("give the classes with --classes, or a --prompts file mapping each class to sentences")
    table = zero_shot_labels(_image_source(args.images), classes, prompts=prompts, model=args.model,
                             weights=None if args.weights in ("none", "None") else args.weights,
                             batch_size=args.batch_size, device=args.device, embeddings=args.embeddings,
                             progress=not args.no_progress)
    write_table(table, args.out)
    record = Path(args.out).with_suffix(".json")
    write_json(zero_shot_description(table), record)
    print(f"zero-shot labels for {table.num_rows} images written to {args.out} (model, weights and prompts: {record})")
    return 0


def run_agreement(args) -> int:
    from pathlib import Path

    from ..autotag.validation import coder_agreement
    from ..io.tables import write_table

    coders = {}
    for item in args.codes:
        name, _, path = item.partition("=") if "=" in item and not Path(item).exists() else ("", "", item)
        coders[name or Path(path).stem] = path
    table = coder_agreement(args.annotations, coders, value=args.value, image=args.image, annotator=args.annotator)
    print_table(table)
    if args.out:
        write_table(table, args.out)
    return 0


def run_sensitivity(args) -> int:
    from ..autotag.validation import prompt_sensitivity
    from ..io.tables import write_table

    table = prompt_sensitivity(args.first, args.second)
    print_table(table)
    if args.out:
        write_table(table, args.out)
    return 0
