"""Corrected estimation with predicted labels: equal to ppi-python where ppi-python covers the case, exact in the
limiting cases of the DSL M-estimator, equal to statsmodels for the naive and gold-only fits, and honest in a
seeded coverage simulation (the full 1,000 replications are in benchmarks/inference_coverage.py)."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from imagesasdata.analysis.estimators import corrected_glm, corrected_prevalence
from imagesasdata.errors import ImagesAsDataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from inference_coverage import replicate, simulate  # noqa: E402


def arrays(corpus, gold, formula_terms, outcome):
    """ppi-python's inputs built by hand: X and Y on the gold images, X and Yhat on the other corpus images."""
    ids = corpus["image_id"].to_pylist()
    gold_ids = set(gold["image_id"].to_pylist())
    position = {i: k for k, i in enumerate(ids)}
    rows = np.array([position[i] for i in gold["image_id"].to_pylist()])
    others = np.array([k for k, i in enumerate(ids) if i not in gold_ids])
    X = np.column_stack([np.ones(corpus.num_rows)] + [np.asarray(corpus[t].to_pylist(), float) for t in formula_terms])
    y_hat = np.asarray(corpus[outcome].to_pylist(), float)
    y = np.asarray(gold[outcome].to_pylist(), float)
    return X[rows], y, y_hat[rows], X[others], y_hat[others]


@pytest.mark.parametrize("lam", [None, 0.5, 1.0])
@pytest.mark.parametrize("family", ["gaussian", "binomial", "poisson"])
def test_predicted_outcome_equals_ppi_python(family, lam):
    import ppi_py

    rng = np.random.default_rng(7)
    n, size = 3000, 300
    z = rng.normal(size=n)
    if family == "gaussian":
        truth = 1 + 0.5 * z + rng.normal(size=n)
        prediction = truth + rng.normal(0.3, 0.8, size=n)
    elif family == "binomial":
        truth = (rng.random(n) < 1 / (1 + np.exp(1 - 0.8 * z))).astype(float)
        prediction = np.where(rng.random(n) < 0.85, truth, 1 - truth)
    else:
        truth = rng.poisson(np.exp(0.3 + 0.4 * z)).astype(float)
        prediction = np.maximum(0, truth + rng.integers(-1, 2, size=n))
    ids = [f"i{k}" for k in range(n)]
    corpus = pa.table({"image_id": ids, "y": prediction, "z": z})
    chosen = rng.choice(n, size, replace=False)
    gold = pa.table({"image_id": [ids[k] for k in chosen], "y": truth[chosen]})
    fit = corrected_glm("y ~ z", corpus, gold, predicted="y", family=family, lam=lam)
    assert fit.corrected_method.endswith("(ppi-python)")
    X, Y, Yhat, X_u, Yhat_u = arrays(corpus, gold, ["z"], "y")
    function = {"gaussian": ppi_py.ppi_ols_ci, "binomial": ppi_py.ppi_logistic_ci, "poisson": ppi_py.ppi_poisson_ci}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low, high = function[family](X, Y, Yhat, X_u, Yhat_u, alpha=0.05, lam=lam)
    corrected = fit.tidy("corrected").to_pylist()
    assert [r["conf_low"] for r in corrected] == pytest.approx(list(low), abs=1e-6)
    assert [r["conf_high"] for r in corrected] == pytest.approx(list(high), abs=1e-6)
    if lam is not None:  # with λ fixed, ppi-python's point estimate is the interval's centre
        point = {"gaussian": ppi_py.ppi_ols_pointestimate, "binomial": ppi_py.ppi_logistic_pointestimate,
                 "poisson": ppi_py.ppi_poisson_pointestimate}[family](X, Y, Yhat, X_u, Yhat_u, lam=lam)
        assert [r["estimate"] for r in corrected] == pytest.approx(list(point), abs=1e-6)


@pytest.mark.parametrize("lam", [None, 0.3])
def test_prevalence_equals_ppi_python_mean(lam):
    import ppi_py

    rng = np.random.default_rng(3)
    n = 4000
    truth = np.where(rng.random(n) < 0.25, "protest", "other")
    predicted = np.where(rng.random(n) < 0.85, truth, np.where(truth == "protest", "other", "protest"))
    ids = np.array([f"i{k}" for k in range(n)])
    chosen = rng.choice(n, 250, replace=False)
    corpus = pa.table({"image_id": ids, "predicted": predicted})
    gold = pa.table({"image_id": ids[chosen], "label": truth[chosen]})
    table = corrected_prevalence(corpus, gold, lam=lam)
    others = np.setdiff1d(np.arange(n), chosen)
    for c in ("other", "protest"):
        low, high = ppi_py.ppi_mean_ci((truth[chosen] == c).astype(float), (predicted[chosen] == c).astype(float),
                                       (predicted[others] == c).astype(float), alpha=0.05, lam=lam)
        row = [r for r in table.to_pylist() if r["class"] == c and r["method"] == "corrected"][0]
        assert (row["conf_low"], row["conf_high"]) == pytest.approx((float(low[0]), float(high[0])), abs=1e-6)
        naive = [r for r in table.to_pylist() if r["class"] == c and r["method"] == "naive"][0]
        assert naive["estimate"] == pytest.approx(np.mean(predicted == c))
        gold_only = [r for r in table.to_pylist() if r["class"] == c and r["method"] == "gold_only"][0]
        assert gold_only["estimate"] == pytest.approx(np.mean(truth[chosen] == c))
        assert naive["n_corpus"] == n and naive["n_gold"] == 250


