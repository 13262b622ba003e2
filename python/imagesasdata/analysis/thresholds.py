"""Thresholds for binary tasks: precision–recall and ROC curves, and a threshold chosen for a target recall or
precision on validation data (the book's §4.5 advice: when missing a positive costs more than a false alarm,
favour recall).

A binary model calls an image positive when the positive class's probability reaches the threshold (0.5 by
default, which is the most probable class). predict(), evaluate() and label_corpus() take threshold=.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, setting

CURVE_SCHEMA = pa.schema([
    ("threshold", pa.float64()), ("true_positives", pa.int64()), ("false_positives", pa.int64()),
    ("false_negatives", pa.int64()), ("true_negatives", pa.int64()), ("precision", pa.float64()),
    ("recall", pa.float64()), ("false_positive_rate", pa.float64()), ("true_positive_rate", pa.float64()),
])


def check_threshold(threshold, classes) -> float | None:
    """The threshold as a float in [0, 1] for a binary task; None stays None (the most probable class)."""
    if threshold is None:
        return None
    if len(classes) != 2:
        raise ImagesAsDataError(f"{setting('threshold', threshold)} applies to binary tasks; this model has {len(classes)} "
                                "classes (leave threshold out: each image gets its most probable class)",
                                what="option", option="threshold", value=threshold,
                                hint="leave threshold out: each image gets its most probable class")
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 <= value <= 1:
        raise ImagesAsDataError(f"{setting('threshold', threshold)}: give the positive class's probability at or above which an "
                                "image is called positive, between 0 and 1 (e.g. 0.3 to favour recall)",
                                what="option", option="threshold", value=threshold, expected="between 0 and 1",
                                hint="the positive class's probability at or above which an image is called positive; "
                                     "e.g. 0.3 to favour recall")
    return value


def decide(probabilities: np.ndarray, classes, threshold=None, positive_class=None) -> list:
    """Predicted class per row of a probability matrix: the most probable class, or — with a threshold in a binary
    task — the positive class when its probability is at least the threshold. Rows with NaN get None."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    classes = list(classes)
    ok = ~np.isnan(probabilities).any(axis=1)
    if threshold is None:
        chosen = probabilities.argmax(1) if len(probabilities) else np.zeros(0, np.int64)
    else:
        positive = classes.index(positive_class) if positive_class in classes else 1
        chosen = np.where(probabilities[:, positive] >= threshold, positive, 1 - positive)
    return [classes[i] if good else None for i, good in zip(chosen, ok)]


def threshold_curves(truth, prob_positive, positive_class) -> pa.Table:
    """Return precision–recall and ROC curves as one table, one row per distinct probability (highest first) plus the
    ends: threshold, the four cells of the confusion matrix when images with prob_positive ≥ threshold are called
    positive, precision (1 where nothing is called positive, as scikit-learn's curve), recall = true positive
    rate, and false positive rate."""
    truth = np.asarray([t == positive_class for t in truth], dtype=bool)
    scores = np.asarray(prob_positive, dtype=np.float64)
    if len(truth) != len(scores):
        raise ImagesAsDataError("threshold_curves(): truth and probabilities differ in length")
    if np.isnan(scores).any():
        raise ImagesAsDataError("threshold_curves(): some probabilities are missing (unreadable images); leave them out")
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1] if len(scores) else np.zeros(0, np.int64)
    tp = np.cumsum(truth)[distinct]
    fp = (distinct + 1) - tp
    positives, negatives = int(truth.sum()), int((~truth).sum())
    thresholds = np.r_[np.inf, scores[distinct]]
    tp, fp = np.r_[0, tp], np.r_[0, fp]
    fn, tn = positives - tp, negatives - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
        recall = tp / positives if positives else np.full(len(tp), np.nan)
        fpr = fp / negatives if negatives else np.full(len(fp), np.nan)
    thresholds = np.minimum(thresholds, 1.0)  # "nothing is positive" shown as a threshold above every probability
    thresholds[0] = 1.0 if not len(scores) or scores[0] < 1 else np.nextafter(1.0, 2.0)
    return pa.table({
        "threshold": pa.array(thresholds, pa.float64()), "true_positives": pa.array(tp, pa.int64()),
        "false_positives": pa.array(fp, pa.int64()), "false_negatives": pa.array(fn, pa.int64()),
        "true_negatives": pa.array(tn, pa.int64()), "precision": pa.array(precision, pa.float64()),
        "recall": pa.array(recall, pa.float64(), from_pandas=True),
        "false_positive_rate": pa.array(fpr, pa.float64(), from_pandas=True),
        "true_positive_rate": pa.array(recall, pa.float64(), from_pandas=True),
    }, schema=CURVE_SCHEMA)


