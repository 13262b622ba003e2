"""Hyperparameter grids, as in the book's section 7: every configuration fine-tuned on the same split, the
best chosen on validation, the test split (if any) evaluated once for the chosen configuration only.

Grids are cheap: the images are decoded once and shared by every configuration; with a frozen backbone and no
random crops, features are computed once and only the last layer trains (features.py). An interrupted grid
resumes: finished configurations are not re-run, the interrupted one continues from its last epoch.
"""

from __future__ import annotations

import itertools
import json
import numbers
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from . import runs
from .config import TrainConfig
from .data import check_labeled, image_table
from .errors import ImagesAsDataError
from .metrics import format_interval, metric_interval
from .splits import split_table
from .tables import read_json, write_json, write_table

# The book's grid (section 7.2): 3 learning rates × 2 momentums × 2 batch sizes, 50 epochs, StepLR 7 / 0.1.
PRESETS = {
    "book": ({"learning_rate": [0.0005, 0.001, 0.005], "momentum": [0.7, 0.9], "batch_size": [1, 4]},
             {"epochs": 50, "step_size": 7, "gamma": 0.1}),
}
RESULT_METRICS = ("accuracy", "precision", "recall", "f1")


def expand_grid(grid) -> tuple[list[dict], dict]:
    """(configurations, fixed options) from a preset name, a dict of lists (their product), or a list of dicts."""
    fixed: dict = {}
    if isinstance(grid, str):
        if grid not in PRESETS:
            raise ImagesAsDataError(f"unknown grid preset {grid!r}; presets: {', '.join(PRESETS)}")
        grid, fixed = PRESETS[grid]
    if isinstance(grid, dict):
        names = list(grid)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
        configurations = [dict(zip(names, combination)) for combination in itertools.product(*values)]
    elif isinstance(grid, (list, tuple)) and all(isinstance(c, dict) for c in grid):
        configurations = [dict(c) for c in grid]
    else:
        raise ImagesAsDataError("grid must be a preset name ('book'), a dict of lists, or a list of dicts")
    if not configurations:
        raise ImagesAsDataError("the grid is empty")
    return configurations, dict(fixed)


@dataclass
class Grid:
    """The outcome of tune(): one row per configuration, every epoch of every configuration, the chosen run."""

    path: Path
    results: pa.Table       # config_id, the grid's options, best_epoch, val_accuracy … val_loss, seconds, status,
                            # then val_<metric>_lower, val_<metric>_upper (95% intervals)
    history: pa.Table       # config_id, the grid's options, epoch, split, loss, accuracy, epoch_learning_rate, seconds
    best_config: str
    test_metrics: pa.Table | None
    parameters: list

    @property
    def best(self) -> "runs.Run":
        return runs.load_run(self.path / "configs" / self.best_config)

    def __repr__(self) -> str:
        best = [r for r in self.results.to_pylist() if r["config_id"] == self.best_config][0]
        settings = ", ".join(f"{p}={best[p]}" for p in self.parameters)
        interval = format_interval(best.get("val_accuracy_lower"), best.get("val_accuracy_upper"))
        return (f"imagesasdata grid  {self.path}\n  {self.results.num_rows} configurations; best on validation: "
                f"{self.best_config} ({settings}) — val accuracy {best['val_accuracy']:.3f}"
                f"{' ' + interval if interval else ''}, F1 {best['val_f1']:.3f}")


