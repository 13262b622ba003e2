"""Accuracy at equal epochs: the engine against the book's plain loop (reference_loop.py), several seeds, real sets.

Speed counts only at equal or better accuracy, so every contender trains on the same images, with the same
offline EfficientNet-Lite0 ImageNet backbone, the book's hyperparameters and the same number of epochs. Runs are
interleaved (seed by seed, set by set, contender by contender), so the machine's load falls on all of them alike.

Sets (all in the book's train/ val/ layout):
  politicians  ../shared/datasets/lfw_politicians: six officials, uncropped LFW news photos (150 train / 66 val)
  orl40        ORL's 40-person task: 8 train / 2 val photos per person, as JPEGs (as train_speed.py builds it)
  kofi         one person against the others, built from lfw_politicians: Kofi_Annan vs the other five

Contenders:
  loop         the book's reference loop (ImageFolder, DataLoader workers, decoding every epoch)
  loop[k=v]    the loop with one of its switches: head_init='normal' (the engine's N(0, 0.01) head),
               channels_last=True (the engine's memory layout on CPUs)
  engine       imagesasdata.finetune() with its defaults
  engine[k=v;k=v]  the engine with options (values parsed as Python literals), e.g. engine[normalize='imagenet']

Usage: python benchmarks/accuracy.py [--quick] [--seeds 0,1,2] [--sets politicians,orl40,kofi] [--epochs 10]
       [--threads 2] [--contenders loop,engine] [--log results.jsonl]
Prints Markdown tables for benchmarks/README.md (mean ± standard deviation over seeds).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagesasdata as iad  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001  (results appear as they finish)
from reference_loop import reference_finetune  # noqa: E402
from train_speed import book_layout, machine, markdown  # noqa: E402

SETS = ("politicians", "orl40", "kofi")
PERSON = "Kofi_Annan"


def lfw_politicians() -> Path:
    from conftest import shared_datasets

    return shared_datasets() / "lfw_politicians"


def one_against_others(root: Path, person: str = PERSON) -> Path:
    """lfw_politicians as a binary task in the book's layout: `person` against everyone else (hard links)."""
    for source in sorted(lfw_politicians().glob("*/*/*.jpg")):
        split, name = source.parent.parent.name, source.parent.name
        target = root / split / (person if name == person else "others") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy(source, target)
    return root


def build_set(name: str, work: Path) -> Path:
    if name == "politicians":
        return lfw_politicians()
    if name == "orl40":
        return book_layout(work / "orl40")
    if name == "kofi":
        return one_against_others(work / "kofi")
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def parse_contender(spec: str, kinds=("loop", "engine"), loop_options=("head_init", "channels_last")) -> tuple[str, dict]:
    """'loop', 'engine' or 'engine[key=value;key=value]' (or another of `kinds`) → (kind, options). The loop takes
    only `loop_options`: otherwise it would not be the book's recipe. time_to_accuracy.py parses its contenders here
    too."""
    match = re.fullmatch(rf"({'|'.join(kinds)})(?:\[(.*)\])?", spec.strip())
    if not match:
        raise SystemExit(f"contender {spec!r}: use {', '.join(kinds)}, or one of them with [key=value;...]")
    options = {}
    for item in filter(None, (match.group(2) or "").split(";")):
        key, _, value = item.partition("=")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    if match.group(1) == "loop" and set(options) - set(loop_options):
        allowed = f"only {' and '.join(loop_options)}" if loop_options else "no options"
        raise SystemExit(f"the loop takes {allowed}: otherwise it is the book's recipe")
    return match.group(1), options


def run_loop(data: Path, epochs: int, seed: int, workers: int, options: dict | None = None) -> dict:
    started = time.perf_counter()
    result = reference_finetune(data, epochs=epochs, seed=seed, num_workers=workers, **(options or {}))
    seconds = time.perf_counter() - started
    # The loop keeps its best epoch's weights, so the kept model's accuracy is the best epoch's.
    return {"best_epoch_accuracy": result["val_accuracy"], "kept_accuracy": result["val_accuracy"], "seconds": seconds}


