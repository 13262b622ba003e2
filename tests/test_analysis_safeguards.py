"""The safeguards a methods reviewer asks for (issues 20 and 21), each on a case that today's main gets silently
wrong: a gold table that does not say how it was drawn, gold codes outside the predictions' coding, degenerate
intervals printed as results, inf and text where numbers belong, a design-weighted subgroup audit, one numbering
rule for coding-sheet errors, and top-ups on the record.

Corpora are the ORL faces' real image ids (people s1–s40, photos 1–10) with predictions simulated from the folder
(no training); the training-image check is in test_analysis_workflow.py, which has a real run."""

import json
import warnings

import numpy as np
import pyarrow as pa
import pytest

from imagesasdata.analysis.estimators import corrected_glm, corrected_prevalence
from imagesasdata.analysis.gold import (draw_gold_sample, gold_metrics, inclusion_probabilities, read_coding_sheet,
                                        write_coding_sheet)
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.io.tables import to_arrow, write_table
from imagesasdata.measure.subgroups import subgroup_metrics


@pytest.fixture(scope="module")
def faces(orl_faces):
    """400 real image ids; 'protest' = people s1–s8 (20%); an 85%-accurate prediction; a metadata group."""
    ids = np.array(sorted(str(p.relative_to(orl_faces)) for p in orl_faces.glob("s*/*.pgm")))
    person = np.array([int(i.split("/")[0][1:]) for i in ids])
    rng = np.random.default_rng(17)
    truth = person <= 8
    predicted = np.where(rng.random(len(ids)) < 0.85, truth, ~truth)
    z = rng.normal(size=len(ids))
    y = 1 + 0.5 * truth + 0.3 * z + rng.normal(size=len(ids))
    group = np.where(person % 3 == 0, "news", "private")
    return {"ids": ids, "truth": truth, "predicted": predicted, "z": z, "y": y, "group": group, "path": orl_faces}


def regression(faces, rows):
    corpus = pa.table({"image_id": faces["ids"], "y": faces["y"], "z": faces["z"],
                       "protest": faces["predicted"].astype(float)})
    gold = pa.table({"image_id": faces["ids"][rows], "protest": faces["truth"][rows].astype(float)})
    return corpus, gold


def test_a_gold_table_without_inclusion_probabilities_is_refused_unless_declared_srs(faces):
    rows = np.random.default_rng(1).choice(400, 120, replace=False)
    corpus, gold = regression(faces, rows)
    with pytest.raises(ImagesAsDataError, match="no 'inclusion_probability' column.*design='srs'"):
        corrected_glm("y ~ protest + z", corpus, gold, predicted="protest")
    fit = corrected_glm("y ~ protest + z", corpus, gold, predicted="protest", design="srs")
    assert fit.design == "simple random sample" and fit.n_gold == 120
    labels = pa.table({"image_id": faces["ids"], "predicted": np.where(faces["predicted"], "protest", "other")})
    coded = pa.table({"image_id": faces["ids"][rows], "label": np.where(faces["truth"][rows], "protest", "other"),
                      "predicted": np.where(faces["predicted"][rows], "protest", "other")})
    with pytest.raises(ImagesAsDataError, match="design='srs'"):
        corrected_prevalence(labels, coded)
    with pytest.raises(ImagesAsDataError, match="design='srs'"):
        gold_metrics(coded)
    assert corrected_prevalence(labels, coded, design="srs").num_rows == 6
    assert gold_metrics(coded, design="srs").num_rows > 0
    # a declared simple random sample must not be a stratified one
    stratified = gold.append_column("inclusion_probability", pa.array(np.where(np.arange(120) < 60, 0.1, 0.5)))
    with pytest.raises(ImagesAsDataError, match="design='srs' declares a simple random sample"):
        corrected_glm("y ~ protest + z", corpus, stratified, predicted="protest", design="srs")
    with pytest.raises(ImagesAsDataError, match="design='random'"):
        corrected_glm("y ~ protest + z", corpus, gold, predicted="protest", design="random")


