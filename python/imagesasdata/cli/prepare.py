"""Verbs that prepare a corpus before any model: inventory, dedupe, filter-small, aggregate, reliability,
emotion-labels and split. Each calls the Python function named in its help and writes its table."""

from __future__ import annotations

import argparse

from .common import print_table

PREPARE_EPILOG = """
the book's workflow:
  imagesasdata inventory raw_images/ --out inventory.parquet
  imagesasdata filter-small inventory.parquet --out kept.parquet --removed removed.csv
  imagesasdata dedupe kept.parquet --out duplicates.csv --contact-sheet duplicates.png
  imagesasdata aggregate annotations.csv --method any --value protest --images raw_images/ --out labels.csv
  imagesasdata reliability annotations.csv --value protest
  imagesasdata split labels.csv --layout data/protest --out split.csv
"""


def add_commands(subparsers) -> None:
    formatter = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser("inventory", help="list images with size, format, mode, SHA-256 and errors",
                              description="One row per image: bytes, width, height, format, mode, SHA-256, readable, "
                                          "error (Python: image_inventory). Reads headers only unless --verify.",
                              epilog=PREPARE_EPILOG, formatter_class=formatter)
    _source(p)
    p.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    p.add_argument("--verify", action="store_true", help="decode every image to find truncated files (slower)")
    p.add_argument("--no-checksum", action="store_true", help="skip the SHA-256 of each file")
    _workers(p)
    p.set_defaults(handler=run_inventory)

    p = subparsers.add_parser("dedupe", help="group exact and near-duplicate images and pick the copy to keep",
                              description="Exact duplicates by SHA-256, near duplicates (re-encoded, resized, "
                                          "recompressed, lightly cropped) by perceptual hash (Python: find_duplicates). "
                                          "Every image is linked to its group's representative.",
                              formatter_class=formatter)
    _source(p)
    p.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    p.add_argument("--threshold", type=int, help="largest Hamming distance in bits between near duplicates "
                                                 "(default: 24 of 256 bits, scaled for other hash sizes)")
    p.add_argument("--method", default="phash", help="imagehash function: phash, dhash, whash, average_hash (default: phash)")
    p.add_argument("--hash-size", type=int, default=16, help="hash side: bits = size² (default: 16, 256 bits)")
    p.add_argument("--no-crops", action="store_true", help="do not hash trimmed borders (faster; misses cropped copies)")
    p.add_argument("--exact-only", action="store_true", help="group byte-identical files only (no decoding)")
    p.add_argument("--keep", default="largest", choices=["largest", "first"],
                   help="representative: most pixels then bytes, or first in the table (default: largest)")
    p.add_argument("--contact-sheet", metavar="FILE.png", help="also draw each duplicate group for a person to check")
    p.add_argument("--thumbnails", metavar="DIR", help="also write group thumbnails and DIR/groups.csv (for R plots)")
    p.add_argument("--hashes", metavar="FILE.parquet", help="save the hashes, to reuse them with --reuse")
    p.add_argument("--reuse", metavar="FILE.parquet", help="hashes saved earlier: files with the same SHA-256 are not hashed again")
    _workers(p)
    p.set_defaults(handler=run_dedupe)

    p = subparsers.add_parser("filter-small", help="remove images under 5 KB or below a pixel size",
                              description="Mark images to keep and to remove for being too small, with the reason "
                                          "(Python: filter_small). The book removed files under 5 KB.",
                              formatter_class=formatter)
    _source(p)
    p.add_argument("--out", required=True, help="the images kept: FILE.parquet or FILE.csv")
    p.add_argument("--removed", help="also write the images removed, with the reason")
    p.add_argument("--min-bytes", type=int, default=5120, help="smallest file size kept (default: 5120, the book's 5 KB; 0 to skip)")
    p.add_argument("--min-width", type=int, help="smallest width in pixels kept")
    p.add_argument("--min-height", type=int, help="smallest height in pixels kept")
    _workers(p)
    p.set_defaults(handler=run_filter_small)

    p = subparsers.add_parser("aggregate", help="one label per image from several annotators",
                              description="From a long table (image, annotator, answer) to one row per image "
                                          "(Python: aggregate_annotations).", formatter_class=formatter)
    p.add_argument("annotations", help="CSV or Parquet table, one row per image × annotator")
    p.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    p.add_argument("--method", default="any", choices=["any", "majority", "mean"],
                   help="any: positive if any annotator said so (the book's protest rule); majority; mean (scores)")
    _annotation_columns(p)
    p.add_argument("--positive", help="the answer counted as positive by --method any (default: 1/yes/true/positive)")
    p.add_argument("--score-range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="allowed scores, e.g. 0 10")
    p.add_argument("--images", help="folder or table of the images on disk: annotated images missing there are listed")
    p.set_defaults(handler=run_aggregate)

    p = subparsers.add_parser("reliability", help="percent agreement and Krippendorff's alpha per label",
                              description="Intercoder reliability per answer column (Python: annotation_reliability).",
                              formatter_class=formatter)
    p.add_argument("annotations", help="CSV or Parquet table, one row per image × annotator")
    p.add_argument("--out", help="also write the table: FILE.parquet or FILE.csv")
    _annotation_columns(p)
    p.add_argument("--level", nargs="+", help="nominal, ordinal, interval, ratio (default: nominal, plus interval for numbers)")
    p.set_defaults(handler=run_reliability)

    p = subparsers.add_parser("emotion-labels", help="positives and negatives per emotion from 0–10 scores",
                              description="The book's section 7.3 (Python: emotion_labels): a positive scores ≥ 3 on "
                                          "an emotion and ≥ 3 above its second-highest; negatives score 0 on every "
                                          "emotion, drawn at random (seeded) to balance.", formatter_class=formatter)
    p.add_argument("scores", help="CSV or Parquet table: one row per image, one score column per emotion")
    p.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    p.add_argument("--emotions", help="comma-separated score columns (default: anger,disgust,enthusiasm,fear,sadness)")
    p.add_argument("--image", default="image_id", help="image column (default: image_id)")
    p.add_argument("--min-score", type=float, default=3.0, help="a positive's least score (default: 3)")
    p.add_argument("--min-margin", type=float, default=3.0, help="a positive's least lead over its second emotion (default: 3)")
    p.add_argument("--negative-max", type=float, default=0.0, help="a negative's highest score on any emotion (default: 0)")
    p.add_argument("--no-balance", action="store_true", help="keep every negative instead of as many as the positives")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing negatives (default: 0)")
    p.add_argument("--summary", metavar="DIR", help="also write the Figure 7.1/7.2 tables (emotion_counts.csv, "
                                                    "emotion_cooccurrence.csv, emotion_max_class.csv)")
    p.set_defaults(handler=run_emotion_labels)

    p = subparsers.add_parser("split", help="train/val(/test) splits, optionally as the book's folders",
                              description="Stratified, seeded splits that keep near-duplicate groups whole "
                                          "(Python: split_images, write_layout).", formatter_class=formatter)
    p.add_argument("table", help="CSV or Parquet table with path and label columns (e.g. from dedupe or emotion-labels)")
    p.add_argument("--out", help="the split table: FILE.parquet or FILE.csv")
    p.add_argument("--layout", metavar="DIR", help="also write DIR/train|val/<label>/ folders")
    p.add_argument("--mode", default="symlink", choices=["symlink", "copy"], help="how --layout holds images (default: symlink)")
    p.add_argument("--where", metavar="COLUMN=VALUE", action="append", default=[],
                   help="keep only rows where COLUMN equals VALUE (e.g. emotion=anger); repeatable")
    p.add_argument("--label", help="label column (default: label)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each class for validation (default: 0.2)")
    p.add_argument("--test-fraction", type=float, default=0.0, help="share of each class for a test split (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--balance", action="store_true", help="downsample every class to the smallest")
    p.add_argument("--group", default="auto", help="column of groups kept in one split (default: group_id when "
                                                   "present; 'none' to split image by image)")
    p.set_defaults(handler=run_split)


def _source(parser):
    parser.add_argument("source", help="folder of images, or CSV/Parquet table with a path column (relative paths "
                                       "are read from the table's folder)")


def _workers(parser):
    parser.add_argument("--num-workers", type=int, help="threads reading files (default: CPU cores, at most 8)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _annotation_columns(parser):
    parser.add_argument("--value", nargs="+", default=["label"], help="answer column(s) (default: label)")
    parser.add_argument("--image", default="image_id", help="image column (default: image_id)")
    parser.add_argument("--annotator", default="annotator", help="annotator column (default: annotator)")


def run_inventory(args) -> int:
    from ..prepare.inventory import image_inventory
    from ..io.tables import write_table

    table = image_inventory(args.source, verify=args.verify, checksum=not args.no_checksum,
                            num_workers=args.num_workers, progress=not args.no_progress)
    write_table(table, args.out)
    bad = table.num_rows - sum(table["readable"].to_pylist())
    print(f"{table.num_rows} images, {bad} unreadable → {args.out}")
    if bad:
        import pyarrow.compute as pc

        print_table(table.filter(pc.invert(table["readable"])).select(["image_id", "bytes", "error"]), max_rows=10)
    return 0


def run_dedupe(args) -> int:
    from ..prepare.dedupe import CROP_SCALES, contact_sheet, duplicate_thumbnails, find_duplicates, image_hashes
    from ..io.tables import read_table, write_table

    source = args.source
    scales = () if args.no_crops else CROP_SCALES
    if not args.exact_only:
        source = image_hashes(source, method=args.method, hash_size=args.hash_size, crop_scales=scales,
                              num_workers=args.num_workers, progress=not args.no_progress,
                              reuse=read_table(args.reuse) if args.reuse else None)
        if args.hashes:
            write_table(source, args.hashes)
    table = find_duplicates(source, threshold=args.threshold, method=args.method, hash_size=args.hash_size,
                            crop_scales=scales, keep=args.keep, near=not args.exact_only, num_workers=args.num_workers,
                            progress=not args.no_progress)
    write_table(table, args.out)
    groups = len({g for g, s in zip(table["group_id"].to_pylist(), table["group_size"].to_pylist()) if s > 1})
    dropped = table.num_rows - sum(table["is_representative"].to_pylist())
    print(f"{table.num_rows} images: {groups} duplicate groups, {dropped} copies beyond the one kept per group → {args.out}")
    if args.contact_sheet:
        contact_sheet(table, args.contact_sheet)
        print(f"contact sheet: {args.contact_sheet}")
    if args.thumbnails:
        from pathlib import Path

        members = duplicate_thumbnails(table, args.thumbnails)
        write_table(members, Path(args.thumbnails) / "groups.csv")
        print(f"thumbnails and groups.csv: {args.thumbnails}")
    return 0


def run_filter_small(args) -> int:
    import pyarrow.compute as pc

    from ..prepare.filters import filter_small
    from ..io.tables import write_table

    table = filter_small(args.source, min_bytes=args.min_bytes or None, min_width=args.min_width,
                         min_height=args.min_height, num_workers=args.num_workers, progress=not args.no_progress)
    kept = table.filter(table["kept"])
    removed = table.filter(pc.invert(table["kept"]))
    write_table(kept, args.out)
    if args.removed:
        write_table(removed, args.removed)
    print(f"kept {kept.num_rows} of {table.num_rows} images → {args.out}; removed {removed.num_rows}")
    if removed.num_rows:
        print_table(removed.select(["image_id", "bytes", "width", "height", "reason"]), max_rows=10)
    return 0


def run_aggregate(args) -> int:
    from ..prepare.annotations import aggregate_annotations
    from ..io.tables import write_table

    table = aggregate_annotations(args.annotations, method=args.method, value=args.value, image=args.image,
                                  annotator=args.annotator, positive=args.positive,
                                  score_range=tuple(args.score_range) if args.score_range else None,
                                  images=args.images)
    write_table(table, args.out)
    print(f"{table.num_rows} images → {args.out}")
    print_table(table, max_rows=10)
    return 0


def run_reliability(args) -> int:
    from ..prepare.annotations import annotation_reliability
    from ..io.tables import write_table

    table = annotation_reliability(args.annotations, value=args.value, image=args.image, annotator=args.annotator,
                                   level=args.level)
    if args.out:
        write_table(table, args.out)
    print_table(table)
    return 0


def run_emotion_labels(args) -> int:
    from pathlib import Path

    from ..prepare.emotions import emotion_cooccurrence, emotion_counts, emotion_labels, emotion_max_class
    from ..io.tables import read_table, write_table

    scores = read_table(args.scores)
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()] if args.emotions else None
    table = emotion_labels(scores, emotions=emotions, min_score=args.min_score, min_margin=args.min_margin,
                           negative_max=args.negative_max, balance=not args.no_balance, seed=args.seed,
                           image=args.image)
    write_table(table, args.out)
    counts = table.group_by(["emotion", "label"]).aggregate([("image_id", "count")]).rename_columns(
        ["emotion", "label", "n_images"])
    print(f"{table.num_rows} rows → {args.out}")
    print_table(counts.sort_by([("emotion", "ascending"), ("label", "descending")]))
    if args.summary:
        folder = Path(args.summary)
        common = dict(emotions=emotions, min_score=args.min_score, image=args.image)
        write_table(emotion_counts(scores, **common), folder / "emotion_counts.csv")
        write_table(emotion_cooccurrence(scores, **common), folder / "emotion_cooccurrence.csv")
        write_table(emotion_max_class(scores, min_margin=args.min_margin, **common), folder / "emotion_max_class.csv")
        print(f"Figure 7.1/7.2 tables: {folder}")
    return 0


def run_split(args) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    from pathlib import Path

    from ..data.table import image_table
    from ..errors import ImagesAsDataError, did_you_mean
    from ..io.tables import read_table, write_table
    from ..prepare.layout import split_images, write_layout

    if not args.out and not args.layout:
        raise ImagesAsDataError("say where to write: --out FILE for the split table and/or --layout DIR for folders")
    table = read_table(args.table)
    for condition in args.where:
        column, sep, value = condition.partition("=")
        if not sep:
            raise ImagesAsDataError(f"--where {condition!r}: write COLUMN=VALUE, e.g. emotion=anger")
        if column not in table.column_names:
            raise ImagesAsDataError(f"--where: no column {column!r} (columns: {', '.join(table.column_names)}).{did_you_mean(column, table.column_names)}")
        table = table.filter(pc.equal(pc.cast(table[column], pa.string()), value))
        if table.num_rows == 0:
            raise ImagesAsDataError(f"--where {condition}: no rows match")
    group = None if args.group.lower() == "none" else args.group
    options = dict(val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
                   balance=args.balance, group=group)
    # relative paths in the file are relative to the file, not the shell: image_table(root=) resolves them
    table = image_table(table, label=args.label, root=Path(args.table).resolve().parent)
    if args.layout:
        result = write_layout(table, args.layout, mode=args.mode, **options)
        print(f"wrote {args.layout}/ ({args.mode}s)")
    else:
        result = split_images(table, **options)
    if args.out:
        write_table(result, args.out)
        print(f"split table → {args.out}")
    counts = result.group_by(["split", "label"]).aggregate([("image_id", "count")]).rename_columns(
        ["split", "label", "n_images"])
    print_table(counts.sort_by([("split", "ascending"), ("label", "ascending")]))
    return 0
