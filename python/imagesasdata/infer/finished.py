"""What a fit's kept weights did on its held-out splits, as the run directory stores it: the predictions (built by
`model/inference.predictions_table`, the one predictions table, with each image's split and label), metrics with
their intervals and confusion counts (measure/), and, for one label per image, temperature scaling fitted on the
validation split with ECE and Brier score before and after (analysis/finishing.py).

The trainers call it as a run ends and hand what it returns to `runs.write_finished`, which only writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from ..analysis.finishing import finishing_analysis
from ..measure.metrics import classification_metrics, confusion_table
from ..measure.multilabel import multilabel_metrics
from ..model.inference import predictions_table, softmax


@dataclass
class HeldOutResults:
    """tables: {file stem: table} in the order they are written (calibration, metrics, confusion, predictions);
    outcome: entries for model.json ("calibration", "training_selection")."""

    tables: dict
    outcome: dict


def held_out_results(description: dict, table: pa.Table, targets: np.ndarray, classes, positive_class,
                     results: dict) -> HeldOutResults:
    """A single-label run's results. results: {split: (row numbers of `table`, logits tensor)}; targets: each row's
    class index. The temperature is fitted first: it decides calibrated predictions and the weights file records it."""
    outcome, calibration = finishing_analysis(description, table, targets, classes, positive_class, results)
    metrics, confusion, predictions = [], [], []
    for split, (rows, logits) in results.items():
        probabilities = softmax(logits)
        truth = [classes[t] for t in targets[rows]]
        split_predictions = run_predictions(table, rows, split, truth, probabilities, classes,
                                            positive_class=positive_class)
        predicted = split_predictions["predicted"].to_pylist()
        metrics.append(with_split(classification_metrics(truth, predicted, classes, positive_class), split))
        confusion.append(with_split(confusion_table(truth, predicted, classes), split))
        predictions.append(split_predictions)
    return HeldOutResults({"calibration": calibration, "metrics": pa.concat_tables(metrics),
                           "confusion": pa.concat_tables(confusion), "predictions": pa.concat_tables(predictions)},
                          outcome)


def multilabel_held_out_results(table: pa.Table, targets: np.ndarray, labels, results: dict,
                                threshold: float) -> HeldOutResults:
    """A multi-label run's results: sigmoid probabilities, per-label metrics, one yes/no confusion matrix per label,
    predictions with the labels at or above `threshold` joined by ";". targets: the N x L matrix of 0 and 1."""
    metrics, confusion, predictions = [], [], []
    for split, (rows, logits) in results.items():
        probabilities = torch.sigmoid(logits.float()).numpy()
        truth = targets[rows] >= 0.5
        decided = probabilities >= threshold
        metrics.append(with_split(multilabel_metrics(truth, probabilities, labels), split))
        for k, label in enumerate(labels):
            for t in (False, True):
                for p in (False, True):
                    confusion.append({"split": split, "label": label, "truth": "yes" if t else "no",
                                      "predicted": "yes" if p else "no",
                                      "count": int(((truth[:, k] == t) & (decided[:, k] == p)).sum())})
        joined = [";".join(l for l, v in zip(labels, row) if v) for row in truth]
        predictions.append(run_predictions(table, rows, split, joined, probabilities, labels, threshold=threshold,
                                           multi_label=True))
    return HeldOutResults({"metrics": pa.concat_tables(metrics), "confusion": pa.Table.from_pylist(confusion),
                           "predictions": pa.concat_tables(predictions)},
                          {"calibration": {"status": "not applicable: temperature scaling is for one label per image"}})


def run_predictions(table: pa.Table, rows, split: str, truth: list, probabilities: np.ndarray, classes, *,
                    threshold=None, positive_class=None, multi_label: bool = False) -> pa.Table:
    """predictions_table() for rows of a run's split, with the split and the true label after the path:
    image_id, path, split, label, predicted, prob_<class>…. Every row of a held-out split was read (unreadable
    images are in skipped.parquet), so its error column, all null, is left out: predictions.parquet keeps its columns."""
    manifest = table.select(["image_id", "path"]).take(rows)
    predictions = predictions_table(manifest, probabilities, [None] * len(rows), classes, threshold=threshold,
                                    positive_class=positive_class, multi_label=multi_label).drop_columns(["error"])
    predictions = predictions.add_column(2, "split", pa.array([split] * len(rows), pa.string()))
    return predictions.add_column(3, "label", pa.array(truth, pa.string()))


def with_split(table: pa.Table, split: str) -> pa.Table:
    return table.add_column(0, "split", pa.array([split] * table.num_rows, pa.string()))
