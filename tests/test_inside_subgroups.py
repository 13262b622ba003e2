"""Metrics by subgroup (issue 15, item 2): each group's metrics equal scikit-learn's on that group's images, the
intervals are the engine's — Wilson's or Clopper–Pearson's (as scipy computes them), or a seeded bootstrap — the gap test rejects a gap that is real and
the same audit works for autotagger comparisons.

subgroup_metrics() is an estimator: its tests take predictions built as a table (real ORL image ids, a known pattern
of mistakes), not a fit's, whose mistakes would depend on the CPU that trained it (DEVELOPERS.md, Tests)."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.measure.metrics import classification_metrics
from imagesasdata.measure.subgroups import estimates


def mistaken_for(person: int, photo: int) -> int:
    """The known mistakes of `evaluated`: photo k of person p is called p's neighbour (s6 -> s1) when p + k is a
    multiple of 4 — 15 of the 60 photos, in both sessions and both halves of the people."""
    return person % 6 + 1 if (person + photo) % 4 == 0 else person


@pytest.fixture(scope="module")
def evaluated(orl_faces):
    """Predictions in evaluate()'s shape for all ten ORL photos of six people (see mistaken_for()), with two metadata
    columns: the photo's session (photos 1–5 and 6–10 were taken on different occasions) and which half of the
    people."""
    files = [(f"s{p}/{k}.pgm", str(orl_faces / f"s{p}" / f"{k}.pgm"), f"s{p}") for p in range(1, 7) for k in range(1, 11)]
    predicted = [f"s{mistaken_for(p, k)}" for p in range(1, 7) for k in range(1, 11)]
    table = {"image_id": [f[0] for f in files], "path": [f[1] for f in files], "label": [f[2] for f in files],
             "predicted": predicted}
    for c in range(1, 7):
        table[f"prob_s{c}"] = [0.7 if v == f"s{c}" else 0.06 for v in predicted]
    table["error"] = pa.array([None] * len(files), pa.string())
    predictions = pa.table(table)
    assert 0 < sum(a != b for a, b in zip(table["label"], predicted)) < len(files)
    metadata = pa.table({"image_id": [f[0] for f in files],
                         "session": ["early" if int(f[0].split("/")[1].split(".")[0]) <= 5 else "late" for f in files],
                         "people": ["s1-s3" if f[2] in ("s1", "s2", "s3") else "s4-s6" for f in files]})
    return predictions, metadata


def sklearn_rows(truth, predicted, classes, positive=None):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rows = {("accuracy", None, None): accuracy_score(truth, predicted)}
    if positive is not None:
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=[positive], average=None, zero_division=0)
        rows.update({("precision", "binary", positive): p[0], ("recall", "binary", positive): r[0],
                     ("f1", "binary", positive): f[0]})
    else:
        for average, estimator in (("macro", "macro"), ("micro", "micro"), ("weighted", "macro_weighted")):
            p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=classes, average=average,
                                                         zero_division=0)
            rows.update({("precision", estimator, None): p, ("recall", estimator, None): r, ("f1", estimator, None): f})
    p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=classes, average=None, zero_division=0)
    for k, c in enumerate(classes):
        rows.update({("precision", "per_class", c): p[k], ("recall", "per_class", c): r[k], ("f1", "per_class", c): f[k]})
    return rows


def test_multiclass_groups_match_scikit_learn(evaluated):
    predictions, metadata = evaluated
    classes = [f"s{p}" for p in range(1, 7)]
    audit = iad.subgroup_metrics(predictions, metadata, "session", classes=classes)
    by_id = {r["image_id"]: r for r in predictions.to_pylist()}
    for session in ("early", "late"):
        ids = [i for i, s in zip(metadata["image_id"].to_pylist(), metadata["session"].to_pylist()) if s == session]
        expected = sklearn_rows([by_id[i]["label"] for i in ids], [by_id[i]["predicted"] for i in ids], classes)
        rows = [r for r in audit.metrics.to_pylist() if r["group"] == session]
        assert len(rows) == len(expected)
        for row in rows:
            key = (row["metric"], None if row["estimator"] == "multiclass" else row["estimator"], row["class"])
            key = ("accuracy", None, None) if row["metric"] == "accuracy" else key
            assert row["estimate"] == pytest.approx(expected[key], abs=1e-12), key
            assert row["lower"] - 1e-12 <= row["estimate"] <= row["upper"] + 1e-12, row
        accuracy = next(r for r in rows if r["metric"] == "accuracy")
        assert accuracy["n"] == 30 and accuracy["interval"] == "wilson"


def test_binary_groups_match_scikit_learn(evaluated):
    predictions, metadata = evaluated
    binary = pa.table({"image_id": predictions["image_id"],
                       "label": ["s1" if v == "s1" else "other" for v in predictions["label"].to_pylist()],
                       "predicted": ["s1" if v == "s1" else "other" for v in predictions["predicted"].to_pylist()]})
    audit = iad.subgroup_metrics(binary, metadata, ["people", "session"], classes=["other", "s1"], positive_class="s1")
    groups = sorted(set(audit.metrics["group"].to_pylist()))
    assert groups == ["s1-s3 / early", "s1-s3 / late", "s4-s6 / early", "s4-s6 / late"]
    meta = {r["image_id"]: f"{r['people']} / {r['session']}" for r in metadata.to_pylist()}
    rows = binary.to_pylist()
    for group in groups:
        mine = [r for r in rows if meta[r["image_id"]] == group]
        expected = sklearn_rows([r["label"] for r in mine], [r["predicted"] for r in mine], ["other", "s1"], "s1")
        for row in audit.metrics.to_pylist():
            if row["group"] != group:
                continue
            key = ("accuracy", None, None) if row["metric"] == "accuracy" else (row["metric"], row["estimator"], row["class"])
            assert row["estimate"] == pytest.approx(expected[key], abs=1e-12), (group, key)


@pytest.mark.parametrize("method, scipy_method, name", [("wilson", "wilson", "wilson"),
                                                        ("exact", "exact", "clopper_pearson")])
def test_group_intervals_are_scipys(evaluated, method, scipy_method, name):
    from scipy.stats import binomtest

    predictions, metadata = evaluated
    audit = iad.subgroup_metrics(predictions, metadata, "people", interval_method=method, confidence=0.9)
    by_id = {r["image_id"]: r for r in predictions.to_pylist()}
    for people in ("s1-s3", "s4-s6"):
        ids = [i for i, g in zip(metadata["image_id"].to_pylist(), metadata["people"].to_pylist()) if g == people]
        correct = sum(by_id[i]["label"] == by_id[i]["predicted"] for i in ids)
        reference = binomtest(correct, len(ids)).proportion_ci(confidence_level=0.9, method=scipy_method)
        row = next(r for r in audit.metrics.to_pylist() if r["group"] == people and r["metric"] == "accuracy")
        assert (row["lower"], row["upper"]) == pytest.approx((reference.low, reference.high), abs=1e-9)
        assert row["interval"] == name
    assert audit.confidence == 0.9
    with pytest.raises(ImagesAsDataError, match="between 0 and 1"):
        iad.subgroup_metrics(predictions, metadata, "people", confidence=95)


def test_fast_estimates_equal_the_metrics_table(evaluated):
    predictions, _ = evaluated
    classes = [f"s{p}" for p in range(1, 7)]
    truth, predicted = predictions["label"].to_pylist(), predictions["predicted"].to_pylist()
    from imagesasdata.measure.metrics import confusion_counts

    counts = confusion_counts(truth, predicted, classes)
    assert np.allclose(estimates(counts, None)[0], classification_metrics(truth, predicted, classes)["estimate"].to_pylist())
    two = [["other", "s1"][v == "s1"] for v in truth], [["other", "s1"][v == "s1"] for v in predicted]
    counts = confusion_counts(*two, ["other", "s1"])
    assert np.allclose(estimates(counts, 1)[0], classification_metrics(*two, ["other", "s1"], "s1")["estimate"].to_pylist())


def test_a_real_gap_is_detected_and_reported(evaluated):
    predictions, _ = evaluated
    # Grouping images by whether the model got them right makes a gap in accuracy of 1 — as large as gaps get.
    correct = pa.table({"image_id": predictions["image_id"],
                        "outcome": ["right" if a == b else "wrong" for a, b in
                                    zip(predictions["label"].to_pylist(), predictions["predicted"].to_pylist())]})
    audit = iad.subgroup_metrics(predictions, correct, "outcome", permutations=500, min_size=1)
    accuracy = next(r for r in audit.gaps.to_pylist() if r["metric"] == "accuracy")
    assert accuracy["gap"] == 1.0 and accuracy["largest_group"] == "right" and accuracy["smallest_group"] == "wrong"
    # No shuffle puts every mistake in one group of the same size: p is the smallest possible, 1/(1 + 500).
    assert accuracy["p_value"] == pytest.approx(1 / 501)
    assert "gap 1.000" in audit.summary()
    # Repeatable: the bootstrap and the permutations are seeded. (pandas compares NaN intervals as equal: a class
    # never predicted in a group has no precision interval.)
    again = iad.subgroup_metrics(predictions, correct, "outcome", permutations=500, min_size=1)
    assert again.metrics.to_pandas().equals(audit.metrics.to_pandas()) and again.gaps.equals(audit.gaps)


def test_tag_comparison_by_group(rekognition_examples):
    """The real Rekognition answers for the five example images, coded by hand (does the photo show a person?), with
    an illustrative account type per image."""
    import ast

    from imagesasdata.autotag.tables import LABEL_SCHEMA, label_rows, rows_to_table

    answers = {}
    with open(rekognition_examples / "awsrekognition_detect_labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            answers.setdefault(row["image_id"], ast.literal_eval(row["full_detect_labels_response"]))
    rows = []
    for image_id in sorted(answers):
        rows += label_rows({"image_id": image_id, "path": str(rekognition_examples / image_id)}, answers[image_id])
    tags = rows_to_table(rows, LABEL_SCHEMA)
    manual = pa.table({"image_id": ["ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg"],
                       "person": ["no", "yes", "yes", "yes", "yes"]})
    accounts = pa.table({"image_id": ["ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg"],
                         "account": ["media", "media", "media", "politician", "politician"]})
    comparison = iad.compare_tags(tags, manual, "Person", manual_label="person", min_confidence=99.6)
    audit = comparison.by_group(accounts, "account", min_size=1, permutations=200)
    cells = {r["image_id"]: r["cell"] for r in comparison.per_image.to_pylist()}
    for account in ("media", "politician"):
        ids = [r["image_id"] for r in accounts.to_pylist() if r["account"] == account]
        rows = {(r["metric"], r["estimator"]): r for r in audit.metrics.to_pylist()
                if r["group"] == account and r["estimator"] in ("binary",)}
        right = sum(cells[i] in ("true positive", "true negative") for i in ids)
        accuracy = next(r for r in audit.metrics.to_pylist() if r["group"] == account and r["metric"] == "accuracy")
        assert accuracy["estimate"] == right / len(ids)
        tp = sum(cells[i] == "true positive" for i in ids)
        fn = sum(cells[i] == "false negative" for i in ids)
        assert rows[("recall", "binary")]["estimate"] == tp / (tp + fn)


def test_bad_input_is_named(evaluated):
    predictions, metadata = evaluated
    with pytest.raises(ImagesAsDataError, match=r"group='gender': no such column in the metadata"):
        iad.subgroup_metrics(predictions, metadata, "gender")
    with pytest.raises(ImagesAsDataError, match="more than once"):
        iad.subgroup_metrics(predictions, pa.concat_tables([metadata, metadata.slice(0, 1)]), "session")
    with pytest.raises(ImagesAsDataError, match="no image_id of the predictions is in the metadata"):
        iad.subgroup_metrics(predictions, metadata.set_column(0, "image_id", pa.array(
            [f"x{i}" for i in range(metadata.num_rows)])), "session")
    with pytest.raises(ImagesAsDataError, match=r"are not among classes="):
        iad.subgroup_metrics(predictions, metadata, "session", classes=["s1", "s2"])
    partial = metadata.slice(0, 50)
    with pytest.warns(UserWarning, match="10 image"):
        audit = iad.subgroup_metrics(predictions, partial, "session")
    assert audit.excluded.num_rows == 10 and set(audit.excluded["reason"].to_pylist()) == {"no session"}
