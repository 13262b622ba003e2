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

What a run says about its fit (predictions, metrics, calibration) is computed by infer/finished.py and handed to
write_finished(), which only writes it.

Crash consistency: every file is written to a temporary name and renamed into place. An epoch's checkpoint (its
weights, optimizer state and training state, each with its SHA-256) is written into a fresh folder that is renamed
into place whole; then current.json, which names the last epoch's folder and the best epoch's, is replaced in
one step. A kill at any instant therefore leaves the previous epoch or the new one, never a mix, and resuming
verifies every checksum. The directory is locked for the job's life (locks.py).

Loading never unpickles: weights are read with safetensors only, and a file that is not safetensors is refused.
A run's weights are checked against the checksum in model.json and its classes against the weights' own record.
The parts of model.json that decide what the run predicts (PREDICTION_FIELDS: architecture, classes,
preprocessing, temperature, …) have their own checksums ("prediction_sha256"), written in the same atomic
replace of model.json as the outcome, and their values are repeated in the weights file's metadata: an edited
field is refused like swapped weights, naming the field and the value the run was written with.

Temporary files: every write goes through a temporary name of our own shape (locks.is_our_temporary); weights
are serialised by safetensors and written by us into that temporary file (its save_file() would make a temporary
file of its own). Whatever a kill leaves is removed when the run is resumed (claim_run_dir) and when it is next
opened while no job writes it (RunDirectory), and so is a ".tmpXXXXXX" that save_file() left in runs written by
earlier versions.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ImagesAsDataError, flag
from .io.faults import crash_point, write_bytes
from .io.images import sha256_file
from .io.locks import LOCK_FILE, claimed_directory, tidy_if_idle
from .measure.metrics import headline_lines
from .io.tables import atomic_path, fsync_directory, read_json, write_json, write_table

FORMAT_VERSION = 3      # 3: model.json records prediction_sha256 (the checksums of PREDICTION_FIELDS)
WEIGHTS = "model.safetensors"
RUN_DESCRIPTION = "model.json"
CHECKPOINT = "checkpoint"
POINTER = "current.json"
FINISHED = ("complete", "interrupted", "failed")
# What decides a run's predictions, besides its weights: the network built (architecture, library, head, dropout),
# the classes and their order, the positive class (thresholds), how a file becomes a tensor (preprocessing) and the
# temperature that calibrate=True divides the logits by. Dotted names reach into nested entries.
PREDICTION_FIELDS = ("architecture", "library", "head", "classes", "positive_class", "preprocessing",
                     "hyperparameters.dropout", "calibration.temperature")
# safetensors' save_file() writes "<folder>/.tmpXXXXXX" and renames it onto the path it is given: a run written by
# an earlier version (which saved weights with save_file()) may hold one that a kill left.
_SAFETENSORS_TEMPORARY = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
HISTORY_SCHEMA = pa.schema([
    ("epoch", pa.int64()), ("split", pa.string()), ("loss", pa.float64()), ("accuracy", pa.float64()),
    ("learning_rate", pa.float64()), ("seconds", pa.float64()),
])


# ------------------------------------------------------------------------------------------ writing

def claim_run_dir(out, *, resume: bool = False, overwrite: bool = False):
    """The run directory for a fine-tune, created and locked for its life (a context manager yielding the Path).
    An existing run needs resume=True (continue it) or overwrite=True (replace it); see locks.claimed_directory.
    Temporary files a killed job left in it are removed."""
    return claimed_directory(out, what="run", marker=RUN_DESCRIPTION, resume=resume, overwrite=overwrite,
                             leftovers=_safetensors_temporary)


def _safetensors_temporary(name: str) -> bool:
    return bool(_SAFETENSORS_TEMPORARY.match(name))


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
    description["training_images"] = {
        "count": table.num_rows - skipped.num_rows,
        "sha256": training_hashes(table, hashes),
    }
    description["prediction_sha256"] = prediction_checksums(description)
    write_json(description, out / RUN_DESCRIPTION)
    write_table(table.select(["image_id", "path", "label", "split"]), out / "splits.parquet")
    write_table(skipped, out / "skipped.parquet")


