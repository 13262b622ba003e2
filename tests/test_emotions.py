"""The book's emotion rule (section 7.3) and its Figure 7.1/7.2 tables on a hand-made table, answers worked out
below for each image."""

from __future__ import annotations

import pyarrow as pa
import pytest

from imagesasdata import (ImagesAsDataError, emotion_cooccurrence, emotion_counts, emotion_labels,
                          emotion_max_class)
from imagesasdata.cli import main
from imagesasdata.io.tables import read_table, write_table

EMOTIONS = ["anger", "disgust", "enthusiasm", "fear", "sadness"]
#            anger disgust enthus. fear sadness   what the rule makes of it (min_score 3, min_margin 3)
SCORES = {
    "i1":  (7,    2,      0,      0,   0),    # anger positive: 7 ≥ 3 and 5 above disgust
    "i2":  (5,    3,      0,      0,   0),    # anger leads by only 2: no positive; evokes anger and disgust
    "i3":  (0,    0,      0,      3,   0),    # fear positive at exactly 3 and exactly 3 ahead
    "i4":  (0,    0,      0,      0,   2.9),  # sadness is the max class but below 3: not a clear one
    "i5":  (0,    0,      8,      0,   8),    # a tie: no max class at all; evokes enthusiasm and sadness
    "i6":  (0,    0,      0,      0,   0),    # i6–i10: zero everywhere, the pool of negatives
    "i7":  (0,    0,      0,      0,   0),
    "i8":  (0,    0,      0,      0,   0),
    "i9":  (0,    0,      0,      0,   0),
    "i10": (0,    0,      0,      0,   0),
    "i11": (0.5,  0,      0,      0,   0),    # a trace of anger: neither negative nor positive
    "i12": (2,    6,      0,      0,   0),    # disgust positive (4 ahead)
    "i13": (4,    0,      0,      0,   0),    # anger positive
}
NEGATIVE_POOL = {"i6", "i7", "i8", "i9", "i10"}


def score_table(scores=SCORES):
    columns = {"image_id": list(scores), "path": [f"/images/{k}.jpg" for k in scores]}
    for k, emotion in enumerate(EMOTIONS):
        columns[emotion] = [float(v[k]) for v in scores.values()]
    return pa.table(columns)


def selected(table, emotion, label):
    return {r["image_id"] for r in table.to_pylist() if r["emotion"] == emotion and r["label"] == label}


def test_positives_and_balanced_negatives():
    labels = emotion_labels(score_table())
    assert labels.column_names[:5] == ["emotion", "image_id", "label", "score", "margin"]
    assert "path" in labels.column_names  # carried along for splitting and writing folders
    assert selected(labels, "anger", "positive") == {"i1", "i13"}
    assert selected(labels, "disgust", "positive") == {"i12"}
    assert selected(labels, "fear", "positive") == {"i3"}
    assert selected(labels, "enthusiasm", "positive") == selected(labels, "sadness", "positive") == set()
    for emotion, positives in {"anger": 2, "disgust": 1, "fear": 1, "enthusiasm": 0, "sadness": 0}.items():
        negatives = selected(labels, emotion, "negative")
        assert len(negatives) == positives and negatives <= NEGATIVE_POOL
    i1 = [r for r in labels.to_pylist() if r["image_id"] == "i1" and r["emotion"] == "anger"][0]
    assert (i1["score"], i1["margin"]) == (7.0, 5.0)


def test_negatives_are_seeded():
    first = emotion_labels(score_table(), seed=3)
    assert first.equals(emotion_labels(score_table(), seed=3))
    draws = {frozenset(selected(emotion_labels(score_table(), seed=s), "anger", "negative")) for s in range(20)}
    assert len(draws) > 1 and all(len(d) == 2 for d in draws)
    everything = emotion_labels(score_table(), balance=False)
    assert selected(everything, "anger", "negative") == NEGATIVE_POOL


def test_thresholds_are_options():
    stricter = emotion_labels(score_table(), min_score=5)
    assert selected(stricter, "anger", "positive") == {"i1"} and selected(stricter, "fear", "positive") == set()
    looser = emotion_labels(score_table(), min_margin=2)
    assert selected(looser, "anger", "positive") == {"i1", "i2", "i13"}
    wider = emotion_labels(score_table(), negative_max=0.5, balance=False)
    assert selected(wider, "anger", "negative") == NEGATIVE_POOL | {"i11"}


