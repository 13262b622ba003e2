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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import runs
from ..infer.run import Run, load_run
from .config import SELECT_ON, TrainConfig, selection_score
from ..data.table import check_labeled, image_table
from ..errors import ImagesAsDataError, cli_only, did_you_mean, option_error, setting
from ..io.locks import claimed_directory, tidy_if_idle
from ..measure.metrics import format_interval, headline, metric_interval
from ..data.splits import choose_test_fraction, split_table
from ..io.tables import read_json, write_json, write_table

# The book's grid (section 7): 3 learning rates × 2 momentums × 2 batch sizes, 50 epochs, StepLR step size 7. The
# book uses gamma 0.01 for the grid of §7.5 (Figures 7.4 and 7.5) and 0.1 for §7.6 (Table 7.2), without comment:
# "figure7.4" and "table7.2" reproduce each; "book" is "table7.2" (the training loop's own default gamma). The
# presets train under recipe "head-first" (the book's SGD and StepLR on the offline network, the new last layer
# trained first), not the default "fast", whose one-cycle schedule has no step size or gamma to grid over; pass
# recipe="book" for Listing 1's ResNet-18.
BOOK_GRID = {"learning_rate": [0.0005, 0.001, 0.005], "momentum": [0.7, 0.9], "batch_size": [1, 4]}
BOOK_GRID_RECIPE = "head-first"
PRESETS = {
    "book": (BOOK_GRID, {"recipe": BOOK_GRID_RECIPE, "epochs": 50, "step_size": 7, "gamma": 0.1}),
    "table7.2": (BOOK_GRID, {"recipe": BOOK_GRID_RECIPE, "epochs": 50, "step_size": 7, "gamma": 0.1}),
    "figure7.4": (BOOK_GRID, {"recipe": BOOK_GRID_RECIPE, "epochs": 50, "step_size": 7, "gamma": 0.01}),
}
GAMMA_NOTE = ("the book's grid uses gamma 0.01 in §7.5 (Figures 7.4/7.5: grid='figure7.4') and 0.1 in §7.6 (Table 7.2: "
              "grid='table7.2') without saying why. With step size 7 over 50 epochs the learning rate ends at gamma^7 "
              "of its start: 1e-14 with 0.01 (below 1e-4 of it from epoch 15 on: the last 36 epochs barely move) and "
              "1e-7 with 0.1. Pass gamma= to choose")
PRESET_NOTES = {"figure7.4": GAMMA_NOTE, "table7.2": GAMMA_NOTE}
RESULT_METRICS = ("accuracy", "precision", "recall", "f1")
GRID_FILE = "grid.json"
CLUSTER_FILE = "cluster.json"   # the grid's last call on Ray: its nodes, trials per node, nodes lost, trials retried