def regressor_data(rng, perfect=False):
    corpus, gold, formula, family, _ = simulate("regressor", rng, 2000, 250)
    if perfect:  # the classifier is always right: predictions equal the truth on every image
        truth = {i: v for i, v in zip(gold["image_id"].to_pylist(), gold["label"].to_pylist())}
        labels = [truth.get(i, v) for i, v in zip(corpus["image_id"].to_pylist(), corpus["label"].to_pylist())]
        corpus = corpus.set_column(corpus.column_names.index("label"), "label", pa.array(labels))
    return corpus, gold, formula, family


def test_dsl_limits_and_statsmodels_references():
    import statsmodels.api as sm

    rng = np.random.default_rng(21)
    corpus, gold, formula, family = regressor_data(rng, perfect=True)
    # perfect predictions: with λ = 1 the correction has nothing to correct and the result is the naive fit
    fit = corrected_glm(formula, corpus, gold, predicted="label", method="dsl", lam=1)
    naive, corrected = fit.tidy("naive").to_pylist(), fit.tidy("corrected").to_pylist()
    for a, b in zip(naive, corrected):
        assert b["estimate"] == pytest.approx(a["estimate"], abs=1e-8)
        assert b["std_error"] == pytest.approx(a["std_error"], abs=1e-8)
    # and tuning λ (per coefficient) trusts such predictions almost fully (its optimum is 1 in expectation; a
    # sample of 250 gold images moves it by a few hundredths)
    tuned = corrected_glm(formula, corpus, gold, predicted="label", method="dsl").tidy("corrected")
    assert min(tuned["lambda"].to_pylist()) > 0.9
    corpus, gold, formula, family = regressor_data(rng)
    # λ = 0: only the gold sample counts, weighted by 1/π
    fit = corrected_glm(formula, corpus, gold, predicted="label", method="dsl", lam=0)
    for a, b in zip(fit.tidy("gold_only").to_pylist(), fit.tidy("corrected").to_pylist()):
        assert b["estimate"] == pytest.approx(a["estimate"], abs=1e-8)
        assert b["std_error"] == pytest.approx(a["std_error"], rel=1e-8)
    # naive and gold-only are statsmodels' GLM with HC0 (robust) standard errors
    X = np.column_stack([np.ones(corpus.num_rows), corpus["label"].to_numpy(), corpus["z"].to_numpy()])
    reference = sm.GLM(corpus["y"].to_numpy(), X, family=sm.families.Gaussian()).fit(cov_type="HC0")
    assert [r["estimate"] for r in fit.tidy("naive").to_pylist()] == pytest.approx(list(reference.params), abs=1e-8)
    assert [r["std_error"] for r in fit.tidy("naive").to_pylist()] == pytest.approx(list(reference.bse), abs=1e-8)
    position = {i: k for k, i in enumerate(corpus["image_id"].to_pylist())}
    rows = np.array([position[i] for i in gold["image_id"].to_pylist()])
    X_gold = np.column_stack([np.ones(len(rows)), gold["label"].to_numpy(), corpus["z"].to_numpy()[rows]])
    reference = sm.GLM(corpus["y"].to_numpy()[rows], X_gold, family=sm.families.Gaussian(),
                       var_weights=1 / gold["inclusion_probability"].to_numpy()).fit(cov_type="HC0")
    assert [r["estimate"] for r in fit.tidy("gold_only").to_pylist()] == pytest.approx(list(reference.params), abs=1e-8)
    assert [r["std_error"] for r in fit.tidy("gold_only").to_pylist()] == pytest.approx(list(reference.bse), abs=1e-8)
    assert fit.tidy().column_names == ["term", "method", "estimate", "std_error", "statistic", "p_value", "conf_low",
                                       "conf_high", "lambda"]
    assert fit.tidy("corrected")["lambda"].to_pylist() == [0.0] * 3 and fit.tidy("naive")["lambda"].null_count == 3
    assert fit.glance().to_pylist()[0]["n_gold"] == 250


