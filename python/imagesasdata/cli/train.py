"""Verbs finetune, predict, evaluate and learning-curve."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train.config import OPTION_HELP, TrainConfig
from .common import add_dataclass_options, given_options, print_table

FINETUNE_EPILOG = """
The default recipe ("fast", issue 28): EfficientNet-Lite0 with its stem and first four stages frozen
(--freeze blocks.3), 2 epochs of the new last layer at 0.01 on features computed once, then a one-cycle schedule
peaking at 0.004 (--schedule one_cycle), lower rates for earlier blocks (--lr-decay-per-block 0.7), progressive
resizing from 128 px (--progressive-resize 128), 8 epochs; on a CPU without --epochs it stops once the validation
loss has not improved for 2 epochs. SGD with momentum 0.9, batch size 4, cross-entropy loss; the epoch with the
best validation accuracy is kept. --recipe book is the book's Listing 1: ResNet-18, SGD with learning rate 0.001,
a StepLR schedule that multiplies the learning rate by gamma=0.1 every step_size=7 epochs, 25 epochs; --recipe
head-first is the default before (10 head epochs, then the book's StepLR). DATA is the book's
layout (train/ and val/ folders, each with one folder per class), a folder of class folders (split 80/20,
stratified and seeded), or a CSV/Parquet table with path and label columns.

examples:
  imagesasdata finetune data/faces --out runs/faces --epochs 10
  imagesasdata finetune labels.csv --label protest --out runs/protest --architecture resnet18
  imagesasdata finetune data/faces --out runs/book --recipe book --architecture efficientnet_lite0
  imagesasdata finetune data/faces --out runs/cosine --schedule warmup_cosine --learning-rate 0.003 --epochs 8
"""


def add_commands(subparsers) -> None:
    finetune = subparsers.add_parser(
        "finetune", help="fine-tune an ImageNet-pretrained CNN on labelled images",
        description="Fine-tune an ImageNet-pretrained CNN on labelled images and validate it on held-out images.",
        epilog=FINETUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    finetune.add_argument("data", help="folder (book layout or class folders) or CSV/Parquet table")
    finetune.add_argument("--out", required=True, help="run directory to write (weights, model.json, metrics)")
    finetune.add_argument("--label", help="label column of a table (default: label)")
    finetune.add_argument("--path", help="path column of a table (default: path, file, filename, image…)")
    finetune.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    finetune.add_argument("--overwrite", action="store_true",
                          help="replace a run already in --out (without --resume or --overwrite it is never touched)")
    finetune.add_argument("--encoding", default="utf-8", help="text encoding of a CSV table (default: utf-8)")
    add_dataclass_options(finetune, TrainConfig, OPTION_HELP)
    finetune.set_defaults(handler=run_finetune)

    curve = subparsers.add_parser(
        "learning-curve", help="will more labelled images help? fine-tune on growing fractions of the training images",
        description="Fine-tune on growing, nested, seeded fractions of the training images, score every fit on the "
                    "same held-out images (test split, else validation) with 95%% intervals, and say whether the last "
                    "step still helped (its paired change, per 200 images).",
        epilog="examples:\n  imagesasdata learning-curve data/faces --out curves/faces --fractions 0.25,0.5,1 "
               "--epochs 5 --freeze backbone", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    curve.add_argument("data", help="folder (book layout or class folders) or CSV/Parquet table")
    curve.add_argument("--out", required=True, help="folder for the fits and learning_curve.parquet (rerun to resume)")
    curve.add_argument("--fractions", default="0.25,0.5,0.75,1",
                       help="comma-separated increasing fractions of the training images (default: 0.25,0.5,0.75,1)")
    curve.add_argument("--label", help="label column of a table (default: label)")
    curve.add_argument("--path", help="path column of a table (default: path, file, filename, image…)")
    curve.add_argument("--encoding", default="utf-8", help="text encoding of a CSV table (default: utf-8)")
    add_dataclass_options(curve, TrainConfig, OPTION_HELP)
    curve.set_defaults(handler=run_learning_curve)

    predict = subparsers.add_parser(
        "predict", help="label images with a fitted run",
        description="Label images with a fitted run. Unreadable images get a row with their error.",
    )
    predict.add_argument("run", help="run directory written by finetune")
    predict.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")
    predict.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    add_inference_options(predict)
    predict.add_argument("--backend", default="local", choices=["local", "ray"],
                         help="local (this machine) or ray (a Ray cluster: RAY_ADDRESS, or one started here)")
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    predict.set_defaults(handler=run_predict)

    evaluate = subparsers.add_parser(
        "evaluate", help="measure a fitted run on labelled images it never saw",
        description="Predict labelled images and report accuracy, precision, recall, F1 and the confusion matrix.",
    )
    evaluate.add_argument("run", help="run directory written by finetune")
    evaluate.add_argument("data", help="labelled images: folder of class folders or table with path and label")
    evaluate.add_argument("--label", help="label column of a table (default: label)")
    evaluate.add_argument("--path", help="path column of a table")
    evaluate.add_argument("--out", help="also write the per-image predictions to FILE.parquet or FILE.csv")
    add_inference_options(evaluate)
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(handler=run_evaluate)


def add_inference_options(parser) -> None:
    """The options predict() and evaluate() share with the API."""
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    parser.add_argument("--precision", default="auto", help=OPTION_HELP["precision"])
    parser.add_argument("--num-workers", type=int, help="threads decoding images (default: one per core, up to 8)")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="use a run that did not finish training (killed, interrupted or failed; refused by default)")
    parser.add_argument("--calibrate", action="store_true",
                        help="apply the temperature fitted on the validation split (calibrated probabilities)")
    parser.add_argument("--threshold", type=float,
                        help="binary tasks: positive when the positive class's probability is at least this "
                             "(default: the most probable class; see `imagesasdata thresholds`)")


def inference_options(args) -> dict:
    return dict(batch_size=args.batch_size, device=args.device, precision=args.precision,
                num_workers=args.num_workers, allow_unfinished=args.allow_unfinished, progress=not args.no_progress,
                calibrate=args.calibrate, threshold=args.threshold)


def run_finetune(args) -> int:
    from ..train.finetuning import finetune

    from ..data.table import image_table

    from .. import runs
    from ..train.finetuning import already_complete

    options = given_options(args, TrainConfig)
    data = image_table(args.data, label=args.label, path=args.path, encoding=args.encoding)
    was_complete = args.resume and runs.is_complete(Path(args.out))
    run = finetune(data, out=args.out, resume=args.resume, overwrite=args.overwrite, **options)
    if was_complete and options.get("progress") is False:   # with progress on, finetune() said so itself
        print(already_complete(run.path))
    print(run.summary())
    print(f"\nrun directory: {run.path}")
    return 0


def _image_source(items):
    from ..io.tables import is_table_file

    if len(items) == 1 and (Path(items[0]).is_dir() or is_table_file(items[0])):
        return items[0]
    files = []
    for item in items:
        if Path(item).is_dir():
            from ..io.images import list_image_files

            files += [str(p) for p in list_image_files(item)[0]]
        else:
            files.append(item)
    return files


def run_predict(args) -> int:
    from ..infer.predict import predict
    from ..io.tables import write_table

    table = predict(args.run, _image_source(args.images), backend=args.backend, **inference_options(args))
    write_table(table, args.out)
    errors = [e for e in table["error"].to_pylist() if e]
    print(f"labelled {table.num_rows - len(errors)} images, {len(errors)} unreadable → {args.out}")
    print_table(table.drop_columns(["path"]), max_rows=10)
    return 0


def run_evaluate(args) -> int:
    from ..infer.predict import evaluate
    from ..io.tables import write_table

    import pyarrow.compute as pc

    result = evaluate(args.run, args.data, label=args.label, path=args.path, **inference_options(args))
    print_table(result.metrics.filter(pc.not_equal(result.metrics["estimator"], "per_class")))
    print()
    print_table(result.confusion)
    if args.out:
        write_table(result.predictions, args.out)
    return 0


def run_learning_curve(args) -> int:
    from ..data.table import image_table
    from ..errors import ImagesAsDataError
    from ..train.learning_curve import learning_curve

    try:
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        raise ImagesAsDataError(f"--fractions {args.fractions!r}: give comma-separated numbers such as 0.25,0.5,1",
                                what="option", option="fractions", value=args.fractions) from None
    data = image_table(args.data, label=args.label, path=args.path, encoding=args.encoding)
    curve = learning_curve(data, fractions=fractions, out=args.out, **given_options(args, TrainConfig))
    print(curve)
    return 0