def training_hashes(table: pa.Table, hashes: dict) -> dict:
    """{image_id: SHA-256} of the readable images (hashes: {row: SHA-256}, as the decoded-image cache gives them)."""
    ids = table["image_id"].to_pylist()
    return {ids[row]: digest for row, digest in sorted(hashes.items())}


def recorded_options(out) -> dict | None:
    """The options the run in `out` was started with, to compare before anything is written: those of its last
    checkpoint (what its weights were trained with) if it has one, else model.json's; None when `out` holds no
    run description."""
    out = Path(out)
    if has_checkpoint(out):
        return checkpoint_options(out)
    if not (out / RUN_DESCRIPTION).exists():
        return None
    hyperparameters = read_json(out / RUN_DESCRIPTION, "a run description").get("hyperparameters")
    return hyperparameters if isinstance(hyperparameters, dict) else None


def check_same_training_data(out, table: pa.Table, hashes: dict, classes) -> None:
    """Refuse to resume the run in `out` on other images than it was started with: other files (by SHA-256), other
    classes, or other labels or splits for the same images. Nothing is written before this check."""
    out = Path(out)
    if not (out / RUN_DESCRIPTION).exists():
        return
    previous = read_json(out / RUN_DESCRIPTION, "a run description")
    problems = []
    if isinstance(previous.get("classes"), list) and previous["classes"] != list(classes):
        problems.append(f"its classes were {previous['classes']}, these images have {list(classes)}")
    recorded = (previous.get("training_images") or {}).get("sha256")
    if isinstance(recorded, dict):
        current = training_hashes(table, hashes)
        missing = sorted(k for k in recorded if k not in current)
        new = sorted(k for k in current if k not in recorded)
        changed = sorted(k for k in recorded if k in current and recorded[k] != current[k])
        for what, names in (("missing now", missing), ("new", new), ("changed (other file contents)", changed)):
            if names:
                problems.append(f"{len(names)} image(s) {what}: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}")
    if not problems and (out / "splits.parquet").exists():
        try:
            before = pq.read_table(out / "splits.parquet").select(["image_id", "label", "split"]).to_pylist()
        except (pa.ArrowInvalid, OSError, KeyError):
            before = None
        now = table.select(["image_id", "label", "split"]).to_pylist()
        if before is not None and before != now:
            earlier = {r["image_id"]: r for r in before}
            moved = [r["image_id"] for r in now if earlier.get(r["image_id"]) != r]
            problems.append(f"the labels or splits of {len(moved) or len(before)} image(s) differ"
                            + (f": {', '.join(moved[:3])}{' …' if len(moved) > 3 else ''}" if moved else ""))
    if problems:
        raise ImagesAsDataError(
            f"{out} holds a run started on other data ({'; '.join(problems)}); nothing was changed. Resume it with "
            "the images and labels it was started with, pass overwrite=True (CLI: --overwrite) to start again on "
            "these, or write to a new --out folder", what="file", path=out
        )


def _value_at(description: dict, dotted: str):
    value = description
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def prediction_fields(description: dict) -> dict:
    """{field: value} of PREDICTION_FIELDS in a run description (None where absent), as JSON would hold them."""
    return json.loads(json.dumps({name: _value_at(description, name) for name in PREDICTION_FIELDS}, default=str))


def prediction_checksums(description: dict) -> dict:
    """{field: SHA-256 of its canonical JSON} for PREDICTION_FIELDS: model.json's "prediction_sha256". Canonical:
    keys sorted, no spaces, every number as a float (0 and 0.0 are the same JSON number; a tool that rewrites
    model.json may write either)."""
    return {name: hashlib.sha256(json.dumps(_numbers_as_floats(value), sort_keys=True,
                                            separators=(",", ":")).encode()).hexdigest()
            for name, value in prediction_fields(description).items()}


