"""Calibration and thresholds on their own: ECE against netcal, Brier against scikit-learn, the temperature against
a direct minimisation of the likelihood, and the curves against scikit-learn's."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn import metrics as sk

from imagesasdata.analysis.calibration import (brier_score, expected_calibration_error, fit_temperature,
                                               negative_log_likelihood, reliability_table, softmax)
from imagesasdata.analysis.thresholds import (average_precision, choose_threshold, decide, roc_auc,
                                              threshold_curves)
from imagesasdata.analysis.transfer import training_selection
from imagesasdata.errors import ImagesAsDataError


def overconfident(rng, n, k, temperature=2.5):
    """Logits whose labels are drawn from softmax(logits / temperature): the network is too sure by that factor."""
    logits = rng.normal(size=(n, k)) * 3
    p = softmax(logits, temperature)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return logits, labels


@pytest.mark.parametrize("bins", [5, 10, 15])
def test_ece_equals_netcal(bins):
    from netcal.metrics import ECE

    rng = np.random.default_rng(bins)
    logits, labels = overconfident(rng, 800, 4)
    p = softmax(logits)
    assert expected_calibration_error(p, labels, bins) == pytest.approx(ECE(bins=bins).measure(p, labels), abs=1e-12)
    # binary: netcal bins the positive class's probability against the share of positives, as we do
    logits, labels = overconfident(rng, 800, 2)
    p = softmax(logits)
    assert expected_calibration_error(p, labels, bins, positive=1) == pytest.approx(
        ECE(bins=bins).measure(p, labels), abs=1e-12)


def test_brier_equals_scikit_learn():
    rng = np.random.default_rng(2)
    logits, labels = overconfident(rng, 400, 3)
    p = softmax(logits)
    assert brier_score(p, labels) == pytest.approx(
        sk.brier_score_loss(labels, p, labels=[0, 1, 2], scale_by_half=False), abs=1e-12)
    logits, labels = overconfident(rng, 400, 2)
    p = softmax(logits)
    assert brier_score(p, labels, positive=1) == pytest.approx(sk.brier_score_loss(labels, p[:, 1]), abs=1e-12)
    assert brier_score(p, labels, positive=0) == pytest.approx(sk.brier_score_loss(labels == 0, p[:, 0]), abs=1e-12)


def test_temperature_is_the_likelihood_optimum_and_recovers_the_truth():
    rng = np.random.default_rng(4)
    logits, labels = overconfident(rng, 20000, 5, temperature=2.5)
    fit = fit_temperature(logits, labels)
    reference = minimize_scalar(lambda t: negative_log_likelihood(logits, labels, t), bounds=(0.05, 20),
                                method="bounded", options={"xatol": 1e-10})
    assert fit["status"] == "fitted"
    assert fit["temperature"] == pytest.approx(reference.x, rel=1e-6)
    # 20,000 draws pin the maximum-likelihood temperature to about ±0.03 of the true 2.5 (its standard error here
    # is about 0.02); 0.1 is a wide margin
    assert fit["temperature"] == pytest.approx(2.5, abs=0.1)
    assert fit["nll_after"] < fit["nll_before"]
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, fit["temperature"]), labels)
    assert after < before / 3  # an overconfident model by a factor 2.5 is far off; the fitted one is close
    assert (softmax(logits, fit["temperature"]).argmax(1) == logits.argmax(1)).all()


def test_temperature_is_not_fitted_when_every_image_is_right():
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    fit = fit_temperature(logits, np.array([0, 1, 0]))
    assert fit["temperature"] == 1.0 and fit["status"].startswith("not fitted")


def test_reliability_table():
    rng = np.random.default_rng(6)
    logits, labels = overconfident(rng, 500, 3)
    table = reliability_table(softmax(logits), labels, bins=10)
    assert table.column_names == ["bin", "lower", "upper", "images", "predicted", "observed"]
    assert sum(table["images"].to_pylist()) == 500
    filled = [r for r in table.to_pylist() if r["images"]]
    assert all(r["lower"] <= r["predicted"] <= r["upper"] for r in filled)
    ece = sum(r["images"] / 500 * abs(r["observed"] - r["predicted"]) for r in filled)
    assert ece == pytest.approx(expected_calibration_error(softmax(logits), labels, 10), abs=1e-12)


def test_curves_and_areas_equal_scikit_learn():
    rng = np.random.default_rng(8)
    truth = np.where(rng.random(300) < 0.3, "yes", "no")
    score = np.clip((truth == "yes") * 0.3 + rng.random(300) * 0.7, 0, 1).round(2)  # ties on purpose
    curves = threshold_curves(truth, score, "yes")
    precision, recall, thresholds = sk.precision_recall_curve(truth == "yes", score)
    ours = {round(t, 10): (p, r) for t, p, r in zip(curves["threshold"].to_pylist(), curves["precision"].to_pylist(),
                                                     curves["recall"].to_pylist())}
    for p, r, t in zip(precision, recall, thresholds):
        assert ours[round(float(t), 10)] == pytest.approx((p, r), abs=1e-12)
    fpr, tpr, roc_thresholds = sk.roc_curve(truth == "yes", score)
    assert roc_auc(curves) == pytest.approx(sk.roc_auc_score(truth == "yes", score), abs=1e-12)
    assert average_precision(curves) == pytest.approx(sk.average_precision_score(truth == "yes", score), abs=1e-12)
    row = curves.to_pylist()[5]
    called = score >= row["threshold"]
    assert row["true_positives"] == int((called & (truth == "yes")).sum())
    assert row["false_positives"] == int((called & (truth == "no")).sum())


def test_choose_threshold_for_recall_and_precision():
    rng = np.random.default_rng(9)
    truth = np.where(rng.random(200) < 0.4, "yes", "no")
    score = np.clip((truth == "yes") * 0.35 + rng.random(200) * 0.65, 0, 1)
    choice = choose_threshold(truth, score, ["no", "yes"], "yes", recall=0.9)
    recall = lambda t: ((score >= t) & (truth == "yes")).sum() / (truth == "yes").sum()  # noqa: E731
    precision = lambda t: ((score >= t) & (truth == "yes")).sum() / max(1, (score >= t).sum())  # noqa: E731
    assert choice.achieved and recall(choice.threshold) >= 0.9
    # the highest such threshold: the next distinct score above it loses recall
    above = np.sort(score[score > choice.threshold])
    assert not len(above) or recall(above[0]) < 0.9
    metrics = {r["metric"]: r for r in choice.metrics.to_pylist() if r["estimator"] == "binary"}
    assert metrics["recall"]["estimate"] == pytest.approx(recall(choice.threshold))
    assert metrics["recall"]["lower"] is not None
    by_precision = choose_threshold(truth, score, ["no", "yes"], "yes", precision=0.8)
    assert precision(by_precision.threshold) >= 0.8
    below = np.sort(score[score < by_precision.threshold])[::-1]
    assert all(precision(t) < 0.8 for t in below)  # no lower threshold keeps that precision
    assert "recall ≥ 0.9" in repr(choice)
    with pytest.raises(ImagesAsDataError, match="exactly one target"):
        choose_threshold(truth, score, ["no", "yes"], "yes", recall=0.9, precision=0.8)
    with pytest.raises(ImagesAsDataError, match="between 0 and 1"):
        choose_threshold(truth, score, ["no", "yes"], "yes", recall=90)


def test_decide_with_a_threshold():
    p = np.array([[0.8, 0.2], [0.6, 0.4], [np.nan, np.nan], [0.1, 0.9]])
    assert decide(p, ["no", "yes"]) == ["no", "no", None, "yes"]
    assert decide(p, ["no", "yes"], 0.3, "yes") == ["no", "yes", None, "yes"]
    assert decide(p, ["no", "yes"], 0.7, "no") == ["no", "yes", None, "yes"]  # "no" needs 0.7 now


def test_training_selection_note():
    plain = training_selection({"hyperparameters": {"balance": False}}, type("T", (), {"column_names": ["path"]})())
    assert plain == {"balanced": False, "rule": None, "curated": False, "note": None}
    balanced = training_selection({"hyperparameters": {"balance": True}}, type("T", (), {"column_names": []})())
    assert balanced["curated"] and "gold sample" in balanced["note"] and "draw_gold_sample()" in balanced["note"]
    rule = training_selection({"hyperparameters": {}}, type("T", (), {"column_names": ["emotion", "score", "margin"]})())
    assert rule["rule"] == "emotion clear-case rule" and "clear cases" in rule["note"]