def test_too_few_negatives_warns():
    scores = {k: v for k, v in SCORES.items() if k not in {"i7", "i8", "i9", "i10"}}  # one negative, i6
    with pytest.warns(UserWarning, match="anger: only 1 images score ≤ 0 on every emotion for 2 positives"):
        labels = emotion_labels(score_table(scores))
    assert selected(labels, "anger", "negative") == {"i6"}


def test_figure_7_1_tables():
    counts = {r["n_emotions"]: r for r in emotion_counts(score_table()).to_pylist()}
    # ≥ 3 on none: i4, i6–i10, i11; on one: i1, i3, i12, i13; on two: i2, i5.
    assert [counts[k]["n_images"] for k in range(6)] == [7, 4, 2, 0, 0, 0]
    assert counts[1]["share"] == pytest.approx(4 / 13)
    pairs = {(r["emotion"], r["other_emotion"]): r for r in emotion_cooccurrence(score_table()).to_pylist()}
    assert len(pairs) == 25
    assert pairs[("anger", "anger")]["n_images"] == 3  # i1, i2, i13
    assert pairs[("anger", "disgust")]["n_images"] == pairs[("disgust", "anger")]["n_images"] == 1  # i2
    assert pairs[("anger", "disgust")]["share"] == pytest.approx(1 / 3)
    assert pairs[("disgust", "anger")]["share"] == pytest.approx(1 / 2)  # i2 of i2, i12
    assert pairs[("enthusiasm", "sadness")]["n_images"] == 1 and pairs[("fear", "sadness")]["n_images"] == 0


def test_figure_7_2_table():
    rows = {(r["emotion"], r["class_type"]): r["n_images"] for r in emotion_max_class(score_table()).to_pylist()}
    assert rows == {
        ("anger", "max_class"): 4, ("anger", "clear_max_class"): 2,          # i1, i2, i11, i13 | i1, i13
        ("disgust", "max_class"): 1, ("disgust", "clear_max_class"): 1,      # i12
        ("enthusiasm", "max_class"): 0, ("enthusiasm", "clear_max_class"): 0,  # i5 is a tie
        ("fear", "max_class"): 1, ("fear", "clear_max_class"): 1,            # i3
        ("sadness", "max_class"): 1, ("sadness", "clear_max_class"): 0,      # i4 scores 2.9
    }


def test_bad_scores_are_listed():
    table = score_table()
    anger = table["anger"].to_pylist()
    anger[1], anger[4] = 11.0, None
    with pytest.raises(ImagesAsDataError, match=r"2 bad scores: row 2 \(i2\) anger = 11.0 is outside 0–10, "
                                                r"row 5 \(i5\) anger = None is not a number"):
        emotion_labels(table.set_column(2, "anger", pa.array(anger)))
    text = table.set_column(3, "disgust", pa.array(["2", "three"] + ["0"] * 11))
    with pytest.raises(ImagesAsDataError, match=r"row 2 \(i2\) disgust = 'three' is not a number"):
        emotion_counts(text)
    with pytest.raises(ImagesAsDataError, match="emotions="):
        emotion_labels(table.drop_columns(["fear"]))
    with pytest.raises(ImagesAsDataError, match="no rows"):
        emotion_labels(table.slice(0, 0))
    assert emotion_labels(table.drop_columns(["fear"]), emotions=["anger", "disgust"]).num_rows > 0


def test_cli_emotion_labels_and_summary(tmp_path):
    path = tmp_path / "scores.csv"
    write_table(score_table(), path)
    out = tmp_path / "labels.csv"
    assert main(["emotion-labels", str(path), "--out", str(out), "--summary", str(tmp_path / "fig")]) == 0
    labels = read_table(out)
    assert selected(labels, "anger", "positive") == {"i1", "i13"}
    assert read_table(tmp_path / "fig" / "emotion_counts.csv")["n_images"].to_pylist() == [7, 4, 2, 0, 0, 0]
    assert read_table(tmp_path / "fig" / "emotion_max_class.csv").num_rows == 10
    assert read_table(tmp_path / "fig" / "emotion_cooccurrence.csv").num_rows == 25
