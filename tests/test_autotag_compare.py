"""Validating tags against manual labels: the book's Tables 6.1 and 6.2, and real tags of the five example images.

Which published count is which cell follows from the published rates. Table 6.1 (Rekognition's "Crowd" as a
proxy for protest) prints 321 / 48 / 72 / 374 for 815 images with accuracy 85.3%, precision 83.9%, recall 88.6%:
  accuracy = (TP + TN) / 815 = 0.853  →  TP + TN = 695 = 321 + 374, so FP and FN are 48 and 72;
  precision = TP / (TP + FP) = 0.839  →  only 374 / (374 + 72) = 0.8386 fits (321/369, 321/393, 374/422 do not);
  recall = TP / (TP + FN) = 374 / (374 + 48) = 0.8863.
So TP = 374, FP = 72, FN = 48, TN = 321: the table reads row by row with predictions as rows (no crowd, crowd) and
manual labels as columns (not protest, protest): TN, FN / FP, TP.
Table 6.2 (John Legend) prints 779 / 5 / 0 / 31 with 99.4%, 100%, 86.1%: precision 100% → FP = 0; recall
31 / (31 + 5) = 0.861 → TP = 31, FN = 5; accuracy (31 + 779) / 815 = 0.9939 → TN = 779 — the same layout.
"""

from __future__ import annotations

import ast
import csv

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

import imagesasdata as iad
from imagesasdata.autotag.tables import LABEL_SCHEMA, rows_to_table
from imagesasdata.errors import ImagesAsDataError


def _value(metrics, name):
    return next(r["estimate"] for r in metrics.to_pylist() if r["metric"] == name and r["estimator"] == "binary")


@pytest.mark.parametrize("cells, published", [
    ((374, 72, 48, 321), (0.853, 0.839, 0.886)),    # Table 6.1: Crowd for protest
    ((31, 0, 5, 779), (0.994, 1.000, 0.861)),       # Table 6.2: John Legend
])
def test_books_tables_from_their_counts(cells, published):
    true_positive, false_positive, false_negative, true_negative = cells
    metrics = iad.tag_metrics_from_counts(true_positive=true_positive, false_positive=false_positive,
                                          false_negative=false_negative, true_negative=true_negative)
    accuracy, precision, recall = published
    assert round(_value(metrics, "accuracy"), 3) == accuracy
    assert round(_value(metrics, "precision"), 3) == precision
    assert round(_value(metrics, "recall"), 3) == recall
    assert _value(metrics, "f1") == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-3)


def _synthetic(cells, positive_tag, other_tag, seed=0):
    """815 images whose tags and manual labels fall into the given cells, in shuffled order."""
    true_positive, false_positive, false_negative, true_negative = cells
    kinds = ["tp"] * true_positive + ["fp"] * false_positive + ["fn"] * false_negative + ["tn"] * true_negative
    np.random.default_rng(seed).shuffle(kinds)
    tag_rows, manual = [], []
    for i, kind in enumerate(kinds):
        image = {"image_id": f"img{i:04d}.jpg", "path": f"/data/img{i:04d}.jpg", "image_sha256": f"{i:064x}"}
        tag_rows.append({**image, "tagger": "rekognition", "label": "Person", "confidence": 99.0, "label_rank": 1})
        if kind in ("tp", "fp"):
            tag_rows.append({**image, "tagger": "rekognition", "label": positive_tag, "confidence": 80.0, "label_rank": 2})
        else:
            tag_rows.append({**image, "tagger": "rekognition", "label": other_tag, "confidence": 80.0, "label_rank": 2})
        manual.append({"image_id": image["image_id"], "label": "protest" if kind in ("tp", "fn") else "not protest"})
    return rows_to_table(tag_rows, LABEL_SCHEMA), pa.Table.from_pylist(manual)


def test_compare_tags_reproduces_table_6_1_and_agrees_with_scikit_learn():
    tags, manual = _synthetic((374, 72, 48, 321), "Crowd", "Building")
    result = iad.compare_tags(tags, manual, "crowd", manual_positive="protest")   # tag names match case-insensitively
    assert [result.count(c) for c in ("true positive", "false positive", "false negative", "true negative")] == \
        [374, 72, 48, 321]
    assert round(result.metric("accuracy"), 3) == 0.853
    assert round(result.metric("precision"), 3) == 0.839
    assert round(result.metric("recall"), 3) == 0.886
    per_image = result.per_image.to_pylist()
    truth = [r["truth"] == "positive" for r in per_image]
    predicted = [r["predicted"] == "positive" for r in per_image]
    precision, recall, f1, _ = precision_recall_fscore_support(truth, predicted, average="binary")
    assert result.metric("precision") == pytest.approx(precision)
    assert result.metric("recall") == pytest.approx(recall)
    assert result.metric("f1") == pytest.approx(f1)
    assert result.metric("accuracy") == pytest.approx(accuracy_score(truth, predicted))
    confusion = {(r["truth"], r["predicted"]): (r["cell"], r["count"]) for r in result.confusion.to_pylist()}
    assert confusion[("positive", "negative")] == ("false negative", 48)
    assert "85.3%" in result.summary() and "88.6%" in result.summary()


def test_a_set_of_tags_and_a_confidence_floor():
    tags, manual = _synthetic((31, 0, 5, 779), "John Legend", "Crowd")
    one = iad.compare_tags(tags, manual, "John Legend", manual_positive="protest")
    assert (one.count("true positive"), one.count("false negative")) == (31, 5)
    both = iad.compare_tags(tags, manual, ["John Legend", "Crowd"], manual_positive="protest")
    assert both.count("false positive") == 779 and both.count("true positive") == 36
    above = iad.compare_tags(tags, manual, "John Legend", manual_positive="protest", min_confidence=90)
    assert above.count("true positive") == 0 and above.count("false negative") == 36   # all were at 80


