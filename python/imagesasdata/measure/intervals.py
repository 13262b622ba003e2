"""Uncertainty for the metrics a paper reports: a validation set of 60 images gives an accuracy of 0.9 ± 0.08,
and a reader should see the ± (the book's advice to report how sure we are, section 7).

Accuracy, precision and recall are proportions: Wilson score intervals (good coverage at small n and near 0 or
1, unlike the normal approximation). F1 and the averages are not: percentile intervals of a bootstrap that
redraws the confusion matrix (multinomial on its cells), seeded so the numbers reproduce.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, check_number
from .metrics import metrics_from_counts

INTERVAL_FIELDS = [("lower", pa.float64()), ("upper", pa.float64()), ("interval", pa.string())]


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes/n at confidence `level`; (nan, nan) when n is 0."""
    from statistics import NormalDist

    if n <= 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _counts_from_confusion(confusion: pa.Table, classes) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, predicted, count in zip(confusion["truth"].to_pylist(), confusion["predicted"].to_pylist(),
                                       confusion["count"].to_pylist()):
        if truth in index and predicted in index:
            counts[index[truth], index[predicted]] += int(count)
    return counts


def metrics_with_intervals(confusion: pa.Table, classes, positive_class=None, *, level: float = 0.95,
                           draws: int = 2000, seed: int = 0) -> pa.Table:
    """The metrics of one confusion table (truth, predicted, count) with `lower`, `upper` and `interval` ("wilson"
    or "bootstrap") columns at confidence `level`."""
    level = check_number("level", level, 0.5, 0.999)
    draws = int(check_number("draws", draws, 100, 100000, integer=True))
    classes = list(classes)
    if not {"truth", "predicted", "count"} <= set(confusion.column_names):
        raise ImagesAsDataError("the confusion table needs truth, predicted and count columns")
    counts = _counts_from_confusion(confusion, classes)
    table = metrics_from_counts(counts, classes, positive_class)
    total = int(counts.sum())
    rng = np.random.default_rng(seed)
    flat = counts.ravel()
    boot = []
    if total > 0:
        for sample in rng.multinomial(total, flat / total, size=draws):
            boot.append(metrics_from_counts(sample.reshape(counts.shape), classes, positive_class)["estimate"]
                        .to_numpy(zero_copy_only=False))
    boot = np.array(boot) if boot else None
    lower, upper, method = [], [], []
    tail = (1 - level) / 2
    for row, r in enumerate(table.to_pylist()):
        k = classes.index(r["class"]) if r["class"] in classes else None
        proportion = None
        if r["metric"] == "accuracy":
            proportion = (int(np.trace(counts)), total)
        elif k is not None and r["metric"] == "precision":
            proportion = (int(counts[k, k]), int(counts[:, k].sum()))
        elif k is not None and r["metric"] == "recall":
            proportion = (int(counts[k, k]), int(counts[k, :].sum()))
        if proportion is not None:
            low, high = wilson_interval(*proportion, level)
            lower.append(low), upper.append(high), method.append("wilson")
        elif boot is not None:
            values = boot[:, row]
            lower.append(float(np.quantile(values, tail))), upper.append(float(np.quantile(values, 1 - tail)))
            method.append("bootstrap")
        else:
            lower.append(math.nan), upper.append(math.nan), method.append(None)
    table = table.append_column("lower", pa.array(lower, pa.float64(), from_pandas=True))
    table = table.append_column("upper", pa.array(upper, pa.float64(), from_pandas=True))
    return table.append_column("interval", pa.array(method, pa.string()))
