"""Multi-label fine-tuning: one image, several labels at once (the book's emotions: half of its images evoke more
than one). finetune(data, label=["anger", "fear", ...]) trains one sigmoid output per label with a binary
cross-entropy loss, on the same loop as every other run (Trainer), and reports each label's accuracy, precision,
recall and F1 with their 95% intervals, their macro averages, and the share of images whose every label is right.

Each label column holds yes/no values (True/False, 1/0, "yes"/"no"; emotion_labels(multi_label=True) writes
them). An image may have any number of labels, none included. The kept epoch is chosen by the one rule
(config.selection_score) on the validation split's mean label accuracy, macro F1 or loss.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn as nn

from .. import runs
from ..data.splits import AUTO_TEST_FRACTION, MIN_CLASS_IMAGES_FOR_TEST, split_table
from ..data.table import image_table
from ..errors import ImagesAsDataError, listing, setting
from ..infer.finished import multilabel_held_out_results
from ..infer.run import Run, load_run
from .config import TrainConfig
from .trainer import Trainer, build_backbone, decoded_for, preprocessing_for, skipped_table

TASK = "multi_label"
THRESHOLD = 0.5   # a label is predicted when its probability is at least this
YES = {"1", "1.0", "true", "yes", "y", "positive"}
NO = {"0", "0.0", "false", "no", "n", "negative"}


def finetune_multilabel(data, labels, *, out=None, path: str | None = None, resume: bool = False,
                        overwrite: bool = False, images=None, **options) -> Run:
    """finetune() for several yes/no label columns at once; see the module docstring. Returns the Run; its
    predict() gives prob_<label> (sigmoid) and `predicted` (the labels at or above 0.5, joined by ";")."""
    config = TrainConfig.from_options(**options)
    labels = [str(label) for label in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ImagesAsDataError(f"{setting('label', labels)}: a multi-label task needs at least two distinct label columns; "
                                "for one, fine-tune it as a binary task (label='anger')",
                                what="option", option="label", value=labels)
    with runs.claim_run_dir(out, resume=resume, overwrite=overwrite) as folder:
        if resume and runs.is_complete(folder):
            shutil.rmtree(folder / runs.CHECKPOINT, ignore_errors=True)
            return load_run(folder)
        trainer = prepare_multilabel_trainer(data, labels, config, folder, path=path, images=images)
        return trainer.fit(resume=resume)


def label_matrix(table: pa.Table, labels) -> np.ndarray:
    """The yes/no label columns as a float32 N x L matrix of 0 and 1; an error names a missing column or a row
    whose value is neither yes nor no."""
    matrix = np.zeros((table.num_rows, len(labels)), np.float32)
    for k, label in enumerate(labels):
        if label not in table.column_names:
            raise ImagesAsDataError(f"no label column {label!r} in the table (columns: "
                                    f"{', '.join(table.column_names)})")
        for row, value in enumerate(table[label].to_pylist()):
            text = str(value).strip().lower()
            if value is True or text in YES:
                matrix[row, k] = 1.0
            elif value is False or text in NO:
                matrix[row, k] = 0.0
            else:
                raise ImagesAsDataError(f"row {row + 1}, column {label!r}: {value!r} is not yes or no; give "
                                        "True/False, 1/0 or yes/no for every image and label",
                                        what="rows", row=row + 1)
    return matrix


def choose_multilabel_test_fraction(matrix: np.ndarray, labels, test_fraction, val_fraction: float):
    """As data.splits.choose_test_fraction, per label: the default test split needs at least 20 images with and 20
    without every label."""
    if test_fraction is not None:
        return float(test_fraction), (None if test_fraction > 0 else "test_fraction=0 was asked for")
    positives, negatives = matrix.sum(0), (1 - matrix).sum(0)
    short = [f"{label} ({int(p)} with, {int(n)} without)" for label, p, n in zip(labels, positives, negatives)
             if min(p, n) < MIN_CLASS_IMAGES_FOR_TEST]
    if short:
        return 0.0, (f"a test split needs at least {MIN_CLASS_IMAGES_FOR_TEST} images with and without every label, "
                     f"and {len(short)} label(s) have fewer: {listing(short, 3)}; label more images or pass "
                     "test_fraction=")
    if val_fraction + AUTO_TEST_FRACTION >= 1:
        return 0.0, f"val_fraction={val_fraction:g} leaves no room for a test split of {AUTO_TEST_FRACTION:g}"
    return AUTO_TEST_FRACTION, None


def prepare_multilabel_trainer(data, labels, config: TrainConfig, out: Path, *, path=None, images=None):
    """prepare_trainer() for a multi-label task: the split is stratified by each image's set of labels."""
    table = image_table(data, path=path)
    if table.num_rows == 0:
        raise ImagesAsDataError("no images to train on")
    matrix = label_matrix(table, labels)
    # Each image's set of labels is its stratum ("anger+fear", "none"); check_labeled's rules on paths hold too.
    strata = ["+".join(l for l, v in zip(labels, row) if v) or "none" for row in matrix]
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(strata, pa.string()))
    duplicated = [p for p, n in Counter(table["path"].to_pylist()).items() if n > 1]
    if duplicated:
        raise ImagesAsDataError(f"{len(duplicated)} images appear twice: {listing(duplicated)}; list each image once")
    test_fraction, no_test = choose_multilabel_test_fraction(matrix, labels, config.test_fraction, config.val_fraction)
    given = all(s is not None for s in table["split"].to_pylist())
    if given and "test" not in table["split"].to_pylist():
        test_fraction, no_test = 0.0, "the data came already split with no test split"
    table = split_table(table, val_fraction=config.val_fraction, test_fraction=test_fraction, seed=config.seed,
                        balance=False, group=config.group)
    matrix = label_matrix(table, labels)   # rows in the split table's order
    torch.manual_seed(config.seed)
    backbone = build_backbone(config, len(labels))
    prep = preprocessing_for(config, backbone)
    decoded = decoded_for(images, prep, table, config)
    skipped = skipped_table(table, decoded.errors)
    splits = table["split"].to_pylist()
    rows = {name: decoded.usable([i for i, s in enumerate(splits) if s == name]) for name in ("train", "val", "test")}
    for name in ("train", "val"):
        if not rows[name]:
            raise ImagesAsDataError(f"the {name} split has no readable images; label more images")
    lacking = [label for k, label in enumerate(labels) if not matrix[rows["train"], k].any()]
    if lacking:
        raise ImagesAsDataError(f"no training image has the label(s) {listing(lacking)}: the network cannot learn "
                                "them; label more images with them, or leave those columns out")
    if config.normalize == "train":
        from ..data.transforms import channel_statistics

        prep.mean, prep.std = channel_statistics(decoded[r] for r in rows["train"])
    trainer = MultiLabelTrainer(backbone, config, prep, decoded, table, rows, labels, None, out)
    trainer.targets = matrix
    trainer.test_split = {"fraction": test_fraction, "images": len(rows["test"]), "why_none": no_test}
    if no_test and config.test_fraction is None:
        trainer._say(f"no test split: {no_test}. The validation metrics chose the kept epoch, so they are optimistic.")
    runs.write_started(out, trainer.describe(), table, decoded.hashes, skipped)
    return trainer


