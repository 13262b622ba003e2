"""Labelling images with a fitted run, and evaluating it on labelled images it never saw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..data.table import choose_positive_class, image_table
from ..errors import ImagesAsDataError, listing, setting
from ..measure.metrics import classification_metrics, confusion_table, headline_lines
from ..model.inference import Predictor, batch_ranges, predict_paths, predictions_table
from ..runs import as_run_directory


def predict(run, images, *, batch_size: int = 32, device: str = "auto", precision: str = "auto",
            num_workers: int | None = None, progress: bool = True, backend: str = "local",
            allow_unfinished: bool = False, calibrate: bool = False, threshold: float | None = None) -> pa.Table:
    """Label images with a fitted run.

    run: a Run or a run directory. images: a folder, a list of files, a CSV/Parquet table or data frame with a
    path column, or an image_table().
    backend: "local" (here) or "ray" (a Ray cluster: RAY_ADDRESS, or one started here); the same answers.
    allow_unfinished: use a run that did not finish training (killed, interrupted or failed); refused by default.
    calibrate: divide the logits by the temperature fitted on the validation split when the run was trained
      (model.json "calibration"), so the probabilities are calibrated; predicted classes do not change.
    threshold: binary tasks only: call an image positive when the positive class's probability is at least this
      (default: the most probable class, i.e. 0.5); choose one with choose_threshold().
    Returns an Arrow table: image_id, path, predicted, prob_<class> for each class, error. An unreadable image
    gets a row with its error and empty predictions — it never stops the run.
    """
    from tqdm.auto import tqdm

    from ..analysis.calibration import prediction_description
    from ..analysis.thresholds import check_threshold

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    multi_label = run.description.get("task") == "multi_label"
    if multi_label:
        # One sigmoid per label (train/multilabel.py): the threshold applies to each; no temperature, no Ray yet.
        if calibrate or backend != "local":
            raise ImagesAsDataError("a multi-label run predicts with backend='local' and without calibrate=True "
                                    "(temperature scaling and Ray labelling are for one label per image)")
        if threshold is not None and not 0 < float(threshold) < 1:
            raise ImagesAsDataError(f"{setting('threshold', threshold)}: give a probability between 0 and 1 (default 0.5)",
                                    what="option", option="threshold", value=threshold)
    else:
        threshold = check_threshold(threshold, run.classes)
    table = images if isinstance(images, pa.Table) and "image_id" in images.column_names and "path" in images.column_names \
        else image_table(images)
    if backend == "ray":
        return _predict_on_ray(run, table, batch_size=batch_size, device=device, precision=precision,
                               num_workers=num_workers, progress=progress, calibrate=calibrate, threshold=threshold)
    if backend != "local":
        raise ImagesAsDataError(f"{setting('backend', backend)}: choose 'local' (this machine) or 'ray' (a Ray cluster)",
                                what="option", option="backend", value=backend)
    predictor = Predictor(prediction_description(run.description, calibrate), run.weights(), device, precision)
    paths = table["path"].to_pylist()
    probabilities = np.full((len(paths), len(run.classes)), np.nan)
    errors = [""] * len(paths)

    def keep(positions, batch_probabilities, batch_errors):
        probabilities[positions] = batch_probabilities
        for position, error in zip(positions, batch_errors):
            errors[position] = error
        bar.update(len(positions))

    with tqdm(total=len(paths), desc="predicting", unit="img", disable=not progress, leave=False) as bar:
        predict_paths(predictor, paths, batch_ranges(0, len(paths), batch_size), keep, workers=num_workers)
    return predictions_table(table, probabilities, errors, run.classes, threshold, run.positive_class,
                             multi_label=multi_label)


def _predict_on_ray(run, table: pa.Table, *, batch_size: int, device: str, precision: str, num_workers,
                    progress: bool, calibrate: bool, threshold) -> pa.Table:
    """predict(backend="ray"): label_corpus on Ray into a temporary folder, returned as one table."""
    import math
    import tempfile

    from .labelling import _label_corpus

    shard_size = max(batch_size, min(1000, math.ceil(table.num_rows / 16)))
    # A scratch folder only this process reads: the nodes need not see it.
    with tempfile.TemporaryDirectory(prefix="imagesasdata-predict-") as scratch:
        result = _label_corpus(run, table.select(["image_id", "path"]), out=scratch, backend="ray",
                               shard_size=shard_size, batch_size=batch_size, device=device, precision=precision,
                               num_workers=num_workers, progress=progress, allow_unfinished=True, calibrate=calibrate,
                               threshold=threshold, out_on_every_node=False)
        return result.table


@dataclass
class Evaluation:
    """Held-out evaluation of a run on labelled images: metrics, confusion matrix and per-image predictions."""

    metrics: pa.Table
    confusion: pa.Table
    predictions: pa.Table

    classes: list | None = None

    def interpretation(self):
        """What the model got wrong on these images: an Interpretation (top_losses(), misclassified(), …)."""
        from ..measure.interpretation import Interpretation

        return Interpretation.from_predictions(self.predictions, self.classes)

    def __repr__(self) -> str:
        return "\n".join(["imagesasdata evaluation"] + headline_lines(self.metrics, show_split=False))


def evaluate(run, data, *, label: str | None = None, path: str | None = None, positive_class=None,
             split: str = "evaluation", **options) -> Evaluation:
    """Predict labelled images and compare with their labels (metrics as in the run's own validation, with 95%
    intervals). Returns an Evaluation (metrics, confusion, predictions, classes); raises ImagesAsDataError for
    labels that are not the run's classes or a multi-label run. options: those of predict(), including calibrate= and threshold=.

    Images whose label is not one of the run's classes are an error; unreadable images are left out and listed
    in the predictions' error column.
    """
    run = as_run_directory(run)
    run.require_finished(options.get("allow_unfinished", False))
    if run.description.get("task") == "multi_label":
        raise ImagesAsDataError("evaluate() scores one label per image; for a multi-label run, predict() the new "
                                "images and compare each label (imagesasdata.measure.multilabel.multilabel_metrics)")
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
    return Evaluation(metrics, confusion, predictions, list(classes))