def test_gold_values_outside_the_predictions_coding_are_an_error_naming_the_rows(faces):
    rows = np.random.default_rng(2).choice(400, 120, replace=False)
    corpus, gold = regression(faces, rows)
    gold = gold.append_column("inclusion_probability", pa.array([0.3] * 120))
    codes = gold["protest"].to_numpy().copy()
    codes[[4, 9]] = 7.0  # the case: a 0/1 regressor coded 7
    bad = gold.set_column(1, "protest", pa.array(codes))
    with pytest.raises(ImagesAsDataError, match=rf"gold values of 'protest' outside what the predictions take \(0/1\): "
                                                rf"row 5 \({faces['ids'][rows][4]}: 7.0\), row 10"):
        corrected_glm("y ~ protest + z", corpus, bad, predicted="protest")
    # TRUE/FALSE truth for 0/1 predictions (and numbers written as text) are the same coding
    as_bool = gold.set_column(1, "protest", pa.array(faces["truth"][rows]))
    as_text = gold.set_column(1, "protest", pa.array([str(int(v)) for v in faces["truth"][rows]]))
    reference = corrected_glm("y ~ protest + z", corpus, gold, predicted="protest").tidy()
    for other in (as_bool, as_text):
        assert corrected_glm("y ~ protest + z", corpus, other, predicted="protest").tidy().equals(reference)
    # classes: a code that is not a class the predictions use
    labels = corpus.append_column("kind", pa.array(np.where(faces["predicted"], "protest", "other")))
    kinds = np.where(faces["truth"][rows], "protest", "other").astype(object)
    kinds[3] = "riot"
    coded = gold.append_column("kind", pa.array(kinds.tolist()))
    with pytest.raises(ImagesAsDataError, match=rf"gold values of 'kind'.*row 4 \({faces['ids'][rows][3]}: 'riot'\)"):
        corrected_glm("y ~ kind + z", labels, coded, predicted="kind")
    # prevalence: labels outside the classes name their rows
    table = pa.table({"image_id": faces["ids"], "predicted": np.where(faces["predicted"], "protest", "other")})
    coded = pa.table({"image_id": faces["ids"][rows], "label": kinds.tolist(), "inclusion_probability": [0.3] * 120})
    with pytest.raises(ImagesAsDataError, match=rf"gold labels outside the classes.*row 4 \({faces['ids'][rows][3]}: 'riot'\)"):
        corrected_prevalence(table, coded, classes=["other", "protest"])


def test_degenerate_intervals_are_flagged_not_reported(faces):
    rng = np.random.default_rng(3)
    rows = rng.choice(400, 150, replace=False)
    # a gold sample with no protest image at all: the share's interval is not [0, 0]
    table = pa.table({"image_id": faces["ids"], "predicted": np.where(faces["predicted"], "protest", "other")})
    calm = rows[~faces["truth"][rows]][:100]
    coded = pa.table({"image_id": faces["ids"][calm], "label": ["other"] * len(calm),
                      "inclusion_probability": [len(calm) / 400] * len(calm)})
    result = corrected_prevalence(table, coded, classes=["other", "protest"])
    for row in result.to_pylist():
        if row["method"] != "naive" and row["class"] == "protest":
            assert row["estimate"] >= 0 and row["conf_high"] > row["conf_low"] and row["conf_high"] > 0.01, row
            assert row["interval"].startswith("jeffreys")
    # separation: a binomial outcome the gold sample's regressor predicts perfectly
    z = faces["z"]
    corpus = pa.table({"image_id": faces["ids"], "z": z, "protest": faces["predicted"].astype(float)})
    separated = (z[rows] > 0).astype(float)
    gold = pa.table({"image_id": faces["ids"][rows], "protest": separated, "inclusion_probability": [150 / 400] * 150})
    with pytest.warns(UserWarning, match="cannot be trusted"):
        fit = corrected_glm("protest ~ z", corpus, gold, predicted="protest", family="binomial")
    flagged = [r for r in fit.tidy().to_pylist() if r["flag"]]
    assert any(r["method"] == "gold_only" and r["flag"].startswith("degenerate") for r in flagged)
    assert all(r["conf_low"] is None and r["conf_high"] is None for r in flagged)
    assert "unreliable" in repr(fit)


