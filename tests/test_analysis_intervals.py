"""Intervals on every metric, checked against independent computations: statsmodels' Wilson and Clopper–Pearson
intervals, scipy's bootstrap, and, for design-weighted metrics on a stratified gold sample, the Horvitz–Thompson
estimate and its coverage in a seeded simulation."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from imagesasdata.analysis.gold import gold_metrics
from imagesasdata.measure.intervals import (bootstrap_confusions, design_effective_size, proportion_interval,
                                             wilson_interval)
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.measure.metrics import classification_metrics, headline_lines, metric_interval, metrics_from_counts

REPOSITORY = Path(__file__).resolve().parents[1]


def row(table, metric, estimator, cls=None):
    rows = [r for r in table.to_pylist() if r["metric"] == metric and r["estimator"] == estimator
            and (cls is None or r["class"] == cls)]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_and_exact_intervals_equal_statsmodels(confidence):
    for k, n in [(0, 12), (1, 12), (11, 12), (12, 12), (37, 60), (5, 7), (413, 1000)]:
        low, high = proportion_interval(k, n, confidence, "wilson")
        ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
        assert (float(low), float(high)) == pytest.approx((ref_low, ref_high), abs=1e-12)
        low, high = proportion_interval(k, n, confidence, "exact")
        ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="beta")
        assert (float(low), float(high)) == pytest.approx((ref_low, ref_high), abs=1e-10)
    assert np.isnan(wilson_interval(0.5, 0)[0])


def test_metric_table_intervals_rest_on_the_right_counts():
    # rows = truth: 40 true negatives, 10 false positives, 5 false negatives, 45 true positives
    table = metrics_from_counts(np.array([[40, 10], [5, 45]]), ["negative", "positive"], "positive")
    assert table.column_names == ["metric", "estimator", "class", "estimate", "n", "lower", "upper", "interval"]
    for metric, k, n in (("accuracy", 85, 100), ("precision", 45, 55), ("recall", 45, 50)):
        r = row(table, metric, "binary")
        assert r["interval"] == "wilson"
        assert (r["lower"], r["upper"]) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    negative_precision = row(table, "precision", "per_class", "negative")
    assert (negative_precision["lower"], negative_precision["upper"]) == pytest.approx(
        proportion_confint(40, 45, method="wilson"), abs=1e-12)
    f1 = row(table, "f1", "binary")
    assert f1["interval"] == "percentile_bootstrap" and f1["lower"] < f1["estimate"] < f1["upper"]
    # the existing columns and their values are unchanged by the intervals
    plain = metrics_from_counts(np.array([[40, 10], [5, 45]]), ["negative", "positive"], "positive", intervals=False)
    assert plain.select(["metric", "estimator", "class", "estimate", "n"]).equals(
        table.select(["metric", "estimator", "class", "estimate", "n"]))
    assert plain["lower"].null_count == plain.num_rows
    exact = metrics_from_counts(np.array([[40, 10], [5, 45]]), ["negative", "positive"], "positive",
                                interval_method="exact")
    assert row(exact, "accuracy", "binary")["interval"] == "clopper_pearson"
    assert (row(exact, "accuracy", "binary")["lower"], row(exact, "accuracy", "binary")["upper"]) == pytest.approx(
        proportion_confint(85, 100, method="beta"), abs=1e-10)


def test_f1_bootstrap_agrees_with_scipy():
    """Our F1 interval resamples the confusion matrix's cells; scipy's bootstrap resamples the image pairs. Both
    are the percentile bootstrap of the same statistic, so with 20,000 replicates each their bounds differ only by
    Monte Carlo error: about 0.001 here (the 2.5% quantile's standard error, sqrt(0.025 * 0.975 / 20000) divided by
    the replicate density at that quantile, about 2 for an F1 with standard deviation 0.04). 0.006 is six of those."""
    rng = np.random.default_rng(3)
    truth = rng.random(300) < 0.3
    predicted = np.where(rng.random(300) < 0.85, truth, ~truth)
    labels = np.where(truth, "yes", "no"), np.where(predicted, "yes", "no")
    ours = row(classification_metrics(*labels, ["no", "yes"], "yes", resamples=20000, seed=1), "f1", "binary")

    def f1(t, p, axis=-1):
        tp = ((t == 1) & (p == 1)).sum(axis)
        return 2 * tp / ((t == 1).sum(axis) + (p == 1).sum(axis))

    reference = stats.bootstrap((truth.astype(int), predicted.astype(int)), f1, paired=True, vectorized=True,
                                n_resamples=20000, method="percentile", random_state=np.random.default_rng(2))
    assert ours["lower"] == pytest.approx(reference.confidence_interval.low, abs=0.006)
    assert ours["upper"] == pytest.approx(reference.confidence_interval.high, abs=0.006)


def test_bootstrap_is_seeded_and_multiclass_averages_get_intervals():
    counts = np.array([[20, 3, 1], [2, 15, 4], [0, 5, 10]])
    classes = ["a", "b", "c"]
    once, again = metrics_from_counts(counts, classes), metrics_from_counts(counts, classes)
    assert once.equals(again)
    other = metrics_from_counts(counts, classes, seed=7)
    assert row(other, "f1", "macro")["lower"] != row(once, "f1", "macro")["lower"]
    for estimator in ("macro", "macro_weighted"):
        r = row(once, "recall", estimator)
        assert r["interval"] == "percentile_bootstrap" and r["lower"] <= r["estimate"] <= r["upper"]
    micro = row(once, "precision", "micro")  # micro precision is accuracy: the same Wilson interval
    assert (micro["lower"], micro["upper"]) == (row(once, "accuracy", "multiclass")["lower"],
                                                row(once, "accuracy", "multiclass")["upper"])
    # a class never predicted has precision 0 by convention and no interval (nothing under the ratio)
    never = metrics_from_counts(np.array([[5, 0], [3, 0]]), ["x", "y"], "y")
    assert row(never, "precision", "binary")["lower"] is None
    # the replicates keep the sample size
    assert (bootstrap_confusions(counts, 50, 0).sum(axis=(1, 2)) == counts.sum()).all()


def test_printed_metrics_show_the_interval():
    table = metrics_from_counts(np.array([[40, 10], [5, 45]]), ["negative", "positive"], "positive")
    table = table.add_column(0, "split", pa.array(["val"] * table.num_rows))
    low, high = metric_interval(table, "accuracy", split="val")
    assert any(f"0.850  [{low:.3f}, {high:.3f}]" in line for line in headline_lines(table))


def stratified_corpus(rng, size=6000):
    """A corpus with a rare predicted class whose images the classifier gets right less often."""
    predicted = np.where(rng.random(size) < 0.1, "protest", "other")
    correct = rng.random(size) < np.where(predicted == "protest", 0.6, 0.95)
    truth = np.where(correct, predicted, np.where(predicted == "protest", "other", "protest"))
    return predicted, truth


def draw_stratified(rng, predicted, truth, per_stratum=60):
    rows, probability = [], []
    for stratum in ("protest", "other"):
        members = np.flatnonzero(predicted == stratum)
        chosen = rng.choice(members, per_stratum, replace=False)
        rows += chosen.tolist()
        probability += [per_stratum / len(members)] * per_stratum
    rows = np.array(rows)
    return pa.table({"image_id": [f"i{r}" for r in rows], "label": truth[rows], "predicted": predicted[rows],
                     "stratum": predicted[rows], "inclusion_probability": probability})


def test_design_weighted_metrics_are_horvitz_thompson_estimates():
    rng = np.random.default_rng(11)
    predicted, truth = stratified_corpus(rng)
    gold = draw_stratified(rng, predicted, truth)
    table = gold_metrics(gold, classes=["other", "protest"], positive_class="protest")
    weights = 1 / np.asarray(gold["inclusion_probability"].to_pylist())
    t, p = np.asarray(gold["label"].to_pylist()), np.asarray(gold["predicted"].to_pylist())
    accuracy = row(table, "accuracy", "binary")
    assert accuracy["estimate"] == pytest.approx(np.average(t == p, weights=weights), abs=1e-12)
    assert accuracy["n"] == 120 and accuracy["interval"] == "wilson_design_effect"
    recall = row(table, "recall", "binary")
    assert recall["estimate"] == pytest.approx(
        (weights * ((t == "protest") & (p == "protest"))).sum() / (weights * (t == "protest")).sum(), abs=1e-12)
    assert row(table, "f1", "binary")["interval"] == "stratified_bootstrap"
    # the unweighted sample accuracy answers another question (half the sample is the rare class)
    assert abs(np.mean(t == p) - accuracy["estimate"]) > 0.05


def test_design_weighted_accuracy_interval_covers_the_corpus_accuracy():
    """Coverage in 300 seeded replications of a stratified gold sample (60 + 60 images) from a fixed corpus. With
    true coverage 95%, the count of covering intervals is binomial(300, 0.95): 3.8 standard deviations either side
    is 0.90–0.99 (design-effect Wilson intervals run a little conservative). The unweighted interval, which ignores
    the design, is centred on the wrong number and covers far less."""
    rng = np.random.default_rng(5)
    predicted, truth = stratified_corpus(rng)
    target = float(np.mean(predicted == truth))
    covered = naive_covered = 0
    for _ in range(300):
        gold = draw_stratified(rng, predicted, truth)
        table = gold_metrics(gold, classes=["other", "protest"], positive_class="protest", resamples=20)
        accuracy = row(table, "accuracy", "binary")
        covered += accuracy["lower"] <= target <= accuracy["upper"]
        t, p = np.asarray(gold["label"].to_pylist()), np.asarray(gold["predicted"].to_pylist())
        low, high = proportion_confint(int((t == p).sum()), len(t), method="wilson")
        naive_covered += low <= target <= high
    assert 0.90 <= covered / 300 <= 0.99
    assert naive_covered / 300 < 0.6


def test_effective_size_of_a_simple_random_sample_is_about_n():
    y = np.array([1.0] * 30 + [0.0] * 70)
    ratio, effective = design_effective_size(y, np.ones(100), np.ones(100), ["all"] * 100)
    assert ratio == 0.3 and effective == pytest.approx(99)  # R(1 − R) / (R(1 − R)/(n − 1))


def test_confidence_is_checked():
    with pytest.raises(ImagesAsDataError, match="between 0 and 1"):
        metrics_from_counts(np.array([[1, 0], [0, 1]]), ["a", "b"], confidence=95)


def test_analysis_modules_import_no_torch():
    """The analysis layer works on tables and arrays: importing it must not import torch (the import-linter
    contract checks the imports; this checks a real session with torch made unimportable)."""
    code = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
import imagesasdata.measure.intervals, imagesasdata.analysis.calibration, imagesasdata.analysis.thresholds
import imagesasdata.analysis.gold, imagesasdata.analysis.estimators, imagesasdata.analysis.finishing
import imagesasdata.measure.metrics
# a labelled corpus on disk (label_corpus()'s folder) is read without the labelling module (which uses torch)
import tempfile, pathlib, json
import pyarrow as pa, pyarrow.parquet as pq
folder = pathlib.Path(tempfile.mkdtemp())
(folder / "shards").mkdir()
(folder / "labelling.json").write_text(json.dumps({"classes": ["a", "b"]}))
pq.write_table(pa.table({"image_id": [f"i{k}" for k in range(30)], "path": [None] * 30,
                          "predicted": ["a", "b"] * 15, "error": pa.array([None] * 30, pa.string())}),
               folder / "shards" / "shard-000000.parquet")
sample = imagesasdata.analysis.gold.draw_gold_sample(str(folder), 12, strata="predicted")
assert sample.num_rows == 12 and "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_books_table_6_1_gets_intervals():
    """Table 6.1 (Rekognition's "Crowd" as a proxy for protest: 374 true positives, 72 false positives, 48 false
    negatives, 321 true negatives) with its 95% intervals, and the comparison's summary prints them."""
    from imagesasdata import tag_metrics_from_counts

    table = tag_metrics_from_counts(374, 72, 48, 321)
    for metric, k, n in (("accuracy", 695, 815), ("precision", 374, 446), ("recall", 374, 422)):
        r = row(table, metric, "binary")
        assert (r["lower"], r["upper"]) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    from imagesasdata.autotag.compare import TagComparison

    comparison = TagComparison(pa.table({"truth": [], "predicted": [], "cell": [], "count": []}), table,
                               pa.table({}), pa.table({}), ["Crowd"], "protest")
    accuracy = row(table, "accuracy", "binary")
    assert f"accuracy {accuracy['lower']:.1%}–{accuracy['upper']:.1%}" in comparison.summary()


