"""A learning curve: will more labelled images help?

The labelled images are split once (seeded, as finetune() splits them); the model is then fine-tuned on growing
fractions of the training split — nested, each class in proportion, the same seed — and every fit is scored on the
same held-out images (the test split when there is one, else the validation split). The last step's change in
accuracy, with a paired interval (the same images scored by both fits), says whether the curve is still rising:
its slope per 200 images is the answer to "will 200 more labelled images help?" — an optimistic one, as curves
flatten.

    curve = learning_curve("faces/", fractions=(0.25, 0.5, 1.0), epochs=5, freeze="backbone")
    curve.table      # fraction, train_images, split, accuracy, conf_low, conf_high, n, run
    curve.answer     # the last step in words
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, option_error, setting
from ..io.tables import write_json, write_table
from ..measure.intervals import check_confidence, proportion_interval, z_value
from .config import TrainConfig

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
CURVE_FILE = "learning_curve.parquet"
MORE_IMAGES = 200
CURVE_SCHEMA = pa.schema([
    ("fraction", pa.float64()), ("train_images", pa.int64()), ("split", pa.string()), ("accuracy", pa.float64()),
    ("conf_low", pa.float64()), ("conf_high", pa.float64()), ("n", pa.int64()), ("run", pa.string()),
])


@dataclass
class LearningCurve:
    """table: one row per fraction (fraction, train_images, split — the images scored —, accuracy, conf_low,
    conf_high: a Wilson interval, n, run — the fit's directory). last_step: {from_images, to_images, change,
    conf_low, conf_high (a paired interval of the change), per_200 (the change scaled to 200 more images)}.
    answer: the last step in words."""

    table: pa.Table
    last_step: dict
    answer: str
    path: Path
    confidence: float = 0.95
    notes: list = field(default_factory=list)

    def __repr__(self) -> str:
        lines = [f"imagesasdata learning curve  {self.path}"]
        for r in self.table.to_pylist():
            lines.append(f"  {r['fraction']:>5.0%} ({r['train_images']:>5} training images): {r['split']} accuracy "
                         f"{r['accuracy']:.3f} [{r['conf_low']:.3f}, {r['conf_high']:.3f}]")
        lines.append(f"  {self.answer}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_fractions(fractions) -> list[float]:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError):
        values = []
    if len(values) < 2 or any(not 0 < f <= 1 for f in values) or values != sorted(set(values)):
        raise ImagesAsDataError(f"{setting('fractions', fractions)}: give at least two increasing fractions of the training "
                                "images in (0, 1], e.g. (0.25, 0.5, 0.75, 1)", what="option", option="fractions",
                                value=str(fractions))
    return values


def nested_training_rows(labels, fractions, seed: int) -> list[list[int]]:
    """Row numbers of the training images of each fraction: per class a seeded order, of which each fraction takes
    the first round(f · n_class) (at least 1), so every fraction holds the smaller ones' images."""
    by_class: dict = {}
    for row, label in enumerate(labels):
        by_class.setdefault(label, []).append(row)
    rng = np.random.default_rng(seed)
    orders = {c: [rows[i] for i in rng.permutation(len(rows))] for c, rows in sorted(by_class.items(), key=lambda kv: str(kv[0]))}
    return [sorted(r for rows in orders.values() for r in rows[:max(1, int(round(f * len(rows))))]) for f in fractions]


