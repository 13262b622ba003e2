"""Classification metrics in the shape social scientists report them, checked against scikit-learn in the tests.

Binary tasks report accuracy and the positive class's precision, recall and F1 (which class is positive is
explicit). Multiclass tasks report accuracy, per-class precision/recall/F1 and their macro, micro and weighted
averages. Undefined ratios (no predicted positives) are 0, as in scikit-learn's zero_division=0.

Every row carries a 95% interval (`lower`, `upper`, and the method in `interval`): Wilson for proportions of counts,
a seeded bootstrap for F1 and averages (intervals.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError

METRIC_SCHEMA = pa.schema([
    ("metric", pa.string()), ("estimator", pa.string()), ("class", pa.string()), ("estimate", pa.float64()), ("n", pa.int64()),
    ("lower", pa.float64()), ("upper", pa.float64()), ("interval", pa.string()),
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


def _metric_arrays(counts: np.ndarray, classes, positive_class=None) -> list:
    """Every metric row of a confusion matrix (rows = truth) as (metric, estimator, class, values, ratio), where
    `counts` may hold a stack of matrices (..., k, k) — bootstrap replicates — and `values` has the stack's shape.
    `ratio` names the count proportion behind a row, ("correct" | "predicted" | "actual", class index), or None
    for F1 and the macro and weighted averages (no count behind them: bootstrapped)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=(-2, -1))
    true_positive = np.diagonal(counts, axis1=-2, axis2=-1)
    predicted = counts.sum(-2)
    actual = counts.sum(-1)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, actual)
    f1 = _ratio(2 * precision * recall, precision + recall)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, true_positive.sum(-1) / np.where(total > 0, total, 1), np.nan)
    binary = len(classes) == 2
    rows = [("accuracy", "binary" if binary else "multiclass", None, accuracy, ("correct", None))]
    if binary:
        k = list(classes).index(positive_class if positive_class is not None else classes[1])
        rows += [("precision", "binary", classes[k], precision[..., k], ("predicted", k)),
                 ("recall", "binary", classes[k], recall[..., k], ("actual", k)),
                 ("f1", "binary", classes[k], f1[..., k], None)]
    else:
        weights = _ratio(actual, actual.sum(-1, keepdims=True) * np.ones_like(actual))
        # micro-averaged precision, recall and F1 of single-label classification all equal accuracy
        micro = np.where(np.isnan(accuracy), 0.0, accuracy)
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            rows += [(name, "macro", None, values.mean(-1), None),
                     (name, "micro", None, micro, ("correct", None)),
                     (name, "macro_weighted", None, (values * weights).sum(-1), None)]
    for name, values, ratio in (("precision", precision, "predicted"), ("recall", recall, "actual"), ("f1", f1, None)):
        rows += [(name, "per_class", c, values[..., i], (ratio, i) if ratio else None) for i, c in enumerate(classes)]
    return rows


