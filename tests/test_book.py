"""The book, exactly: Table 7.1 (data per task) in one call, the grid presets of §7 with the book's values, and
the arithmetic of §3 (an image as numbers, a small network, convolution, pooling) against hand computations."""

import numpy as np
import pyarrow as pa
import pytest

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.train.grids import PRESETS, expand_grid


# ------------------------------------------------------------------ §7: Table 7.1 and the grid presets

def test_data_summary_counts_each_task_by_class_and_split(sample_data, datasets):
    """Table 7.1 for three tasks: the sample's class folders (split as finetune() would draw it: 80/20, and no
    test split with 8 images a class), a table file, and a set in the book's layout (its own splits)."""
    summary = iad.data_summary({"who": sample_data / "faces", "s1": sample_data / "person_vs_others.csv",
                                "politicians": datasets / "lfw_politicians"})
    rows = {(r["task"], r["class"]): r for r in summary.to_pylist()}
    assert summary.column_names == ["task", "class", "train", "val", "test", "total", "share", "split_source",
                                    "no_test"]
    assert [c for t, c in rows if t == "who"] == [f"s{k}" for k in range(1, 7)]
    assert all((r["train"], r["val"], r["test"], r["total"]) == (6, 2, 0, 8) for (t, _), r in rows.items() if t == "who")
    assert rows[("s1", "positive")]["total"] == 8 and rows[("s1", "negative")]["total"] == 40   # 5 people × 8
    assert rows[("s1", "positive")]["share"] == pytest.approx(8 / 48)
    assert "positive (8)" in rows[("s1", "positive")]["no_test"]
    # lfw_politicians keeps its folders: 25 training photos of each, the val/ folder as it is
    kofi = rows[("politicians", "Kofi_Annan")]
    assert (kofi["train"], kofi["val"], kofi["test"], kofi["split_source"]) == (25, 7, 0, "given")
    assert sum(r["total"] for (t, _), r in rows.items() if t == "politicians") == 216
    # one task's data is the task "task"; a task without labels is named in the error
    assert set(iad.data_summary(sample_data / "faces")["task"].to_pylist()) == {"task"}
    with pytest.raises(ImagesAsDataError, match="task 'new': .*no label"):
        iad.data_summary({"new": sample_data / "new_images"})


def test_data_summary_draws_a_test_split_for_large_classes(orl_faces):
    table = pa.table({"path": [str(orl_faces / f"s{p}" / f"{k}.pgm") for p in range(1, 5) for k in range(1, 11)],
                      "label": ["a" if p <= 2 else "b" for p in range(1, 5) for k in range(1, 11)]})
    rows = iad.data_summary({"two": table}).to_pylist()
    assert [(r["class"], r["train"], r["val"], r["test"], r["no_test"]) for r in rows] == [
        ("a", 14, 4, 2, None), ("b", 14, 4, 2, None)]


def test_grid_presets_hold_the_books_values_and_say_which_gamma():
    """Table 7.2's grid (§7.6) and Figures 7.4/7.5's (§7.5): the same 12 configurations, 50 epochs, step size 7;
    gamma 0.1 and 0.01, the book's own inconsistency; under recipe "head-first", whose StepLR has a step size and
    a gamma (the default recipe's one-cycle schedule has neither)."""
    table, fixed = expand_grid("table7.2")
    assert len(table) == 12 and fixed == {"recipe": "head-first", "epochs": 50, "step_size": 7, "gamma": 0.1}
    assert {(c["learning_rate"], c["momentum"], c["batch_size"]) for c in table} == {
        (lr, m, b) for lr in (0.0005, 0.001, 0.005) for m in (0.7, 0.9) for b in (1, 4)}
    figure, fixed = expand_grid("figure7.4")
    assert figure == table and fixed == {"recipe": "head-first", "epochs": 50, "step_size": 7, "gamma": 0.01}
    assert PRESETS["book"] == PRESETS["table7.2"]
    with pytest.raises(ImagesAsDataError, match="unknown grid preset 'table7.1'.*Did you mean 'table7.2'"):
        expand_grid("table7.1")


@pytest.mark.trains
def test_table_7_2_grid_runs_its_twelve_configurations(sample_data, tmp_path):
    """The preset at tiny settings (32 px, 1 epoch instead of 50, a frozen backbone): twelve configurations, the
    gamma note printed with the grid."""
    grid = iad.tune(sample_data / "faces", "table7.2", out=tmp_path / "grid", epochs=1, image_size=32,
                    freeze="backbone", augment_crop=False, progress=False)
    assert grid.results.num_rows == 12 and set(grid.results["status"].to_pylist()) == {"complete"}
    assert sorted(grid.parameters) == ["batch_size", "learning_rate", "momentum"]
    description = grid.best.description["hyperparameters"]
    assert (description["gamma"], description["step_size"], description["epochs"]) == (0.1, 7, 1)
    assert (description["schedule"], grid.best.description["recipe"]["name"]) == ("step", "head-first")
    assert "gamma 0.01 in §7.5" in repr(grid) and "optimistic" in repr(grid)


