"""Which images to label next: does choosing them beat choosing at random?

Accuracy on held-out images against the number of hand-labelled images, for three ways of choosing the next batch
from the unlabelled pool — random, uncertainty alone (entropy), and uncertainty + diversity (the engine's default,
select_images()) — over several seeds, on the real news photos of six politicians (lfw_politicians).

Protocol (the same for every strategy and seed):
  pool      the 150 train/ photos, labels hidden until an image is "coded" (its folder name revealed)
  selection 30 of the 66 val/ photos (5 per person): the val split each fine-tune chooses its epoch on
  test      the other 36 val/ photos: the accuracy reported
  start     2 photos per person drawn at random (seeded), then rounds of `--batch` photos chosen by the strategy
  model     efficientnet_lite0 (offline ImageNet weights, their own pixel statistics), frozen backbone, no
            random crops or flips (the fast path: features computed once per fine-tune, the head trains in
            seconds), --epochs epochs, lr 0.01
The fitted run of each round chooses the next batch (select_images() on the pool less the coded images).

    .venv/bin/python benchmarks/active_learning.py [--seeds 0 1 2] [--rounds 5] [--batch 12] [--image-size 128]

Prints a Markdown table (mean and standard deviation of test accuracy over seeds) for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "python"))

import imagesasdata as iad  # noqa: E402

STRATEGIES = ("random", "uncertainty", "uncertainty+diversity")


def datasets_folder() -> Path:
    for candidate in (REPOSITORY.parent / "shared" / "datasets", Path("/work/shared/datasets")):
        if (candidate / "lfw_politicians").is_dir():
            return candidate / "lfw_politicians"
    raise SystemExit("lfw_politicians not found beside the repository (../shared/datasets)")


def split_held_out(val: pa.Table, per_person: int = 5) -> tuple[pa.Table, pa.Table]:
    """The first `per_person` val photos of each person (in LFW's order) for epoch selection, the rest for test."""
    rows = val.to_pylist()
    selection, test, seen = [], [], {}
    for row in sorted(rows, key=lambda r: r["image_id"]):
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        (selection if seen[row["label"]] <= per_person else test).append(row)
    return pa.Table.from_pylist(selection, schema=val.schema), pa.Table.from_pylist(test, schema=val.schema)


def start_set(pool: pa.Table, per_person: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    labels = np.array(pool["label"].to_pylist())
    chosen = []
    for person in sorted(set(labels)):
        rows = np.flatnonzero(labels == person)
        chosen += sorted(rng.choice(rows, size=per_person, replace=False).tolist())
    return chosen


def one_curve(pool: pa.Table, selection: pa.Table, test: pa.Table, strategy: str, seed: int, args,
              decoded: dict) -> list[dict]:
    coded = start_set(pool, args.start_per_person, seed)
    paths = pool["path"].to_pylist()
    curve = []
    with tempfile.TemporaryDirectory(prefix="imagesasdata-al-") as scratch:
        for round_number in range(args.rounds + 1):
            labelled = pool.take(pa.array(coded)).select(["image_id", "path", "label"])
            training = pa.concat_tables([
                labelled.append_column("split", pa.array(["train"] * labelled.num_rows, pa.string())),
                selection.select(["image_id", "path", "label"]).append_column(
                    "split", pa.array(["val"] * selection.num_rows, pa.string())),
            ])
            started = time.perf_counter()
            run = iad.finetune(training, out=Path(scratch) / f"round{round_number}", overwrite=True,
                               epochs=args.epochs, image_size=args.image_size, freeze="backbone", normalize="backbone",
                               augment_crop=False, augment_flip=False, learning_rate=0.01, batch_size=8, seed=seed,
                               progress=False, images=decoded)
            accuracy = iad.evaluate(run, test, progress=False).metrics
            value = next(r["estimate"] for r in accuracy.to_pylist() if r["metric"] == "accuracy")
            curve.append({"strategy": strategy, "seed": seed, "labelled": len(coded), "accuracy": value,
                          "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(curve[-1]), flush=True)
            if round_number == args.rounds:
                break
            remaining = pool.filter(pa.array([i not in set(coded) for i in range(pool.num_rows)]))
            if strategy == "random":
                picked = iad.rank_for_labelling(_uniform(remaining, run.classes), None, args.batch, strategy="random",
                                                seed=seed * 1000 + round_number)
            else:
                picked = iad.select_images(run, remaining, args.batch, strategy=strategy, seed=seed, progress=False)
            position = {p: i for i, p in enumerate(paths)}
            coded += [position[p] for p in picked["path"].to_pylist()]
    return curve


def _uniform(table: pa.Table, classes) -> pa.Table:
    """A predictions-shaped table for random selection, which looks at no prediction."""
    columns = {"image_id": table["image_id"], "path": table["path"]}
    columns.update({f"prob_{c}": pa.array([1 / len(classes)] * table.num_rows, pa.float64()) for c in classes})
    return pa.table(columns)


def markdown(results: list[dict], seeds) -> str:
    sizes = sorted({r["labelled"] for r in results})
    lines = ["| labelled images | " + " | ".join(STRATEGIES) + " |",
             "|---:|" + "---:|" * len(STRATEGIES)]
    for size in sizes:
        cells = []
        for strategy in STRATEGIES:
            values = [r["accuracy"] for r in results if r["strategy"] == strategy and r["labelled"] == size]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}" if values else "")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    areas = {}
    for strategy in STRATEGIES:
        per_seed = []
        for seed in seeds:
            curve = sorted((r for r in results if r["strategy"] == strategy and r["seed"] == seed),
                           key=lambda r: r["labelled"])
            per_seed.append(statistics.mean(r["accuracy"] for r in curve[1:]) if len(curve) > 1 else float("nan"))
        areas[strategy] = per_seed
    lines += ["", "Mean accuracy over the rounds after the start (24–72 labelled), per seed: " + "; ".join(
        f"{s}: {', '.join(f'{v:.3f}' for v in areas[s])}" for s in STRATEGIES)]
    wins = {s: sum(a > r for a, r in zip(areas[s], areas["random"])) for s in STRATEGIES if s != "random"}
    lines += ["Seeds on which a strategy's mean beats random's: " + "; ".join(
        f"{s}: {wins[s]} of {len(seeds)}" for s in wins)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=12, help="images coded per round")
    parser.add_argument("--start-per-person", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--log", help="append every round's result to this JSON-lines file")
    parser.add_argument("--table", metavar="LOG", help="print the table of a JSON-lines log (runs nothing)")
    args = parser.parse_args()
    if args.table:
        results = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]
        print(markdown(results, sorted({r["seed"] for r in results})))
        return
    root = datasets_folder()
    table = iad.image_table(root)
    pool = table.filter(pa.array([s == "train" for s in table["split"].to_pylist()]))
    val = table.filter(pa.array([s == "val" for s in table["split"].to_pylist()]))
    selection, test = split_held_out(val)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; pool {pool.num_rows}, selection {selection.num_rows}, test {test.num_rows}",
          flush=True)
    decoded: dict = {}
    results = []
    started = time.perf_counter()
    for seed in args.seeds:
        for strategy in args.strategies:
            curve = one_curve(pool, selection, test, strategy, seed, args, decoded)
            results += curve
            if args.log:
                with open(args.log, "a") as handle:
                    for row in curve:
                        handle.write(json.dumps(row) + "\n")
    print(f"\n{len(results)} fine-tunes in {time.perf_counter() - started:.0f} s\n")
    print(markdown(results, args.seeds))


if __name__ == "__main__":
    main()
