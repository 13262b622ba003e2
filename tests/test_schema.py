"""The engine/R contract (imagesasdata.schema): the engine's public functions return the columns the schema lists,
R's names follow tidymodels, the bridge renames through the schema both ways, and the one selection rule ranks."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from imagesasdata import schema
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.analysis.gold import draw_gold_sample, gold_metrics, sample_design
from imagesasdata.interop import bridge
from imagesasdata.measure.metrics import classification_metrics, confusion_table
from imagesasdata.model.inference import predictions_table


def engine_predictions(classes=("other", "politician"), n=40, seed=0):
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=n)
    manifest = pa.table({"image_id": [f"img{i}" for i in range(n)], "path": [f"/images/img{i}.png" for i in range(n)]})
    return predictions_table(manifest, probabilities, [None] * n, list(classes))


def test_public_tables_have_the_columns_the_schema_lists():
    predictions = engine_predictions()
    assert [c for c in predictions.column_names if not c.startswith(schema.PROBABILITY_PREFIX)] == \
        [c for c in schema.PREDICTIONS if c in predictions.column_names]
    assert {schema.probability_column(c) for c in ("other", "politician")} <= set(predictions.column_names)
    truth = ["politician", "other", "politician", "other", "other"]
    guess = ["politician", "politician", "other", "other", "other"]
    metrics = classification_metrics(truth, guess, ["other", "politician"], "politician")
    assert set(metrics.column_names) <= set(schema.METRICS)
    assert {"metric", "estimator", "estimate", "lower", "upper", "interval"} <= set(metrics.column_names)
    confusion = confusion_table(truth, guess, ["other", "politician"])
    assert set(confusion.column_names) <= set(schema.CONFUSION)


def test_r_names_are_tidymodels_names_and_come_back():
    predictions = engine_predictions()
    r = schema.r_names(predictions.column_names, "predictions")
    assert ".pred_class" in r and ".pred_politician" in r and "predicted" not in r
    assert schema.engine_names(r, "predictions") == predictions.column_names
    metrics = schema.r_names(schema.METRICS, "metrics")
    assert metrics == [".metric", ".estimator", ".estimate", "split", "class", "n", "conf.low", "conf.high", "interval"]
    assert schema.r_names(schema.COEFFICIENTS, "coefficients") == [
        "term", "estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high", "method", "lambda", "df",
        "flag"]
    assert schema.r_names(["val_f1", "val_f1_lower", "val_loss"], "grid") == ["val_f_meas", "val_f_meas_lower",
                                                                               "val_loss"]
    assert schema.r_metric("f1") == "f_meas" and schema.engine_metric("f_meas") == "f1"
    # a table outside the contract keeps its names; both spellings at once are left alone, never merged
    assert schema.r_names(["predicted", "observed"]) == ["predicted", "observed"]
    assert schema.engine_names([".pred_class", "predicted"], "predictions") == [".pred_class", "predicted"]
    with pytest.raises(ValueError):
        schema.r_column("x", "nonsense")


def test_the_bridge_sends_r_names_and_takes_them_back():
    truth = ["politician", "other", "politician", "other"]
    metrics = classification_metrics(truth, ["politician", "other", "other", "other"], ["other", "politician"],
                                     "politician")
    encoded = bridge.to_r(metrics, kind="metrics")
    assert {".metric", ".estimator", ".estimate", "conf.low", "conf.high"} <= set(encoded["names"])
    sent = encoded["columns"][encoded["names"].index(".metric")]["values"]
    assert "f_meas" in sent and "f1" not in sent
    back = bridge.from_r({"nrow": encoded["nrow"], "names": encoded["names"], "columns": encoded["columns"]},
                         kind="metrics")
    assert back.column_names == metrics.column_names
    assert back["metric"].to_pylist() == metrics["metric"].to_pylist()
    # factors are named by the engine's names, whatever the kind
    predictions = engine_predictions()
    encoded = bridge.to_r(predictions, {"predicted": ["politician", "other"]}, kind="predictions")
    position = encoded["names"].index(".pred_class")
    assert encoded["columns"][position]["levels"] == ["politician", "other"]


def test_headline_estimator_and_the_one_selection_rule():
    assert schema.headline_estimator(2) == "binary"
    assert schema.headline_estimator(6, "accuracy") == "multiclass"
    assert schema.headline_estimator(6, "f1") == "macro"
    rows = [{"val_accuracy": 0.8, "val_f1": 0.7, "val_loss": 0.5},
            {"val_accuracy": 0.9, "val_f1": 0.6, "val_loss": 0.6},
            {"val_accuracy": 0.9, "val_f1": 0.8, "val_loss": 0.4},
            {"val_accuracy": 0.9, "val_f1": 0.8, "val_loss": 0.4}]
    assert schema.rank(rows, "accuracy") == [2, 3, 1, 0]      # ties: lower loss, then the earlier row
    assert schema.rank(rows, "loss") == [2, 3, 0, 1]
    assert schema.rank(rows, "f1") == [2, 3, 0, 1]
    best = max(range(len(rows)), key=lambda i: schema.selection_score("accuracy", rows[i]["val_accuracy"],
                                                                       rows[i]["val_f1"], rows[i]["val_loss"]))
    assert best == schema.rank(rows, "accuracy")[0]
    assert bridge.rank(pa.Table.from_pylist(rows), "f_meas") == [3, 4, 1, 2]


def test_a_grid_in_long_form_comes_in_tunes_shapes_ranked_by_the_one_rule():
    """R's tidy(grid) and show_best(grid) are the engine's long forms renamed by the schema: R pivots nothing."""
    results = pa.Table.from_pylist([
        {"config_id": "config_001", "learning_rate": 0.01, "val_accuracy": 0.8, "val_accuracy_lower": 0.7,
         "val_accuracy_upper": 0.9, "val_f1": 0.7, "val_loss": 0.5, "best_epoch": 2, "status": "complete"},
        {"config_id": "config_002", "learning_rate": 0.1, "val_accuracy": 0.9, "val_accuracy_lower": 0.8,
         "val_accuracy_upper": 0.95, "val_f1": 0.6, "val_loss": 0.6, "best_epoch": 1, "status": "complete"},
        {"config_id": "config_003", "learning_rate": 1.0, "val_accuracy": None, "val_accuracy_lower": None,
         "val_accuracy_upper": None, "val_f1": None, "val_loss": None, "best_epoch": None, "status": "failed"}])
    long = bridge.grid_metrics(results, ["learning_rate"], 6)
    assert long.column_names == ["config_id", "learning_rate", *schema.GRID_LONG[1:]]
    assert long.num_rows == 3 * len(schema.GRID_METRICS)
    rows = long.to_pylist()
    assert [r["metric"] for r in rows[:5]] == list(schema.GRID_METRICS) and rows[0]["config_id"] == "config_001"
    assert [r["estimator"] for r in rows[:5]] == ["multiclass", "macro", "macro", "macro", "standard"]
    assert (rows[0]["estimate"], rows[0]["lower"], rows[0]["upper"]) == (0.8, 0.7, 0.9)
    assert rows[4]["lower"] is None                                            # the loss has no interval
    assert bridge.to_r(long, kind="grid_metrics")["names"] == [
        ".config", "learning_rate", ".metric", ".estimator", ".estimate", "conf.low", "conf.high", "best_epoch",
        "status"]
    metrics_sent = bridge.to_r(long, kind="grid_metrics")["columns"][2]["values"]
    assert set(metrics_sent) == {"accuracy", "precision", "recall", "f_meas", "mn_log_loss"}
    best = bridge.grid_metrics(results, ["learning_rate"], 2, metric="mn_log_loss")   # yardstick's name taken
    assert best.column_names == ["learning_rate", *schema.GRID_BEST]
    assert best["config_id"].to_pylist() == ["config_001", "config_002"]      # lower loss first; the failed one out
    assert best["mean"].to_pylist() == [0.5, 0.6] and set(best["estimator"].to_pylist()) == {"standard"}
    assert bridge.grid_metrics(results, ["learning_rate"], 2, metric="accuracy")["config_id"].to_pylist() == [
        "config_002", "config_001"]
    assert bridge.to_r(best, kind="grid_metrics")["names"] == ["learning_rate", ".metric", ".estimator", "mean",
                                                                "conf.low", "conf.high", ".config"]


def test_records_formulas_and_terms_cross_in_the_schemas_names():
    step = {"from_images": 10, "to_images": 20, "change": 0.1, "conf_low": -0.05, "conf_high": 0.2, "per_200": 1.0}
    assert bridge.r_record(step, "learning_curve") == {"from_images": 10, "to_images": 20, "change": 0.1,
                                                      "conf.low": -0.05, "conf.high": 0.2, "per_200": 1.0}
    assert schema.engine_formula("y ~ .pred_class + I(z^2) + I(z > 0 & protest == TRUE) + .pred_yes | !x") == (
        "y ~ predicted + I(z**2) + I(z > 0 and protest == True) + prob_yes or not x")
    assert schema.r_terms(["Intercept", "predicted[T.True]", "I(z ** 2)", "I(z > 0 and protest == True)[T.True]",
                           "prob_yes", "group[T.b]"], ["y", ".pred_class", "z", ".pred_yes", "group"]) == [
        "Intercept", ".pred_classTRUE", "I(z^2)", "I(z > 0 & protest == TRUE)TRUE", ".pred_yes", "groupb"]
    assert schema.r_terms(["predicted[T.True]"], ["predicted"]) == ["predictedTRUE"]   # the engine's own name kept
    assert schema.engine_metric("mn_log_loss") == "loss" and schema.r_metric("loss") == "mn_log_loss"
    assert schema.r_argument("confidence") == "conf_level" and schema.r_argument("epochs") == "epochs"


def test_the_positive_class_travels_from_the_corpus_into_gold_metrics():
    # a non-default positive class: the engine's rule would choose "politician" (the second class) here
    corpus = engine_predictions(("other", "politician"), n=60, seed=3)
    sample = draw_gold_sample(corpus, 20, seed=1, positive_class="other")
    assert sample_design(sample)["positive_class"] == "other"
    rng = np.random.default_rng(0)
    coded = sample.append_column("label", pa.array(rng.choice(["other", "politician"], sample.num_rows).tolist()))
    metrics = gold_metrics(coded)
    binary = [r for r in metrics.to_pylist() if r["estimator"] == "binary" and r["metric"] != "accuracy"]
    assert binary and {r["class"] for r in binary} == {"other"}
    # without a recorded positive class, the engine's rule as before
    plain = draw_gold_sample(corpus, 20, seed=1)
    assert "positive_class" not in sample_design(plain)
    coded = plain.append_column("label", pa.array(rng.choice(["other", "politician"], plain.num_rows).tolist()))
    assert {r["class"] for r in gold_metrics(coded).to_pylist() if r["estimator"] == "binary" and r["metric"] != "accuracy"} == {"politician"}


def test_option_errors_carry_the_fields_r_builds_its_condition_from():
    """R builds its condition from an error's fields, not from the message's wording (issue 22): the option checks
    of TrainConfig, grids, thresholds and coding sheets carry option, value, expected or choices, path and row."""
    from imagesasdata.train.config import TrainConfig

    def fields(function, **options):
        outcome = bridge.call(function, **options)
        assert outcome.error and outcome.error["engine"], outcome
        return outcome.error["fields"]

    assert fields(TrainConfig, learning_rate=-1) == {"what": "option", "option": "learning_rate", "value": -1.0,
                                                     "expected": "above 0", "hint": "the book uses 0.001"}
    assert fields(TrainConfig, optimizer="adm") == {"what": "option", "option": "optimizer", "value": "adm",
                                                    "choices": ["sgd", "adam", "adamw"]}
    assert fields(TrainConfig, epochs=2.5)["expected"] == "a whole number"
    assert fields(TrainConfig, image_size=8)["expected"] == "at least 32"
    assert fields(TrainConfig.from_options, epocs=2) == {
        "what": "unknown_option", "option": "epocs", "choices": [f.name for f in dataclasses.fields(TrainConfig)]}
    assert fields(TrainConfig, class_order=["a", "a"])["value"] == ["a", "a"]   # a list travels as a list
    # the Python and command-line messages are unchanged
    with pytest.raises(ImagesAsDataError, match=r"learning_rate=-1\.0 must be above 0 \(the book uses 0\.001\)"):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ImagesAsDataError, match="normalize='bakbone': choose one of .*Did you mean 'backbone'"):
        TrainConfig(normalize="bakbone")


def test_a_bad_code_in_a_coding_sheet_names_its_file_and_row_in_fields(tmp_path):
    from imagesasdata.analysis.gold import read_coding_sheet, write_coding_sheet

    predictions = engine_predictions(n=30)
    sample = draw_gold_sample(predictions, 10, seed=1)
    folder = write_coding_sheet(sample, tmp_path / "gold")
    sheet = folder / "coding_sheet_wave1.csv"
    with open(sheet, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    for k, row in enumerate(rows):
        row["code"] = "maybe" if k == 3 else "other"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    outcome = bridge.call(read_coding_sheet, folder, classes=["other", "politician"])
    assert outcome.error["fields"]["path"] == str(sheet)
    assert outcome.error["fields"]["row"] == 5          # the CSV's line: header, then the fourth coded image
    assert outcome.error["fields"]["value"] == "maybe"
    assert outcome.error["fields"]["choices"] == ["other", "politician"]