def expand_grid(grid) -> tuple[list[dict], dict]:
    """(configurations, fixed options) from a preset name, a dict of lists (their product), or a list of dicts."""
    fixed: dict = {}
    if isinstance(grid, str):
        if grid not in PRESETS:
            raise ImagesAsDataError(f"unknown grid preset {grid!r}; presets: {', '.join(PRESETS)}."
                                    + did_you_mean(str(grid), PRESETS), what="option",
                                    option="grid", value=grid, choices=list(PRESETS))
        grid, fixed = PRESETS[grid]
    if isinstance(grid, dict):
        names = list(grid)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
        configurations = [dict(zip(names, combination)) for combination in itertools.product(*values)]
    elif isinstance(grid, (list, tuple)) and all(isinstance(c, dict) for c in grid):
        configurations = [dict(c) for c in grid]
    else:
        raise ImagesAsDataError(f"grid must be a preset name ({', '.join(PRESETS)}), a dict of lists, or a list of "
                                "dicts")
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
    select_on: str = "accuracy"   # the validation measure that chose best_config
    cluster: object = None        # backend "ray": trials per node, trials retried and why, nodes lost (ClusterWork)
    no_test: str | None = None    # why there is no test split, when there is none
    note: str | None = None       # what the preset's reader should know (the book's two gammas)

    @property
    def best(self) -> Run:
        return load_run(self.path / "configs" / self.best_config)

    def __repr__(self) -> str:
        best = [r for r in self.results.to_pylist() if r["config_id"] == self.best_config][0]
        settings = ", ".join(f"{p}={best[p]}" for p in self.parameters)
        interval = format_interval(best.get("val_accuracy_lower"), best.get("val_accuracy_upper"))
        lines = [f"imagesasdata grid  {self.path}",
                 f"  {self.results.num_rows} configurations; best on validation: {self.best_config} ({settings})",
                 f"  val  accuracy {best['val_accuracy']:.3f}{' ' + interval if interval else ''}, F1 "
                 f"{best['val_f1']:.3f} (optimistic: this split chose the configuration and its epoch)"]
        if self.test_metrics is not None:
            lines.append(f"  test {headline(self.test_metrics, 'test')} (held out; scored once, for the chosen "
                         "configuration only)")
        else:
            lines.append(f"  no test split{': ' + self.no_test if self.no_test else ''}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.cluster is not None:
            nodes, started = len(self.cluster.nodes), self.cluster.workers
            size = ", ".join(part for part in (f"{nodes} node{'s' if nodes != 1 else ''}" if nodes else "",
                                               f"{started} trial{'s' if started != 1 else ''} started" if started else "")
                             if part)
            lines.append("  on Ray: " + (size + ": " if size else "") +
                         ", ".join(f"{n} trials on {node}" for node, n in self.cluster.by_node.items()))
            lines += [f"  node {node} left the cluster during the grid" for node in self.cluster.nodes_lost]
            lines += [f"  retried: {retry}; run again, it resumed from its last finished epoch"
                      for retry in self.cluster.retried]
        return "\n".join(lines)


def tune(data, grid="book", *, out=None, label: str | None = None, path: str | None = None,
         select_on: str = "accuracy", backend: str = "local", cpus_per_trial: float | None = None,
         gpus_per_trial: float | None = None, **options) -> Grid:
    """Fine-tune every configuration of `grid` on one split of `data` and pick the best on validation. Returns the
    Grid (every configuration's results, the best one and its run).

    grid: "table7.2" (the book's 12 configurations as in its Table 7.2; "book" is the same), "figure7.4" (the same
      12 with gamma 0.01, as the book's Figures 7.4/7.5), a dict of lists such as {"learning_rate": [0.001, 0.01],
      "freeze": ["none", "backbone"]} (every combination), or a list of dicts.
    options: fixed options for every configuration (see TrainConfig); the grid's values override them.
    out: the grid directory (default: a temporary folder): grid.json, configs/<id>/ run directories,
      results.parquet, history.parquet, test_metrics.parquet (and cluster.json after a call on Ray: where its
      trials ran). Re-running with the same out resumes.
    backend: "local" runs configurations one after another here; "ray" runs them as Ray Tune trials.
    cpus_per_trial, gpus_per_trial: what each Ray Tune trial reserves (default: 1 CPU, and 1 GPU on a cluster with
      GPUs); a trial trains with as many threads as its CPUs. Fractions of a GPU put several trials on one card.
    Raises ImagesAsDataError for a bad grid or options, before anything is trained.
    """
    configurations, fixed = expand_grid(grid)
    note = PRESET_NOTES.get(grid) if isinstance(grid, str) else None
    if note and "gamma" in options:
        note = None   # the user chose gamma
    options = {**fixed, **options}
    # Every configuration is checked before the first one trains: its options, and the architecture and freeze
    # stage against the network's definition.
    for configuration in configurations:
        TrainConfig.from_options(**{**options, **configuration}).check_model_options()
    if select_on not in SELECT_ON:
        raise option_error("select_on", select_on, choices=SELECT_ON, suggest=False)
    trial_resources = _trial_resources(backend, cpus_per_trial, gpus_per_trial)
    if backend not in ("local", "ray"):
        raise ImagesAsDataError(f"{setting('backend', backend)}: choose 'local' or 'ray'", what="option", option="backend",
                                value=backend, choices=["local", "ray"])
    base = TrainConfig.from_options(**options)
    parameters = list(dict.fromkeys(k for c in configurations for k in c))
    ids = [f"config_{i + 1:03d}" for i in range(len(configurations))]
    spec = {"configurations": [{"config_id": i, **c} for i, c in zip(ids, configurations)],
            "options": {k: v for k, v in options.items() if k not in TrainConfig.RUNTIME}, "select_on": select_on}
    table = image_table(data, label=label, path=path)
    check_labeled(table)
    test_fraction, no_test = choose_test_fraction(table, base.test_fraction, base.val_fraction, base.balance)
    table = split_table(table, val_fraction=base.val_fraction, test_fraction=test_fraction, seed=base.seed,
                        balance=base.balance, group=base.group)
    if no_test and base.progress:
        from tqdm.auto import tqdm

        tqdm.write(f"no test split: {no_test}. The validation metrics chose the configuration and its epoch, so "
                   "they are optimistic.")
    test = table.filter(pc.equal(table["split"], "test"))
    train_val = table.filter(pc.not_equal(table["split"], "test"))
    # Re-running with the same out resumes the grid; the folder is locked while the grid runs.
    with claimed_directory(out, what="grid", marker=GRID_FILE, resume=True) as out:
        _check_same_grid(out, spec)
        write_json(spec, out / GRID_FILE)
        write_table(table.select(["image_id", "path", "label", "split"]), out / "splits.parquet")
        work = None
        if backend == "ray":
            work = _tune_on_ray(train_val, configurations, ids, options, out, **trial_resources)
        else:
            shared_images: dict = {}
            for number, (config_id, configuration) in enumerate(zip(ids, configurations), start=1):
                run_config(train_val, config_id, configuration, options, out, shared_images, number, len(ids))
        if note and base.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"note: {note}")
        if work is not None:   # where this call's trials ran, kept with the grid (load_grid() reads it)
            write_json({"format": "imagesasdata-grid-cluster", **work.as_dict()}, out / CLUSTER_FILE)
        result = collect(out, ids, configurations, parameters, select_on, test, base)
        result.no_test, result.note, result.cluster = no_test, note, work or _recorded_cluster(out)
        return result


