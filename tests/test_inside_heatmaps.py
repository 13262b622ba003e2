"""Class-activation heatmaps (issue 15, item 1): on a task whose answer is known — the class is the colour of a
square pasted in the top-left corner of real photos — the heatmap's mass lies in that corner, for two
architectures and for a gradient-free method; the table, the overlays, the top losses, and clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from inside_runs import faces_run, patch_run
from learned import assert_learned


def quadrant_shares(table: pa.Table) -> np.ndarray:
    """Share of each heatmap's mass in its quadrants (top-left, top-right, bottom-left, bottom-right)."""
    size = table["heatmap_size"][0].as_py()
    maps = np.asarray(table["heatmap"].to_pylist(), np.float64).reshape(-1, size, size)
    half = size // 2
    quadrants = np.stack([maps[:, :half, :half], maps[:, :half, half:], maps[:, half:, :half],
                          maps[:, half:, half:]]).sum(axis=(2, 3)).T
    return quadrants / quadrants.sum(axis=1, keepdims=True)


def validation_images(run) -> pa.Table:
    return run.splits.filter(pc.equal(run.splits["split"], "val"))


@pytest.mark.trains
@pytest.mark.parametrize("architecture", ["efficientnet_lite0", "resnet18"])
def test_gradcam_mass_lies_in_the_corner_with_the_square(orl_faces, architecture):
    run = patch_run(orl_faces, architecture)
    # The task is decided by a colour check; both networks solve it (measured: validation accuracy 1.0).
    assert_learned(run, f"the patch_run({architecture!r}) fixture", margin=0.4)   # chance 0.5: 0.9 of 16
    val = validation_images(run)
    table = iad.heatmaps(run, val, target="label", progress=False)
    assert table["error"].null_count == table.num_rows == val.num_rows == 16
    assert table["layer"][0].as_py() == {"efficientnet_lite0": "bn2", "resnet18": "layer4"}[architecture]
    shares = quadrant_shares(table)
    top_left = shares[:, 0]
    # The top-left quadrant is a quarter of the picture (chance: 0.25). Measured on the development machine, over
    # the 16 validation images: median share 0.72 (EfficientNet-Lite0, 224 px, 7×7 map) and 0.62 (ResNet-18 from
    # random weights, 160 px, 5×5 map), lowest 0.45 and 0.57; the top-left was the heaviest quadrant for all 16 with
    # both. "Most of the mass in the corner for most images" is asserted with room to spare on another CPU's
    # arithmetic: the median above one half, and the top-left the heaviest quadrant for at least 12 of the 16.
    assert np.median(top_left) > 0.5, np.round(top_left, 3)
    assert np.mean(shares.argmax(axis=1) == 0) >= 0.75, np.round(shares, 2)


@pytest.mark.trains
def test_ablation_cam_without_gradients_also_finds_the_square(orl_faces):
    run = patch_run(orl_faces, "efficientnet_lite0")
    val = validation_images(run).slice(0, 6)
    table = iad.heatmaps(run, val, target="label", method="ablationcam", progress=False)
    shares = quadrant_shares(table)
    # Measured (6 validation images): top-left shares 0.31, 0.32, 0.54, 0.56, 0.62, 0.66 (mean 0.50; chance 0.25),
    # the top-left the heaviest quadrant for 5 of the 6. Ablation-CAM weighs each channel by the score lost when it
    # is zeroed, a noisier estimate than Grad-CAM's gradient: asserted with that in mind — the corner the heaviest
    # quadrant for most images (4 of 6) and holding, on average, well above its quarter (0.4).
    assert np.sum(shares.argmax(axis=1) == 0) >= 4, np.round(shares, 2)
    assert shares[:, 0].mean() > 0.4, np.round(shares[:, 0], 3)


@pytest.mark.trains
def test_ablation_shortcut_gives_the_full_computation(monkeypatch):
    """Ablation-CAM runs the network once per channel; the engine cuts the image to a few pixels while the layer is
    replaced (its output no longer depends on the image). The heatmap must be the library's own."""
    from imagesasdata.model import cams
    from imagesasdata.model.inference import Predictor, decode_images

    run = faces_run()
    predictor = Predictor(run.description, run.weights(), "cpu", "fp32")
    images, errors = decode_images(run.splits["path"].to_pylist()[:2], predictor.prep)
    batch = {"row": np.arange(2), "image": images, "error": errors}
    # layer "blocks" (320 channels) keeps the full computation affordable; nothing but its output reaches the head.
    fast = cams.HeatmapMaker(predictor, "ablationcam", "blocks")
    assert fast.shortcut
    quick = fast(batch)["heatmaps"]
    fast.close()
    monkeypatch.setattr(cams, "smallest_replay_input", lambda *args: 0)
    full = cams.HeatmapMaker(predictor, "ablationcam", "blocks")
    assert not full.shortcut
    assert np.allclose(quick, full(batch)["heatmaps"], atol=1e-5)
    full.close()
    # Around a layer inside a residual block the output also depends on the skip connection: no shortcut there.
    assert cams.smallest_replay_input(predictor.model, "blocks.5.1.conv_pw", 64) == 0


