"""Time to accuracy (issue 28): how long each recipe takes, start-up included, to first reach the book's reference
loop's best validation accuracy and its last-epoch accuracy, on the same machine in the same run.

Each run (one recipe, one seed, one set) is a fresh Python process, so that every recipe pays its own start-up:
the imports (recorded apart, and added to every time below), building the network, the first decode of the images,
and, for the engine, the head epochs. After each epoch the process notes the wall time since the recipe started and
the validation accuracy; the parent appends one JSON line per run to the log, and skips the runs the log already
holds, so a long benchmark can be stopped (Ctrl-C, a reboot) and started again with the same command.

Sets (as benchmarks/accuracy.py builds them, in the book's train/ val/ layout):
  politicians  ../shared/datasets/lfw_politicians: six officials, uncropped LFW news photos (150 train / 66 val)
  orl40        ORL's 40 people: 8 train / 2 val photos per person, as JPEGs

Contenders:
  loop           the book's reference loop (reference_loop.py: ImageFolder, decoding every epoch), --epochs epochs
  default        imagesasdata.finetune(data) exactly as a user calls it: no option, no epoch count (since issue 28
                 the default recipe is "fast": on a CPU its 8 epochs with early stopping, patience 2)
  engine         finetune() with its defaults but --epochs epochs; engine[recipe='head-first'] is the default
                 before issue 28, engine[recipe='book'] Listing 1 in the engine
  engine[k=v;…]  the same with options (values as Python literals)
  fast           finetune(recipe="fast") with no epoch count (the default, named)
  fast[k=v;…]    the fast recipe with options, e.g. fast[epochs=8] (all 8 epochs), fast[freeze='none'] (the recipe
                 as it was first measured, every layer fine-tuned), fast[schedule='warmup_cosine']

Targets are paired by seed: a contender's time to the loop's best is measured against the loop run with the same
seed on the same set. The table gives medians over seeds; a target a run never reached counts as never.

Usage:
  python benchmarks/time_to_accuracy.py [--seeds 0,1,2] [--sets politicians,orl40] [--epochs 10]
         [--contenders loop,engine,fast,...] [--log time_to_accuracy.jsonl]
  python benchmarks/time_to_accuracy.py --smoke          (1 seed, ORL, 2 epochs, 64 px: checks the script)
  python benchmarks/time_to_accuracy.py --table LOG      (the Markdown table of a log, finished or not)
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()   # before any heavy import: a child's imports are timed from here

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
SETS = ("politicians", "orl40")
DEFAULT_CONTENDERS = (
    "loop", "default", "engine[recipe='head-first']", "fast[freeze='none']", "fast[freeze='blocks.2']",
    "fast[freeze='blocks.4']",
    "fast[epochs=8]", "fast[schedule='warmup_cosine']", "fast[progressive_resize=0]", "fast[lr_decay_per_block=1]",
    "fast[head_epochs=0]", "fast[learning_rate=0.002]", "fast[learning_rate=0.008]",
)
SMOKE_CONTENDERS = ("loop", "default", "engine[recipe='head-first']", "fast[progressive_resize=32]",
                    "fast[progressive_resize=32;schedule='warmup_cosine']")


# ------------------------------------------------------------------------------------------ one run (a child)

def run_child(spec: dict) -> dict:
    """Train one contender once in this (fresh) process; return its per-epoch clock and accuracies."""
    kind, options, data = spec["kind"], dict(spec["options"]), spec["data"]
    if kind == "loop":
        import timm  # noqa: F401  (what the loop's network needs)
        import torch
        import torchvision  # noqa: F401

        sys.path.insert(0, str(HERE))
        from reference_loop import reference_finetune
    else:
        import torch

        from imagesasdata import runs
        from imagesasdata.train.config import TrainConfig
        from imagesasdata.train.trainer import prepare_trainer
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    imported = time.perf_counter()
    per_epoch: list[dict] = []
    marks: dict = {}
    started = time.perf_counter()

    def clock() -> float:
        return round(time.perf_counter() - started, 3)

    if kind == "loop":
        def on_epoch(epoch, accuracy, loss):
            per_epoch.append({"epoch": epoch, "seconds": clock(), "val_accuracy": accuracy, "val_loss": loss})

        reference_finetune(data, epochs=spec["epochs"], seed=spec["seed"], num_workers=spec["loop_workers"],
                           image_size=spec.get("image_size") or 224, on_epoch=on_epoch)
        outcome = {"kept_accuracy": max(e["val_accuracy"] for e in per_epoch), "epochs_run": len(per_epoch),
                   "stopped_early": False}
    else:
        class EpochClock:
            """The last callback of fit(): the time each epoch ended, and when fine-tuning began."""

            def before_fit(self, trainer):
                marks["fine_tuning_started"] = clock()

            def after_epoch(self, trainer, state, result):
                per_epoch.append({"epoch": result.epoch, "seconds": clock(), "val_accuracy": result.val_accuracy,
                               "val_loss": result.val_loss, "train_size": trainer.training_size(result.epoch),
                               "learning_rate": result.learning_rate})

        config = TrainConfig.from_options(seed=spec["seed"], progress=False, **options)
        scratch = Path(tempfile.mkdtemp(prefix="time-to-accuracy-"))
        try:
            with runs.claim_run_dir(scratch / "run", resume=False, overwrite=False) as folder:   # as finetune()
                trainer = prepare_trainer(data, config, folder)
                marks["prepared"] = clock()
                run = trainer.fit(callbacks=[*trainer.callbacks(), EpochClock()])
            outcome = {"kept_accuracy": run.metric("accuracy", "val"), "epochs_run": run.description["epochs_run"],
                       "stopped_early": run.description["stopped_early"],
                       "resolved": {k: v for k, v in config.to_dict().items()
                                    if k in ("recipe", "epochs", "patience", "learning_rate", "schedule",
                                             "lr_decay_per_block", "progressive_resize", "head_epochs",
                                             "head_learning_rate", "image_size")}}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return {"import_seconds": round(imported - PROCESS_START, 3), "finished_seconds": clock(), "per_epoch": per_epoch,
            **marks, **outcome}


# ------------------------------------------------------------------------------------------ the parent

def parse_contender(spec: str) -> tuple[str, dict]:
    """'loop', 'default', 'engine[…]' or 'fast[…]' → (kind, options as the child passes them); the loop takes none."""
    from accuracy import parse_contender as parse

    return parse(spec, kinds=("loop", "default", "engine", "fast"), loop_options=())


def child_spec(contender: str, data: Path, seed: int, args) -> dict:
    kind, options = parse_contender(contender)
    if kind == "engine":
        options = {"epochs": args.epochs, **options}
    elif kind in ("fast", "default"):
        options = {"recipe": "fast", **options} if kind == "fast" else options
        if args.smoke:
            options["epochs"] = args.epochs
    if args.image_size and kind != "loop":
        options.setdefault("image_size", args.image_size)
    return {"kind": "loop" if kind == "loop" else "engine", "options": options, "data": str(data), "seed": seed,
            "epochs": args.epochs, "image_size": args.image_size, "threads": args.threads,
            "loop_workers": args.loop_workers}


def run_key(record: dict) -> tuple:
    return record["set"], record["contender"], record["seed"], record["epochs"], record.get("image_size")


def finished_runs(log: Path) -> set:
    if not log.exists():
        return set()
    done = set()
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue   # a line cut by a kill: that run is simply run again
        if record.get("status") == "done":
            done.add(run_key(record))
    return done


def append_line(log: Path, record: dict) -> None:
    """One whole line per run, flushed to disk before the next run starts."""
    with open(log, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build_sets(names, work: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from accuracy import build_set

    return {name: build_set(name, work) for name in names}


def run_all(args) -> None:
    sys.path.insert(0, str(HERE))
    from train_speed import machine

    log = Path(args.log)
    done = finished_runs(log)
    here = machine()
    print(f"Machine: {here}\nLog: {log} ({len(done)} runs already there)\n", flush=True)
    work = Path(tempfile.mkdtemp(prefix="imagesasdata-time-to-accuracy-"))
    try:
        data = build_sets(args.sets, work)
        for seed in args.seeds:
            for name in args.sets:
                for contender in args.contenders:
                    record = {"set": name, "contender": contender, "seed": seed, "epochs": args.epochs,
                              "image_size": args.image_size}
                    if run_key(record) in done:
                        continue
                    spec = child_spec(contender, data[name], seed, args)
                    began = time.time()
                    child = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                           capture_output=True, text=True)
                    result = next((json.loads(line[len("RESULT "):]) for line in child.stdout.splitlines()[::-1]
                                   if line.startswith("RESULT ")), None)
                    if child.returncode != 0 or result is None:
                        print(f"  {name:12s} {contender:45s} seed {seed}: FAILED (exit {child.returncode})\n"
                              + child.stderr[-3000:], flush=True)
                        append_line(log, {**record, "status": "failed", "error": child.stderr[-3000:]})
                        continue
                    record.update(status="done", **result, options=spec["options"], machine=here, commit=commit(),
                                  started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(began)))
                    append_line(log, record)
                    best = max(e["val_accuracy"] for e in result["per_epoch"])
                    print(f"  {name:12s} {contender:45s} seed {seed}: best val acc {best:.3f}, "
                          f"{result['import_seconds'] + result['finished_seconds']:.0f} s "
                          f"({len(result['per_epoch'])} epochs)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(read_log(log)))


# ------------------------------------------------------------------------------------------ the table

def read_log(log: Path) -> list[dict]:
    records = []
    for line in Path(log).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("status") == "done":
            records.append(record)
    latest = {run_key(r): r for r in records}   # a run logged twice: its latest line
    return list(latest.values())


def time_to(record: dict, target: float) -> float:
    """Seconds from the process's start (imports included) to the end of the first epoch at or above `target`
    (validation accuracy); infinity when no epoch reached it."""
    for epoch in record["per_epoch"]:
        if epoch["val_accuracy"] >= target - 1e-9:
            return record["import_seconds"] + epoch["seconds"]
    return math.inf


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def shown(seconds: float, reached: int, runs: int) -> str:
    if math.isinf(seconds):
        return f"not reached ({reached}/{runs})"
    return f"{seconds:.0f}" + (f" ({reached}/{runs})" if reached < runs else "")


def table(records: list[dict]) -> str:
    """Markdown: per set and contender, medians over seeds of the times to the loop's best and last-epoch
    accuracy (paired by seed), their share of the loop's own time, the kept model's accuracy and the whole run."""
    columns = ["set", "contender", "seeds", "to loop's best (s)", "÷ loop (best)", "to loop's last (s)", "÷ loop (last)",
               "kept val acc: median (min–max)", "whole run (s)", "epochs run"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    notes = []
    for name in dict.fromkeys(r["set"] for r in records):
        mine = [r for r in records if r["set"] == name]
        loops = {r["seed"]: r for r in mine if r["contender"] == "loop"}
        if not loops:
            notes.append(f"{name}: no loop run in the log yet, so no targets")
            continue
        best = {seed: max(e["val_accuracy"] for e in r["per_epoch"]) for seed, r in loops.items()}
        last = {seed: r["per_epoch"][-1]["val_accuracy"] for seed, r in loops.items()}
        loop_best_time = median(time_to(r, best[s]) for s, r in loops.items())
        loop_last_time = median(time_to(r, last[s]) for s, r in loops.items())
        notes.append(f"{name}: the loop's best val accuracy per seed "
                     + ", ".join(f"{s}: {best[s]:.3f}" for s in sorted(best)) + "; its last-epoch accuracy "
                     + ", ".join(f"{s}: {last[s]:.3f}" for s in sorted(last)))
        for contender in dict.fromkeys(r["contender"] for r in mine):
            runs = [r for r in mine if r["contender"] == contender and r["seed"] in loops]
            if not runs:
                continue
            to_best = [time_to(r, best[r["seed"]]) for r in runs]
            to_last = [time_to(r, last[r["seed"]]) for r in runs]
            kept = [r["kept_accuracy"] for r in runs]
            to_best_median, to_last_median = median(to_best), median(to_last)
            lines.append("| " + " | ".join([
                name, contender, str(len(runs)),
                shown(to_best_median, sum(map(math.isfinite, to_best)), len(runs)),
                f"{to_best_median / loop_best_time:.2f}" if math.isfinite(to_best_median) else "–",
                shown(to_last_median, sum(map(math.isfinite, to_last)), len(runs)),
                f"{to_last_median / loop_last_time:.2f}" if math.isfinite(to_last_median) else "–",
                f"{median(kept):.3f} ({min(kept):.3f}–{max(kept):.3f})",
                f"{median(r['import_seconds'] + r['finished_seconds'] for r in runs):.0f}",
                f"{median(r['epochs_run'] for r in runs):g}",
            ]) + " |")
    imports = {}
    for r in records:
        imports.setdefault("loop" if r["contender"] == "loop" else "engine", []).append(r["import_seconds"])
    notes.append("imports (median seconds, included in every time above): "
                 + ", ".join(f"{k} {median(v):.1f}" for k, v in imports.items()))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--sets", default=",".join(SETS), help="politicians, orl40 (default both)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the loop and of engine contenders (10)")
    parser.add_argument("--contenders", default=None,
                        help="comma-separated (default: " + ",".join(DEFAULT_CONTENDERS) + ")")
    parser.add_argument("--image-size", type=int, default=None, help="side in pixels (default: 224, the networks')")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's choice)")
    parser.add_argument("--loop-workers", type=int, default=2, help="the loop's DataLoader workers (the book: 2)")
    parser.add_argument("--log", default=None, help="the JSON-lines log to append to and resume from "
                                                    "(default time_to_accuracy.jsonl; --smoke: time_to_accuracy-smoke.jsonl)")
    parser.add_argument("--smoke", action="store_true",
                        help="check the script end to end: seed 0, orl40, 2 epochs, 64 px, four contenders")
    parser.add_argument("--table", metavar="LOG", default=None, help="print the Markdown table of LOG and exit")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_child(json.loads(args.child))), flush=True)
        return
    if args.table:
        print(table(read_log(Path(args.table))))
        return
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.sets = [s.strip() for s in args.sets.split(",")]
    args.contenders = [c.strip() for c in re.split(r",(?![^\[]*\])", args.contenders)] if args.contenders \
        else list(DEFAULT_CONTENDERS)
    if args.smoke:
        args.seeds, args.sets, args.epochs, args.image_size = [0], ["orl40"], 2, args.image_size or 64
        if args.contenders == list(DEFAULT_CONTENDERS):
            args.contenders = list(SMOKE_CONTENDERS)
    args.log = args.log or ("time_to_accuracy-smoke.jsonl" if args.smoke else "time_to_accuracy.jsonl")
    unknown = [s for s in args.sets if s not in SETS]
    if unknown:
        raise SystemExit(f"unknown set(s) {unknown}; choose from {', '.join(SETS)}")
    for contender in args.contenders:
        parse_contender(contender)
    run_all(args)


if __name__ == "__main__":
    main()
