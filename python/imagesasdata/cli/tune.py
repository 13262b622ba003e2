"""Verbs tune and lr-find."""

from __future__ import annotations

import argparse
import json

from ..train.config import OPTION_HELP, TrainConfig
from .common import add_dataclass_options, given_options, print_table

TUNE_EPILOG = """
The book's grid (--grid table7.2, or book) fine-tunes 12 configurations: learning rate 0.0005/0.001/0.005 ×
momentum 0.7/0.9 × batch size 1/4, 50 epochs, StepLR step size 7 and gamma 0.1, as its Table 7.2; --grid figure7.4
is the same with gamma 0.01, as its Figures 7.4/7.5 (the book uses both gammas without comment). The presets train
under --recipe head-first (the book's SGD and StepLR on the offline network; --recipe book for Listing 1's
ResNet-18), not the default recipe, whose one-cycle schedule has no step size or gamma. A grid of your own is JSON:
  --grid '{"learning_rate": [0.001, 0.01], "freeze": ["none", "backbone"]}'
Options given beside the grid (--epochs 10, --image-size 112, …) apply to every configuration. With
--freeze backbone --no-augment-crop, features are computed once and each configuration trains in seconds.
Run the same command again to resume an interrupted grid: finished configurations are not re-run.
"""


def add_commands(subparsers) -> None:
    tune = subparsers.add_parser("tune", help="fine-tune a grid of configurations and pick the best on validation",
                                 description="Fine-tune every configuration of a grid on one split; choose the best "
                                             "on validation; evaluate the test split once for it.",
                                 epilog=TUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("data", help="folder (book layout or class folders) or CSV/Parquet table")
    tune.add_argument("--out", required=True, help="grid directory (resumable)")
    tune.add_argument("--grid", default="book", help="a preset (book, table7.2, figure7.4) or a JSON object of option lists (default: book)")
    tune.add_argument("--select-on-grid", dest="grid_select_on", default="accuracy",
                      help="validation measure that picks the configuration: accuracy, f1 or loss")
    tune.add_argument("--backend", default="local", help="'local' or 'ray' (Ray Tune trials; joins RAY_ADDRESS)")
    tune.add_argument("--cpus-per-trial", type=float,
                      help="Ray: CPUs each trial reserves, and its training threads (default: 1)")
    tune.add_argument("--gpus-per-trial", type=float,
                      help="Ray: GPUs each trial reserves; 0.5 puts two trials on a card (default: 1 when there are GPUs)")
    tune.add_argument("--label", help="label column of a table (default: label)")
    tune.add_argument("--path", help="path column of a table")
    add_dataclass_options(tune, TrainConfig, OPTION_HELP)
    tune.set_defaults(handler=run_tune)

    finder = subparsers.add_parser("lr-find", help="the learning-rate finder: loss against a rising learning rate",
                                   description="Train briefly with an exponentially rising learning rate and suggest "
                                               "one: where the loss falls fastest for the book's StepLR schedule, "
                                               "fastai's valley for --schedule one_cycle or warmup_cosine (e.g. "
                                               "the default recipe), whose learning rate is a peak.")
    finder.add_argument("data", help="folder or table, as for finetune")
    finder.add_argument("--out", help="write the curve to FILE.parquet or FILE.csv")
    finder.add_argument("--start-lr", type=float, default=1e-7)
    finder.add_argument("--end-lr", type=float, default=10.0)
    finder.add_argument("--num-steps", type=int, default=100)
    finder.add_argument("--label", help="label column of a table")
    add_dataclass_options(finder, TrainConfig, OPTION_HELP)
    finder.set_defaults(handler=run_lr_find)


def _grid(text: str):
    if text.strip().startswith(("{", "[")):
        return json.loads(text)
    return text


def run_tune(args) -> int:
    import pyarrow.compute as pc

    from ..train.grids import tune

    grid = tune(args.data, _grid(args.grid), out=args.out, label=args.label, path=args.path,
                select_on=args.grid_select_on, backend=args.backend, cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial, **given_options(args, TrainConfig))
    print(grid)
    print()
    print_table(grid.results.drop_columns(["status"]))
    if grid.test_metrics is not None:
        print("\ntest split, chosen configuration only:")
        print_table(grid.test_metrics.filter(pc.not_equal(grid.test_metrics["estimator"], "per_class")))
    return 0


def run_lr_find(args) -> int:
    from ..io.tables import write_table
    from ..train.lr_find import lr_find

    finder = lr_find(args.data, start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.num_steps,
                     label=args.label, **given_options(args, TrainConfig))
    print(finder)
    if args.out:
        write_table(finder.table, args.out)
    return 0