def tune(data, grid="book", *, out=None, label: str | None = None, path: str | None = None,
         select_on: str = "accuracy", backend: str = "local", cpus_per_trial: float | None = None,
         gpus_per_trial: float | None = None, **options) -> Grid:
    """Fine-tune every configuration of `grid` on one split of `data` and pick the best on validation.

    grid: "book" (the book's 12 configurations), a dict of lists such as {"learning_rate": [0.001, 0.01],
      "freeze": ["none", "backbone"]} (every combination), or a list of dicts.
    options: fixed options for every configuration (see TrainConfig); the grid's values override them.
    out: the grid directory (default: a temporary folder): grid.json, configs/<id>/ run directories,
      results.parquet, history.parquet, test_metrics.parquet. Re-running with the same out resumes.
    backend: "local" runs configurations one after another here; "ray" runs them as Ray Tune trials.
    cpus_per_trial, gpus_per_trial: what each Ray Tune trial reserves (default: 1 CPU, and 1 GPU on a cluster with
      GPUs); a trial trains with as many threads as its CPUs. Fractions of a GPU put several trials on one card.
    Raises ImagesAsDataError for a bad grid or options, before anything is trained.
    """
    configurations, fixed = expand_grid(grid)
    options = {**fixed, **options}
    # Every configuration is checked before the first one trains.
    for configuration in configurations:
        TrainConfig.from_options(**{**options, **configuration})
    if select_on not in ("accuracy", "f1", "loss"):
        raise ImagesAsDataError(f"select_on={select_on!r}: choose accuracy, f1 or loss")
    trial_resources = _trial_resources(backend, cpus_per_trial, gpus_per_trial)
    base = TrainConfig.from_options(**options)
    out = runs.new_run_dir(out)
    parameters = list(dict.fromkeys(k for c in configurations for k in c))
    ids = [f"config_{i + 1:03d}" for i in range(len(configurations))]
    spec = {"configurations": [{"config_id": i, **c} for i, c in zip(ids, configurations)],
            "options": {k: v for k, v in options.items() if k not in TrainConfig.RUNTIME}, "select_on": select_on}
    _check_same_grid(out, spec)
    write_json(spec, out / "grid.json")

    table = image_table(data, label=label, path=path)
    check_labeled(table)
    table = split_table(table, val_fraction=base.val_fraction, test_fraction=base.test_fraction, seed=base.seed,
                        balance=base.balance, group=base.group)
    test = table.filter(pc.equal(table["split"], "test"))
    train_val = table.filter(pc.not_equal(table["split"], "test"))
    write_table(table.select(["image_id", "path", "label", "split"]), out / "splits.parquet")

    if backend == "ray":
        from .distributed import tune_on_ray

        tune_on_ray(train_val, configurations, ids, options, out, **trial_resources)
    elif backend == "local":
        shared_images: dict = {}
        for number, (config_id, configuration) in enumerate(zip(ids, configurations), start=1):
            run_config(train_val, config_id, configuration, options, out, shared_images, number, len(ids))
    else:
        raise ImagesAsDataError(f"backend={backend!r}: choose 'local' or 'ray'")
    return collect(out, ids, configurations, parameters, select_on, test, base)


def run_config(table, config_id, configuration, options, out: Path, shared_images, number=None, total=None):
    """Fine-tune one configuration into out/configs/<config_id> (resuming it if interrupted)."""
    from tqdm.auto import tqdm

    from .train import finetune

    target = out / "configs" / config_id
    settings = ", ".join(f"{k}={v}" for k, v in configuration.items())
    progress = options.get("progress", True)
    if runs.is_complete(target):
        if progress:
            tqdm.write(f"{config_id} ({settings}): done earlier, not re-run")
        return runs.load_run(target)
    if progress:
        tqdm.write(f"{config_id}{f' ({number}/{total})' if number else ''}: {settings}")
    started = time.perf_counter()
    run = finetune(table, out=target, resume=True, images=shared_images, **{**options, **configuration})
    description = runs.read_json(target / runs.DESCRIPTION)
    description.setdefault("grid", {})["seconds"] = time.perf_counter() - started
    write_json(description, target / runs.DESCRIPTION)
    return run


def _check_same_grid(out: Path, spec: dict) -> None:
    previous = out / "grid.json"
    if previous.exists() and read_json(previous) != json.loads(json.dumps(spec, default=str)):
        raise ImagesAsDataError(
            f"{out} holds a different grid (configurations or options changed); resume with the same grid and "
            "options, or choose a new out directory"
        )


