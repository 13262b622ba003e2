"""The run directory, the unit of reproducibility: everything needed to explain and reload a model, in open formats.

    model.json          architecture, classes, positive class, preprocessing, hyperparameters, seed, versions,
                        status and outcome, the SHA-256 of every training image and of the weights file, the
                        temperature fitted on the validation split ("calibration") and how the images were
                        selected ("training_selection")
    model.safetensors   the kept (best-epoch) weights, written when training ends (complete, interrupted or
                        failed); its metadata repeats the run's id and classes
    splits.parquet      every image with its label and split
    history.parquet     epoch, split, loss, accuracy, learning_rate, seconds (spent training / validating)
    metrics.parquet     split, metric, estimator, class, estimate, n, lower, upper, interval (95% intervals)
    calibration.parquet the same columns for ECE and Brier score before ("uncalibrated") and after ("temperature")
                        temperature scaling (analysis/calibration.py)
    confusion.parquet   split, truth, predicted, count
    predictions.parquet validation (and test) predictions with class probabilities
    skipped.parquet     images left out as unreadable, with the reason
    checkpoint/         while training: one folder per kept epoch and current.json, the commit point (below);
                        removed when the run is complete

Crash consistency: every file is written to a temporary name and renamed into place. An epoch's checkpoint (its
weights, optimizer state and training state, each with its SHA-256) is written into a fresh folder that is renamed
into place whole; then current.json, which names the last epoch's folder and the best epoch's, is replaced in
one step. A kill at any instant therefore leaves the previous epoch or the new one, never a mix, and resuming
verifies every checksum. The directory is locked for the job's life (locks.py).

Loading never unpickles: weights are read with safetensors only, and a file that is not safetensors is refused.
A run's weights are checked against the checksum in model.json and its classes against the weights' own record.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ImagesAsDataError
from .io.faults import crash_point
from .io.images import sha256_file
from .io.locks import LOCK_FILE, claimed_directory
from .measure.metrics import classification_metrics, confusion_table, headline_lines
from .io.tables import atomic_path, fsync_directory, read_json, write_json, write_table

FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
RUN_DESCRIPTION = "model.json"
CHECKPOINT = "checkpoint"
POINTER = "current.json"
FINISHED = ("complete", "interrupted", "failed")
HISTORY_SCHEMA = pa.schema([
    ("epoch", pa.int64()), ("split", pa.string()), ("loss", pa.float64()), ("accuracy", pa.float64()),
    ("learning_rate", pa.float64()), ("seconds", pa.float64()),
])


# ------------------------------------------------------------------------------------------ writing

def claim_run_dir(out, *, resume: bool = False, overwrite: bool = False):
    """The run directory for a fine-tune, created and locked for its life (a context manager yielding the Path).
    An existing run needs resume=True (continue it) or overwrite=True (replace it); see locks.claimed_directory."""
    return claimed_directory(out, what="run", marker=RUN_DESCRIPTION, resume=resume, overwrite=overwrite)


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
        "run_id": uuid.uuid4().hex,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": backbone.architecture, "library": backbone.library, "weights": backbone.weights,
        "head": backbone.head, "classes": list(classes), "positive_class": positive_class,
        "preprocessing": prep.to_dict(), "hyperparameters": config.to_dict(), "seed": config.seed,
        "runtime": runtime, "versions": versions(),
    }


def is_complete(out) -> bool:
    path = Path(out) / RUN_DESCRIPTION
    return path.exists() and read_json(path, "a run description").get("status") == "complete"


def has_checkpoint(out) -> bool:
    return (Path(out) / CHECKPOINT / POINTER).exists()


def write_started(out: Path, description: dict, table: pa.Table, hashes: dict, skipped: pa.Table) -> None:
    """model.json (status "training") first — it marks the folder as a run — then the splits and skipped images.
    A resumed run keeps its id and creation time."""
    previous = Path(out) / RUN_DESCRIPTION
    if previous.exists():
        earlier = read_json(previous, "a run description")
        description.update({k: earlier[k] for k in ("run_id", "created") if k in earlier})
    ids = table["image_id"].to_pylist()
    description["training_images"] = {
        "count": table.num_rows - skipped.num_rows,
        "sha256": {ids[row]: digest for row, digest in sorted(hashes.items())},
    }
    write_json(description, out / RUN_DESCRIPTION)
    write_table(table.select(["image_id", "path", "label", "split"]), out / "splits.parquet")
    write_table(skipped, out / "skipped.parquet")


def _save_safetensors(weights: dict, path: Path, metadata: dict | None = None) -> str:
    """Write tensors to `path` (flushed to disk); return the file's SHA-256."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in weights.items()}, str(path),
              metadata={"format": "imagesasdata", **(metadata or {})})
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    return sha256_file(path)