# ------------------------------------------------------------------ §3: how a computer sees an image

def test_an_image_is_a_height_by_width_by_3_array_of_numbers(sample_data):
    from PIL import Image

    path = sample_data / "faces" / "s1" / "1.png"
    array = iad.image_array(path)
    reference = np.asarray(Image.open(path).convert("RGB"))
    assert array.shape == (112, 92, 3) and array.dtype == np.uint8 and np.array_equal(array, reference)
    assert iad.image_array(path, size=23).shape == (23, 19, 3)      # the longer side shrunk to 23, ratio kept
    pixels = iad.pixel_table(path, size=23).to_pylist()
    assert len(pixels) == 23 * 19
    small = iad.image_array(path, size=23)
    assert pixels[19]["row"] == 2 and pixels[19]["col"] == 1        # row by row, counting from 1
    assert (pixels[19]["red"], pixels[19]["green"], pixels[19]["blue"]) == tuple(int(v) for v in small[1, 0])


def test_a_small_network_computed_unit_by_unit():
    """Figure 3.2's arithmetic on the vignette's numbers: x = (1, 2); hidden units ReLU(0.2*1 + 0.8*2 + 0.1) =
    1.9 and ReLU(-0.5*1 + 1*2) = 1.5; output sigmoid(1.5*1.9 - 0.7*1.5 + 0.2) = sigmoid(2) = 0.8808."""
    table = iad.network_arithmetic([1, 2], [
        {"weights": [[0.2, 0.8], [-0.5, 1.0]], "bias": [0.1, 0.0], "activation": "relu"},
        {"weights": [[1.5, -0.7]], "bias": [0.2], "activation": "sigmoid"}]).to_pylist()
    assert [(r["layer"], r["unit"]) for r in table] == [(1, 1), (1, 2), (2, 1)]
    assert [r["z"] for r in table] == pytest.approx([1.9, 1.5, 2.0])
    assert table[2]["output"] == pytest.approx(1 / (1 + np.exp(-2.0))) == pytest.approx(0.880797, abs=1e-6)
    assert table[0]["working"] == "0.2*1 + 0.8*2 + 0.1 = 1.9"
    assert table[2]["working"] == "1.5*1.9 + (-0.7)*1.5 + 0.2 = 2"
    # ReLU keeps a negative sum at zero
    assert iad.network_arithmetic([1], [{"weights": [[-2]], "bias": [0.5]}]).to_pylist()[0]["output"] == 0
    with pytest.raises(ImagesAsDataError, match="layer 2: each unit needs 2 weights"):
        iad.network_arithmetic([1, 2], [{"weights": [[1, 1], [1, 1]]}, {"weights": [[1, 1, 1]]}])


def test_activation_functions_of_figure_3_3():
    table = iad.activation_table([-2.0, 0.0, 2.0]).to_pylist()
    value = {(r["activation"], r["z"]): r["output"] for r in table}
    assert value[("relu", -2.0)] == 0 and value[("relu", 2.0)] == 2
    assert value[("sigmoid", 0.0)] == 0.5 and value[("sigmoid", 2.0)] == pytest.approx(0.880797, abs=1e-6)
    assert value[("tanh", -2.0)] == pytest.approx(-0.964028, abs=1e-6)
    assert len(iad.activation_table().to_pylist()) == 3 * 81     # -4 to 4 in steps of 0.1
    with pytest.raises(ImagesAsDataError, match="Did you mean 'relu'"):
        iad.activation_table(names=["rellu"])


def test_a_one_by_two_convolution_by_hand():
    """Figure 3.4's operation: a 1 x 2 filter (0.5, -1) slid along (1, 2, 3, 4): 1*0.5 + 2*(-1) = -1.5, then -2,
    then -2.5; with a bias of 1 each is one more."""
    assert iad.convolve([[1, 2, 3, 4]], [[0.5, -1]]).tolist() == [[-1.5, -2.0, -2.5]]
    steps = iad.convolution_steps([[1, 2, 3, 4]], [[0.5, -1]], bias=1).to_pylist()
    assert [(r["row"], r["col"], r["z"]) for r in steps] == [(1, 1, -0.5), (1, 2, -1.0), (1, 3, -1.5)]
    assert steps[0]["working"] == "1*0.5 + 2*(-1) + 1 = -0.5"