def test_stratified_design_variance_pieces():
    """stratified_covariance() is Σ_h N_h² (1 − n_h/N_h)/n_h · S_h (computed here stratum by stratum);
    stratified_variance() the same from per-stratum summaries, what a planner needs before any image is coded."""
    from imagesasdata.measure.intervals import stratified_covariance, stratified_variance

    rng = np.random.default_rng(3)
    stratum = np.repeat([0, 1, 2], [30, 12, 5])
    values = rng.normal(size=(47, 2)) + stratum[:, None]
    sizes, counts = np.array([3000.0, 400.0, 50.0]), np.array([30.0, 12.0, 5.0])
    expected = np.zeros((2, 2))
    for h in range(3):
        block = values[stratum == h]
        expected += sizes[h] ** 2 * (1 - counts[h] / sizes[h]) / counts[h] * np.cov(block.T)
    np.testing.assert_allclose(stratified_covariance(values, stratum, sizes, counts), expected, rtol=1e-12)
    within = [np.var(values[stratum == h, 0], ddof=1) for h in range(3)]
    assert stratified_variance(sizes, counts, within) == pytest.approx(expected[0, 0], rel=1e-12)
    with pytest.raises(ImagesAsDataError, match="between 1 and N_h"):
        stratified_variance([10, 10], [0, 5], [1, 1])


