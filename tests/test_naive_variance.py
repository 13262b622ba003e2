"""corrected_glm's naive row offers glm()'s model-based standard errors as well as the sandwich: checked against
statsmodels' GLM, on overdispersed Poisson counts where the two differ (why R users see 0.129 vs 0.109)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import statsmodels.api as sm

from imagesasdata.analysis.estimators import corrected_glm
from imagesasdata.errors import ImagesAsDataError


def overdispersed(n=800, seed=5):
    rng = np.random.default_rng(seed)
    truth = rng.binomial(1, 0.3, n)
    predicted = np.where(rng.uniform(size=n) < 0.85, truth, 1 - truth)
    mean = np.exp(0.5 + 0.7 * truth)
    y = rng.negative_binomial(2, 2 / (2 + mean))           # variance well above the mean
    corpus = pa.table({"image_id": [f"i{k}" for k in range(n)], "y": y.tolist(), "protest": predicted.tolist()})
    coded = rng.choice(n, 150, replace=False)
    gold = pa.table({"image_id": [f"i{k}" for k in coded], "protest": truth[coded].tolist()})
    return corpus, gold, predicted, y


def test_naive_standard_errors_model_based_or_sandwich():
    corpus, gold, predicted, y = overdispersed()
    X = sm.add_constant(predicted.astype(float))
    reference = sm.GLM(y, X, family=sm.families.Poisson()).fit()
    model = corrected_glm("y ~ protest", corpus, gold, predicted="protest", family="poisson", design="srs", naive_variance="model")
    sandwich = corrected_glm("y ~ protest", corpus, gold, predicted="protest", family="poisson", design="srs")
    naive_model = [r for r in model.coefficients.to_pylist() if r["method"] == "naive"]
    naive_sandwich = [r for r in sandwich.coefficients.to_pylist() if r["method"] == "naive"]
    assert [r["estimate"] for r in naive_model] == pytest.approx(list(reference.params), rel=1e-6)
    assert [r["std_error"] for r in naive_model] == pytest.approx(list(reference.bse), rel=1e-5)
    hc0 = sm.GLM(y, X, family=sm.families.Poisson()).fit(cov_type="HC0")
    assert [r["std_error"] for r in naive_sandwich] == pytest.approx(list(hc0.bse), rel=1e-5)
    assert naive_sandwich[1]["std_error"] > 1.2 * naive_model[1]["std_error"]   # overdispersion: the sandwich is wider
    # the corrected and gold-only rows do not depend on the choice
    others = lambda fit: [r["std_error"] for r in fit.coefficients.to_pylist() if r["method"] != "naive"]
    assert others(model) == pytest.approx(others(sandwich))
    with pytest.raises(ImagesAsDataError, match="naive_variance"):
        corrected_glm("y ~ protest", corpus, gold, predicted="protest", naive_variance="robust", design="srs")
