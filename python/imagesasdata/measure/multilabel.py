"""Metrics for multi-label decisions (one image, several yes/no labels): each label's binary metrics with their 95%
intervals, as for any binary task, their macro averages, and the share of images whose every label is right.
No torch: arrays of truth and probabilities in, an Arrow table out."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .metrics import classification_metrics

THRESHOLD = 0.5


def multilabel_metrics(truth: np.ndarray, probabilities: np.ndarray, labels, threshold: float = THRESHOLD) -> pa.Table:
    """Metric rows for yes/no decisions on several labels: per label (estimator "binary", class = the label)
    accuracy, precision, recall and F1 with their 95% intervals (measure.metrics, as for any binary task); their
    macro averages (estimator "macro"); and exact_match (estimator "multilabel"), the share of images whose
    every label is right."""
    decided = probabilities >= threshold
    truth = truth >= 0.5
    per_label = []
    for k, label in enumerate(labels):
        words = lambda column: ["yes" if v else "no" for v in column]  # noqa: E731
        rows = classification_metrics(words(truth[:, k]), words(decided[:, k]), ["no", "yes"], "yes").to_pylist()
        for row in rows:
            if row["estimator"] == "binary" or (row["metric"] == "accuracy" and row["estimator"] == "multiclass"):
                per_label.append({**row, "estimator": "binary", "class": label})
    out = list(per_label)
    for metric in ("accuracy", "precision", "recall", "f1"):
        values = [r["estimate"] for r in per_label if r["metric"] == metric]
        out.append({"metric": metric, "estimator": "macro", "class": None, "estimate": float(np.mean(values)),
                    "n": int(len(truth)), "lower": None, "upper": None, "interval": None})
    out.append({"metric": "exact_match", "estimator": "multilabel", "class": None,
                "estimate": float((decided == truth).all(1).mean()), "n": int(len(truth)), "lower": None,
                "upper": None, "interval": None})
    schema = pa.schema([("metric", pa.string()), ("estimator", pa.string()), ("class", pa.string()),
                        ("estimate", pa.float64()), ("n", pa.int64()), ("lower", pa.float64()),
                        ("upper", pa.float64()), ("interval", pa.string())])
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in out], schema=schema)
