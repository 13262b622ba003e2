"""Splits are stratified, seeded, balanced on request, and keep groups whole."""

from collections import Counter

import pyarrow as pa
import pytest

from imagesasdata.errors import ImagesAsDataError
from imagesasdata.data.splits import choose_test_fraction, split_table


def table_of(labels, groups=None):
    n = len(labels)
    columns = {"image_id": [f"i{k}" for k in range(n)], "path": [f"/x/{k}.png" for k in range(n)],
               "label": labels, "split": pa.array([None] * n, pa.string())}
    if groups is not None:
        columns["group"] = groups
    return pa.table(columns)


def counts(table):
    return Counter(zip(table["split"].to_pylist(), table["label"].to_pylist()))


def test_default_is_stratified_80_20():
    result = split_table(table_of(["a"] * 50 + ["b"] * 10))
    assert counts(result) == {("train", "a"): 40, ("val", "a"): 10, ("train", "b"): 8, ("val", "b"): 2}


def test_80_10_10_with_test():
    result = split_table(table_of(["a"] * 40 + ["b"] * 20), val_fraction=0.1, test_fraction=0.1)
    assert counts(result) == {("train", "a"): 32, ("val", "a"): 4, ("test", "a"): 4,
                              ("train", "b"): 16, ("val", "b"): 2, ("test", "b"): 2}


def test_seeded_and_seed_dependent():
    table = table_of(["a"] * 30 + ["b"] * 30)
    first = split_table(table, seed=1)["split"].to_pylist()
    assert split_table(table, seed=1)["split"].to_pylist() == first
    assert split_table(table, seed=2)["split"].to_pylist() != first


def test_tiny_classes_keep_one_image_in_each_of_train_and_val():
    result = split_table(table_of(["a"] * 2 + ["b"] * 3 + ["c"] * 20))
    for label in "ab":
        splits = [s for s, l in zip(result["split"].to_pylist(), result["label"].to_pylist()) if l == label]
        assert "train" in splits and "val" in splits


def test_balance_downsamples_to_the_smallest_class():
    result = split_table(table_of(["a"] * 50 + ["b"] * 10), balance=True)
    assert Counter(result["label"].to_pylist()) == {"a": 10, "b": 10}


def test_groups_never_straddle_splits():
    labels, groups = [], []
    for g in range(30):  # 30 groups of 1–3 near-duplicates each
        size = 1 + g % 3
        labels += ["a" if g % 2 else "b"] * size
        groups += [g] * size
    result = split_table(table_of(labels, groups), group="group", seed=3)
    by_group = {}
    for g, s in zip(result["group"].to_pylist(), result["split"].to_pylist()):
        by_group.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in by_group.values())
    assert {s for v in by_group.values() for s in v} == {"train", "val"}


def test_given_splits_are_kept():
    table = table_of(["a", "a", "b", "b"]).set_column(3, "split", pa.array(["train", "val", "train", "val"]))
    assert split_table(table)["split"].to_pylist() == ["train", "val", "train", "val"]


@pytest.mark.parametrize("options,message", [
    ({"val_fraction": 0}, "val_fraction must be above 0"),
    ({"val_fraction": 0.6, "test_fraction": 0.4}, "leave some images for training"),
    ({"val_fraction": 1.5}, "between 0 and 1"),
])
def test_bad_fractions(options, message):
    with pytest.raises(ImagesAsDataError, match=message):
        split_table(table_of(["a", "b"] * 5), **options)


def test_a_test_split_by_default_only_when_every_class_has_enough_images():
    """test_fraction=None ("auto"): 10% when every class has at least 20 images; otherwise none, and why."""
    assert choose_test_fraction(table_of(["a"] * 20 + ["b"] * 30), None) == (0.1, None)
    fraction, why = choose_test_fraction(table_of(["a"] * 19 + ["b"] * 30), None)
    assert fraction == 0 and "at least 20 images in every class" in why and "a (19)" in why and "b (" not in why
    # balancing shrinks every class to the smallest first
    assert choose_test_fraction(table_of(["a"] * 25 + ["b"] * 100), None, balance=True) == (0.1, None)
    # a number given is used as given
    assert choose_test_fraction(table_of(["a"] * 5 + ["b"] * 5), 0.25) == (0.25, None)
    assert choose_test_fraction(table_of(["a"] * 50 + ["b"] * 50), 0.0)[1] == "test_fraction=0 was asked for"
    assert choose_test_fraction(table_of(["a"] * 50 + ["b"] * 50), None, val_fraction=0.9)[0] == 0
    # data that come split keep their splits: a test split only if they have one
    given = table_of(["a", "b"] * 30).set_column(3, "split", pa.array(["train", "val"] * 30))
    fraction, why = choose_test_fraction(given, None)
    assert fraction == 0 and "already split" in why
    with_test = given.set_column(3, "split", pa.array(["train", "val", "test", "train"] * 15))
    assert choose_test_fraction(with_test, None) == (0.0, None)
    # with the auto fraction, each class of 20 keeps 2 test, 4 val and 14 training images
    result = split_table(table_of(["a"] * 20 + ["b"] * 20), test_fraction=0.1)
    assert counts(result) == {(s, c): n for c in "ab" for s, n in (("train", 14), ("val", 4), ("test", 2))}