def collect(out: Path, ids, configurations, parameters, select_on: str, test: pa.Table, base: TrainConfig) -> Grid:
    """Results and histories of finished configurations; choose the best; evaluate the test split once."""
    rows, histories = [], []
    for config_id, configuration in zip(ids, configurations):
        run = runs.load_run(out / "configs" / config_id)
        settings = {p: configuration.get(p) for p in parameters}
        row = {"config_id": config_id, **settings, "best_epoch": run.best_epoch}
        for metric in RESULT_METRICS:
            row[f"val_{metric}"] = run.metric(metric, "val", None if len(run.classes) == 2 else
                                              ("multiclass" if metric == "accuracy" else "macro"))
        val = [h for h in run.history.to_pylist() if h["split"] == "val" and h["epoch"] == run.best_epoch]
        row["val_loss"] = val[0]["loss"] if val else None
        epoch_seconds = sum(h["seconds"] for h in run.history.to_pylist())
        row["seconds"] = run.description.get("grid", {}).get("seconds", epoch_seconds)
        row["status"] = run.status
        for metric in RESULT_METRICS:  # 95% intervals, after the columns tables had before them
            row[f"val_{metric}_lower"], row[f"val_{metric}_upper"] = metric_interval(
                run.metrics, metric, None if len(run.classes) == 2 else
                ("multiclass" if metric == "accuracy" else "macro"), "val")
        rows.append(row)
        # The epoch's scheduled rate must not overwrite the configuration's learning_rate.
        histories += [{"config_id": config_id, **settings,
                       **{("epoch_learning_rate" if k == "learning_rate" else k): v for k, v in h.items()}}
                      for h in run.history.to_pylist()]
    results = pa.Table.from_pylist(rows)
    history = pa.Table.from_pylist(histories)
    key = {"accuracy": lambda r: (r["val_accuracy"], -r["val_loss"]), "f1": lambda r: (r["val_f1"], -r["val_loss"]),
           "loss": lambda r: (-r["val_loss"],)}[select_on]
    best = max(rows, key=key)["config_id"]  # the first of equals: max keeps the earliest
    test_metrics = None
    if test.num_rows:
        evaluation = runs.load_run(out / "configs" / best).evaluate(test, split="test", progress=base.progress,
                                                                     device=base.device)
        test_metrics = evaluation.metrics
        write_table(test_metrics, out / "test_metrics.parquet")
    write_table(results, out / "results.parquet")
    write_table(history, out / "history.parquet")
    return Grid(out, results, history, best, test_metrics, parameters)


def load_grid(path) -> Grid:
    """Re-open a finished grid directory."""
    path = Path(path)
    if not (path / "grid.json").exists():
        raise ImagesAsDataError(f"{path} is not a grid directory (no grid.json)")
    spec = read_json(path / "grid.json")
    configurations = [{k: v for k, v in c.items() if k != "config_id"} for c in spec["configurations"]]
    ids = [c["config_id"] for c in spec["configurations"]]
    parameters = list(dict.fromkeys(k for c in configurations for k in c))
    import pyarrow.parquet as pq

    splits = pq.read_table(path / "splits.parquet")
    test = splits.filter(pc.equal(splits["split"], "test"))
    base = TrainConfig.from_options(**{k: v for k, v in spec["options"].items()}, progress=False)
    return collect(path, ids, configurations, parameters, spec["select_on"], test, base)


def _trial_resources(backend: str, cpus_per_trial, gpus_per_trial) -> dict:
    """The Ray Tune resources of one trial, checked before anything trains."""
    given = {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial}
    given = {name: value for name, value in given.items() if value is not None}
    if given and backend != "ray":
        several = len(given) > 1
        raise ImagesAsDataError(f"{' and '.join(given)} {'apply' if several else 'applies'} only to Ray Tune trials: "
                                f"pass backend='ray' (CLI: --backend ray), or leave {'them' if several else 'it'} out")
    for name, value in given.items():
        low = 0 if name == "gpus_per_trial" else 0.01
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
            raise ImagesAsDataError(f"{name}={value!r}: give a number of at least {low} (e.g. {name}=2)")
    return {name: float(value) for name, value in given.items()}


def tune_tasks(tasks: dict, grid="book", *, out=None, **options) -> dict:
    """tune() for several tasks (e.g. {"protest": ..., "legend": ...}) into out/<task>/; returns {task: Grid}."""
    root = runs.new_run_dir(out)
    return {name: tune(data, grid, out=root / name, **options) for name, data in tasks.items()}