def write_weights(out: Path, weights: dict, name: str = WEIGHTS, metadata: dict | None = None) -> str:
    """Write a safetensors file atomically; return its SHA-256."""
    with atomic_path(Path(out) / name) as temporary:
        digest = _save_safetensors(weights, temporary, metadata)
    return digest


def weights_metadata(description: dict) -> dict:
    """What the weights file records about its run, checked against model.json when the run is loaded."""
    return {"run_id": description["run_id"], "classes": json.dumps(description["classes"]),
            "architecture": description["architecture"]}


def write_checkpoint(out: Path, epoch: int, weights: dict, optimizer, scheduler, state: dict, config,
                     best_epoch: int) -> None:
    """Commit epoch `epoch`: its weights, optimizer and training state go into checkpoint/epoch-NNNN/ (written
    under a temporary name, then renamed whole); then current.json is switched to it in one atomic step. The folder
    of the best epoch is kept (its weights are the best weights); every other older folder is removed."""
    import torch

    folder = Path(out) / CHECKPOINT
    folder.mkdir(exist_ok=True)
    name = _epoch_folder(epoch)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=folder))
    optimizer_state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    checksums = {"weights.safetensors": _save_safetensors(weights, staging / "weights.safetensors")}
    crash_point(f"checkpoint {name}: weights written")
    checksums["optimizer.safetensors"] = _save_safetensors(tensors, staging / "optimizer.safetensors")
    crash_point(f"checkpoint {name}: optimizer written", partial=staging / "optimizer.safetensors")
    saved = {"epoch": epoch, "state": state, "config": config.to_dict(), "sha256": checksums,
             "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
             "scheduler": scheduler.state_dict()}
    (staging / "state.json").write_text(json.dumps(saved, indent=1, default=str))
    with open(staging / "state.json", "rb+") as handle:
        os.fsync(handle.fileno())
    fsync_directory(staging)
    crash_point(f"checkpoint {name}: state written", partial=staging / "state.json")
    target = folder / name
    if target.exists():   # written by a job killed before it switched current.json: never pointed to
        shutil.rmtree(target)
    os.rename(staging, target)
    fsync_directory(folder)
    crash_point(f"checkpoint {name}: folder in place")
    best = _epoch_folder(best_epoch)
    write_json({"format": "imagesasdata-checkpoint", "epoch": epoch, "last": name, "best": best,
                "sha256": {n: sha256_file(folder / n / "state.json") for n in {name, best}}}, folder / POINTER)
    for stale in folder.iterdir():
        if stale.is_dir() and stale.name not in (name, best):
            shutil.rmtree(stale, ignore_errors=True)
    crash_point(f"checkpoint {name}: older folders removed")