def _recorded_cluster(out: Path):
    """The ClusterWork of the grid's last call on Ray (cluster.json), or None when it never ran on Ray."""
    from ..scale.cluster import ClusterWork

    path = Path(out) / CLUSTER_FILE
    return ClusterWork.from_dict(read_json(path, "a grid's record of its work on Ray")) if path.exists() else None


def run_config(table, config_id, configuration, options, out: Path, shared_images, number=None, total=None):
    """Fine-tune one configuration into out/configs/<config_id> (resuming it if interrupted)."""
    from tqdm.auto import tqdm

    from .finetuning import finetune

    target = out / "configs" / config_id
    settings = ", ".join(f"{k}={v}" for k, v in configuration.items())
    progress = options.get("progress", True) not in (False, "none")
    if runs.is_complete(target):
        if progress:
            tqdm.write(f"{config_id} ({settings}): done earlier, not re-run")
        return load_run(target)
    if progress:
        tqdm.write(f"{config_id}{f' ({number}/{total})' if number else ''}: {settings}")
    started = time.perf_counter()
    options = {**options, **configuration}
    if options.get("test_fraction") is None:
        options["test_fraction"] = 0.0   # the grid holds its test split back itself (tune()); say nothing per run
    run = finetune(table, out=target, resume=True, images=shared_images, **options)
    description = runs.read_json(target / runs.RUN_DESCRIPTION)
    description.setdefault("grid", {})["seconds"] = time.perf_counter() - started
    write_json(description, target / runs.RUN_DESCRIPTION)
    return run


def grid_trial(config: dict, *, table: pa.Table, configurations: dict, options: dict, out: str, threads: int,
               gpus: float) -> None:
    """One Ray Tune trial: fine-tune one configuration into out/configs/<config_id>, as run_config does locally (a
    finished configuration is not re-run; an interrupted one resumes from its checkpoint)."""
    import torch

    from ..scale.cluster import report_trial

    torch.set_num_threads(threads)
    if not gpus and str(options.get("device", "auto")) == "auto":
        options = dict(options, device="cpu")   # a trial without a GPU of its own must not pick one up
    config_id = config["config_id"]
    run = run_config(table, config_id, configurations[config_id], options, Path(out), {})
    estimator = None if len(run.classes) == 2 else "multiclass"
    report_trial({"val_accuracy": run.metric("accuracy", "val", estimator), "status": run.status,
                  "threads": torch.get_num_threads()})