def grid_summary(grids: dict) -> pa.Table:
    """The book's Table 7.2: for each task, the chosen configuration's validation accuracy, F1, precision and
    recall, and its learning rate, momentum and batch size (and any other grid option); then each metric's 95%
    interval (<metric>_lower, <metric>_upper) and, with a test split, the test metrics and theirs."""
    rows = []
    for task, grid in grids.items():
        best = [r for r in grid.results.to_pylist() if r["config_id"] == grid.best_config][0]
        row = {"task": task, "accuracy": best["val_accuracy"], "f1": best["val_f1"],
               "precision": best["val_precision"], "recall": best["val_recall"]}
        row.update({p: best[p] for p in grid.parameters})
        bounds = {}
        for metric in ("accuracy", "f1", "precision", "recall"):
            bounds[f"{metric}_lower"] = best.get(f"val_{metric}_lower")
            bounds[f"{metric}_upper"] = best.get(f"val_{metric}_upper")
        if grid.test_metrics is not None:
            for r in grid.test_metrics.to_pylist():
                if r["estimator"] in ("binary", "multiclass") or (r["estimator"] == "macro" and r["metric"] != "accuracy"):
                    row[f"test_{r['metric']}"] = r["estimate"]
                    bounds[f"test_{r['metric']}_lower"] = r.get("lower")
                    bounds[f"test_{r['metric']}_upper"] = r.get("upper")
        rows.append({**row, **bounds})  # intervals after the book's columns
    return pa.Table.from_pylist(rows)


@dataclass
class LearningRateFinder:
    """The loss as the learning rate grows exponentially over a few hundred steps (Smith 2017; fastai's lr_find).
    A good learning rate lies where the loss falls fastest — well before it blows up."""

    table: pa.Table          # step, learning_rate, loss, smoothed_loss
    suggestion: float        # the learning rate of the steepest fall of the smoothed loss

    def __repr__(self) -> str:
        return (f"imagesasdata learning-rate finder: {self.table.num_rows} steps from "
                f"{self.table['learning_rate'][0].as_py():.1e} to {self.table['learning_rate'][-1].as_py():.1e}; "
                f"suggested learning rate {self.suggestion:.1e} (steepest fall of the loss)")


def lr_find(data, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100, label=None, path=None,
            **options) -> LearningRateFinder:
    """Train briefly with a learning rate rising from start_lr to end_lr; stop when the loss explodes.

    Uses the same data, backbone and options as finetune() (nothing is written to disk). Returns the curve and a
    suggested learning rate; in R, autoplot() draws it.
    """
    import math
    import tempfile

    import numpy as np
    import torch

    from .train import epoch_order, prepare_trainer

    if not 0 < start_lr < end_lr:
        raise ImagesAsDataError(f"start_lr={start_lr} and end_lr={end_lr}: need 0 < start_lr < end_lr")
    if num_steps < 10:
        raise ImagesAsDataError(f"num_steps={num_steps}: use at least 10 steps")
    config = TrainConfig.from_options(**options)
    with tempfile.TemporaryDirectory(prefix="imagesasdata-lr-find-") as scratch:
        trainer = prepare_trainer(data, config, Path(scratch), label=label, path=path, write=False)
        factor = (end_lr / start_lr) ** (1 / (num_steps - 1))
        rows, smoothed, best, epoch = [], 0.0, math.inf, 0
        batches: list = []
        for step in range(num_steps):
            if not batches:
                epoch += 1
                order = epoch_order(trainer.rows["train"], config.seed, epoch)
                batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
                from .backbones import set_train_mode

                set_train_mode(trainer.model, trainer.backbone.head)
            learning_rate = start_lr * factor ** step
            for group in trainer.optimizer.param_groups:
                group["lr"] = learning_rate
            batch_rows = batches.pop(0)
            inputs = trainer.train_batch(batch_rows, epoch)
            targets = torch.from_numpy(trainer.targets[batch_rows]).to(trainer.device)
            loss, _ = trainer.step(inputs, targets)
            smoothed = 0.98 * smoothed + 0.02 * loss
            debiased = smoothed / (1 - 0.98 ** (step + 1))
            rows.append({"step": step + 1, "learning_rate": learning_rate, "loss": loss, "smoothed_loss": debiased})
            best = min(best, debiased)
            if not math.isfinite(loss) or debiased > 4 * best:
                break
    table = pa.Table.from_pylist(rows)
    losses = np.array([r["smoothed_loss"] for r in rows])
    rates = np.array([r["learning_rate"] for r in rows])
    if len(rows) >= 3:
        slopes = np.gradient(losses, np.log10(rates))
        suggestion = float(rates[int(np.argmin(slopes[: max(2, int(len(slopes) * 0.9))]))])
    else:
        suggestion = float(rates[0])
    return LearningRateFinder(table, suggestion)
