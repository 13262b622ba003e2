"""Our metrics agree with scikit-learn on random labels (binary and multiclass) — the book's reference code
reported multiclass precision 0.06 at accuracy 0.93; ours must not."""

import numpy as np
import pytest
from sklearn import metrics as sk

from imagesasdata.measure.metrics import classification_metrics, confusion_table, metrics_from_counts


def lookup(table, metric, estimator, cls=None):
    rows = [r for r in table.to_pylist() if r["metric"] == metric and r["estimator"] == estimator
            and (cls is None or r["class"] == cls)]
    assert len(rows) == 1, (metric, estimator, cls)
    return rows[0]["estimate"]


@pytest.mark.parametrize("seed", range(5))
def test_binary_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    classes = ["negative", "positive"]
    truth = rng.choice(classes, 200, p=[0.7, 0.3]).tolist()
    predicted = rng.choice(classes, 200).tolist()
    table = classification_metrics(truth, predicted, classes, "positive")
    assert lookup(table, "accuracy", "binary") == pytest.approx(sk.accuracy_score(truth, predicted))
    for name, function in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        expected = function(truth, predicted, pos_label="positive", zero_division=0)
        assert lookup(table, name, "binary") == pytest.approx(expected)
    # the other class as positive
    table = classification_metrics(truth, predicted, classes, "negative")
    assert lookup(table, "precision", "binary") == pytest.approx(sk.precision_score(truth, predicted, pos_label="negative"))


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    classes = ["DEU", "FRA", "GBR", "USA", "VEN", "ZAF"]
    truth = rng.choice(classes, 300).tolist()
    # mostly right, as a trained model would be: averages then differ from accuracy in informative ways
    predicted = [t if rng.random() < 0.8 else rng.choice(classes) for t in truth]
    table = classification_metrics(truth, predicted, classes)
    assert lookup(table, "accuracy", "multiclass") == pytest.approx(sk.accuracy_score(truth, predicted))
    for name, function in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        for estimator, average in (("macro", "macro"), ("micro", "micro"), ("macro_weighted", "weighted")):
            expected = function(truth, predicted, average=average, labels=classes, zero_division=0)
            assert lookup(table, name, estimator) == pytest.approx(expected)
        per_class = function(truth, predicted, average=None, labels=classes, zero_division=0)
        for cls, expected in zip(classes, per_class):
            assert lookup(table, name, "per_class", cls) == pytest.approx(expected)
    # a good classifier has good precision: the book's bug is not reproduced
    assert lookup(table, "precision", "macro") > 0.7


def test_class_never_predicted_has_zero_precision_like_scikit_learn():
    truth = ["a", "b", "c", "c"]
    predicted = ["a", "a", "a", "c"]
    table = classification_metrics(truth, predicted, ["a", "b", "c"])
    assert lookup(table, "precision", "per_class", "b") == 0.0
    assert lookup(table, "precision", "macro") == pytest.approx(
        sk.precision_score(truth, predicted, average="macro", zero_division=0))


def test_confusion_matches_scikit_learn():
    rng = np.random.default_rng(9)
    classes = ["x", "y", "z"]
    truth, predicted = rng.choice(classes, 50).tolist(), rng.choice(classes, 50).tolist()
    table = confusion_table(truth, predicted, classes).to_pylist()
    matrix = sk.confusion_matrix(truth, predicted, labels=classes)
    for row in table:
        assert row["count"] == matrix[classes.index(row["truth"]), classes.index(row["predicted"])]
    assert len(table) == 9


def test_from_counts():
    # rows are the truth: 40 true negatives, 10 false positives, 5 false negatives, 45 true positives
    table = metrics_from_counts(np.array([[40, 10], [5, 45]]), ["negative", "positive"], "positive")
    assert lookup(table, "accuracy", "binary") == pytest.approx(0.85)
    assert lookup(table, "precision", "binary") == pytest.approx(45 / 55)
    assert lookup(table, "recall", "binary") == pytest.approx(0.9)
