"""Verbs finetune, predict and evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import OPTION_HELP, TrainConfig
from .common import add_dataclass_options, given_options, print_table

FINETUNE_EPILOG = """
The book's defaults: SGD with learning rate 0.001 and momentum 0.9, batch size 4, cross-entropy loss, and a
StepLR schedule that multiplies the learning rate by gamma=0.1 every step_size=7 epochs. The epoch with the best
validation accuracy is kept. DATA is the book's layout (train/ and val/ folders, each with one folder per class),
a folder of class folders (split 80/20, stratified and seeded), or a CSV/Parquet table with path and label columns.

examples:
  imagesasdata finetune data/faces --out runs/faces --epochs 10
  imagesasdata finetune labels.csv --label protest --out runs/protest --architecture resnet18
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
    add_dataclass_options(finetune, TrainConfig, OPTION_HELP)
    finetune.set_defaults(handler=run_finetune)

    predict = subparsers.add_parser(
        "predict", help="label images with a fitted run",
        description="Label images with a fitted run. Unreadable images get a row with their error.",
    )
    predict.add_argument("run", help="run directory written by finetune")
    predict.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")
    predict.add_argument("--out", required=True, help="output table: FILE.parquet or FILE.csv")
    predict.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    predict.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _decision_options(predict)
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
    evaluate.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    _decision_options(evaluate)
    evaluate.set_defaults(handler=run_evaluate)


def _decision_options(parser) -> None:
    parser.add_argument("--calibrate", action="store_true",
                        help="apply the temperature fitted on the validation split (calibrated probabilities)")
    parser.add_argument("--threshold", type=float,
                        help="binary tasks: positive when the positive class's probability is at least this "
                             "(default: the most probable class; see `imagesasdata thresholds`)")


def run_finetune(args) -> int:
    from ..train import finetune

    run = finetune(args.data, out=args.out, label=args.label, path=args.path, resume=args.resume,
                   **given_options(args, TrainConfig))
    print(run.summary())
    print(f"\nrun directory: {run.path}")
    return 0


def _image_source(items):
    from ..tables import is_table_file

    if len(items) == 1 and (Path(items[0]).is_dir() or is_table_file(items[0])):
        return items[0]
    files = []
    for item in items:
        if Path(item).is_dir():
            from ..images import list_image_files

            files += [str(p) for p in list_image_files(item)[0]]
        else:
            files.append(item)
    return files


def run_predict(args) -> int:
    from ..predict import predict
    from ..tables import write_table

    table = predict(args.run, _image_source(args.images), batch_size=args.batch_size, device=args.device,
                    progress=not args.no_progress, calibrate=args.calibrate, threshold=args.threshold)
    write_table(table, args.out)
    errors = [e for e in table["error"].to_pylist() if e]
    print(f"labelled {table.num_rows - len(errors)} images, {len(errors)} unreadable → {args.out}")
    print_table(table.drop_columns(["path"]), max_rows=10)
    return 0


def run_evaluate(args) -> int:
    from ..predict import evaluate
    from ..tables import write_table

    result = evaluate(args.run, args.data, label=args.label, path=args.path, device=args.device,
                      calibrate=args.calibrate, threshold=args.threshold)
    print_table(result.metrics.filter(__import__("pyarrow.compute").compute.not_equal(result.metrics["estimator"], "per_class")))
    print()
    print_table(result.confusion)
    if args.out:
        write_table(result.predictions, args.out)
    return 0
