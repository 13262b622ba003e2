"""Labelling images with a fitted run, and evaluating it on labelled images it never saw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .data import choose_positive_class, image_table
from .devices import resolve_channels_last, resolve_device, resolve_precision
from .errors import ImagesAsDataError, listing
from .inference import forward_files, softmax
from .metrics import classification_metrics, confusion_table, headline_lines
from .transforms import Preprocessing


def _as_run(run):
    from .runs import Run, load_run

    return run if isinstance(run, Run) else load_run(run)


def predict(run, images, *, batch_size: int = 32, device: str = "auto", precision: str = "auto",
            num_workers: int | None = None, progress: bool = True, backend: str = "local",
            calibrate: bool = False, threshold: float | None = None) -> pa.Table:
    """Label images with a fitted run.

    run: a Run or a run directory. images: a folder, a list of files, a CSV/Parquet table or data frame with a
    path column, or an image_table().
    backend: "local" (here) or "ray" (a Ray cluster: RAY_ADDRESS, or one started here); the same answers.
    calibrate: divide the logits by the temperature fitted on the validation split when the run was trained
      (model.json "calibration"), so the probabilities are calibrated; predicted classes do not change.
    threshold: binary tasks only: call an image positive when the positive class's probability is at least this
      (default: the most probable class, i.e. 0.5); choose one with choose_threshold().
    Returns an Arrow table: image_id, path, predicted, prob_<class> for each class, error. An unreadable image
    gets a row with its error and empty predictions — it never stops the run.
    """
    from tqdm.auto import tqdm

    from .analysis.calibration import temperature_of
    from .analysis.thresholds import check_threshold, decide

    run = _as_run(run)
    threshold = check_threshold(threshold, run.classes)
    table = images if isinstance(images, pa.Table) and "image_id" in images.column_names and "path" in images.column_names \
        else image_table(images)
    if backend == "ray":
        from .distributed import predict_on_ray

        return predict_on_ray(run, table, batch_size=batch_size, device=device, precision=precision,
                              num_workers=num_workers, progress=progress, calibrate=calibrate, threshold=threshold)
    if backend != "local":
        raise ImagesAsDataError(f"backend={backend!r}: choose 'local' (this machine) or 'ray' (a Ray cluster)")
    classes = run.classes
    prep = Preprocessing.from_dict(run.description["preprocessing"])
    target = resolve_device(device)
    chosen_precision = resolve_precision(precision, target)
    channels_last = resolve_channels_last("auto", target)
    model = run.model(str(target))
    if channels_last:
        model.to(memory_format=__import__("torch").channels_last)
    paths = table["path"].to_pylist()
    probabilities = np.full((len(paths), len(classes)), np.nan)
    temperature = temperature_of(run.description) if calibrate else 1.0
    errors: dict[int, str] = {}
    with tqdm(total=len(paths), desc="predicting", unit="img", disable=not progress, leave=False) as bar:
        for positions, logits, chunk_errors in forward_files(model, paths, prep, target, chosen_precision, channels_last,
                                                              batch_size=batch_size, workers=num_workers, progress=bar):
            errors.update(chunk_errors)
            if positions:
                probabilities[positions] = softmax(logits / temperature)
    ok = ~np.isnan(probabilities).any(axis=1)
    predicted = decide(probabilities, classes, threshold, run.positive_class)
    columns = {"image_id": table["image_id"], "path": table["path"], "predicted": pa.array(predicted, pa.string())}
    for i, c in enumerate(classes):
        columns[f"prob_{c}"] = pa.array(np.where(ok, probabilities[:, i], np.nan), pa.float64(), from_pandas=True)
    columns["error"] = pa.array([errors.get(i) for i in range(len(paths))], pa.string())
    return pa.table(columns)


@dataclass
class Evaluation:
    """Held-out evaluation of a run on labelled images: metrics, confusion matrix and per-image predictions."""

    metrics: pa.Table
    confusion: pa.Table
    predictions: pa.Table

    def __repr__(self) -> str:
        return "\n".join(["imagesasdata evaluation"] + headline_lines(self.metrics, show_split=False))


def evaluate(run, data, *, label: str | None = None, path: str | None = None, positive_class=None,
             split: str = "evaluation", **options) -> Evaluation:
    """Predict labelled images and compare with their labels (metrics as in the run's own validation, with 95%
    intervals). options: those of predict(), including calibrate= and threshold=.

    Images whose label is not one of the run's classes are an error; unreadable images are left out and listed
    in the predictions' error column.
    """
    run = _as_run(run)
    table = image_table(data, label=label, path=path)
    labels = table["label"].to_pylist()
    classes = run.classes
    unknown = sorted({v for v in labels if v not in classes}, key=str)
    if unknown:
        raise ImagesAsDataError(
            f"labels {listing([repr(u) for u in unknown])} are not classes of this model ({', '.join(classes)}); "
            "evaluate on images labelled with the model's classes"
        )
    predictions = predict(run, table, **options)
    ok = [e is None for e in predictions["error"].to_pylist()]
    truth = [t for t, good in zip(labels, ok) if good]
    predicted = [p for p, good in zip(predictions["predicted"].to_pylist(), ok) if good]
    positive = choose_positive_class(classes, positive_class or run.positive_class)
    metrics = classification_metrics(truth, predicted, classes, positive)
    metrics = metrics.add_column(0, "split", pa.array([split] * metrics.num_rows, pa.string()))
    confusion = confusion_table(truth, predicted, classes)
    confusion = confusion.add_column(0, "split", pa.array([split] * confusion.num_rows, pa.string()))
    predictions = predictions.add_column(2, "label", table["label"])
    return Evaluation(metrics, confusion, predictions)