def test_a_5x5x3_convolution_with_padding_and_stride_by_hand():
    """Figure 3.6's set-up (as Stanford's CS231n demo): a 5 x 5 x 3 input padded with a border of zeros, two
    3 x 3 x 3 filters moving by 2, biases 1 and 0: a 3 x 3 x 2 output. Z11 of the first filter written out by hand;
    every cell against scipy's correlation."""
    from scipy.signal import correlate

    rng = np.random.default_rng(7)
    volume = rng.integers(0, 3, size=(5, 5, 3))
    filters = rng.integers(-1, 2, size=(2, 3, 3, 3))
    output = iad.convolve(volume, filters, bias=[1, 0], stride=2, padding=1)
    assert output.shape == (3, 3, 2)
    padded = np.pad(volume, ((1, 1), (1, 1), (0, 0)))
    z11 = sum(padded[r, c, d] * filters[0, r, c, d] for r in range(3) for c in range(3) for d in range(3)) + 1
    assert output[0, 0, 0] == z11
    for k, bias in enumerate([1, 0]):
        expected = correlate(padded, filters[k], mode="valid")[::2, ::2, 0] + bias
        assert np.array_equal(output[:, :, k], expected)
    steps = iad.convolution_steps(volume, filters, bias=[1, 0], stride=2, padding=1).to_pylist()
    assert len(steps) == 18 and steps[0]["z"] == z11 and steps[0]["working"].endswith(f"+ 1 = {int(z11)}")
    assert steps[0]["working"].count("*") == 27
    with pytest.raises(ImagesAsDataError, match=r"does not tile a height of 7"):
        iad.convolve(volume, filters, stride=3, padding=1)