def test_the_layer_is_found_for_each_architecture():
    from imagesasdata.model.backbones import create_backbone
    from imagesasdata.model.cams import default_layer, feature_map_layers

    expected = {"efficientnet_lite0": "bn2", "resnet18": "layer4", "densenet121": "features",
                "squeezenet1_1": "features", "mobilenet_v3_small": "features", "inception_v3": "Mixed_7c",
                "timm/convnext_atto": "stages"}
    for architecture, layer in expected.items():
        backbone = create_backbone(architecture, None, 3, progress=False)
        layers = feature_map_layers(backbone.model, backbone.head, 96 if architecture != "inception_v3" else 160)
        assert default_layer(layers) == layer, architecture
    # A vision transformer's only map is its patch embedding, followed by a sequence of tokens: refused by default.
    vit = create_backbone("vit_tiny_patch16_224", None, 3, progress=False)
    with pytest.raises(ImagesAsDataError, match="no convolutional feature map just before its classifier"):
        default_layer(feature_map_layers(vit.model, vit.head, 224))


@pytest.mark.trains
def test_heatmap_table_overlays_and_probabilities(tmp_path, sample_data):
    run = faces_run()
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    files = sorted((sample_data / "faces").glob("s*/[12].png")) + [broken]
    out = tmp_path / "heatmaps"
    table = iad.heatmaps(run, [str(f) for f in files], out=out, progress=False)
    assert table.num_rows == len(files) == 13
    errors = table["error"].to_pylist()
    assert errors[-1] is not None and all(e is None for e in errors[:-1])
    assert table["heatmap"][12].as_py() is None and table["overlay"][12].as_py() is None
    maps = np.asarray(table["heatmap"].to_pylist()[:-1], np.float64)
    assert maps.shape == (12, 56 * 56) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    centres = np.asarray(table.slice(0, 12).select(["centre_x", "centre_y"]).to_pandas())
    assert ((centres > 0) & (centres < 1)).all()
    # The probability is the one predict() gives (the same forward pass), for the predicted class.
    predictions = iad.predict(run, [str(f) for f in files[:-1]], progress=False)
    assert table["target"].to_pylist()[:-1] == predictions["predicted"].to_pylist()
    expected = [row[f"prob_{row['predicted']}"] for row in predictions.to_pylist()]
    assert np.allclose(table["probability"].to_pylist()[:-1], expected, atol=1e-5)
    from PIL import Image

    overlay = Image.open(table["overlay"][0].as_py())
    assert overlay.size == (224, 224) and overlay.mode == "RGB"
    assert pq.read_table(out / "heatmaps.parquet").num_rows == 13
    with pytest.raises(ImagesAsDataError, match="already holds"):
        iad.heatmaps(run, [str(f) for f in files[:2]], out=out, progress=False)
    again = iad.heatmaps(run, [str(f) for f in files[:2]], out=out, overwrite=True, progress=False)
    assert again.num_rows == 2 and len(list((out / "overlays").glob("*.png"))) == 2


@pytest.mark.trains
def test_many_images_one_model(monkeypatch, sample_data):
    """Batch use: 48 images in batches of 8 build the network once."""
    from imagesasdata.model import backbones

    run = faces_run()
    built = []
    original = backbones.rebuild_model
    monkeypatch.setattr(backbones, "rebuild_model", lambda *a, **k: built.append(1) or original(*a, **k))
    table = iad.heatmaps(run, sample_data / "faces", batch_size=8, progress=False)
    assert table.num_rows == 48 and table["error"].null_count == 48
    assert len(built) == 1


@pytest.mark.trains
def test_top_losses_get_heatmaps():
    run = faces_run()
    table = iad.top_loss_heatmaps(run, 4, progress=False)
    top = run.interpretation().top_losses(4)
    assert table["image_id"].to_pylist() == top["image_id"].to_pylist()
    losses = table["loss"].to_pylist()
    assert losses == sorted(losses, reverse=True)
    assert table["target"].to_pylist() == table["predicted"].to_pylist()


@pytest.mark.trains
def test_bad_requests_are_named():
    run = faces_run()
    images = run.splits.slice(0, 2)
    with pytest.raises(ImagesAsDataError, match=r"target='s99' is not a class of this model.*s1, s2"):
        iad.heatmaps(run, images, target="s99", progress=False)
    with pytest.raises(ImagesAsDataError, match=r"layer='blocks\.99' is not a module.*heatmap_layers"):
        iad.heatmaps(run, images, layer="blocks.99", progress=False)
    with pytest.raises(ImagesAsDataError, match=r"layer='classifier' exists but its output is not a feature map"):
        iad.heatmaps(run, images, layer="classifier", progress=False)
    with pytest.raises(ImagesAsDataError, match="not a heatmap method"):
        iad.heatmaps(run, images, method="gradcamm", progress=False)
    with pytest.raises(ImagesAsDataError, match="no label column"):
        iad.heatmaps(run, images.drop_columns(["label"]), target="label", progress=False)


@pytest.mark.trains
def test_layers_listed_with_the_default():
    layers = iad.heatmap_layers(faces_run())
    names = layers["name"].to_pylist()
    assert layers.filter(layers["default"])["name"].to_pylist() == ["bn2"]
    assert names.index("blocks") < names.index("bn2") and "classifier" not in names
    assert set(layers["height"].to_pylist()) >= {2}