def _row_sizes(counts: np.ndarray, classes, positive_class=None) -> list:
    """The `n` of each metric row: the images an estimate rests on (all of them, or the true members of its class)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    actual = counts.sum(1)
    sizes = [total]
    if len(classes) == 2:
        k = list(classes).index(positive_class if positive_class is not None else classes[1])
        sizes += [int(actual[k])] * 3
    else:
        sizes += [total] * 9
    sizes += [int(actual[i]) for _ in range(3) for i in range(len(classes))]
    return sizes


def _ratio_counts(counts: np.ndarray, ratio) -> tuple:
    """(successes, trials) of a count proportion named by _metric_arrays."""
    kind, k = ratio
    true_positive = np.diagonal(counts, axis1=-2, axis2=-1)
    if kind == "correct":
        return true_positive.sum(-1), counts.sum(axis=(-2, -1))
    trials = counts.sum(-2)[..., k] if kind == "predicted" else counts.sum(-1)[..., k]
    return true_positive[..., k], trials


def metrics_from_counts(counts: np.ndarray, classes, positive_class=None, *, intervals: bool = True,
                        confidence: float = 0.95, interval_method: str = "wilson", resamples: int = 1000,
                        seed: int = 0) -> pa.Table:
    """Return metric rows from a confusion matrix (rows = truth). Useful on its own to reproduce published tables.

    With intervals (the default), `lower` and `upper` bound a `confidence` interval and `interval` names its
    method: a Wilson (or, with interval_method="exact", Clopper–Pearson) interval for accuracy, precision and
    recall — proportions of counts — and a percentile bootstrap (`resamples` multinomial replicates of the
    confusion matrix, seeded by `seed`) for F1 and the macro and weighted averages. A ratio with nothing under it
    (no predicted positives) has estimate 0 and no interval.
    """
    from .intervals import bootstrap_confusions, percentile_interval, proportion_interval

    counts = np.asarray(counts, dtype=np.int64)
    classes = list(classes)
    rows = _metric_arrays(counts, classes, positive_class)
    sizes = _row_sizes(counts, classes, positive_class)
    bounds = [(None, None, None)] * len(rows)
    if intervals:
        replicates = _metric_arrays(bootstrap_confusions(counts, resamples, seed), classes, positive_class)
        bounds = []
        for (_, _, _, _, ratio), (_, _, _, boot, _) in zip(rows, replicates):
            if ratio is not None:
                successes, trials = _ratio_counts(counts, ratio)
                lower, upper = proportion_interval(successes, trials, confidence, interval_method)
                method = "wilson" if interval_method == "wilson" else "clopper_pearson"
            else:
                lower, upper = percentile_interval(boot, confidence)
                method = "percentile_bootstrap"
            lower, upper = float(lower), float(upper)
            bounds.append((None, None, None) if np.isnan(lower) else (lower, upper, method))
    records = [(name, estimator, cls, float(values), n, *bound)
               for (name, estimator, cls, values, _), n, bound in zip(rows, sizes, bounds)]
    return pa.Table.from_pylist([dict(zip(METRIC_SCHEMA.names, r)) for r in records], schema=METRIC_SCHEMA)


def classification_metrics(truth, predicted, classes, positive_class=None, **interval_options) -> pa.Table:
    """Return metric rows (metric, estimator, class, estimate, n, lower, upper, interval) for true and predicted labels;
    interval_options as in metrics_from_counts (intervals, confidence, interval_method, resamples, seed)."""
    return metrics_from_counts(confusion_counts(truth, predicted, classes), list(classes), positive_class,
                               **interval_options)


def metrics_from_confusion(confusion: pa.Table, classes, positive_class=None) -> pa.Table:
    """Return metrics_from_counts() of a long confusion table (truth, predicted, count), intervals included.
    Raises ImagesAsDataError when the table lacks truth, predicted or count."""
    if not {"truth", "predicted", "count"} <= set(confusion.column_names):
        raise ImagesAsDataError("the confusion table needs truth, predicted and count columns")
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, predicted, count in zip(*(confusion[c].to_pylist() for c in ("truth", "predicted", "count"))):
        if truth in index and predicted in index:
            counts[index[truth], index[predicted]] += int(count)
    return metrics_from_counts(counts, classes, positive_class)


def metric_row(metrics: pa.Table, metric: str, estimator: str | None = None, split: str | None = None) -> dict:
    """The row of one headline number of a metrics table (not per_class), or an error naming what the table holds."""
    for row in metrics.to_pylist():
        if row["metric"] == metric and (estimator is None or row["estimator"] == estimator) \
                and row["estimator"] != "per_class" and (split is None or row.get("split") == split):
            return row
    available = sorted({f"{r['metric']} ({r['estimator']})" for r in metrics.to_pylist() if r["estimator"] != "per_class"})
    raise ImagesAsDataError(f"no {metric!r} ({estimator or 'any estimator'}){f' for split {split!r}' if split else ''} "
                            f"in the metrics table; it holds {', '.join(available)}")


def metric_value(metrics: pa.Table, metric: str, estimator: str | None = None, split: str | None = None) -> float:
    """One number from a metrics table, e.g. metric_value(run.metrics, "accuracy", split="val")."""
    return metric_row(metrics, metric, estimator, split)["estimate"]


def metric_interval(metrics: pa.Table, metric: str, estimator: str | None = None, split: str | None = None) -> tuple:
    """(lower, upper) of the row metric_value() reads; (None, None) for tables written before intervals existed."""
    row = metric_row(metrics, metric, estimator, split)
    return row.get("lower"), row.get("upper")


def format_interval(lower, upper, digits: int = 3) -> str:
    """"[0.646, 0.985]", or "" when there is no interval."""
    if lower is None or upper is None or lower != lower:
        return ""
    return f"[{lower:.{digits}f}, {upper:.{digits}f}]"


HEADLINE_ESTIMATORS = ("binary", "multiclass", "macro")


def headline_rows(metrics: pa.Table, split: str | None = None) -> list[dict]:
    """The metrics a person reads first: accuracy and the binary (or macro-averaged) precision, recall and F1."""
    return [row for row in metrics.to_pylist() if row["estimator"] in HEADLINE_ESTIMATORS
            and (split is None or row.get("split") == split)]


def headline_lines(metrics: pa.Table, show_split: bool = True) -> list[str]:
    """headline_rows() one per line with their 95% intervals, for printed summaries of runs and evaluations in
    Python and the CLI."""
    lines = []
    rows = headline_rows(metrics)
    for row in rows:
        label = row["metric"] + (f" ({row['class']})" if row["class"] else "") + \
            (" macro" if row["estimator"] == "macro" else "")
        split = f"{row['split']:>4}  " if show_split else ""
        interval = format_interval(row.get("lower"), row.get("upper"))
        lines.append(f"  {split}{label:<28} {row['estimate']:.3f}" + (f"  {interval}" if interval else ""))
    splits = {row.get("split") for row in rows}
    if show_split and "val" in splits:
        lines.append(f"  val: {SELECTION_NOTE}" + ("; test: held out, scored once" if "test" in splits else ""))
    return lines


# What every printed validation metric says: the split chose what is reported, so it flatters it.
SELECTION_NOTE = "optimistic (this split chose the kept epoch)"


def headline(metrics: pa.Table, split: str | None = None) -> str:
    """headline_rows() of one split on one line — "accuracy 0.917 [0.646, 0.985], precision …, f1 0.889 (positive
    class: positive)" — for R's printed fits and evaluations."""
    rows = headline_rows(metrics, split)
    parts = []
    for r in rows:
        interval = format_interval(r.get("lower"), r.get("upper"))
        parts.append(f"{r['metric']}{' (macro)' if r['estimator'] == 'macro' else ''} {r['estimate']:.3f}"
                     + (f" {interval}" if interval else ""))
    positive = [r["class"] for r in rows if r["estimator"] == "binary" and r["class"]]
    text = ", ".join(parts)
    text = f"{text} (positive class: {positive[0]})" if positive else text
    return f"{text}; {SELECTION_NOTE}" if split == "val" and text else text
