"""Verbs rekognition-labels, rekognition-celebrities, autotag-local, compare-tags and label-frequencies."""

from __future__ import annotations

import argparse

from .common import print_table

REKOGNITION_EPILOG = """
Credentials come from the standard AWS chain only (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, AWS_PROFILE or
--profile, an instance role); they are never written anywhere. Every answer is cached under --cache by image
hash, operation and parameters, so running the same command again (after an interruption, or to add images)
only pays for what is missing. Use --dry-run first: it prints the number of calls and their cost, sending nothing.

examples:
  imagesasdata {verb} tweets/ --dry-run
  imagesasdata {verb} tweets/ --out {out} --region eu-west-1
"""


def add_commands(subparsers) -> None:
    from ..autotag.rekognition import DEFAULT_MIN_CONFIDENCE

    labels = subparsers.add_parser(
        "rekognition-labels", help="label images with Amazon Rekognition DetectLabels (cached, resumable)",
        description="Label images with Amazon Rekognition DetectLabels: one row per image × label.",
        epilog=REKOGNITION_EPILOG.format(verb="rekognition-labels", out="labels.parquet"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _images_and_out(labels)
    labels.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                        help="labels below this confidence (0-100) are not returned (default: 55, the service's)")
    labels.add_argument("--max-labels", type=int, help="at most this many labels per image (default: all)")
    _rekognition_options(labels)
    labels.set_defaults(handler=run_labels)

    celebrities = subparsers.add_parser(
        "rekognition-celebrities", help="recognise celebrities with Amazon Rekognition (cached, resumable)",
        description="Recognise celebrities with Amazon Rekognition RecognizeCelebrities: one row per image × celebrity.",
        epilog=REKOGNITION_EPILOG.format(verb="rekognition-celebrities", out="celebrities.parquet"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _images_and_out(celebrities)
    _rekognition_options(celebrities)
    celebrities.set_defaults(handler=run_celebrities)

    local = subparsers.add_parser(
        "autotag-local", help="tag images with the offline ImageNet network (nothing leaves this machine)",
        description="Tag images with the top-k ImageNet labels of the offline EfficientNet-Lite0, on this machine.",
    )
    _images_and_out(local)
    local.add_argument("--top-k", type=int, default=5, help="labels per image (default: 5)")
    local.add_argument("--min-confidence", type=float, default=0.0, help="drop labels below this confidence (0-100)")
    local.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    local.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    local.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    local.set_defaults(handler=run_local)

    compare = subparsers.add_parser(
        "compare-tags", help="validate autotagger tags against manual labels (confusion matrix, precision, recall)",
        description="Validate tags (a tag or set of tags as a proxy, e.g. Crowd for protest) against manual labels.",
        epilog="example:\n  imagesasdata compare-tags labels.parquet manual.csv --positive Crowd --manual-positive protest",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("tags", help="tag table written by rekognition-labels, rekognition-celebrities or autotag-local")
    compare.add_argument("manual", help="CSV/Parquet table of manual labels: image_id and label columns")
    compare.add_argument("--positive", action="append", required=True,
                         help="a tag that counts as a positive prediction; repeat for a set of tags")
    compare.add_argument("--manual-positive", help="the manual label of the positive class (default: guessed from "
                                                   "true/yes/1 or the tag's name)")
    compare.add_argument("--min-confidence", type=float, default=0.0, help="tags below this confidence do not count")
    compare.add_argument("--manual-label", default="label", help="label column of the manual table (default: label)")
    compare.add_argument("--by", default="image_id", help="id column shared by both tables (default: image_id)")
    compare.add_argument("--tagger", help="which tagger's rows to use when the tag table holds several")
    compare.add_argument("--out", help="write the metrics to FILE.csv or FILE.parquet")
    compare.add_argument("--per-image", help="write the per-image decisions to FILE.parquet")
    compare.set_defaults(handler=run_compare)

    frequencies = subparsers.add_parser(
        "label-frequencies", help="images per tag (and per tagger): the book's Figures 6.3 and 6.4",
        description="Count the images carrying each tag, per tagger, above a confidence.",
    )
    frequencies.add_argument("tags", nargs="+", help="one or more tag tables (several taggers side by side)")
    frequencies.add_argument("--min-confidence", type=float, default=0.0, help="only tags at or above this confidence")
    frequencies.add_argument("--top-n", type=int, help="keep the N most frequent tags of each tagger")
    frequencies.add_argument("--out", help="write the table to FILE.csv or FILE.parquet")
    frequencies.set_defaults(handler=run_frequencies)


def _images_and_out(parser) -> None:
    parser.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")
    parser.add_argument("--out", help="output table FILE.parquet (the tags include list columns, which CSV cannot "
                                      "hold); required unless --dry-run")


def _rekognition_options(parser) -> None:
    from ..autotag.rekognition import DEFAULT_PRICE_PER_1000

    parser.add_argument("--cache", help="response cache folder (default: $IMAGESASDATA_AUTOTAG_CACHE or "
                                        "~/.cache/imagesasdata/autotag)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's, else us-east-1)")
    parser.add_argument("--endpoint-url", help="send to this endpoint instead of AWS's (a proxy or a test server)")
    parser.add_argument("--profile", help="AWS profile name from ~/.aws (default: AWS_PROFILE or the default chain)")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight at once (default: 4)")
    parser.add_argument("--max-attempts", type=int, default=10,
                        help="attempts per call under botocore's adaptive retries (default: 10)")
    parser.add_argument("--dry-run", action="store_true", help="print the number of calls and their cost; send nothing")
    parser.add_argument("--price-per-1000", type=float, default=DEFAULT_PRICE_PER_1000,
                        help=f"USD per 1,000 images for the cost estimate (default: {DEFAULT_PRICE_PER_1000:.2f}, "
                             "us-east-1, first 1M images a month)")
    parser.add_argument("--resend-in-flight", action=argparse.BooleanOptionalAction, default=True,
                        help="ask again about images whose requests a killed run had sent without recording the "
                             "answer (they may have been billed; default: on); --no-resend-in-flight never sends "
                             "them twice and gives them an error row")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _image_source(items):
    from .train import _image_source as source

    return source(items)


def _common(args) -> dict:
    return dict(cache=args.cache, region=args.region, endpoint_url=args.endpoint_url, profile=args.profile,
                concurrency=args.concurrency, max_attempts=args.max_attempts, dry_run=args.dry_run,
                price_per_1000=args.price_per_1000, progress=not args.no_progress,
                resend_in_flight=args.resend_in_flight)


def _require_out(args) -> None:
    from ..errors import ImagesAsDataError

    if not args.out and not getattr(args, "dry_run", False):
        raise ImagesAsDataError("--out FILE.parquet is required (or use --dry-run to price the run)")


def _finish(table, args, what: str) -> int:
    from ..io.tables import write_table

    if getattr(args, "dry_run", False):
        return 0
    write_table(table, args.out)
    errors = sum(1 for e in table["error"].to_pylist() if e is not None)
    images = len(set(table["image_id"].to_pylist()))
    print(f"{what}: {table.num_rows} rows for {images} images written to {args.out}"
          + (f"; {errors} images failed (see the error column; running again retries them)" if errors else ""))
    return 0


def run_labels(args) -> int:
    from ..autotag import rekognition_labels

    _require_out(args)
    table = rekognition_labels(_image_source(args.images), min_confidence=args.min_confidence,
                               max_labels=args.max_labels, **_common(args))
    return _finish(table, args, "labels")


def run_celebrities(args) -> int:
    from ..autotag import rekognition_celebrities

    _require_out(args)
    table = rekognition_celebrities(_image_source(args.images), **_common(args))
    return _finish(table, args, "celebrities")


def run_local(args) -> int:
    from ..autotag import autotag_local

    _require_out(args)
    table = autotag_local(_image_source(args.images), top_k=args.top_k, min_confidence=args.min_confidence,
                          batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    return _finish(table, args, "labels")


def run_compare(args) -> int:
    from ..autotag import compare_tags
    from ..io.tables import write_table

    result = compare_tags(args.tags, args.manual, args.positive, manual_positive=args.manual_positive,
                          min_confidence=args.min_confidence, manual_label=args.manual_label, by=args.by,
                          tagger=args.tagger)
    print(result.summary())
    print()
    print_table(result.confusion)
    if args.out:
        write_table(result.metrics, args.out)
    if args.per_image:
        write_table(result.per_image, args.per_image)
    return 0


def run_frequencies(args) -> int:
    from ..autotag import label_frequencies
    from ..io.tables import write_table

    table = label_frequencies(list(args.tags), min_confidence=args.min_confidence, top_n=args.top_n)
    print_table(table)
    if args.out:
        write_table(table, args.out)
    return 0