def test_inf_text_and_impossible_probabilities_get_clear_errors(faces):
    rows = np.random.default_rng(4).choice(400, 120, replace=False)
    corpus, gold = regression(faces, rows)
    gold = gold.append_column("inclusion_probability", pa.array([0.3] * 120))
    z = faces["z"].copy()
    z[7] = np.inf
    with pytest.raises(ImagesAsDataError, match=rf"the term 'z' is infinite or undefined for 1 image\(s\): "
                                                rf"{faces['ids'][7]}"):
        corrected_glm("y ~ protest + z", corpus.set_column(2, "z", pa.array(z)), gold, predicted="protest")
    text = [str(v) for v in gold["inclusion_probability"].to_pylist()]
    text[2] = "one third"
    with pytest.raises(ImagesAsDataError, match=rf"missing or not a number: row 3 \({faces['ids'][rows][2]}: "
                                                r"'one third'\)"):
        corrected_glm("y ~ protest + z", corpus, gold.set_column(2, "inclusion_probability", pa.array(text)),
                      predicted="protest")
    high = gold.set_column(2, "inclusion_probability", pa.array([1.5] + [0.3] * 119))
    with pytest.raises(ImagesAsDataError, match=r"above 1 — no design draws an image more surely") as error:
        corrected_glm("y ~ protest + z", corpus, high, predicted="protest")
    assert "probability 0" not in str(error.value)
    with pytest.raises(ImagesAsDataError, match=r"0 or less — an image with probability 0 could never"):
        inclusion_probabilities(gold.set_column(2, "inclusion_probability", pa.array([0.0] + [0.3] * 119)))


def test_a_design_weighted_subgroup_audit_equals_a_hand_computation(faces):
    """A gold sample stratified by predicted class (the rare class oversampled): each group's accuracy and recall
    are Horvitz–Thompson ratios, computed here image by image; the unweighted audit answers another question."""
    rng = np.random.default_rng(5)
    predicted = faces["predicted"]
    chosen, probability = [], []
    for value, take in ((True, 60), (False, 60)):
        members = np.flatnonzero(predicted == value)
        picked = rng.choice(members, take, replace=False)
        chosen += picked.tolist()
        probability += [take / len(members)] * take
    chosen = np.array(chosen)
    sample = pa.table({"image_id": faces["ids"][chosen], "label": np.where(faces["truth"][chosen], "protest", "other"),
                       "predicted": np.where(predicted[chosen], "protest", "other"),
                       "inclusion_probability": probability, "stratum": np.where(predicted[chosen], "p", "o"),
                       "group": faces["group"][chosen]})
    audit = subgroup_metrics(sample, group="group", positive_class="protest", permutations=200, bootstrap=200)
    w = 1 / np.array(probability)
    truth, guess, group = faces["truth"][chosen], predicted[chosen], faces["group"][chosen]
    for name in ("news", "private"):
        m = group == name
        rows = {(r["metric"], r["estimator"]): r for r in audit.metrics.to_pylist() if r["group"] == name}
        accuracy = (w[m] * (truth[m] == guess[m])).sum() / w[m].sum()
        recall = (w[m] * (truth[m] & guess[m])).sum() / (w[m] * truth[m]).sum()
        assert rows[("accuracy", "binary")]["estimate"] == pytest.approx(accuracy, abs=1e-12)
        assert rows[("recall", "binary")]["estimate"] == pytest.approx(recall, abs=1e-12)
        assert rows[("accuracy", "binary")]["interval"] == "wilson_design_effect"
        assert rows[("accuracy", "binary")]["lower"] < accuracy < rows[("accuracy", "binary")]["upper"]
        unweighted = np.mean(truth[m] == guess[m])
        assert abs(unweighted - accuracy) > 1e-3
    gap = [r for r in audit.gaps.to_pylist() if r["metric"] == "accuracy"][0]
    values = {r["group"]: r["estimate"] for r in audit.metrics.to_pylist() if r["metric"] == "accuracy"}
    assert gap["gap"] == pytest.approx(max(values.values()) - min(values.values()))
    with pytest.raises(ImagesAsDataError, match="inclusion_probability must lie in"):
        subgroup_metrics(sample.set_column(3, "inclusion_probability", pa.array([2.0] * 120)), group="group")