def _epoch_folder(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def read_checkpoint(out: Path):
    """(weights, optimizer state dict, scheduler state dict, training state, best weights, options) of the last
    committed epoch, every file checked against its checksum. Raises ImagesAsDataError for a damaged checkpoint.
    The caller compares the options with its own (a run resumes only with the options it started with)."""
    folder = Path(out) / CHECKPOINT
    pointer = read_json(folder / POINTER, "a checkpoint pointer")
    states = {}
    for name in {pointer["last"], pointer["best"]}:
        _verify(folder / name / "state.json", pointer["sha256"].get(name), out)
        states[name] = read_json(folder / name / "state.json", "a checkpoint's state")
        for file, digest in states[name]["sha256"].items():
            _verify(folder / name / file, digest, out)
    saved = states[pointer["last"]]
    weights = read_weights(folder / pointer["last"], "weights.safetensors")
    flat = read_weights(folder / pointer["last"], "optimizer.safetensors")
    state: dict = {}
    for key, value in list(flat.items()) + list(saved["optimizer"]["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer_state = {"state": state, "param_groups": saved["optimizer"]["param_groups"]}
    best_weights = read_weights(folder / pointer["best"], "weights.safetensors")
    return weights, optimizer_state, saved["scheduler"], saved["state"], best_weights, saved["config"]


def checkpoint_options(out: Path) -> dict:
    """The options the interrupted run in `out` was started with (to compare before anything is loaded)."""
    folder = Path(out) / CHECKPOINT
    pointer = read_json(folder / POINTER, "a checkpoint pointer")
    return read_json(folder / pointer["last"] / "state.json", "a checkpoint's state")["config"]


def _verify(path: Path, expected: str | None, out) -> None:
    if expected is None or not path.exists() or sha256_file(path) != expected:
        raise ImagesAsDataError(
            f"{path}: the checkpoint of {out} is damaged (missing, or its SHA-256 does not match the one recorded). "
            "Start the run again with overwrite=True (CLI: --overwrite)"
        )


def write_finished(out: Path, table: pa.Table, targets, classes, positive_class, results: dict, *, history,
                   best_epoch, epochs_run, stopped_early, status, weights, error: str | None = None) -> None:
    """Write weights, history, metrics, confusion matrices and predictions; then model.json with the outcome and the
    weights' checksum (the moment the run counts as finished); a complete run's checkpoint is then removed."""
    from .model.inference import softmax

    out = Path(out)
    description = read_json(out / RUN_DESCRIPTION, "a run description")
    checksum = write_weights(out, weights, metadata=weights_metadata(description))
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
    # Temperature scaling on the validation split, ECE/Brier before and after, how the images were selected.
    from .analysis.finishing import finishing_analysis

    analysed, calibration_metrics = finishing_analysis(description, table, targets, classes, positive_class, results)
    write_table(calibration_metrics, out / "calibration.parquet")
    write_table(pa.concat_tables(metric_tables), out / "metrics.parquet")
    write_table(pa.concat_tables(confusion_tables), out / "confusion.parquet")
    write_table(pa.concat_tables(prediction_tables), out / "predictions.parquet")
    description.update(status=status, best_epoch=best_epoch, epochs_run=epochs_run, stopped_early=stopped_early,
                       files={WEIGHTS: checksum}, **analysed,
                       finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if error:
        description["error"] = error
    else:
        description.pop("error", None)
    write_json(description, out / RUN_DESCRIPTION)
    if status == "complete":
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
        crash_point("checkpoint removed")


def _with_split(table: pa.Table, split: str) -> pa.Table:
    return table.add_column(0, "split", pa.array([split] * table.num_rows, pa.string()))


# ------------------------------------------------------------------------------------------ reading

def read_weights(folder, name: str = WEIGHTS) -> dict:
    """Tensors from a safetensors file. Anything else — in particular a pickle — is refused unread."""
    return read_weights_and_metadata(folder, name)[0]


def read_weights_and_metadata(folder, name: str = WEIGHTS) -> tuple[dict, dict]:
    """(tensors, the file's string metadata) from a safetensors file; a pickle or anything else is refused unread."""
    from safetensors import SafetensorError, safe_open

    path = Path(folder) / name
    check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise ImagesAsDataError(f"{path}: damaged safetensors file ({error})") from None


def check_safetensors_file(path: Path) -> None:
    """Refuse, unread, anything at `path` that is not a safetensors file (a pickle above all)."""
    folder = path.parent
    if not path.exists():
        pickles = [p.name for p in Path(folder).glob("*.p*t") if p.suffix in (".pt", ".pth")]
        hint = f" ({', '.join(pickles)} are pickles, which imagesasdata never loads)" if pickles else ""
        raise ImagesAsDataError(f"{path} not found{hint}; is {folder} a run directory?", what="file", path=str(path))
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as error:
        raise ImagesAsDataError(f"{path}: cannot be read ({error.strerror or error})") from None
    # A safetensors file starts with an 8-byte header length and the header's "{" (the length's first byte may be
    # anything, 0x80 included); torch.save writes a zip of pickles ("PK") or, in old versions, a bare pickle (0x80).
    if len(head) < 9 or head[8:9] != b"{":
        kind = "a Python pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "not a safetensors file"
        raise ImagesAsDataError(
            f"{path} is {kind}; refused: loading a pickle can run arbitrary code. Weights must be safetensors "
            "written by imagesasdata"
        )


def as_run_directory(run) -> "RunDirectory":
    """A RunDirectory (or its subclass infer.Run) as given, else the run directory at the path `run`."""
    if isinstance(run, RunDirectory):
        return run
    path = Path(run).expanduser().absolute()
    if not (path / RUN_DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a run directory (no {RUN_DESCRIPTION}); pass the --out folder of a finetune run",
                                what="file", path=str(path), hint="pass the --out folder of a finetune run")
    return RunDirectory(path)


class RunDirectory:
    """A fitted model in its run directory: its description, tables and checked weights. The verbs that use the
    model (predict, evaluate, interpretation) are added by infer.Run, the class users meet."""

    def __init__(self, path):
        self.path = Path(path)
        self.description = read_json(self.path / RUN_DESCRIPTION, "a run description (model.json of a finetune run)")
        if self.description.get("format") != "imagesasdata-run":
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} was not written by imagesasdata")
        missing = [k for k in ("classes", "architecture", "library", "preprocessing", "hyperparameters")
                   if k not in self.description]
        if missing or not isinstance(self.description["classes"], list):
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged: it lacks {', '.join(missing) or 'a list of classes'}")
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
    def calibration(self) -> pa.Table:
        """ECE and Brier score before and after temperature scaling, with intervals (calibration.parquet)."""
        return self._table("calibration")

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
        from .measure.metrics import metric_value

        return metric_value(self.metrics, metric, estimator, split)

    # verbs
    @property
    def finished(self) -> bool:
        return self.status == "complete"

    def require_finished(self, allow_unfinished: bool = False) -> None:
        """Refuse a run that did not finish training (killed, interrupted or failed) unless the caller opts in."""
        if self.finished or allow_unfinished:
            return
        how = {"training": "it was stopped while training (killed, or still running elsewhere)",
               "interrupted": f"it was interrupted after epoch {self.description.get('epochs_run')}",
               "failed": f"training failed: {self.description.get('error', 'see model.json')}"}.get(
            self.status, f"its status is {self.status!r}")
        advice = ("start it again with a smaller learning rate and overwrite=True (CLI: --overwrite)"
                  if self.status == "failed" else
                  "resume it with finetune(..., out=this folder, resume=True) and the same options (CLI: --resume)")
        raise ImagesAsDataError(f"{self.path} did not finish: {how}. To use it anyway pass allow_unfinished=True "
                                f"(CLI: --allow-unfinished); to finish it, {advice}")

    def weights(self) -> dict:
        """The kept weights, checked: the file's SHA-256 against model.json, and the run id and classes the file
        records against model.json's. A run killed while training yields its best checkpointed epoch."""
        if self.status == "training":
            return self._best_checkpointed_weights()
        recorded = (self.description.get("files") or {}).get(WEIGHTS)
        if recorded is None and self.description.get("format_version", 1) >= 2:
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged: it has no checksum of {WEIGHTS}")
        if recorded is None:
            import warnings

            warnings.warn(f"{self.path} was written by an earlier imagesasdata that recorded no checksum of its "
                          "weights; they cannot be verified", stacklevel=3)
        else:
            check_safetensors_file(self.path / WEIGHTS)   # a pickle is refused as such, before anything else
        if recorded is not None and sha256_file(self.path / WEIGHTS) != recorded:
            raise ImagesAsDataError(
                f"{self.path / WEIGHTS} is not the file this run wrote (its SHA-256 differs from the one in "
                f"{RUN_DESCRIPTION}): the weights were replaced or damaged. Copy the run folder again, or retrain"
            )
        weights, metadata = read_weights_and_metadata(self.path, WEIGHTS)
        if recorded is not None:
            self._check_metadata(metadata)
        return weights

    def _check_metadata(self, metadata: dict) -> None:
        if metadata.get("run_id") != self.description.get("run_id"):
            raise ImagesAsDataError(f"{self.path / WEIGHTS} belongs to another run (run id {metadata.get('run_id')}, "
                                    f"{RUN_DESCRIPTION} says {self.description.get('run_id')}); do not mix files of two runs")
        try:
            trained = json.loads(metadata.get("classes", "null"))
        except ValueError:
            trained = None
        if trained != self.classes:
            raise ImagesAsDataError(
                f"{self.path / RUN_DESCRIPTION} lists the classes {self.classes}, but the weights were trained for "
                f"{trained}: model.json was edited or comes from another run. Restore the run's own model.json"
            )

    def _best_checkpointed_weights(self) -> dict:
        folder = self.path / CHECKPOINT
        if not (folder / POINTER).exists():
            raise ImagesAsDataError(f"{self.path} was stopped before its first epoch finished: there are no weights "
                                    "to use; resume it (resume=True) or train it again")
        pointer = read_json(folder / POINTER, "a checkpoint pointer")
        state = folder / pointer["best"] / "state.json"
        _verify(state, pointer["sha256"].get(pointer["best"]), self.path)
        _verify(folder / pointer["best"] / "weights.safetensors",
                read_json(state, "a checkpoint's state")["sha256"]["weights.safetensors"], self.path)
        return read_weights(folder / pointer["best"], "weights.safetensors")

    def model(self, device: str = "cpu"):
        """The fitted network (torch.nn.Module) in eval mode, from the checked weights (see weights())."""
        if self._model is None:
            from .model.backbones import rebuild_model

            self._model = rebuild_model(self.description, self.weights())
        return self._model.to(device).eval()

    def save(self, path):
        """Copy the run directory (without training checkpoints) to `path`, atomically; return the copy."""
        path = Path(path).expanduser().resolve()
        if path == self.path:
            return self
        if path.exists() and any(path.iterdir()):
            raise ImagesAsDataError(f"{path} exists and is not empty; choose a new folder for the saved model")
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent if path.parent.exists() else None))
        try:
            shutil.copytree(self.path, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINT, LOCK_FILE))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.rmdir()
            os.replace(staging, path) if staging.parent == path.parent else shutil.move(str(staging), str(path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return type(self)(path)

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