class MultiLabelTrainer(Trainer):
    """The Trainer with one sigmoid output per label: binary cross-entropy, label accuracy, macro F1."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_function = nn.BCEWithLogitsLoss()

    def describe(self) -> dict:
        description = super().describe()
        description.update(task=TASK, labels=list(self.classes), threshold=THRESHOLD, positive_class=None)
        return description

    def batch_correct(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """Per image, the share of its labels decided right; summed over the batch."""
        return float(((logits >= 0) == (targets >= 0.5)).float().mean(1).sum())

    def validate(self) -> dict:
        rows = self.rows["val"]
        logits = self.logits(rows)
        targets = torch.from_numpy(self.targets[rows])
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, targets))
        predicted = (logits >= 0).numpy()
        truth = self.targets[rows] >= 0.5
        accuracy = float((predicted == truth).mean())
        f1 = float(np.mean([_f1(truth[:, k], predicted[:, k]) for k in range(truth.shape[1])]))
        return {"loss": loss, "accuracy": accuracy, "f1": f1}

    def held_out_results(self, results: dict):
        """Sigmoid probabilities, per-label metrics and yes/no confusion counts (infer/finished.py)."""
        return multilabel_held_out_results(self.table, self.targets, self.classes, results, THRESHOLD)


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float((truth & predicted).sum())
    denominator = float(truth.sum() + predicted.sum())
    return 2 * tp / denominator if denominator else 0.0
