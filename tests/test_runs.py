"""Run directories: what they hold, save → load → identical predictions, and refusal of anything that would
run code when loaded. Prediction and evaluation of a saved model."""

import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.model.backbones import rebuild_model


@pytest.fixture(scope="module")
def fitted(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "faces"
    return iad.finetune(sample_data / "faces", out=out, image_size=64, epochs=2, learning_rate=0.005,
                        progress=False, seed=0)


@pytest.mark.trains
def test_run_directory_contents(fitted, sample_data):
    files = {p.name for p in fitted.path.iterdir()}
    assert {"model.safetensors", "model.json", "splits.parquet", "history.parquet", "metrics.parquet",
            "confusion.parquet", "predictions.parquet", "skipped.parquet"} <= files
    description = json.loads((fitted.path / "model.json").read_text())
    assert description["architecture"] == "efficientnet_lite0"
    assert description["classes"] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert description["hyperparameters"]["learning_rate"] == 0.005
    assert description["hyperparameters"]["momentum"] == 0.9 and description["hyperparameters"]["step_size"] == 7
    assert description["preprocessing"]["image_size"] == 64
    assert description["seed"] == 0 and description["versions"]["torch"] == torch.__version__
    hashes = description["training_images"]["sha256"]
    assert len(hashes) == 48
    assert hashes["s1/1.png"] == iad.io.images.sha256_file(sample_data / "faces" / "s1" / "1.png")
    history = pq.read_table(fitted.path / "history.parquet")
    assert history.column_names == ["epoch", "split", "loss", "accuracy", "learning_rate", "seconds"]
    assert history.num_rows == 4


@pytest.mark.trains
def test_save_load_identical_predictions(fitted, sample_data, tmp_path):
    before = fitted.predict(sample_data / "new_images", progress=False)
    saved = fitted.save(tmp_path / "kept")
    loaded = iad.load_run(tmp_path / "kept")
    after = loaded.predict(sample_data / "new_images", progress=False)
    assert after["predicted"].to_pylist() == before["predicted"].to_pylist()
    for c in fitted.classes:
        assert np.array_equal(after[f"prob_{c}"].to_numpy(), before[f"prob_{c}"].to_numpy())
    assert saved.path == (tmp_path / "kept").resolve()


@pytest.mark.trains
def test_prediction_table_shape_and_bad_images(fitted, sample_data, tmp_path, rekognition_examples):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    files = [str(sample_data / "new_images" / "s1_9.png"), str(tmp_path / "empty.jpg"),
             str(rekognition_examples / "ex_1.jpg"), str(tmp_path / "text.png")]
    table = fitted.predict(files, progress=False, batch_size=2)
    assert table.column_names == ["image_id", "path", "predicted"] + [f"prob_s{k}" for k in range(1, 7)] + ["error"]
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == files  # order kept
    assert rows[1]["predicted"] is None and "empty file" in rows[1]["error"]
    assert rows[3]["predicted"] is None and "not an image" in rows[3]["error"]
    for r in (rows[0], rows[2]):
        assert r["error"] is None
        assert sum(r[f"prob_s{k}"] for k in range(1, 7)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.trains
def test_evaluate_on_labelled_images(fitted, sample_data):
    result = fitted.evaluate(sample_data / "faces", progress=False)
    accuracy = [r for r in result.metrics.to_pylist() if r["metric"] == "accuracy"][0]
    predictions = result.predictions
    assert accuracy["split"] == "evaluation"
    assert accuracy["estimate"] == pytest.approx(
        np.mean(np.array(predictions["predicted"].to_pylist()) == np.array(predictions["label"].to_pylist())))
    assert sum(r["count"] for r in result.confusion.to_pylist()) == 48


@pytest.mark.trains
def test_evaluate_with_unknown_labels(fitted, book_layout):
    with pytest.raises(ImagesAsDataError, match="not classes of this model"):
        fitted.evaluate(book_layout, progress=False)


@pytest.mark.trains
def test_a_pickle_posing_as_weights_is_refused(fitted, tmp_path):
    copy = fitted.save(tmp_path / "tampered")

    class Payload:
        def __reduce__(self):
            return (exec, ("open('/tmp/imagesasdata-pwned', 'w').write('x')",))

    (copy.path / "model.safetensors").write_bytes(pickle.dumps({"weights": Payload()}))
    with pytest.raises(ImagesAsDataError, match="is a Python pickle; refused"):
        iad.load_run(copy.path).predict([str(tmp_path)], progress=False)
    import os

    assert not os.path.exists("/tmp/imagesasdata-pwned")


@pytest.mark.trains
def test_torch_save_in_place_of_weights_is_refused(fitted, tmp_path):
    copy = fitted.save(tmp_path / "torchsave")
    torch.save(copy.model().state_dict(), copy.path / "model.safetensors")
    with pytest.raises(ImagesAsDataError, match="refused"):
        iad.load_run(copy.path).model()


@pytest.mark.trains
def test_weights_of_the_wrong_shape(fitted, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = fitted.save(tmp_path / "wrong")
    weights = load_file(str(copy.path / "model.safetensors"))
    weights["classifier.weight"] = weights["classifier.weight"][:3]
    weights["classifier.bias"] = weights["classifier.bias"][:3]
    save_file(weights, str(copy.path / "model.safetensors"))
    # a replaced weights file is refused by its checksum before it is even loaded ...
    with pytest.raises(ImagesAsDataError, match=r"is not the file this run wrote \(its SHA-256 differs"):
        iad.load_run(copy.path).model()
    # ... and weights that do not fit the architecture are refused when the model is built
    with pytest.raises(ImagesAsDataError, match=r"do not match the architecture.*classifier.weight: file \(3, 1280\)"):
        rebuild_model(copy.description, weights)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ImagesAsDataError, match="not a run directory"):
        iad.load_run(tmp_path)


@pytest.mark.trains
def test_summary_mentions_the_metrics(fitted):
    text = repr(fitted)
    assert "efficientnet_lite0" in text and "val  accuracy" in text


@pytest.mark.trains
def test_interpretation_of_the_validation_predictions(fitted):
    """fastai's ClassificationInterpretation, checked against a computation of its own from the predictions."""
    interpretation = fitted.interpretation("val")
    predictions = fitted.predictions.to_pylist()
    expected_losses = sorted((-np.log(r[f"prob_{r['label']}"]) for r in predictions), reverse=True)
    top = interpretation.top_losses()
    assert np.allclose(top["loss"].to_numpy(), expected_losses)
    assert interpretation.top_losses(3).num_rows == min(3, len(predictions))
    wrong = [r for r in predictions if r["label"] != r["predicted"]]
    mistakes = interpretation.misclassified()
    assert sorted(mistakes["image_id"].to_pylist()) == sorted(r["image_id"] for r in wrong)
    confidence = mistakes["probability"].to_pylist()
    assert confidence == sorted(confidence, reverse=True)
    assert all(p == r[f"prob_{r['predicted']}"] for p, r in zip(confidence, mistakes.to_pylist()))
    confused = {(r["label"], r["predicted"]): r["count"] for r in interpretation.most_confused().to_pylist()}
    off_diagonal = {(r["truth"], r["predicted"]): r["count"] for r in fitted.confusion.to_pylist()
                    if r["truth"] != r["predicted"] and r["count"]}
    assert confused == off_diagonal
    with pytest.raises(ImagesAsDataError, match=r"no split test in these predictions; they hold val"):
        fitted.interpretation("test")


def test_import_loads_no_torch():
    import subprocess
    import sys

    probe = "import sys, imagesasdata as iad; iad.image_table; iad.image_inventory; iad.find_duplicates; " \
            "import imagesasdata.interop.bridge; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"
