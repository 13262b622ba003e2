"""Classification metrics in the shape social scientists report them, checked against scikit-learn in the tests.

Binary tasks report accuracy and the positive class's precision, recall and F1 (which class is positive is
explicit). Multiclass tasks report accuracy, per-class precision/recall/F1 and their macro, micro and weighted
averages. Undefined ratios (no predicted positives) are 0, as in scikit-learn's zero_division=0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError

METRIC_SCHEMA = pa.schema([
    ("metric", pa.string()), ("estimator", pa.string()), ("class", pa.string()), ("estimate", pa.float64()), ("n", pa.int64()),
])


def confusion_counts(truth, predicted, classes) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as class j (classes in the given order)."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        counts[index[t], index[p]] += 1
    return counts


def confusion_table(truth, predicted, classes) -> pa.Table:
    """Long confusion matrix: one row per (truth, predicted) pair of classes, zeros included."""
    counts = confusion_counts(truth, predicted, classes)
    pairs = [(t, p, int(counts[i, j])) for i, t in enumerate(classes) for j, p in enumerate(classes)]
    return pa.table({
        "truth": pa.array([t for t, _, _ in pairs], pa.string()),
        "predicted": pa.array([p for _, p, _ in pairs], pa.string()),
        "count": pa.array([n for _, _, n in pairs], pa.int64()),
    })


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0)


def metrics_from_counts(counts: np.ndarray, classes, positive_class=None) -> pa.Table:
    """Metric rows from a confusion matrix (rows = truth). Useful on its own to reproduce published tables."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    true_positive = np.diag(counts).astype(float)
    predicted = counts.sum(0).astype(float)
    actual = counts.sum(1).astype(float)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, actual)
    f1 = _ratio(2 * precision * recall, precision + recall)
    accuracy = float(true_positive.sum() / total) if total else float("nan")
    binary = len(classes) == 2
    rows = [("accuracy", "binary" if binary else "multiclass", None, accuracy, total)]
    if binary:
        k = list(classes).index(positive_class if positive_class is not None else classes[1])
        rows += [(name, "binary", classes[k], float(values[k]), int(actual[k]))
                 for name, values in (("precision", precision), ("recall", recall), ("f1", f1))]
    else:
        weights = _ratio(actual, np.full_like(actual, actual.sum()))
        micro_p = float(true_positive.sum() / predicted.sum()) if predicted.sum() else 0.0
        micro_r = float(true_positive.sum() / actual.sum()) if actual.sum() else 0.0
        micro_f = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
        for name, values, micro in (("precision", precision, micro_p), ("recall", recall, micro_r), ("f1", f1, micro_f)):
            rows += [(name, "macro", None, float(values.mean()), total),
                     (name, "micro", None, micro, total),
                     (name, "macro_weighted", None, float((values * weights).sum()), total)]
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        rows += [(name, "per_class", c, float(values[i]), int(actual[i])) for i, c in enumerate(classes)]
    return pa.Table.from_pylist(
        [dict(zip(METRIC_SCHEMA.names, r)) for r in rows], schema=METRIC_SCHEMA
    )


def classification_metrics(truth, predicted, classes, positive_class=None) -> pa.Table:
    """Metric rows (metric, estimator, class, estimate, n) for true and predicted labels."""
    return metrics_from_counts(confusion_counts(truth, predicted, classes), list(classes), positive_class)


def metric_value(metrics: pa.Table, metric: str, estimator: str | None = None, split: str | None = None) -> float:
    """One number from a metrics table, e.g. metric_value(run.metrics, "accuracy", split="val")."""
    for row in metrics.to_pylist():
        if row["metric"] == metric and (estimator is None or row["estimator"] == estimator) \
                and row["estimator"] != "per_class" and (split is None or row.get("split") == split):
            return row["estimate"]
    available = sorted({f"{r['metric']} ({r['estimator']})" for r in metrics.to_pylist() if r["estimator"] != "per_class"})
    raise ImagesAsDataError(f"no {metric!r} ({estimator or 'any estimator'}){f' for split {split!r}' if split else ''} "
                            f"in the metrics table; it holds {', '.join(available)}")


HEADLINE_ESTIMATORS = ("binary", "multiclass", "macro")


def headline_rows(metrics: pa.Table, split: str | None = None) -> list[dict]:
    """The metrics a person reads first: accuracy and the binary (or macro-averaged) precision, recall and F1."""
    return [row for row in metrics.to_pylist() if row["estimator"] in HEADLINE_ESTIMATORS
            and (split is None or row.get("split") == split)]


def headline_lines(metrics: pa.Table, show_split: bool = True) -> list[str]:
    """headline_rows() one per line, for printed summaries of runs and evaluations in Python and the CLI."""
    lines = []
    for row in headline_rows(metrics):
        label = row["metric"] + (f" ({row['class']})" if row["class"] else "") + \
            (" macro" if row["estimator"] == "macro" else "")
        split = f"{row['split']:>4}  " if show_split else ""
        lines.append(f"  {split}{label:<28} {row['estimate']:.3f}")
    return lines


def headline(metrics: pa.Table, split: str | None = None) -> str:
    """headline_rows() of one split on one line — "accuracy 0.917, precision 0.800, recall 1.000, f1 0.889 (positive
    class: positive)" — for R's printed fits and evaluations."""
    rows = headline_rows(metrics, split)
    text = ", ".join(f"{r['metric']}{' (macro)' if r['estimator'] == 'macro' else ''} {r['estimate']:.3f}" for r in rows)
    positive = [r["class"] for r in rows if r["estimator"] == "binary" and r["class"]]
    return f"{text} (positive class: {positive[0]})" if positive else text
