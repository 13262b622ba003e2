"""Stratified, seeded train/val/test splits (the book's 80/20 by default), optional class balancing by
downsampling, and groups (e.g. near-duplicate groups) that never straddle two splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError


def split_table(table: pa.Table, *, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0,
                balance: bool = False, group: str | None = None) -> pa.Table:
    """Fill the `split` column with "train", "val" or "test", stratified by label and seeded.

    A table whose every row already has a split (the book's train/ val/ layout) keeps it.
    balance: downsample every class to the size of the smallest (within each split when splits are given).
    group: a column of group ids (such as a near-duplicate group); all rows of a group land in the same split.
    Returns a new table; rows dropped by balancing are left out.
    """
    _check_fractions(val_fraction, test_fraction)
    splits = table["split"].to_pylist()
    given = [s is not None for s in splits]
    if all(given):
        if "val" not in splits:
            raise ImagesAsDataError("the data has a train split but no val split; add a val/ folder or let the split be made")
        if balance:
            keep = []
            for name in sorted(set(splits)):
                rows = [i for i, s in enumerate(splits) if s == name]
                keep += balanced_rows(table.take(rows)["label"].to_pylist(), seed, rows)
            table = table.take(sorted(keep))
        return table
    if any(given):
        raise ImagesAsDataError(
            "some rows have a split and others do not; give every row a split (train/val/test) or none"
        )
    labels = table["label"].to_pylist()
    if balance:
        table = table.take(balanced_rows(labels, seed))
        labels = table["label"].to_pylist()
    groups = table[group].to_pylist() if group else list(range(table.num_rows))
    assignment = stratified_assignment(labels, groups, val_fraction, test_fraction, seed)
    return table.set_column(table.schema.get_field_index("split"), "split", pa.array(assignment, pa.string()))


# test_fraction=None ("auto"): a test split of 10% of each class when every class has at least 20 images, so that
# each class keeps at least 2 test, 4 validation and 14 training images. Below that, a test split would starve
# training and its estimate would be too noisy to report; the run then says why it has none.
AUTO_TEST_FRACTION = 0.1
MIN_CLASS_IMAGES_FOR_TEST = 20


def choose_test_fraction(table: pa.Table, test_fraction: float | None, val_fraction: float = 0.2,
                         balance: bool = False) -> tuple[float, str | None]:
    """(the test fraction to split with, why there is no test split or None).

    A number given is used as is. None ("auto") gives AUTO_TEST_FRACTION when every class has at least
    MIN_CLASS_IMAGES_FOR_TEST images (after balancing, when asked), else 0. A table that comes split (the book's
    train/ val/ folders, a split column) keeps its splits: its test split is its test/ folder, if any.
    """
    splits = table["split"].to_pylist()
    if splits and all(s is not None for s in splits):
        if "test" in splits:
            return 0.0, None
        return 0.0, ("the data came already split (train/ and val/ folders or a split column) with no test split; "
                     "add a test/ folder to have one")
    if test_fraction is not None:
        return float(test_fraction), (None if test_fraction > 0 else "test_fraction=0 was asked for")
    counts = Counter(table["label"].to_pylist())
    counts.pop(None, None)
    if not counts:
        return 0.0, "no labelled images"
    smallest = min(counts.values())
    if balance:
        counts = {label: smallest for label in counts}
    small = sorted((label for label, n in counts.items() if n < MIN_CLASS_IMAGES_FOR_TEST), key=str)
    if small:
        shown = ", ".join(f"{label} ({counts[label]})" for label in small[:3]) + (" ..." if len(small) > 3 else "")
        return 0.0, (f"a test split needs at least {MIN_CLASS_IMAGES_FOR_TEST} images in every class and "
                     f"{len(small)} class(es) have fewer: {shown}; label more images, pass test_fraction=, or "
                     "evaluate the run on new labelled images")
    if val_fraction + AUTO_TEST_FRACTION >= 1:
        return 0.0, f"val_fraction={val_fraction:g} leaves no room for a test split of {AUTO_TEST_FRACTION:g}"
    return AUTO_TEST_FRACTION, None


def _check_fractions(val_fraction, test_fraction):
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ImagesAsDataError(f"{name} must be between 0 and 1 (got {value}); the book uses 0.2 for validation")
    if val_fraction <= 0:
        raise ImagesAsDataError("val_fraction must be above 0: the model is selected on the validation split")
    if val_fraction + test_fraction >= 1:
        raise ImagesAsDataError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction}; leave some images for training (e.g. 0.1 + 0.1)"
        )


def balanced_rows(labels, seed: int, rows=None) -> list[int]:
    """Row numbers keeping, per class, a seeded random sample the size of the smallest class (sorted)."""
    rows = list(range(len(labels))) if rows is None else list(rows)
    by_class = defaultdict(list)
    for row, label in zip(rows, labels):
        by_class[label].append(row)
    smallest = min(len(r) for r in by_class.values())
    rng = np.random.default_rng(seed)
    keep = []
    for label in sorted(by_class, key=str):
        members = by_class[label]
        keep += [members[i] for i in sorted(rng.choice(len(members), smallest, replace=False))]
    return sorted(keep)


def stratified_assignment(labels, groups, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """Assign each row a split so that each class is divided in the given fractions and each group stays whole.

    A group takes the most common label among its rows as its stratum. Every class with at least two images
    keeps at least one in train and one in val.
    """
    rows_of_group = defaultdict(list)
    for row, g in enumerate(groups):
        rows_of_group[g].append(row)
    stratum_groups = defaultdict(list)
    for g, rows in rows_of_group.items():  # dicts keep first-appearance order: deterministic before shuffling
        majority = Counter(labels[r] for r in rows).most_common(1)[0][0]
        stratum_groups[majority].append(g)
    rng = np.random.default_rng(seed)
    assignment = ["train"] * len(labels)
    for label in sorted(stratum_groups, key=str):
        members = stratum_groups[label]
        order = [members[i] for i in rng.permutation(len(members))]
        size = sum(len(rows_of_group[g]) for g in members)
        want_test = round(size * test_fraction) if test_fraction > 0 else 0
        want_val = round(size * val_fraction)
        if size >= 2:
            want_val = max(want_val, 1)
        if size >= 3 and test_fraction > 0:
            want_test = max(want_test, 1)
        filled = {"test": 0, "val": 0}
        for g in order:
            if filled["test"] < want_test:
                target = "test"
            elif filled["val"] < want_val:
                target = "val"
            else:
                target = "train"
            # Never leave a class without training images.
            taken = filled["test"] + filled["val"] + len(rows_of_group[g])
            if target != "train" and taken >= size:
                target = "train"
            for r in rows_of_group[g]:
                assignment[r] = target
            if target != "train":
                filled[target] += len(rows_of_group[g])
    return assignment