def roc_auc(curves: pa.Table) -> float:
    """Area under the ROC curve (trapezoids), from threshold_curves()."""
    fpr = np.asarray(curves["false_positive_rate"].to_pylist(), dtype=float)
    tpr = np.asarray(curves["true_positive_rate"].to_pylist(), dtype=float)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def average_precision(curves: pa.Table) -> float:
    """Average precision Σ (R_k − R_{k−1}) P_k, as scikit-learn's average_precision_score."""
    precision = np.asarray(curves["precision"].to_pylist(), dtype=float)
    recall = np.asarray(curves["recall"].to_pylist(), dtype=float)
    if np.isnan(recall).any():
        return float("nan")
    return float((np.diff(recall) * precision[1:]).sum())


@dataclass
class ThresholdChoice:
    """A threshold chosen on labelled predictions (usually the validation split), with what it gives there."""

    threshold: float
    target: str              # "recall ≥ 0.9" or "precision ≥ 0.8"
    achieved: bool           # False when no threshold reaches the target (the closest is given)
    metrics: pa.Table        # metrics at the threshold, with intervals
    curves: pa.Table         # threshold_curves() of the same predictions
    split: str
    calibrated: bool
    images: int

    def __repr__(self) -> str:
        from ..measure.metrics import format_interval

        lines = [f"imagesasdata threshold {self.threshold:.4g} for {self.target} on {self.images} {self.split} images"
                 + ("" if self.achieved else " (target not reached: the closest threshold)")
                 + (" (calibrated probabilities)" if self.calibrated else "")]
        for row in self.metrics.to_pylist():
            if row["estimator"] == "binary":
                lines.append(f"  {row['metric']:<10} {row['estimate']:.3f}  {format_interval(row['lower'], row['upper'])}")
        lines.append("  chosen on these images, so their metrics flatter it: check it on a test split or a gold sample")
        return "\n".join(lines)


