"""The gold-sample planner against simulation (its foresight: draw gold samples of the planned size from a corpus
whose truth is known, and compare the intervals the estimators report with the planned width), and calibration to
the corpus (design-weighted temperature, prior shift) against hand computations on small tables."""

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import imagesasdata as iad
from imagesasdata.analysis.calibration import (adjust_priors, calibrate_to_corpus, calibration_record, confusion_priors,
                                               em_priors, fit_temperature, logits_from_probabilities, softmax)
from imagesasdata.analysis.planner import plan_gold_sample, spread
from imagesasdata.errors import ImagesAsDataError


def rare_class_corpus(n=20000, share=0.05, recall=0.8, false_positive=0.03, seed=0):
    """A corpus with a rare class ("protest", 5%) and a classifier of known error rates; the truth of every image."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < share, "protest", "other")
    right = rng.random(n)
    predicted = np.where(truth == "protest", np.where(right < recall, "protest", "other"),
                         np.where(right < false_positive, "protest", "other"))
    ids = [f"img{i:05d}" for i in range(n)]
    corpus = pa.table({"image_id": ids, "predicted": predicted.tolist(),
                       "account": np.where(rng.random(n) < 0.3, "a", "b").tolist()})
    return corpus, dict(zip(ids, truth.tolist()))


def coded(sample: pa.Table, truth: dict) -> pa.Table:
    return sample.append_column("label", pa.array([truth[i] for i in sample["image_id"].to_pylist()], pa.string()))


def design_row(plan, design):
    return plan.designs.filter(pc.equal(plan.designs["design"], design)).to_pylist()[0]


def realised_widths(corpus, truth, allocation, replications, strata="predicted"):
    widths = []
    for seed in range(replications):
        sample = iad.draw_gold_sample(corpus, None, strata=strata, allocation=allocation, seed=1000 + seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = iad.corrected_prevalence(corpus, coded(sample, truth), classes=["other", "protest"])
        row = [r for r in table.to_pylist() if r["method"] == "corrected" and r["class"] == "protest"][0]
        widths.append(row["conf_high"] - row["conf_low"])
    return np.array(widths)


def test_planned_width_foresees_the_realised_width_of_a_prevalence():
    corpus, truth = rare_class_corpus()
    # a balanced validation split (100 images of each class) with the classifier's error rates: its P(true | predicted)
    # is far from the corpus's, which the planner must undo with the corpus's predicted shares
    validation = pa.table({"truth": ["other", "other", "protest", "protest"],
                           "predicted": ["other", "protest", "other", "protest"], "count": [97, 3, 20, 80]})
    plan = plan_gold_sample(corpus, target_width=0.03, validation=validation, target_class="protest")
    assert plan.designs["design"].to_pylist() == ["srs", "proportional", "neyman", "equal"]
    for row in plan.designs.to_pylist():
        assert row["reaches_target"] and row["expected_width"] <= 0.03
        # one image fewer would not reach it: the size is the smallest
        assert row["gold_size"] == sum(plan.allocation(row["design"]).values())
    assert plan.recommended == "neyman"   # Neyman's allocation needs the fewest images for a given variance
    assert design_row(plan, "neyman")["gold_size"] < design_row(plan, "equal")["gold_size"]
    assert design_row(plan, "neyman")["gold_size"] < design_row(plan, "srs")["gold_size"]
    assert set(plan.curve["design"].to_pylist()) == set(plan.designs["design"].to_pylist())
    # foresight: gold samples of the planned allocation, drawn from the corpus with known truth and estimated as a user
    # would, give intervals whose average width is the planned one (Monte Carlo over 25 samples; the planned error
    # rates come from 200 validation images, so a generous margin of 20%)
    for design in ("neyman", "equal"):
        widths = realised_widths(corpus, truth, plan.allocation(design), 25)
        planned = design_row(plan, design)["expected_width"]
        assert widths.mean() == pytest.approx(planned, rel=0.2), design


def test_plan_from_a_first_wave_and_by_a_metadata_column():
    corpus, truth = rare_class_corpus(seed=3)
    first = coded(iad.draw_gold_sample(corpus, 150, strata="predicted", allocation="equal", seed=5), truth)
    plan = plan_gold_sample(corpus, target_width=0.04, gold=first, strata="account")
    assert plan.target == "prevalence of protest"   # two classes: the positive one by the engine's rule
    assert "first wave (150 gold images" in plan.source
    assert {r["stratum"] for r in plan.allocations.to_pylist()} == {"a", "b", "all"}
    assert any("same in every 'account' stratum" in a for a in plan.assumptions)
    # a stratum that is not the predicted class does not separate the rare class: gold-only is as wide as corrected
    # only where the predictions add nothing; here they add much
    neyman = design_row(plan, "neyman")
    assert neyman["gold_only_width"] > neyman["expected_width"]
    widths = realised_widths(corpus, truth, plan.allocation("neyman"), 15, strata="account")
    assert widths.mean() == pytest.approx(neyman["expected_width"], rel=0.25)


def test_plan_for_a_coefficient_foresees_the_corrected_glm_width():
    rng = np.random.default_rng(1)
    n = 5000
    truth = (rng.random(n) < 0.3).astype(float)
    z = rng.normal(size=n)
    y = 1 + 0.5 * truth + 0.3 * z + rng.normal(size=n)
    predicted = np.where(rng.random(n) < 0.85, truth, 1 - truth)
    corpus = pa.table({"image_id": [f"i{i}" for i in range(n)], "y": y, "z": z, "protest": predicted})

    def gold(rows):
        return pa.table({"image_id": [f"i{i}" for i in rows], "protest": truth[rows]})

    fit = iad.corrected_glm("y ~ protest + z", corpus, gold(rng.choice(n, 150, replace=False)), predicted=["protest"],
                            design="srs")
    plan = plan_gold_sample(target_width=0.3, fit=fit, term="protest")
    row = design_row(plan, "srs")
    assert row["reaches_target"] and row["expected_width"] <= 0.3 < row["gold_only_width"]
    # the same covariance expected_std_errors() foresees
    expected = fit.expected_std_errors([row["gold_size"]]).to_pylist()
    se = [r["expected_std_error"] for r in expected if r["term"] == "protest"][0]
    assert row["expected_width"] == pytest.approx(2 * 1.959964 * se, rel=1e-6)
    widths = []
    for seed in range(20):
        rows = np.random.default_rng(100 + seed).choice(n, row["gold_size"], replace=False)
        refit = iad.corrected_glm("y ~ protest + z", corpus, gold(rows), predicted=["protest"], design="srs")
        term = [r for r in refit.tidy("corrected").to_pylist() if r["term"] == "protest"][0]
        widths.append(term["conf_high"] - term["conf_low"])
    assert np.mean(widths) == pytest.approx(row["expected_width"], rel=0.2)
    # a target below what the corpus's own variance allows cannot be reached, and says so
    unreachable = design_row(plan_gold_sample(target_width=0.01, fit=fit, term="protest"), "srs")
    assert not unreachable["reaches_target"] and "corpus's own sampling variance" in unreachable["note"]


def test_spread_and_planner_errors():
    assert spread(10, [0.5, 0.3, 0.2], [100, 100, 100], minimum=0).tolist() == [5, 3, 2]
    assert spread(10, [0.5, 0.3, 0.2], [100, 100, 100]).tolist() == [4, 3, 3]      # 2 each, then the rest
    assert spread(10, [0.9, 0.1, 0.0], [3, 100, 100]).tolist() == [3, 5, 2]   # capped, then the rest; 2 at least
    corpus, _ = rare_class_corpus(n=500)
    with pytest.raises(ImagesAsDataError, match="either gold= .* or validation="):
        plan_gold_sample(corpus, target_width=0.05)
    with pytest.raises(ImagesAsDataError, match="target_width"):
        plan_gold_sample(corpus, target_width=0, validation=pa.table({"truth": ["a"], "predicted": ["a"], "count": [1]}))
    validation = pa.table({"truth": ["other", "protest"], "predicted": ["other", "protest"], "count": [9, 9]})
    with pytest.raises(ImagesAsDataError, match="target_class='riot'"):
        plan_gold_sample(corpus, target_width=0.05, validation=validation, target_class="riot")
    with pytest.raises(ImagesAsDataError, match="designs"):
        plan_gold_sample(corpus, target_width=0.05, validation=validation, designs=["cluster"])


# ------------------------------------------------------------------------------------------ calibration to the corpus

def test_weighted_temperature_equals_the_fit_on_repeated_images():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(60, 3)) * 3
    labels = rng.integers(0, 3, size=60)
    weights = rng.integers(1, 4, size=60)
    weighted = fit_temperature(logits, labels, weights=weights)
    repeated = fit_temperature(np.repeat(logits, weights, axis=0), np.repeat(labels, weights))
    assert weighted["temperature"] == pytest.approx(repeated["temperature"], rel=1e-9)
    assert weighted["nll_after"] == pytest.approx(repeated["nll_after"], rel=1e-9)
    with pytest.raises(ImagesAsDataError, match="weight"):
        fit_temperature(logits, labels, weights=np.zeros(60))


def test_prior_shift_by_hand():
    # Bayes' rule: p' ∝ p · π'/π; [0.6, 0.4] from balanced training to a corpus of 20/80: [0.12, 0.32] / 0.44
    adjusted = adjust_priors([[0.6, 0.4], [0.5, 0.5]], [0.5, 0.5], [0.2, 0.8])
    assert adjusted[0] == pytest.approx([0.12 / 0.44, 0.32 / 0.44])
    assert adjusted[1] == pytest.approx([0.2, 0.8])
    # EM's first step is the mean of the unadjusted probabilities; its fixed point reproduces itself
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert em_priors(p, [0.5, 0.5], max_iterations=1)["priors"] == pytest.approx([0.6, 0.4])
    fixed = em_priors(p, [0.5, 0.5])
    assert fixed["converged"]
    assert adjust_priors(p, [0.5, 0.5], fixed["priors"]).mean(0) == pytest.approx(fixed["priors"], abs=1e-7)
    # the adjusted count: q = Cᵀπ with C = [[.9, .1], [.2, .8]] and π = (.3, .7) gives q = (.41, .59)
    assert confusion_priors([[0.9, 0.1], [0.2, 0.8]], [0.41, 0.59]) == pytest.approx([0.3, 0.7], abs=1e-9)
    with pytest.raises(ImagesAsDataError, match="source_priors"):
        adjust_priors([[0.6, 0.4]], [1.0, 0.0], [0.5, 0.5])


def test_calibrate_to_corpus_records_what_it_did():
    rng = np.random.default_rng(11)
    n = 400
    first = rng.random(n)
    corpus = pa.table({"image_id": [f"i{i}" for i in range(n)],
                       "predicted": np.where(first > 0.5, "cat", "dog").tolist(),
                       "prob_cat": first, "prob_dog": 1 - first})
    # a known corpus share: the network was trained on balanced classes, the corpus is 10% cats
    shifted = calibrate_to_corpus(corpus, prior_shift={"cat": 0.1, "dog": 0.9}, source_priors={"cat": 0.5, "dog": 0.5})
    expected = adjust_priors(np.column_stack([first, 1 - first]), [0.5, 0.5], [0.1, 0.9])
    assert shifted["prob_cat"].to_numpy() == pytest.approx(expected[:, 0])
    changed = int(((first > 0.5) & (expected[:, 0] <= 0.5)).sum())
    record = calibration_record(shifted)
    assert record["prior_shift"] == "given" and record["changed_predictions"] == changed > 0
    assert record["corpus_priors"] == pytest.approx({"cat": 0.1, "dog": 0.9})
    assert shifted["predicted_before"].to_pylist() == corpus["predicted"].to_pylist()
    # a temperature fitted on a stratified gold sample, each image weighted 1/π
    gold = pa.table({"image_id": [f"i{i}" for i in range(40)],
                     "label": ["cat" if (first[i] > 0.5) == (i % 4 != 0) else "dog" for i in range(40)],
                     "inclusion_probability": [0.25 if i % 2 else 0.05 for i in range(40)]})
    calibrated = calibrate_to_corpus(corpus, gold=gold, temperature="gold")
    by_hand = fit_temperature(logits_from_probabilities(np.column_stack([first[:40], 1 - first[:40]])),
                              np.array([0 if v == "cat" else 1 for v in gold["label"].to_pylist()]),
                              weights=1 / np.array(gold["inclusion_probability"].to_pylist()))
    record = calibration_record(calibrated)
    assert record["temperature"] == pytest.approx(by_hand["temperature"])
    assert record["temperature_fitted_on"] == "gold (design-weighted)"
    assert calibrated["prob_cat"].to_numpy() == pytest.approx(
        softmax(logits_from_probabilities(np.column_stack([first, 1 - first])), by_hand["temperature"])[:, 0])
    with pytest.raises(ImagesAsDataError, match="need the coded gold sample"):
        calibrate_to_corpus(corpus, temperature="gold")
    with pytest.raises(ImagesAsDataError, match="no design|inclusion_probability"):
        calibrate_to_corpus(corpus, gold=gold.drop_columns(["inclusion_probability"]), prior_shift="gold",
                            source_priors={"cat": 0.5, "dog": 0.5})


def test_plan_gold_and_learning_curve_at_the_command_line(tmp_path):
    from cli_runner import run

    corpus, truth = rare_class_corpus(n=3000, seed=2)
    import pyarrow.parquet as pq

    pq.write_table(corpus, tmp_path / "labels.parquet")
    pq.write_table(pa.table({"split": ["val"] * 4, "truth": ["other", "other", "protest", "protest"],
                             "predicted": ["other", "protest", "other", "protest"], "count": [97, 3, 20, 80]}),
                   tmp_path / "confusion.parquet")
    result = run("plan-gold", tmp_path / "labels.parquet", "--validation", tmp_path / "confusion.parquet",
                 "--target-width", "0.05", "--target-class", "protest", "--out", tmp_path / "plan.csv")
    assert "prevalence of protest, 95% interval 0.05 wide" in result.stdout and "neyman" in result.stdout
    plan = plan_gold_sample(corpus, target_width=0.05, validation=pq.read_table(tmp_path / "confusion.parquet"),
                            target_class="protest")
    from imagesasdata.io.tables import to_arrow

    assert to_arrow(tmp_path / "plan.csv")["gold_images"].to_pylist() == plan.allocations["gold_images"].to_pylist()
    bad = run("learning-curve", tmp_path, "--out", tmp_path / "curve", "--fractions", "0.5,x", check=False)
    assert bad.returncode != 0 and "--fractions" in bad.stderr


def test_a_calibrated_corpus_says_so_in_the_estimates(tmp_path):
    """calibrate_to_corpus()'s record travels with the table: into a Parquet file, through the command line, and
    into corrected_glm()'s notes and glance() and corrected_prevalence()'s metadata (the reviewer sees it)."""
    import pyarrow.parquet as pq

    from cli_runner import run

    rng = np.random.default_rng(5)
    n = 3000
    truth = np.where(rng.random(n) < 0.1, "cat", "dog")
    score = np.clip(np.where(truth == "cat", 0.75, 0.3) + rng.normal(0, 0.2, n), 0.01, 0.99)
    ids = [f"i{i}" for i in range(n)]
    corpus = pa.table({"image_id": ids, "predicted": np.where(score > 0.5, "cat", "dog").tolist(),
                       "prob_cat": score, "prob_dog": 1 - score,
                       "likes": (rng.poisson(3, n) + 2 * (truth == "cat")).astype(float)})
    chosen = rng.choice(n, 300, replace=False)
    gold = pa.table({"image_id": [ids[i] for i in chosen], "label": truth[chosen].tolist(),
                     "inclusion_probability": [300 / n] * 300})
    calibrated = calibrate_to_corpus(corpus, gold=gold, temperature="gold", prior_shift="gold",
                                     source_priors={"cat": 0.5, "dog": 0.5})
    record = calibration_record(calibrated)
    assert record["temperature_fitted_on"] == "gold (design-weighted)" and record["prior_shift"] == "gold"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = iad.corrected_glm("likes ~ I(predicted == 'cat')", calibrated, gold, predicted="predicted")
        plain = iad.corrected_glm("likes ~ I(predicted == 'cat')", corpus, gold, predicted="predicted")
        shares = iad.corrected_prevalence(calibrated, gold)
    note = [n for n in fit.notes if n.startswith("probabilities calibrated to the corpus")]
    assert len(note) == 1 and "fitted on the gold sample" in note[0] and "temperature" in note[0]
    assert fit.glance()["calibration"].to_pylist() == note
    assert plain.glance()["calibration"].to_pylist() == [None]
    assert not any(n.startswith("probabilities calibrated") for n in plain.notes)
    assert calibration_record(shares) == record
    # the command line: written to Parquet with its record, then read by glm
    pq.write_table(corpus, tmp_path / "labels.parquet")
    pq.write_table(gold, tmp_path / "gold.parquet")
    result = run("calibrate-corpus", tmp_path / "labels.parquet", "--gold", tmp_path / "gold.parquet",
                 "--temperature", "gold", "--out", tmp_path / "calibrated.parquet")
    assert "temperature" in result.stdout and "fitted on gold (design-weighted)" in result.stdout
    expected = calibration_record(calibrate_to_corpus(corpus, gold=gold, temperature="gold"))["temperature"]
    assert calibration_record(pq.read_table(tmp_path / "calibrated.parquet"))["temperature"] == pytest.approx(expected)
    glm = run("glm", tmp_path / "calibrated.parquet", tmp_path / "gold.parquet", "--formula",
              "likes ~ I(predicted == 'cat')", "--predicted", "predicted")
    assert "note: probabilities calibrated to the corpus" in glm.stdout
    bad = run("calibrate-corpus", tmp_path / "labels.parquet", "--prior-shift", "cat=x",
              "--out", tmp_path / "x.parquet", check=False)
    assert bad.returncode != 0 and "--prior-shift" in bad.stderr