def test_weighted_gold_only_poisson_equals_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    corpus, gold, formula, family, _ = simulate("stratified", rng, 3000, 300)
    fit = corrected_glm(formula, corpus, gold, predicted="label", family=family)
    assert fit.corrected_method.startswith("DSL") and "unequal" in fit.design
    position = {i: k for k, i in enumerate(corpus["image_id"].to_pylist())}
    rows = np.array([position[i] for i in gold["image_id"].to_pylist()])
    X = np.column_stack([np.ones(len(rows)), gold["label"].to_numpy(), corpus["z"].to_numpy()[rows]])
    reference = sm.GLM(corpus["y"].to_numpy()[rows], X, family=sm.families.Poisson(),
                       var_weights=1 / gold["inclusion_probability"].to_numpy()).fit(cov_type="HC0")
    gold_only = fit.tidy("gold_only").to_pylist()
    assert [r["estimate"] for r in gold_only] == pytest.approx(list(reference.params), abs=1e-7)
    assert [r["std_error"] for r in gold_only] == pytest.approx(list(reference.bse), rel=1e-6)


# Coverage at small size. Each scenario is seeded, and its predictions are simulated from the true labels (no
# training), so the counts below are the same on any machine. With 200 replications and a true coverage of 95%,
# the share of covering intervals is binomial with standard deviation 1.5 points: 0.88–0.995 is more than four of
# them either side. The naive interval is centred on a biased estimate and covers far less (its bias is several of
# its standard errors here); the corrected interval is narrower than the gold-only one because it also uses the
# corpus's predictions.

def test_tuning_each_coefficient_never_loses_to_the_gold_sample_alone():
    """With λ tuned per coefficient, each corrected standard error is at most the gold-only one (λ = 0 is one of the
    candidates; the tuning estimates its optimum from the same data, so allow a few percent of estimation noise)."""
    rng = np.random.default_rng(31)
    for scenario in ("regressor", "stratified", "outcome"):
        corpus, gold, formula, family, _ = simulate(scenario, rng, 2000, 120)
        fit = corrected_glm(formula, corpus, gold, predicted="label", family=family, method="dsl")
        for g, c in zip(fit.tidy("gold_only").to_pylist(), fit.tidy("corrected").to_pylist()):
            assert c["std_error"] <= 1.05 * g["std_error"], (scenario, g, c)
            assert 0 <= c["lambda"] <= 1


@pytest.mark.parametrize("scenario, method", [("regressor", "auto"), ("outcome", "dsl"), ("stratified", "auto")])
def test_corrected_intervals_cover_the_truth(scenario, method):
    result = replicate(scenario, 200, corpus_size=2000, gold_size=250, seed=11, method=method)
    assert 0.80 <= result["accuracy"] <= 0.92  # the classifier the issue describes
    assert 0.88 <= result["corrected"]["coverage"] <= 0.995, result
    assert result["naive"]["coverage"] < 0.6, result
    assert abs(result["naive"]["bias"]) > 3 * abs(result["corrected"]["bias"]), result
    assert result["corrected"]["width"] < 0.95 * result["gold_only"]["width"], result


def test_ppi_path_covers_a_predicted_outcome():
    """The default path for a predicted outcome (PPI++ in ppi-python), 100 replications: binomial standard deviation
    2.2 points, so 0.86–1.0 is four of them below 95%."""
    result = replicate("outcome", 100, corpus_size=2000, gold_size=250, seed=12, method="auto")
    assert result["corrected_by"] == "PPI++ (ppi-python)"
    assert 0.86 <= result["corrected"]["coverage"] <= 1.0, result
    assert result["naive"]["coverage"] < 0.4, result


def small_case():
    rng = np.random.default_rng(1)
    corpus, gold, formula, family, _ = simulate("regressor", rng, 500, 60)
    return corpus, gold, formula


