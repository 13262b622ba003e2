"""Looking at what a classifier gets wrong, as the book asks (section 4.5) — fastai's ClassificationInterpretation:
the images with the largest losses, the most confident mistakes, the pairs of classes most often confused.

Works on any predictions table with a `label` column and one `prob_<class>` column per class (a run's validation
and test predictions, an evaluation's, a coded gold sample's), so it needs no model and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ImagesAsDataError, listing

FIRST_COLUMNS = ("image_id", "path", "split", "label", "predicted")


@dataclass
class Interpretation:
    """A predictions table read for its mistakes. `predictions` keeps only rows with a label and a prediction."""

    predictions: pa.Table
    classes: list

    @classmethod
    def from_predictions(cls, predictions: pa.Table, classes, split=None) -> "Interpretation":
        """Return the Interpretation of a predictions table and the model's classes; `split` keeps only those splits
        (e.g. "val"). Raises ImagesAsDataError for missing label/prob_<class> columns, an unknown split, or labels
        that are not classes of the model."""
        classes = [str(c) for c in classes]
        missing = [c for c in ("label", "predicted", *[f"prob_{k}" for k in classes]) if c not in predictions.column_names]
        if missing:
            raise ImagesAsDataError(f"the predictions lack the column(s) {listing(missing)}; pass predictions with "
                                    "a label column and one prob_<class> column per class of the model")
        if split is not None:
            splits = [split] if isinstance(split, str) else list(split)
            if "split" not in predictions.column_names:
                raise ImagesAsDataError("these predictions have no split column; leave split out")
            present = set(predictions["split"].to_pylist())
            unknown = [s for s in splits if s not in present]
            if unknown:
                raise ImagesAsDataError(f"no split {listing(unknown)} in these predictions; they hold "
                                        f"{listing(sorted(p for p in present if p))}")
            predictions = predictions.filter(pc.is_in(predictions["split"], pa.array(splits, pa.string())))
        if "error" in predictions.column_names:
            predictions = predictions.filter(pc.is_null(predictions["error"]))
        predictions = predictions.filter(pc.and_(pc.is_valid(predictions["label"]), pc.is_valid(predictions["predicted"])))
        unknown = sorted({str(v) for v in predictions["label"].to_pylist()} - set(classes))
        if unknown:
            raise ImagesAsDataError(f"labels {listing(unknown)} are not classes of the model ({', '.join(classes)})")
        return cls(predictions, classes)

    @classmethod
    def from_run(cls, run, split=None) -> "Interpretation":
        """Return the Interpretation of a run's stored predictions (from_predictions(); raises as it does)."""
        return cls.from_predictions(run.predictions, run.classes, split)

    def _probabilities(self) -> np.ndarray:
        return np.column_stack([self.predictions[f"prob_{c}"].to_numpy(zero_copy_only=False).astype(float)
                                for c in self.classes]) if self.predictions.num_rows else np.zeros((0, len(self.classes)))

    def losses(self) -> pa.Table:
        """Return every image with `probability` (of the predicted class), `probability_of_label` and `loss` (the
        cross-entropy −log p(label)), largest loss first."""
        probabilities = self._probabilities()
        index = {c: i for i, c in enumerate(self.classes)}
        rows = np.arange(len(probabilities))
        of_label = probabilities[rows, [index[str(v)] for v in self.predictions["label"].to_pylist()]]
        of_predicted = probabilities[rows, [index[str(v)] for v in self.predictions["predicted"].to_pylist()]]
        loss = -np.log(np.clip(of_label, 1e-12, 1.0))
        table = self.predictions.append_column("probability", pa.array(of_predicted, pa.float64())) \
            .append_column("probability_of_label", pa.array(of_label, pa.float64())) \
            .append_column("loss", pa.array(loss, pa.float64()))
        order = np.argsort(-loss, kind="stable")
        return self._ordered(table.take(pa.array(order, pa.int64())))

    def top_losses(self, k: int | None = None) -> pa.Table:
        """Return the k images with the largest losses (all of them when k is None): where the model was most
        wrong."""
        table = self.losses()
        return table if k is None else table.slice(0, int(k))

    def misclassified(self) -> pa.Table:
        """Return the images whose prediction is not their label, the most confident mistakes first."""
        table = self.losses()
        wrong = table.filter(pc.not_equal(table["label"], table["predicted"]))
        order = np.argsort(-wrong["probability"].to_numpy(zero_copy_only=False), kind="stable")
        return wrong.take(pa.array(order, pa.int64())).drop_columns(["probability_of_label", "loss"])

    def most_confused(self, min_count: int = 1) -> pa.Table:
        """Return the pairs of different classes (label, predicted, count) with at least min_count images, most
        frequent first."""
        counts: dict = {}
        for truth, predicted in zip(self.predictions["label"].to_pylist(), self.predictions["predicted"].to_pylist()):
            if truth != predicted:
                counts[(truth, predicted)] = counts.get((truth, predicted), 0) + 1
        pairs = sorted(((t, p, n) for (t, p), n in counts.items() if n >= min_count), key=lambda r: (-r[2], r[0], r[1]))
        return pa.table({"label": pa.array([p[0] for p in pairs], pa.string()),
                         "predicted": pa.array([p[1] for p in pairs], pa.string()),
                         "count": pa.array([p[2] for p in pairs], pa.int64())})

    def _ordered(self, table: pa.Table) -> pa.Table:
        first = [c for c in FIRST_COLUMNS if c in table.column_names] + ["probability"]
        return table.select(first + [c for c in table.column_names if c not in first])
