"""The CLI: the same verbs as the API, run as a user would run them (a subprocess)."""

import pyarrow.csv as pa_csv
import pytest

from cli_runner import run


def test_help_explains_options_in_the_books_words():
    text = run("finetune", "--help").stdout
    assert "learning rate" in text and "momentum" in text
    assert "every step_size=7 epochs" in text and "gamma" in text
    assert "--augment-flip" in text and "--freeze" in text


@pytest.mark.trains
def test_finetune_predict_evaluate(sample_data, tmp_path):
    out = tmp_path / "run"
    result = run("finetune", sample_data / "person_vs_others.csv", "--out", out, "--image-size", "64", "--epochs", "1",
                 "--balance", "--no-progress")
    assert "val  accuracy" in result.stdout and "(positive)" in result.stdout
    assert (out / "model.safetensors").exists()

    predictions = tmp_path / "labels.csv"
    result = run("predict", out, sample_data / "new_images", "--out", predictions, "--no-progress")
    assert "labelled 12 images, 0 unreadable" in result.stdout
    table = pa_csv.read_csv(predictions)
    assert table.column_names == ["image_id", "path", "predicted", "prob_negative", "prob_positive", "error"]
    assert table.num_rows == 12

    result = run("evaluate", out, sample_data / "person_vs_others.csv")
    assert "accuracy" in result.stdout and "truth" in result.stdout


def test_errors_are_one_clear_line(tmp_path):
    result = run("finetune", tmp_path, "--out", tmp_path / "run", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("imagesasdata finetune: error:") and "no images found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("verb", ["predict", "evaluate"])
def test_missing_run_directory(verb, tmp_path):
    args = [verb, tmp_path / "nope", tmp_path] + (["--out", tmp_path / "x.csv"] if verb == "predict" else [])
    result = run(*args, check=False)
    assert result.returncode == 1 and "not a run directory" in result.stderr