def test_coding_sheet_errors_count_the_files_lines(faces, tmp_path):
    """One rule for every message about a sheet: the file's line number (the header is line 1), for a byte that is
    not UTF-8 and for a code outside the classes alike."""
    corpus = pa.table({"image_id": faces["ids"], "path": [str(faces["path"] / i) for i in faces["ids"]],
                       "predicted": np.where(faces["predicted"], "protest", "other")})
    write_table(corpus, tmp_path / "labels.parquet")
    sample = draw_gold_sample(tmp_path / "labels.parquet", 12, seed=1)
    folder = write_coding_sheet(sample, tmp_path / "gold", classes=["other", "protest"])
    sheet = folder / "coding_sheet_wave1.csv"
    ids = to_arrow(sheet)["image_id"].to_pylist()
    truth = dict(zip(faces["ids"], faces["truth"]))
    rows = [f"{i},,{'protest' if truth[i] else 'other'}," for i in ids]
    sheet.write_text("\n".join(["image_id,path,code,note", f"{ids[0]},,riot,"] + rows[1:]) + "\n")
    with pytest.raises(ImagesAsDataError, match=r"coding_sheet_wave1.csv line 2: 'riot'"):
        read_coding_sheet(folder)
    sheet.write_bytes(b"image_id,path,code,note\n" + rows[0].encode() + b"caf\xe9\n" +
                      ("\n".join(rows[1:]) + "\n").encode())
    with pytest.raises(ImagesAsDataError, match=r"coding_sheet_wave1.csv: line 2 \(column 'note'\) is not valid"):
        read_coding_sheet(folder)
    # a coded table (not a file) has rows, counted from 1
    table = to_arrow(pa.table({"image_id": ids, "code": ["riot"] + ["other"] * (len(ids) - 1)}))
    with pytest.raises(ImagesAsDataError, match=r"the coded table row 1: 'riot'"):
        read_coding_sheet(table, sample=folder)


def test_waves_are_recorded_and_a_fit_on_several_says_so(faces, tmp_path):
    corpus = pa.table({"image_id": faces["ids"], "path": [str(faces["path"] / i) for i in faces["ids"]],
                       "predicted": np.where(faces["predicted"], "protest", "other"), "y": faces["y"],
                       "z": faces["z"]})
    write_table(corpus, tmp_path / "labels.parquet")
    first = draw_gold_sample(tmp_path / "labels.parquet", 60, strata="predicted", seed=2)
    folder = write_coding_sheet(first, tmp_path / "gold", classes=["other", "protest"])
    more = draw_gold_sample(tmp_path / "labels.parquet", 40, previous=folder, seed=3)
    write_coding_sheet(more, folder)
    design = json.loads((folder / "gold.json").read_text())
    assert [(w["wave"], w["images"], w["seed"]) for w in design["waves_drawn"]] == [(1, 60, 2), (2, 40, 3)]
    assert [w["seed"] for w in design["waves"]] == [2, 3]
    truth = dict(zip(faces["ids"], faces["truth"]))
    for wave in (1, 2):
        sheet = to_arrow(folder / f"coding_sheet_wave{wave}.csv")
        codes = ["protest" if truth[i] else "other" for i in sheet["image_id"].to_pylist()]
        write_table(sheet.set_column(2, "code", pa.array(codes)), folder / f"coding_sheet_wave{wave}.csv")
    gold = read_coding_sheet(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = corrected_glm("y ~ I(predicted == 'protest') + z", corpus, gold, predicted="predicted")
    assert fit.waves == 2 and any("2 waves" in note for note in fit.notes)
    assert fit.glance()["waves"].to_pylist() == [2]
