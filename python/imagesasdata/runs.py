"""The run directory, the unit of reproducibility: everything needed to explain and reload a model, in open formats.

    model.safetensors   the kept (best-epoch) weights
    model.json          architecture, classes, positive class, preprocessing, hyperparameters, seed, versions,
                        outcome, the SHA-256 of every training image, the temperature fitted on the validation
                        split ("calibration") and how the images were selected ("training_selection")
    splits.parquet      every image with its label and split
    history.parquet     epoch, split, loss, accuracy, learning_rate, seconds (spent training / validating)
    metrics.parquet     split, metric, estimator, class, estimate, n, lower, upper, interval (95% intervals)
    calibration.parquet the same columns for ECE and Brier score before ("uncalibrated") and after ("temperature")
                        temperature scaling (analysis/calibration.py)
    confusion.parquet   split, truth, predicted, count
    predictions.parquet validation (and test) predictions with class probabilities
    skipped.parquet     images left out as unreadable, with the reason
    checkpoint/         the last epoch's weights and optimizer state while training (removed when complete)

Loading never unpickles: weights are read with safetensors only, and a file that is not safetensors is refused.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ImagesAsDataError
from .metrics import classification_metrics, confusion_table, headline_lines
from .tables import atomic_path, read_json, write_json, write_table

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
DESCRIPTION = "model.json"
CHECKPOINT = "checkpoint"


# ------------------------------------------------------------------------------------------ writing

def new_run_dir(out) -> Path:
    """The run directory to write (created), or a new temporary one when `out` is None."""
    if out is None:
        return Path(tempfile.mkdtemp(prefix="imagesasdata-run-"))
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ImagesAsDataError(f"{out} is a file; --out must name a directory for the run")
    out.mkdir(parents=True, exist_ok=True)
    return out


def versions() -> dict:
    import PIL
    import torch
    import torchvision

    from . import __version__

    found = {"imagesasdata": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
             "torchvision": torchvision.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
             "pyarrow": pa.__version__, "platform": platform.platform()}
    try:
        import timm

        found["timm"] = timm.__version__
    except ImportError:
        pass
    return found


def describe_model(backbone, config, prep, classes, positive_class, **runtime) -> dict:
    return {
        "format": "imagesasdata-run", "format_version": FORMAT_VERSION, "status": "training",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": backbone.architecture, "library": backbone.library, "weights": backbone.weights,
        "head": backbone.head, "classes": list(classes), "positive_class": positive_class,
        "preprocessing": prep.to_dict(), "hyperparameters": config.to_dict(), "seed": config.seed,
        "runtime": runtime, "versions": versions(),
    }


def is_complete(out) -> bool:
    path = Path(out) / DESCRIPTION
    return path.exists() and read_json(path).get("status") == "complete"


def has_checkpoint(out) -> bool:
    return (Path(out) / CHECKPOINT / "state.json").exists()


def write_started(out: Path, description: dict, table: pa.Table, hashes: dict, skipped: pa.Table) -> None:
    ids = table["image_id"].to_pylist()
    description["training_images"] = {
        "count": table.num_rows - skipped.num_rows,
        "sha256": {ids[row]: digest for row, digest in sorted(hashes.items())},
    }
    write_table(table.select(["image_id", "path", "label", "split"]), out / "splits.parquet")
    write_table(skipped, out / "skipped.parquet")
    write_json(description, out / DESCRIPTION)


def write_weights(out: Path, weights: dict, name: str = WEIGHTS) -> None:
    from safetensors.torch import save_file

    with atomic_path(Path(out) / name) as temporary:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(temporary), metadata={"format": "imagesasdata"})


def write_checkpoint(out: Path, weights: dict, optimizer, scheduler, state: dict, config) -> None:
    """Everything a resumed run needs, written atomically file by file; state.json last, so it never points
    at weights from another epoch."""
    import torch

    folder = Path(out) / CHECKPOINT
    folder.mkdir(exist_ok=True)
    write_weights(folder, weights, "last.safetensors")
    optimizer_state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    write_weights(folder, tensors, "optimizer.safetensors")
    write_json({"epoch": state["epoch"], "state": state, "config": config.to_dict(),
                "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
                "scheduler": scheduler.state_dict()}, folder / "state.json")


def read_checkpoint(out: Path, config):
    """(weights, optimizer state dict, scheduler state dict, training state) of an interrupted run."""
    from .config import TrainConfig

    folder = Path(out) / CHECKPOINT
    saved = read_json(folder / "state.json")
    differences = config.differences(TrainConfig(**saved["config"]))
    if differences:
        changed = ", ".join(f"{k}: was {theirs!r}, now {mine!r}" for k, (mine, theirs) in differences.items())
        raise ImagesAsDataError(f"{out} holds a run started with other options ({changed}); resume with the same "
                                "options or write to a new --out directory")
    weights = read_weights(folder, "last.safetensors")
    flat = read_weights(folder, "optimizer.safetensors")
    state: dict = {}
    for key, value in list(flat.items()) + list(saved["optimizer"]["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer_state = {"state": state, "param_groups": saved["optimizer"]["param_groups"]}
    return weights, optimizer_state, saved["scheduler"], saved["state"]


def write_finished(out: Path, table: pa.Table, targets, classes, positive_class, results: dict, *, history,
                   best_epoch, epochs_run, stopped_early, status, weights) -> "Run":
    """Write weights, history, metrics, confusion matrices and predictions; mark the run complete (or interrupted)."""
    from .inference import softmax
    from .train import HISTORY_SCHEMA

    out = Path(out)
    write_weights(out, weights)
    write_table(pa.Table.from_pylist(history, schema=HISTORY_SCHEMA), out / "history.parquet")
    metric_tables, confusion_tables, prediction_tables = [], [], []
    for split, (rows, logits) in results.items():
        probabilities = softmax(logits)
        predicted = [classes[i] for i in probabilities.argmax(1)]
        truth = [classes[t] for t in targets[rows]]
        metric_tables.append(_with_split(classification_metrics(truth, predicted, classes, positive_class), split))
        confusion_tables.append(_with_split(confusion_table(truth, predicted, classes), split))
        columns = {
            "image_id": table["image_id"].take(rows), "path": table["path"].take(rows),
            "split": pa.array([split] * len(rows), pa.string()), "label": pa.array(truth, pa.string()),
            "predicted": pa.array(predicted, pa.string()),
        }
        columns.update({f"prob_{c}": pa.array(probabilities[:, i], pa.float64()) for i, c in enumerate(classes)})
        prediction_tables.append(pa.table(columns))
    description = read_json(out / DESCRIPTION)
    # Temperature scaling on the validation split, ECE/Brier before and after, how the images were selected.
    from .analysis.finishing import finishing_analysis

    analysed, calibration_metrics = finishing_analysis(description, table, targets, classes, positive_class, results)
    write_table(calibration_metrics, out / "calibration.parquet")
    write_table(pa.concat_tables(metric_tables), out / "metrics.parquet")
    write_table(pa.concat_tables(confusion_tables), out / "confusion.parquet")
    write_table(pa.concat_tables(prediction_tables), out / "predictions.parquet")
    description.update(status=status, best_epoch=best_epoch, epochs_run=epochs_run, stopped_early=stopped_early,
                       finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **analysed)
    write_json(description, out / DESCRIPTION)
    if status == "complete":
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    return Run(out)


def _with_split(table: pa.Table, split: str) -> pa.Table:
    return table.add_column(0, "split", pa.array([split] * table.num_rows, pa.string()))


# ------------------------------------------------------------------------------------------ reading

def read_weights(folder, name: str = WEIGHTS) -> dict:
    """Tensors from a safetensors file. Anything else — in particular a pickle — is refused unread."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / name
    if not path.exists():
        pickles = [p.name for p in Path(folder).glob("*.p*t") if p.suffix in (".pt", ".pth")]
        hint = f" ({', '.join(pickles)} are pickles, which imagesasdata never loads)" if pickles else ""
        raise ImagesAsDataError(f"{path} not found{hint}; is {folder} a run directory?")
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[:1] == b"\x80" or len(head) < 9 or head[8:9] != b"{":
        kind = "a Python pickle" if head[:1] == b"\x80" else "not a safetensors file"
        raise ImagesAsDataError(
            f"{path} is {kind}; refused: loading a pickle can run arbitrary code. Weights must be safetensors "
            "written by imagesasdata"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ImagesAsDataError(f"{path}: damaged safetensors file ({error})") from None


def load_run(path) -> "Run":
    """Open a run directory written by finetune(). Raises ImagesAsDataError if it is not one."""
    path = Path(path).expanduser().resolve()
    if not (path / DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a run directory (no {DESCRIPTION}); pass the --out folder of a finetune run")
    return Run(path)


class Run:
    """A fitted model in its run directory: its description, tables, and verbs to predict and evaluate."""

    def __init__(self, path):
        self.path = Path(path)
        self.description = read_json(self.path / DESCRIPTION)
        if self.description.get("format") != "imagesasdata-run":
            raise ImagesAsDataError(f"{self.path / DESCRIPTION} was not written by imagesasdata")
        self._model = None

    # what the run knows
    @property
    def classes(self) -> list:
        return list(self.description["classes"])

    @property
    def positive_class(self):
        return self.description.get("positive_class")

    @property
    def status(self) -> str:
        return self.description.get("status", "unknown")

    @property
    def best_epoch(self):
        return self.description.get("best_epoch")

    def _table(self, name: str) -> pa.Table:
        file = self.path / f"{name}.parquet"
        if not file.exists():
            raise ImagesAsDataError(f"{file} is missing; the run did not finish (status: {self.status})")
        return pq.read_table(file)

    @property
    def history(self) -> pa.Table:
        return self._table("history")

    @property
    def metrics(self) -> pa.Table:
        return self._table("metrics")

    @property
    def confusion(self) -> pa.Table:
        return self._table("confusion")

    @property
    def predictions(self) -> pa.Table:
        return self._table("predictions")

    @property
    def splits(self) -> pa.Table:
        return self._table("splits")

    @property
    def skipped(self) -> pa.Table:
        return self._table("skipped")

    def metric(self, metric: str = "accuracy", split: str = "val", estimator: str | None = None) -> float:
        from .metrics import metric_value

        return metric_value(self.metrics, metric, estimator, split)

    # verbs
    def model(self, device: str = "cpu"):
        """The fitted network (torch.nn.Module) in eval mode."""
        if self._model is None:
            self._model = build_model(self.description, read_weights(self.path))
        return self._model.to(device).eval()

    def predict(self, images, **options) -> pa.Table:
        from .predict import predict

        return predict(self, images, **options)

    def evaluate(self, data, **options):
        from .predict import evaluate

        return evaluate(self, data, **options)

    def save(self, path) -> "Run":
        """Copy the run directory (without training checkpoints) to `path`, atomically; return the copy."""
        path = Path(path).expanduser().resolve()
        if path == self.path:
            return self
        if path.exists() and any(path.iterdir()):
            raise ImagesAsDataError(f"{path} exists and is not empty; choose a new folder for the saved model")
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent if path.parent.exists() else None))
        try:
            shutil.copytree(self.path, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINT))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.rmdir()
            os.replace(staging, path) if staging.parent == path.parent else shutil.move(str(staging), str(path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Run(path)

    def summary(self) -> str:
        d = self.description
        lines = [f"imagesasdata run  {self.path}",
                 f"  {d['architecture']} ({d['library']}, from {d['weights']}), {len(self.classes)} classes: "
                 f"{', '.join(self.classes[:8])}{' …' if len(self.classes) > 8 else ''}",
                 f"  status {self.status}; best epoch {self.best_epoch} of {d.get('epochs_run')}"]
        if (self.path / "metrics.parquet").exists():
            lines += headline_lines(self.metrics)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def build_model(description: dict, weights: dict):
    """Rebuild the network a run describes and load its weights; shapes must match exactly."""
    from .backbones import create_backbone

    name = description["architecture"]
    if description["library"] == "timm" and not name.startswith("timm/"):
        import torchvision

        if name in torchvision.models.list_models(module=torchvision.models):
            name = f"timm/{name}"
    backbone = create_backbone(name, None, len(description["classes"]),
                               description["hyperparameters"].get("dropout", 0.0), "none", progress=False)
    model = backbone.model
    own = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in weights.items()
             if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in weights]
    if wrong or missing:
        raise ImagesAsDataError(
            "the weights do not match the architecture in model.json: "
            + "; ".join(wrong[:3] + [f"missing {m}" for m in missing[:3]])
        )
    model.load_state_dict(weights)
    return model.eval()