def _numbers_as_floats(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    return value


def _save_safetensors(weights: dict, path: Path, metadata: dict | None = None, name: str | None = None) -> str:
    """Write tensors to `path` (flushed to disk) in the safetensors format; return the file's SHA-256.

    safetensors serialises (its format, its checks); the bytes are written here, into the temporary file the caller
    chose: the library's save_file() would make a temporary file of its own beside `path` (".tmpXXXXXX"), which a
    kill in the middle of the write would leave behind for good. `name` is the target's name (for the crash tests).
    """
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in weights.items()}, metadata={"format": "imagesasdata", **(metadata or {})})
    with open(path, "wb") as handle:
        write_bytes(handle, data, name or Path(path).name)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def write_weights(out: Path, weights: dict, name: str = WEIGHTS, metadata: dict | None = None) -> str:
    """Write a safetensors file atomically; return its SHA-256."""
    with atomic_path(Path(out) / name) as temporary:
        digest = _save_safetensors(weights, temporary, metadata, name)
    return digest


def weights_metadata(description: dict) -> dict:
    """What the weights file records about its run, checked against model.json when the run is loaded: its id, its
    classes and the values of PREDICTION_FIELDS it was written with."""
    return {"run_id": description["run_id"], "classes": json.dumps(description["classes"]),
            "architecture": description["architecture"],
            "prediction": json.dumps(prediction_fields(description), sort_keys=True)}


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
            "Start the run again with overwrite=True (CLI: --overwrite)", what="file", path=path
        )