def test_bad_input_gets_clear_errors():
    corpus, gold, formula = small_case()
    with pytest.raises(ImagesAsDataError, match=r"formula names 'retweets'.*corpus does not have"):
        corrected_glm("retweets ~ label + z", corpus, gold, predicted="label")
    with pytest.raises(ImagesAsDataError, match="gold images not in the corpus: nope"):
        bad = pa.concat_tables([gold, pa.table({"image_id": ["nope"], "label": [1.0], "inclusion_probability": [0.1]})])
        corrected_glm(formula, corpus, bad, predicted="label")
    with pytest.raises(ImagesAsDataError, match="has 3 coded images.*draw_gold_sample"):
        corrected_glm(formula, corpus, gold.slice(0, 3), predicted="label")
    with pytest.raises(ImagesAsDataError, match="inclusion probabilities must lie in"):
        zero = gold.set_column(2, "inclusion_probability", pa.array([0.0] + [0.12] * (gold.num_rows - 1)))
        corrected_glm(formula, corpus, zero, predicted="label")
    with pytest.raises(ImagesAsDataError, match="which the formula does not use"):
        corrected_glm(formula, corpus, gold, predicted="shows_protest")
    with pytest.raises(ImagesAsDataError, match="no column 'z'"):
        corrected_glm(formula, corpus, gold, predicted=["label", "z"])
    with pytest.raises(ImagesAsDataError, match="family='logit'"):
        corrected_glm(formula, corpus, gold, predicted="label", family="logit")
    with pytest.raises(ImagesAsDataError, match="method='ppi'.*predicted regressor"):
        corrected_glm(formula, corpus, gold, predicted="label", method="ppi")
    with pytest.raises(ImagesAsDataError, match="binomial.*between 0 and 1"):
        corrected_glm("y ~ z", corpus, gold.append_column("y", pa.array([2.0] * gold.num_rows)), predicted="y",
                      family="binomial")
    with pytest.raises(ImagesAsDataError, match="cannot be read"):
        corrected_glm("y ~ (z", corpus, gold, predicted="label")
    with pytest.raises(ImagesAsDataError, match="has 3 coded images"):
        corrected_prevalence(pa.table({"image_id": ["a", "b", "c"], "predicted": ["x", "y", "x"]}),
                             pa.table({"image_id": ["a", "b", "c"], "label": ["x", "x", "y"]}))


def test_predict_output_and_a_coding_sheet_work_as_they_are():
    """A coding sheet's `label` is the truth of the corpus's `predicted`; its own `predicted` is the prediction."""
    rng = np.random.default_rng(2)
    n = 1500
    truth = np.where(rng.random(n) < 0.3, "protest", "other")
    predicted = np.where(rng.random(n) < 0.85, truth, np.where(truth == "protest", "other", "protest"))
    retweets = rng.poisson(np.exp(1 + 0.6 * (truth == "protest")))
    ids = np.array([f"i{k}" for k in range(n)])
    chosen = rng.choice(n, 200, replace=False)
    corpus = pa.table({"image_id": ids, "predicted": predicted, "retweets": retweets})
    gold = pa.table({"image_id": ids[chosen], "label": truth[chosen], "predicted": predicted[chosen],
                     "inclusion_probability": [200 / n] * 200})
    fit = corrected_glm("retweets ~ I(predicted == 'protest')", corpus, gold, predicted="predicted", family="poisson")
    indicator = pa.table({"image_id": ids, "protest": (predicted == "protest").astype(float), "retweets": retweets})
    gold_indicator = pa.table({"image_id": ids[chosen], "protest": (truth[chosen] == "protest").astype(float),
                               "inclusion_probability": [200 / n] * 200})
    same = corrected_glm("retweets ~ protest", indicator, gold_indicator, predicted="protest", family="poisson")
    for a, b in zip(fit.tidy().to_pylist(), same.tidy().to_pylist()):
        assert a["estimate"] == pytest.approx(b["estimate"], abs=1e-9) and a["method"] == b["method"]
    assert "corrected" in repr(fit) and "I(predicted == 'protest')[T.True]" in fit.tidy()["term"].to_pylist()


def test_prevalence_by_group_and_thin_groups():
    rng = np.random.default_rng(8)
    n = 3000
    day = np.where(rng.random(n) < 0.5, "before", "after")
    truth = np.where(rng.random(n) < np.where(day == "after", 0.4, 0.2), "angry", "calm")
    predicted = np.where(rng.random(n) < 0.85, truth, np.where(truth == "angry", "calm", "angry"))
    ids = np.array([f"i{k}" for k in range(n)])
    chosen = rng.choice(n, 300, replace=False)
    corpus = pa.table({"image_id": ids, "predicted": predicted, "day": day})
    gold = pa.table({"image_id": ids[chosen], "label": truth[chosen]})
    table = corrected_prevalence(corpus, gold, by="day", classes=["angry", "calm"])
    assert table.column_names[:3] == ["day", "class", "method"]
    assert table.num_rows == 2 * 2 * 3
    for g in ("before", "after"):
        row = [r for r in table.to_pylist() if r["day"] == g and r["class"] == "angry" and r["method"] == "naive"][0]
        assert row["estimate"] == pytest.approx(np.mean(predicted[day == g] == "angry"))
        assert row["n_gold"] == int(np.sum(day[chosen] == g))
    rare = np.where(np.arange(n) < 20, "rare_day", day)
    with pytest.warns(UserWarning, match="fewer than 10 gold images"):
        table = corrected_prevalence(corpus.set_column(2, "day", pa.array(rare)), gold, by="day")
    rare_rows = [r for r in table.to_pylist() if r["day"] == "rare_day"]
    assert all(r["estimate"] is None for r in rare_rows if r["method"] != "naive")