def learning_curve(data, *, fractions=DEFAULT_FRACTIONS, out=None, label: str | None = None, path: str | None = None,
                   confidence: float = 0.95, **options) -> LearningCurve:
    """Fine-tune on growing fractions of the labelled training images and score each fit on the same held-out images.

    data, label, path: as finetune(). fractions: increasing fractions of the training split, the last usually 1.
    out: a folder for the fits (fraction_<k>/ run directories, learning_curve.parquet, learning_curve.json; default
      a temporary folder); running again with the same out resumes, finished fits are not re-run.
    options: finetune()'s options (the same for every fit; seed= also seeds the split and the subsets).
    Returns a LearningCurve. Raises ImagesAsDataError for bad fractions or options, before anything is trained.
    """
    from ..data.splits import choose_test_fraction, split_table
    from ..data.table import check_labeled, image_table
    from .finetuning import finetune

    fractions = _check_fractions(fractions)
    confidence = check_confidence(confidence)
    if "test_fraction" in options and options["test_fraction"] is not None and not 0 <= float(options["test_fraction"]) < 1:
        raise option_error("test_fraction", options["test_fraction"], "a fraction in [0, 1)")
    config = TrainConfig.from_options(**options)
    table = image_table(data, label=label, path=path)
    check_labeled(table)
    test_fraction, _ = choose_test_fraction(table, config.test_fraction, config.val_fraction, config.balance)
    table = split_table(table, val_fraction=config.val_fraction, test_fraction=test_fraction, seed=config.seed,
                        balance=config.balance, group=config.group)
    splits = table["split"].to_pylist()
    scored = "test" if "test" in splits else "val"
    train_rows = [i for i, s in enumerate(splits) if s == "train"]
    held_rows = [i for i, s in enumerate(splits) if s != "train"]
    train_labels = [table["label"][i].as_py() for i in train_rows]
    subsets = nested_training_rows(train_labels, fractions, config.seed)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="imagesasdata-learning-curve-"))
    out.mkdir(parents=True, exist_ok=True)
    shared_images: dict = {}
    rows, correct = [], []
    fit_options = {k: v for k, v in options.items() if k != "test_fraction"}
    for k, (fraction, subset) in enumerate(zip(fractions, subsets), start=1):
        keep = sorted([train_rows[i] for i in subset] + held_rows)
        run = finetune(table.take(pa.array(keep, pa.int64())), out=out / f"fraction_{k}", resume=True,
                       images=shared_images, **fit_options)
        predictions = run.predictions
        mine = [i for i, s in enumerate(predictions["split"].to_pylist()) if s == scored]
        part = predictions.take(pa.array(mine, pa.int64()))
        order = np.argsort(np.array(part["image_id"].to_pylist(), dtype=object).astype(str), kind="stable")
        right = (np.array(part["label"].to_pylist(), dtype=object) == np.array(part["predicted"].to_pylist(),
                                                                               dtype=object))[order]
        correct.append(right)
        low, high = proportion_interval(int(right.sum()), len(right), confidence)
        rows.append({"fraction": fraction, "train_images": len(subset), "split": scored,
                     "accuracy": float(right.mean()) if len(right) else float("nan"), "conf_low": float(low),
                     "conf_high": float(high), "n": len(right), "run": str(run.path)})
    curve = pa.Table.from_pylist(rows, schema=CURVE_SCHEMA)
    step = last_step(correct[-2], correct[-1], rows[-2]["train_images"], rows[-1]["train_images"], confidence)
    answer = describe_step(step, scored)
    notes = []
    if scored == "val":
        notes.append("scored on the validation split, which also chose each fit's epoch: every accuracy is a little "
                     "optimistic, the comparison between fractions less so")
    write_table(curve, out / CURVE_FILE)
    write_json({"fractions": fractions, "scored": scored, "last_step": step, "answer": answer}, out / "learning_curve.json")
    return LearningCurve(curve, step, answer, out, confidence, notes)


def last_step(before: np.ndarray, after: np.ndarray, images_before: int, images_after: int,
              confidence: float = 0.95) -> dict:
    """The change in accuracy between two fits scored on the same images, with a paired (Wald) interval: the
    variance of the mean of the per-image differences, ((b + c) / n − d²) / n, b and c the images only one fit gets
    right. Returns {from_images, to_images, change, conf_low, conf_high, per_200}."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    n = len(after)
    change = float(after.mean() - before.mean()) if n else float("nan")
    discordant = float(np.abs(after - before).sum())
    se = float(np.sqrt(max(discordant / n - change ** 2, 0.0) / n)) if n else float("nan")
    z = z_value(confidence)
    added = max(images_after - images_before, 1)
    scale = MORE_IMAGES / added
    return {"from_images": int(images_before), "to_images": int(images_after), "change": change,
            "conf_low": change - z * se, "conf_high": change + z * se, "per_200": change * scale,
            "per_200_low": (change - z * se) * scale, "per_200_high": (change + z * se) * scale}


def describe_step(step: dict, split: str) -> str:
    """The last step of a learning curve in words: is the curve still rising?"""
    head = (f"From {step['from_images']} to {step['to_images']} training images, {split} accuracy changed by "
            f"{step['change']:+.3f} (95% interval {step['conf_low']:+.3f} to {step['conf_high']:+.3f}).")
    if step["conf_low"] > 0:
        return (head + f" The curve is still rising: at that rate {MORE_IMAGES} more labelled images would add about "
                f"{step['per_200']:+.3f} (at most what the last step gave per image; curves flatten).")
    if step["conf_high"] < 0:
        return head + " Accuracy fell with more images: check the new labels and the options before labelling more."
    return (head + f" No gain can be told from noise at this size: {MORE_IMAGES} more images may help little; more "
            "held-out images or other options (unfreezing, more epochs) may tell more.")