def write_finished(out: Path, *, tables: dict, outcome: dict, history, best_epoch, epochs_run, stopped_early,
                   status, weights, error: str | None = None) -> None:
    """Write what a finished run is given: the weights (their metadata recording model.json's entries after
    `outcome`, the temperature among them), history, then `tables` ({file stem: table}, in order: calibration,
    metrics, confusion, predictions, as infer/finished.py builds them); then model.json with `outcome`, the status
    and the weights' checksum (the moment the run counts as finished); a complete run's checkpoint is then removed.
    Computes nothing about the fit."""
    out = Path(out)
    description = read_json(out / RUN_DESCRIPTION, "a run description")
    description.update(**outcome)
    checksum = write_weights(out, weights, metadata=weights_metadata(description))
    write_table(pa.Table.from_pylist(history, schema=HISTORY_SCHEMA), out / "history.parquet")
    for name, table in tables.items():
        write_table(table, out / f"{name}.parquet")
    description.update(status=status, best_epoch=best_epoch, epochs_run=epochs_run, stopped_early=stopped_early,
                       files={WEIGHTS: checksum},
                       finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if error:
        description["error"] = error
    else:
        description.pop("error", None)
    # The commit: the outcome, the weights' checksum and the checksums of what decides predictions, in one replace.
    description["prediction_sha256"] = prediction_checksums(description)
    write_json(description, out / RUN_DESCRIPTION)
    if status == "complete":
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
        crash_point("checkpoint removed")


def read_description(out) -> dict:
    """model.json of the run in `out`, as written (no checks: RunDirectory reads a run with every check)."""
    return read_json(Path(out) / RUN_DESCRIPTION, "a run description")


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
        raise ImagesAsDataError(f"{path}: damaged safetensors file ({error})", what="file", path=path) from None


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
        raise ImagesAsDataError(f"{path}: cannot be read ({error.strerror or error})",
                                what="file", path=path) from None
    # A safetensors file starts with an 8-byte header length and the header's "{" (the length's first byte may be
    # anything, 0x80 included); torch.save writes a zip of pickles ("PK") or, in old versions, a bare pickle (0x80).
    if len(head) < 9 or head[8:9] != b"{":
        kind = "a Python pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "not a safetensors file"
        raise ImagesAsDataError(
            f"{path} is {kind}; refused: loading a pickle can run arbitrary code. Weights must be safetensors "
            "written by imagesasdata", what="file", path=path
        )


def _not_saved(folder, names) -> list[str]:
    """What Run.save() leaves behind: training checkpoints, the lock, temporary files of an interrupted write."""
    from .io.locks import is_our_temporary

    return [n for n in names if n in (CHECKPOINT, LOCK_FILE) or is_our_temporary(n) or _safetensors_temporary(n)]


def _field_differences(name: str, now, then, limit: int = 4) -> list[str]:
    """'preprocessing.mean: model.json has [0.1, 0.1, 0.1], the run was written with [0.485, 0.456, 0.406]', one
    per differing entry (nested entries named by their dotted path)."""
    if isinstance(now, dict) and isinstance(then, dict):
        found = []
        for key in list(then) + [k for k in now if k not in then]:
            if now.get(key) != then.get(key):
                found += _field_differences(f"{name}.{key}", now.get(key), then.get(key), limit)
        return found[:limit]
    return [f"{name}: {RUN_DESCRIPTION} has {json.dumps(now)}, the run was written with {json.dumps(then)}"]


def as_run_directory(run) -> "RunDirectory":
    """A RunDirectory (or its subclass infer.Run) as given, else the run directory at the path `run`."""
    if isinstance(run, RunDirectory):
        return run
    path = Path(run).expanduser().absolute()
    if not (path / RUN_DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a run directory (no {RUN_DESCRIPTION}); pass the {flag('out')} folder of a "
                                "finetune run", what="file", path=str(path),
                                hint=f"pass the {flag('out')} folder of a finetune run")
    return RunDirectory(path)


class RunDirectory:
    """A fitted model in its run directory: its description, tables and checked weights. The verbs that use the
    model (predict, evaluate, interpretation) are added by infer.Run, the class users meet."""

    def __init__(self, path):
        self.path = Path(path)
        self.description = read_json(self.path / RUN_DESCRIPTION, "a run description (model.json of a finetune run)")
        if self.description.get("format") != "imagesasdata-run":
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} was not written by imagesasdata",
                                    what="file", path=self.path / RUN_DESCRIPTION)
        missing = [k for k in ("classes", "architecture", "library", "preprocessing", "hyperparameters")
                   if k not in self.description]
        if missing or not isinstance(self.description["classes"], list):
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged: it lacks {', '.join(missing) or 'a list of classes'}",
                                    what="file", path=self.path / RUN_DESCRIPTION)
        self._model = None
        # What a kill left behind (temporary files of an interrupted write) goes now, unless a job is writing here.
        tidy_if_idle(self.path, "run", _safetensors_temporary)

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
            raise ImagesAsDataError(f"{file} is missing; the run did not finish (status: {self.status})",
                                    what="file", path=file)
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
                                f"(CLI: --allow-unfinished); to finish it, {advice}", what="file", path=self.path)

    def weights(self) -> dict:
        """The kept weights, checked: the file's SHA-256 against model.json, the run id and classes the file records
        against model.json's, and the parts of model.json that decide predictions against their checksums and the
        values the weights file records (check_prediction_fields). A run killed while training yields its best
        checkpointed epoch."""
        if self.status == "training":
            self.check_prediction_fields()
            return self._best_checkpointed_weights()
        recorded = (self.description.get("files") or {}).get(WEIGHTS)
        if recorded is None and self.description.get("format_version", 1) >= 2:
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged: it has no checksum of {WEIGHTS}",
                                    what="file", path=self.path / RUN_DESCRIPTION)
        if recorded is None:
            import warnings

            warnings.warn(f"{self.path} was written by an earlier imagesasdata that recorded no checksum of its "
                          "weights; they cannot be verified", stacklevel=3)
        else:
            check_safetensors_file(self.path / WEIGHTS)   # a pickle is refused as such, before anything else
        if recorded is not None and sha256_file(self.path / WEIGHTS) != recorded:
            raise ImagesAsDataError(
                f"{self.path / WEIGHTS} is not the file this run wrote (its SHA-256 differs from the one in "
                f"{RUN_DESCRIPTION}): the weights were replaced or damaged. Copy the run folder again, or retrain",
                what="file", path=self.path / WEIGHTS
            )
        weights, metadata = read_weights_and_metadata(self.path, WEIGHTS)
        if recorded is not None:
            self._check_metadata(metadata)
        self.check_prediction_fields(metadata)
        return weights

    def check_prediction_fields(self, metadata: dict | None = None) -> None:
        """Refuse a model.json whose parts that decide predictions (PREDICTION_FIELDS) are not those the run was
        written with: their checksums in model.json ("prediction_sha256", written with the outcome in one atomic
        replace) and, for a finished run, the values its weights file records (`metadata`). Raises
        ImagesAsDataError naming each changed field, with the value it was written with where the weights record
        it, and how to recover."""
        recorded = self.description.get("prediction_sha256")
        written = None
        if metadata and metadata.get("prediction"):
            try:
                written = json.loads(metadata["prediction"])
            except ValueError:
                written = None
        if recorded is None and self.description.get("format_version", 1) >= 3:
            raise ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged: it has no prediction_sha256 (the "
                                    "checksums of the fields that decide predictions). Restore the run's own "
                                    f"{RUN_DESCRIPTION}, or retrain", what="file", path=self.path / RUN_DESCRIPTION)
        if recorded is None and written is None:
            return   # written before these checksums existed: nothing to check against
        now = prediction_fields(self.description)
        digests = prediction_checksums(self.description)
        changed = [name for name in PREDICTION_FIELDS
                   if (isinstance(recorded, dict) and recorded.get(name) != digests[name])
                   or (isinstance(written, dict) and name in written and written[name] != now[name])]
        if not isinstance(recorded, dict) and recorded is not None:
            changed = changed or ["prediction_sha256"]
        if not changed:
            return
        details = []
        for name in changed:
            if isinstance(written, dict) and name in written:
                details += _field_differences(name, now.get(name), written[name])
        raise ImagesAsDataError(
            f"{self.path / RUN_DESCRIPTION} was edited after the run was written: {', '.join(changed)} "
            f"{'no longer matches' if len(changed) == 1 else 'no longer match'} the checksum recorded with the run"
            + (f" ({'; '.join(details)})" if details else "")
            + ". These fields decide every prediction (an edit there silently changes them all), so the run is "
            f"refused, as swapped weights are. To recover, restore the run's own {RUN_DESCRIPTION} (from a copy of "
            "the run folder" + (", or by putting back the values it was written with, shown above" if details else "")
            + "); to use other preprocessing or classes, train a new run",
            what="file", path=self.path / RUN_DESCRIPTION
        )

    def _check_metadata(self, metadata: dict) -> None:
        if metadata.get("run_id") != self.description.get("run_id"):
            raise ImagesAsDataError(f"{self.path / WEIGHTS} belongs to another run (run id {metadata.get('run_id')}, "
                                    f"{RUN_DESCRIPTION} says {self.description.get('run_id')}); do not mix files of two runs",
                                    what="file", path=self.path / WEIGHTS)
        try:
            trained = json.loads(metadata.get("classes", "null"))
        except ValueError:
            trained = None
        if trained != self.classes:
            raise ImagesAsDataError(
                f"{self.path / RUN_DESCRIPTION} lists the classes {self.classes}, but the weights were trained for "
                f"{trained}: model.json was edited or comes from another run. Restore the run's own model.json",
                what="file", path=self.path / RUN_DESCRIPTION
            )

    def _best_checkpointed_weights(self) -> dict:
        folder = self.path / CHECKPOINT
        if not (folder / POINTER).exists():
            raise ImagesAsDataError(f"{self.path} was stopped before its first epoch finished: there are no weights "
                                    "to use; resume it (resume=True) or train it again", what="file", path=self.path)
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
            raise ImagesAsDataError(f"{path} exists and is not empty; choose a new folder for the saved model",
                                    what="file", path=path)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent if path.parent.exists() else None))
        try:
            shutil.copytree(self.path, staging, dirs_exist_ok=True, ignore=_not_saved)
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