def test_max_pooling_by_hand():
    """Figure 3.7's operation: 2 x 2 windows that do not overlap, each replaced by its largest value."""
    values = [[1, 3, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
    assert iad.max_pool(values).tolist() == [[6, 8], [3, 4]]
    steps = iad.pooling_steps(values).to_pylist()
    assert [(r["row"], r["col"], r["window"], r["output"]) for r in steps] == [
        (1, 1, "1, 3, 5, 6", 6), (1, 2, "2, 4, 7, 8", 8), (2, 1, "3, 2, 1, 2", 3), (2, 2, "1, 0, 3, 4", 4)]
    assert iad.max_pool(values, size=2, stride=1).shape == (3, 3)


def test_a_real_photo_through_the_first_convolution(rekognition_examples, tmp_path):
    """The offline EfficientNet-Lite0's first layer (32 filters of 3 x 3 x 3, stride 2) on a 224 x 224 view of a
    tweeted photo: 32 maps of 112 x 112, equal to that layer run on its own on the view normalised by hand, and a
    contact sheet of the view and the first 8 maps."""
    import torch

    from imagesasdata.data.transforms import normalize_batch, to_chw

    result = iad.feature_maps(rekognition_examples / "ex_2.jpg", n=8, out=tmp_path / "maps.png")
    assert (result.layer, result.filter_shape, result.stride) == ("conv_stem", (32, 3, 3, 3), (2, 2))
    assert result.maps.shape == (32, 112, 112) and result.view.shape == (224, 224, 3)
    from imagesasdata.model.backbones import imagenet_classifier

    backbone = imagenet_classifier("efficientnet_lite0", progress=False)
    pixels = normalize_batch(to_chw(result.view)[None], backbone.mean, backbone.std)
    # timm's conv_stem pads (0, 1) on each side for stride 2: its own forward is the reference
    expected = backbone.model.conv_stem(pixels)[0].detach().numpy()
    assert np.allclose(result.maps, expected, atol=1e-4)
    assert result.table.num_rows == 32 and result.table["max"].to_pylist()[0] == pytest.approx(float(expected[0].max()))
    from PIL import Image

    sheet = Image.open(tmp_path / "maps.png")
    assert sheet.size == (6 * 114, 2 * 114)     # the view and 8 maps, 6 to a row
    with pytest.raises(ImagesAsDataError, match="ending in .png"):
        iad.feature_maps(rekognition_examples / "ex_2.jpg", out=tmp_path / "maps.jpg")


@pytest.mark.trains
def test_feature_maps_of_a_fitted_run(sample_data):
    """A fitted run (the shared 64-pixel faces fit) sees the photo as it was trained to: its 64 x 64 evaluation
    view, its first layer's 32 maps of 32 x 32."""
    from inside_runs import faces_run

    result = iad.feature_maps(sample_data / "new_images" / "s1_9.png", faces_run())
    assert result.view.shape == (64, 64, 3) and result.maps.shape == (32, 32, 32)
    assert np.isfinite(result.maps).all() and result.maps.std() > 0



# ------------------------------------------------------------------ §8: one image, several emotions

def emotion_scores(orl_faces):
    """24 real ORL photos with 0-10 emotion scores: anger on every second photo, fear on every third, sadness on
    every fourth from the second; several photos evoke two or three emotions, some none."""
    rows = []
    for k in range(24):
        person, shot = k // 4 + 1, k % 4 + 1
        rows.append({"image_id": f"s{person}_{shot}", "path": str(orl_faces / f"s{person}" / f"{shot}.pgm"),
                     "anger": 6.0 if k % 2 == 0 else 0.5, "fear": 4.0 if k % 3 == 0 else 0.0,
                     "sadness": 8.0 if k % 4 == 1 else 1.0, "disgust": 0.0, "enthusiasm": 0.0})
    return pa.Table.from_pylist(rows)


def test_emotion_labels_keep_every_emotion_an_image_evokes(orl_faces):
    labels = iad.emotion_labels(emotion_scores(orl_faces), multi_label=True)
    assert labels.column_names[:8] == ["image_id", "anger", "disgust", "enthusiasm", "fear", "sadness", "n_emotions",
                                       "emotions"]
    assert "path" in labels.column_names and labels.num_rows == 24
    rows = {r["image_id"]: r for r in labels.to_pylist()}
    assert rows["s1_1"]["emotions"] == "anger;fear" and rows["s1_1"]["n_emotions"] == 2     # k = 0
    assert rows["s1_2"]["emotions"] == "sadness"                                            # k = 1: 0.5, 0, 8
    assert rows["s1_3"]["emotions"] == "anger"                                              # k = 2
    assert rows["s2_4"]["emotions"] == ""                                                   # k = 7: none
    assert sum(r["n_emotions"] >= 2 for r in rows.values()) == 4 + 2                       # k = 0, 6, 12, 18; 9, 21
    assert labels["fear"].to_pylist() == [k % 3 == 0 for k in range(24)]


@pytest.mark.trains
def test_a_multi_label_fit_reports_each_label(orl_faces, sample_data, tmp_path):
    """finetune(label=[...]): one sigmoid output per emotion, per-label metrics with intervals, their macro
    averages and exact match, each equal to a recount of the run's own predictions (no claim about how well so
    small a fit learns)."""
    emotions = ["anger", "fear", "sadness"]
    table = iad.emotion_labels(emotion_scores(orl_faces), multi_label=True)
    run = iad.finetune(table, label=emotions, out=tmp_path / "emotions", image_size=32, epochs=2, freeze="backbone",
                       augment_crop=False, progress=False)
    assert run.description["task"] == "multi_label" and run.classes == emotions
    assert run.description["test_split"]["why_none"].startswith("a test split needs at least 20 images with")
    head = run.weights()["classifier.weight"]
    assert tuple(head.shape) == (3, 1280)
    predictions = run.predictions.filter(pa.compute.equal(run.predictions["split"], "val"))
    probabilities = np.column_stack([predictions[f"prob_{e}"].to_numpy() for e in emotions])
    assert ((probabilities > 0) & (probabilities < 1)).all()
    truth = np.array([[e in (t or "").split(";") for e in emotions] for t in predictions["label"].to_pylist()])
    decided = probabilities >= 0.5
    assert predictions["predicted"].to_pylist() == [";".join(e for e, d in zip(emotions, row) if d) for row in decided]
    metrics = {(r["metric"], r["estimator"], r["class"]): r for r in run.metrics.to_pylist() if r["split"] == "val"}
    for k, emotion in enumerate(emotions):
        assert metrics[("accuracy", "binary", emotion)]["estimate"] == pytest.approx((truth[:, k] == decided[:, k]).mean())
        row = metrics[("recall", "binary", emotion)]
        if truth[:, k].any():
            assert row["estimate"] == pytest.approx((truth[:, k] & decided[:, k]).sum() / truth[:, k].sum())
        assert row["lower"] is not None and row["lower"] <= row["estimate"] <= row["upper"]
    assert metrics[("accuracy", "macro", None)]["estimate"] == pytest.approx((truth == decided).mean())
    assert metrics[("exact_match", "multilabel", None)]["estimate"] == pytest.approx((truth == decided).all(1).mean())
    # new images: one probability per emotion, each label decided on its own
    new = run.predict(sample_data / "new_images", progress=False)
    assert new.column_names == ["image_id", "path", "predicted", "prob_anger", "prob_fear", "prob_sadness", "error"]
    with pytest.raises(ImagesAsDataError, match="evaluate\\(\\) scores one label per image"):
        run.evaluate(table)
    with pytest.raises(ImagesAsDataError, match="at least two distinct label columns"):
        iad.finetune(table, label=["anger"], progress=False)