def choose_threshold(truth, prob_positive, classes, positive_class, *, recall=None, precision=None,
                     split: str = "val", calibrated: bool = False, confidence: float = 0.95) -> ThresholdChoice:
    """Return the threshold that meets a target on labelled predictions, as a ThresholdChoice (threshold, target,
    achieved, metrics at it, the curves). Raises ImagesAsDataError unless exactly one target in (0, 1] is given, or
    for a task that is not binary.

    recall=r: the highest threshold whose recall is at least r (the most precise way to find that share of the
    positives). precision=p: the lowest threshold whose precision is at least p (the most positives found at that
    precision). Give exactly one. When no threshold meets the target, the closest one is returned with
    achieved=False.
    """
    from ..measure.metrics import classification_metrics

    if (recall is None) == (precision is None):
        raise ImagesAsDataError("choose_threshold(): give exactly one target, recall= or precision= (e.g. recall=0.9)",
                                what="option", option="recall" if recall is not None else "precision",
                                hint="give exactly one target, recall= or precision= (e.g. recall=0.9)")
    name, target = ("recall", recall) if recall is not None else ("precision", precision)
    try:
        target = float(target)
    except (TypeError, ValueError):
        target = float("nan")
    if not 0 < target <= 1:
        raise ImagesAsDataError(f"{setting(name, target)}: give a share between 0 and 1, e.g. {setting(name, 0.9)}", what="option",
                                option=name, value=target, expected="a share above 0 and at most 1",
                                hint=f"e.g. {setting(name, 0.9)}")
    classes = list(classes)
    if len(classes) != 2:
        raise ImagesAsDataError(f"thresholds apply to binary tasks; this one has {len(classes)} classes")
    truth = list(truth)
    curves = threshold_curves(truth, prob_positive, positive_class)
    values = np.asarray(curves[name].to_pylist(), dtype=float)
    thresholds = np.asarray(curves["threshold"].to_pylist(), dtype=float)
    meets = np.flatnonzero(values >= target - 1e-12)
    if name == "recall":  # recall grows as the threshold falls: the first row that meets it has the highest threshold
        pick, achieved = (int(meets[0]), True) if len(meets) else (len(values) - 1, False)
    else:  # precision: the lowest threshold (last row) that meets it
        candidates = meets[meets > 0] if len(meets[meets > 0]) else meets  # row 0 calls nothing positive
        pick, achieved = (int(candidates[-1]), True) if len(candidates) else (int(np.nanargmax(values)), False)
    threshold = float(min(thresholds[pick], 1.0))
    predicted = decide(np.column_stack(_two_columns(prob_positive, classes, positive_class)), classes, threshold,
                       positive_class)
    metrics = classification_metrics(truth, predicted, classes, positive_class, confidence=confidence)
    return ThresholdChoice(threshold, f"{name} ≥ {target:g}", achieved, metrics, curves, split, calibrated, len(truth))


def _two_columns(prob_positive, classes, positive_class):
    p = np.asarray(prob_positive, dtype=np.float64)
    return (p, 1 - p) if classes.index(positive_class) == 0 else (1 - p, p)


def run_predictions(run, split: str = "val", calibrate: bool = False):
    """(truth, prob_positive, classes, positive_class) of a binary run's stored predictions on `split`, with the
    run's temperature applied when calibrate=True."""
    from .calibration import logits_from_probabilities, softmax, temperature_of

    classes = run.classes
    if len(classes) != 2:
        raise ImagesAsDataError(f"thresholds apply to binary tasks; this run has {len(classes)} classes")
    predictions = run.predictions
    names = predictions["split"].to_pylist()
    keep = [i for i, s in enumerate(names) if s == split]
    if not keep:
        raise ImagesAsDataError(f"{setting('split', split)}: the run's predictions hold {', '.join(sorted(set(names)))}",
                                what="option", option="split", value=split)
    table = predictions.take(keep)
    probabilities = np.column_stack([np.asarray(table[f"prob_{c}"].to_pylist(), dtype=np.float64) for c in classes])
    if calibrate:
        probabilities = softmax(logits_from_probabilities(probabilities), temperature_of(run.description))
    positive = run.positive_class if run.positive_class in classes else classes[1]
    return table["label"].to_pylist(), probabilities[:, classes.index(positive)], classes, positive


def run_threshold_curves(run, split: str = "val", calibrate: bool = False) -> pa.Table:
    """Return threshold_curves() of a binary run's stored predictions on `split` (default: validation). Raises
    ImagesAsDataError for a run that is not binary or a split its predictions lack."""
    truth, probability, _, positive = run_predictions(run, split, calibrate)
    return threshold_curves(truth, probability, positive)


def choose_run_threshold(run, *, recall=None, precision=None, split: str = "val", calibrate: bool = False,
                         confidence: float = 0.95) -> ThresholdChoice:
    """Return choose_threshold() on a run's stored predictions of `split` (a ThresholdChoice; raises
    ImagesAsDataError as run_threshold_curves() and choose_threshold() do). Pass the same calibrate= to predict() later:
    the threshold is on that scale of probability."""
    truth, probability, classes, positive = run_predictions(run, split, calibrate)
    return choose_threshold(truth, probability, classes, positive, recall=recall, precision=precision, split=split,
                            calibrated=calibrate, confidence=confidence)