def _tune_on_ray(table: pa.Table, configurations, ids, options: dict, out: Path, *, cpus_per_trial: float = 1,
                 gpus_per_trial: float | None = None) -> None:
    """Fine-tune every unfinished configuration as a Ray Tune trial (scale.cluster.run_trials); tune() then reads
    the run directories, as after the local backend. On a cluster of several machines, `out` and the images must be
    on a shared filesystem. Raises ImagesAsDataError naming the configurations that failed (the others are kept)."""
    from ..scale.cluster import run_trials

    out = Path(out).resolve()
    pending = [i for i in ids if not runs.is_complete(out / "configs" / i)]
    if not pending:
        return None
    _check_shared_storage(table, out)
    trial_options = dict(options, progress=False)  # trials run in other processes; Ray Tune reports progress
    failed, work = run_trials(grid_trial, pending, storage=out / "ray_tune", cpus_per_trial=cpus_per_trial,
                              gpus_per_trial=gpus_per_trial,
                              verbose=options.get("progress", True) not in (False, "none"),
                              parameters={"table": table, "configurations": dict(zip(ids, configurations)),
                                          "options": trial_options, "out": str(out)})
    if failed:
        raise ImagesAsDataError(f"{len(failed)} configurations failed on Ray: " + "; ".join(failed) +
                                ". The others are kept; fix the cause and run the grid again to resume")
    missing = [i for i in pending if not runs.is_complete(out / "configs" / i)]
    if missing:
        raise ImagesAsDataError(
            f"configurations {', '.join(missing)} finished on Ray but {out / 'configs'} does not show them: on a "
            "cluster of several machines the grid's out folder must be on a filesystem every node shares",
            what="file", path=out / 'configs'
        )
    return work


def _check_shared_storage(table: pa.Table, out: Path) -> None:
    """Before any trial starts: every node must read the training images and see this very `out` folder (a file
    written here now, not merely a folder of the same name on its own disk), since trials write their run
    directories from the node they run on."""
    from ..scale.cluster import storage_error, unreadable_with_folder

    folder, unreadable = unreadable_with_folder(out, table["path"].to_pylist())
    if folder:
        raise storage_error(folder, f"the grid's folder {out} (out)",
                            "Trials write their run directories from the node they run on: put out on a file system "
                            "every node shares (NFS, Lustre, a cluster file system), mounted at the same path")
    if unreadable:
        raise storage_error(unreadable, "the training images",
                            "Put the images on storage every node shares (NFS, Lustre, a cluster file system), "
                            "mounted at the same path everywhere")


def _check_same_grid(out: Path, spec: dict) -> None:
    """Refuse to continue the grid in `out` with other configurations or options, saying which differ."""
    previous = out / GRID_FILE
    if not previous.exists():
        return
    before, now = read_json(previous, "a grid description"), json.loads(json.dumps(spec, default=str))
    if before == now:
        return
    changed = []
    old_options, new_options = before.get("options") or {}, now.get("options") or {}
    for name in sorted(set(old_options) | set(new_options)):
        if old_options.get(name) != new_options.get(name):
            changed.append(f"{name}: the grid has {old_options.get(name)!r}, this call {new_options.get(name)!r}")
    if before.get("configurations") != now.get("configurations"):
        changed.append(f"the configurations: the grid has {len(before.get('configurations') or [])} "
                       f"({_settings(before)}), this call {len(now.get('configurations') or [])} ({_settings(now)})")
    if before.get("select_on") != now.get("select_on"):
        changed.append(f"select_on: the grid has {before.get('select_on')!r}, this call {now.get('select_on')!r}")
    raise ImagesAsDataError(
        f"{out} holds a different grid ({'; '.join(changed) or 'its description differs'}); nothing was changed. "
        "Resume with the same grid and options, or choose a new out directory", what="file", path=out
    )