@pytest.fixture(scope="module")
def example_labels(rekognition_examples):
    """The recorded DetectLabels answers of the five examples as our table (no service involved)."""
    from imagesasdata.autotag.tables import label_rows

    rows = []
    with open(rekognition_examples / "awsrekognition_detect_labels.csv", newline="") as handle:
        answers = {}
        for row in csv.DictReader(handle):
            answers.setdefault(row["image_id"], ast.literal_eval(row["full_detect_labels_response"]))
    for image_id in sorted(answers):
        rows += label_rows({"image_id": image_id, "path": str(rekognition_examples / image_id)}, answers[image_id])
    return rows_to_table(rows, LABEL_SCHEMA)


def test_real_tags_against_manual_coding(example_labels):
    """Coded by looking at the five images: does the photo show a person? ex_1 (a C-SPAN mug) no; ex_2 (a TV
    studio), ex_3 (a magazine cover with two photos of people), ex_4 (a press conference), ex_5 (a family) yes."""
    manual = pa.table({"image_id": ["ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg"],
                       "person": ["no", "yes", "yes", "yes", "yes"]})
    result = iad.compare_tags(example_labels, manual, "Person", manual_label="person")
    assert result.manual_positive == "yes"
    assert result.count("true positive") == 4 and result.count("true negative") == 1 and result.metric("f1") == 1
    # ex_2's "Person" has confidence 99.49: a 99.6 floor turns it into a false negative.
    strict = iad.compare_tags(example_labels, manual, "Person", manual_label="person", min_confidence=99.6)
    assert strict.per_image.filter(pc.equal(strict.per_image["cell"], "false negative"))["image_id"].to_pylist() \
        == ["ex_2.jpg"]
    assert strict.metric("recall") == 0.75 and strict.metric("precision") == 1.0


def test_left_out_images_are_listed_and_bad_input_is_explained(example_labels):
    manual = pa.table({"image_id": ["ex_1.jpg", "ex_4.jpg", "missing.jpg"], "label": [False, True, True]})
    tags = example_labels.select(["image_id", "tagger", "label", "confidence", "error"])
    failed = pa.Table.from_pylist([{"image_id": "ex_6.jpg", "tagger": "rekognition",
                                    "error": "ThrottlingException: Rate exceeded"}], schema=tags.schema)
    tags = pa.concat_tables([tags, failed])
    manual = pa.concat_tables([manual, pa.table({"image_id": ["ex_6.jpg"], "label": [True]})])
    result = iad.compare_tags(tags, manual, "Crowd")
    assert result.manual_positive == "true"
    assert (result.count("true positive"), result.count("true negative")) == (1, 1)
    reasons = dict(zip(result.excluded["image_id"].to_pylist(), result.excluded["reason"].to_pylist()))
    assert reasons["missing.jpg"] == "not in the tag table"
    assert reasons["ex_6.jpg"].startswith("tagging failed: ThrottlingException")
    assert reasons["ex_2.jpg"] == "no manual label"
    with pytest.warns(UserWarning, match="never occur.*Did you mean 'Crowd'"):
        iad.compare_tags(tags, manual, "Crowds")
    with pytest.raises(ImagesAsDataError, match="manual_positive="):
        iad.compare_tags(tags, pa.table({"image_id": ["ex_1.jpg", "ex_4.jpg"], "label": ["a", "b"]}), "Crowd")
    with pytest.raises(ImagesAsDataError, match="disagree.*ex_1.jpg"):
        iad.compare_tags(tags, pa.table({"image_id": ["ex_1.jpg", "ex_1.jpg"], "label": ["yes", "no"]}), "Crowd")
    with pytest.raises(ImagesAsDataError, match="no image is in both tables"):
        iad.compare_tags(tags, pa.table({"image_id": ["a.jpg"], "label": ["yes"]}), "Crowd", manual_positive="yes")
    with pytest.raises(ImagesAsDataError, match="manual_label='lable'.*Did you mean 'label'"):
        iad.compare_tags(tags, manual, "Crowd", manual_label="lable")


def test_label_frequencies_for_figures_6_3_and_6_4(example_labels):
    frequencies = iad.label_frequencies(example_labels, min_confidence=90)
    rows = {r["label"]: r for r in frequencies.to_pylist()}
    # Person ≥ 90 in ex_2, ex_3, ex_4, ex_5; Human likewise; Cup only in ex_1 (99.98).
    assert rows["Person"]["images"] == 4 and rows["Person"]["share"] == 0.8 and rows["Person"]["rank"] in (1, 2)
    assert rows["Cup"]["images"] == 1 and rows["Cup"]["tagged_images"] == 5
    assert "Photo" not in rows                                                    # 60.2 < 90
    assert frequencies["images"].to_pylist() == sorted(frequencies["images"].to_pylist(), reverse=True)
    top = iad.label_frequencies(example_labels, top_n=3)
    assert top.num_rows == 3 and top["label"].to_pylist() == ["Human", "Person", "People"]
    other = example_labels.set_column(example_labels.schema.get_field_index("tagger"), "tagger",
                                      pa.array(["other"] * example_labels.num_rows))
    side_by_side = iad.label_frequencies([example_labels, other], top_n=2)
    assert side_by_side["tagger"].to_pylist() == ["other", "other", "rekognition", "rekognition"]
    with pytest.raises(ImagesAsDataError, match="several taggers"):
        iad.compare_tags(pa.concat_tables([example_labels, other]), pa.table({"image_id": ["ex_1.jpg"], "label": ["y"]}),
                         "Cup")