def test_weighted_proportion_interval_is_jeffreys():
    """One cell: the Jeffreys interval (Beta(y + ½, n − y + ½) quantiles, scipy), to Monte Carlo accuracy; a cell
    with no success still gets an interval above 0; the corpus's own share (corpus='finite') is narrower when the
    sample is a large part of the cell; seeded draws repeat."""
    from imagesasdata.measure.intervals import weighted_proportion_interval

    for y, n in ((0, 75), (3, 150), (40, 120)):
        estimate, sd, low, high = weighted_proportion_interval([y], [n], [10_000], draws=200_000)
        assert estimate == pytest.approx(y / n)
        ref_low, ref_high = stats.beta.ppf([0.025, 0.975], y + 0.5, n - y + 0.5)
        assert low == pytest.approx(min(ref_low, y / n), abs=0.002) and high == pytest.approx(ref_high, abs=0.002)
        assert sd > 0 and high > 0
    weighted = weighted_proportion_interval([20, 1], [60, 60], [300, 9700], seed=4)
    assert weighted[0] == pytest.approx(300 / 10_000 * 20 / 60 + 9700 / 10_000 * 1 / 60)
    assert weighted == weighted_proportion_interval([20, 1], [60, 60], [300, 9700], seed=4)
    finite = weighted_proportion_interval([20, 1], [60, 60], [80, 9700], corpus="finite")
    superpopulation = weighted_proportion_interval([20, 1], [60, 60], [80, 9700])
    assert finite[3] - finite[2] < superpopulation[3] - superpopulation[2]
    with pytest.raises(ImagesAsDataError, match="at least one sampled image"):
        weighted_proportion_interval([0], [0], [10])