def run_engine(data: Path, epochs: int, seed: int, options: dict, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    started = time.perf_counter()
    run = iad.finetune(data, out=out, epochs=epochs, seed=seed, progress=False, **options)
    seconds = time.perf_counter() - started
    history = run.history.to_pylist()
    best = max(r["accuracy"] for r in history if r["split"] == "val")
    kept = run.metric("accuracy", "val")
    shutil.rmtree(out, ignore_errors=True)
    return {"best_epoch_accuracy": best, "kept_accuracy": kept, "seconds": seconds}


def summarise(results: list[dict], contenders: list[str], sets: list[str]) -> str:
    rows = []
    for name in sets:
        loop_seconds = [r["seconds"] for r in results if r["set"] == name and r["contender"] == "loop"]
        for contender in contenders:
            mine = [r for r in results if r["set"] == name and r["contender"] == contender]
            if not mine:
                continue

            def spread(key, digits=3):
                values = [r[key] for r in mine]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

            seconds = statistics.mean(r["seconds"] for r in mine)
            rows.append({
                "set": name, "contender": contender, "seeds": len(mine),
                "best-epoch val acc": spread("best_epoch_accuracy"), "kept-model val acc": spread("kept_accuracy"),
                "min–max (kept)": f"{min(r['kept_accuracy'] for r in mine):.3f}–{max(r['kept_accuracy'] for r in mine):.3f}",
                "seconds": spread("seconds", 0),
                "loop time / this": f"{statistics.mean(loop_seconds) / seconds:.2f}×" if loop_seconds else "–",
            })
    columns = ["set", "contender", "seeds", "best-epoch val acc", "kept-model val acc", "min–max (kept)", "seconds",
               "loop time / this"]
    return markdown(rows, columns)


def paired_differences(results: list[dict], contenders: list[str], sets: list[str]) -> str:
    """Each contender against the first, seed by seed (same seed, same set): the mean difference in kept-model
    accuracy, its standard deviation over seeds, and the seeds on which it was ahead, level or behind."""
    rows = []
    for name in sets:
        base = {r["seed"]: r["kept_accuracy"] for r in results if r["set"] == name and r["contender"] == contenders[0]}
        for contender in contenders[1:]:
            mine = {r["seed"]: r["kept_accuracy"] for r in results if r["set"] == name and r["contender"] == contender}
            differences = [mine[s] - base[s] for s in sorted(mine) if s in base]
            if not differences:
                continue
            sd = statistics.stdev(differences) if len(differences) > 1 else 0.0
            rows.append({"set": name, "contender": contender, "against": contenders[0], "seeds": len(differences),
                         "mean difference": f"{statistics.mean(differences):+.3f} ± {sd:.3f}",
                         "ahead / level / behind": f"{sum(d > 0 for d in differences)} / "
                                                   f"{sum(d == 0 for d in differences)} / "
                                                   f"{sum(d < 0 for d in differences)}"})
    return markdown(rows, ["set", "contender", "against", "seeds", "mean difference", "ahead / level / behind"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 epochs, seed 0 (decide, then run in full)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 10; --quick: 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--contenders", default="loop,engine")
    parser.add_argument("--loop-workers", type=int, default=2, help="the loop's DataLoader worker processes")
    parser.add_argument("--log", default=None, help="append each run's result to this JSON-lines file")
    parser.add_argument("--summarise", metavar="LOG", default=None,
                        help="print the tables of a --log file (e.g. of a benchmark stopped early) and exit")
    args = parser.parse_args()
    if args.summarise:
        logged = [json.loads(line) for line in open(args.summarise) if line.strip()]
        contenders = list(dict.fromkeys(r["contender"] for r in logged))
        sets = list(dict.fromkeys(r["set"] for r in logged))
        print(summarise(logged, contenders, sets))
        print()
        print(paired_differences(logged, contenders, sets))
        return
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    epochs = args.epochs or (3 if args.quick else 10)
    sets = [s.strip() for s in args.sets.split(",")]
    contenders = [c.strip() for c in re.split(r",(?![^\[]*\])", args.contenders)]
    parsed = {c: parse_contender(c) for c in contenders}
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}; {epochs} epochs; seeds {seeds}; loop workers {args.loop_workers}\n")
    work = Path(tempfile.mkdtemp(prefix="imagesasdata-accuracy-"))
    results = []
    try:
        data = {name: build_set(name, work) for name in sets}
        for seed in seeds:
            for name in sets:
                for contender in contenders:
                    kind, options = parsed[contender]
                    if kind == "loop":
                        outcome = run_loop(data[name], epochs, seed, args.loop_workers, options)
                    else:
                        outcome = run_engine(data[name], epochs, seed, options, work)
                    result = {"set": name, "contender": contender, "seed": seed, "epochs": epochs, **outcome}
                    results.append(result)
                    print(f"  {name:12s} {contender:40s} seed {seed}: best epoch {outcome['best_epoch_accuracy']:.3f}, "
                          f"kept {outcome['kept_accuracy']:.3f}, {outcome['seconds']:.0f} s")
                    if args.log:
                        with open(args.log, "a") as log:
                            log.write(json.dumps({**result, "machine": machine()}) + "\n")
        print()
        print(summarise(results, contenders, sets))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