def _settings(spec: dict, limit: int = 3) -> str:
    shown = [", ".join(f"{k}={v}" for k, v in c.items() if k != "config_id")
             for c in (spec.get("configurations") or [])[:limit]]
    more = len(spec.get("configurations") or []) - limit
    return "; ".join(shown) + (f"; … {more} more" if more > 0 else "")


def collect(out: Path, ids, configurations, parameters, select_on: str, test: pa.Table, base: TrainConfig) -> Grid:
    """Results and histories of finished configurations; choose the best; evaluate the test split once."""
    rows, histories = [], []
    for config_id, configuration in zip(ids, configurations):
        run = load_run(out / "configs" / config_id)
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
    best = max(rows, key=lambda r: selection_score(select_on, r["val_accuracy"], r["val_f1"], r["val_loss"]))
    best = best["config_id"]  # the first of equals: max keeps the earliest
    test_metrics = None
    if test.num_rows:
        evaluation = load_run(out / "configs" / best).evaluate(test, split="test", progress=base.progress_bars,
                                                                     device=base.device)
        test_metrics = evaluation.metrics
        write_table(test_metrics, out / "test_metrics.parquet")
    write_table(results, out / "results.parquet")
    write_table(history, out / "history.parquet")
    return Grid(out, results, history, best, test_metrics, parameters, select_on)


def load_grid(path) -> Grid:
    """Re-open a finished grid directory. Returns its Grid (with where its last call on Ray ran, when it ran on
    Ray); raises ImagesAsDataError when `path` is not one."""
    path = Path(path)
    if not (path / GRID_FILE).exists():
        raise ImagesAsDataError(f"{path} is not a grid directory (no {GRID_FILE})", what="file", path=path)
    spec = read_json(path / GRID_FILE, "a grid description")
    tidy_if_idle(path, "grid")   # temporary files a killed job left, unless a job is writing here now
    configurations = [{k: v for k, v in c.items() if k != "config_id"} for c in spec["configurations"]]
    ids = [c["config_id"] for c in spec["configurations"]]
    parameters = list(dict.fromkeys(k for c in configurations for k in c))
    import pyarrow.parquet as pq

    splits = pq.read_table(path / "splits.parquet")
    test = splits.filter(pc.equal(splits["split"], "test"))
    base = TrainConfig.from_options(**{k: v for k, v in spec["options"].items()}, progress=False)
    grid = collect(path, ids, configurations, parameters, spec["select_on"], test, base)
    grid.cluster = _recorded_cluster(path)
    return grid


def _trial_resources(backend: str, cpus_per_trial, gpus_per_trial) -> dict:
    """The Ray Tune resources of one trial, checked before anything trains."""
    given = {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial}
    given = {name: value for name, value in given.items() if value is not None}
    if given and backend != "ray":
        several = len(given) > 1
        raise ImagesAsDataError(f"{' and '.join(given)} {'apply' if several else 'applies'} only to Ray Tune trials: "
                                f"pass {setting('backend', 'ray')}{cli_only('--backend ray')}, or leave "
                                f"{'them' if several else 'it'} out", what="option", option=next(iter(given)),
                                value=next(iter(given.values())))
    for name, value in given.items():
        low = 0 if name == "gpus_per_trial" else 0.01
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
            raise ImagesAsDataError(f"{setting(name, value)}: give a number of at least {low} (e.g. {setting(name, 2)})",
                                    what="option", option=name, value=value)
    return {name: float(value) for name, value in given.items()}


def tune_tasks(tasks: dict, grid="book", *, out=None, **options) -> dict:
    """Run tune() for several tasks (e.g. {"protest": ..., "legend": ...}) into out/<task>/. Returns {task: Grid};
    raises what tune() raises."""
    root = Path(out).expanduser() if out is not None else Path(tempfile.mkdtemp(prefix="imagesasdata-tasks-"))
    return {name: tune(data, grid, out=root / name, **options) for name, data in tasks.items()}


def grid_summary(grids: dict) -> pa.Table:
    """Return the book's Table 7.2: for each task, the chosen configuration's validation accuracy, F1, precision and
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
