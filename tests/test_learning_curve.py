"""learning_curve(): nested, seeded fractions of the training images scored on one held-out split. Tiny fits (ORL
faces, 32 px, one epoch, frozen backbone): the assertions are about shapes, nesting and reproducibility, never about
an accuracy (which depends on the CPU's arithmetic)."""

import shutil

import numpy as np
import pytest

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.train.learning_curve import last_step, nested_training_rows

TINY = dict(image_size=32, epochs=1, freeze="backbone", augment_crop=False, augment_flip=False, progress=False,
            batch_size=8)


@pytest.fixture()
def eight_faces(tmp_path, orl_faces):
    root = tmp_path / "faces"
    for person in ("s1", "s2", "s3", "s4"):
        shutil.copytree(orl_faces / person, root / person)
    return root


@pytest.mark.trains
def test_learning_curve_shapes_nesting_and_reproducibility(eight_faces, tmp_path):
    curve = iad.learning_curve(eight_faces, fractions=(0.25, 0.5, 1.0), out=tmp_path / "a", **TINY)
    table = curve.table.to_pylist()
    assert [r["fraction"] for r in table] == [0.25, 0.5, 1.0]
    images = [r["train_images"] for r in table]
    assert images == sorted(images) and len(set(images)) == 3
    assert images[-1] == 32                                 # 4 people × 10 photos, 20% of each held out
    assert {r["split"] for r in table} == {"val"} and {r["n"] for r in table} == {8}
    for r in table:
        assert 0 <= r["conf_low"] <= r["accuracy"] <= r["conf_high"] <= 1
    # every fit trained on its fraction's images only, each fraction holding the smaller ones', and the same held-out split
    trained = []
    for r in table:
        splits = iad.load_run(r["run"]).splits
        trained.append({i for i, s in zip(splits["image_id"].to_pylist(), splits["split"].to_pylist()) if s == "train"})
    assert [len(t) for t in trained] == images
    assert trained[0] <= trained[1] <= trained[2]
    held = [{i for i, s in zip(*(iad.load_run(r["run"]).predictions[c].to_pylist() for c in ("image_id", "split")))
             if s == "val"} for r in table]
    assert held[0] == held[1] == held[2]
    step = curve.last_step
    assert (step["from_images"], step["to_images"]) == (images[1], images[2])
    assert step["conf_low"] <= step["change"] <= step["conf_high"]
    assert step["per_200"] == pytest.approx(step["change"] * 200 / (images[2] - images[1]))
    assert curve.answer.startswith(f"From {images[1]} to {images[2]} training images")
    assert (tmp_path / "a" / "learning_curve.parquet").exists()
    # seeded: the same options give the same curve
    again = iad.learning_curve(eight_faces, fractions=(0.25, 0.5, 1.0), out=tmp_path / "b", **TINY)
    assert again.table.drop_columns(["run"]).equals(curve.table.drop_columns(["run"]))


def test_nested_rows_paired_step_and_errors(tmp_path):
    labels = ["a"] * 10 + ["b"] * 6
    rows = nested_training_rows(labels, [0.5, 1.0], seed=3)
    assert len(rows[0]) == 8 and len(rows[1]) == 16 and set(rows[0]) <= set(rows[1])
    assert rows == nested_training_rows(labels, [0.5, 1.0], seed=3)
    assert sum(labels[r] == "b" for r in rows[0]) == 3
    # by hand: 10 images, 3 right only after, 1 right only before: d = 0.2, var = ((3 + 1)/10 − 0.04)/10
    before = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    after = np.array([0, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    step = last_step(before, after, 100, 150)
    assert step["change"] == pytest.approx(0.2)
    assert step["conf_high"] - step["change"] == pytest.approx(1.959964 * np.sqrt((0.4 - 0.04) / 10), rel=1e-5)
    assert step["per_200"] == pytest.approx(0.8)
    with pytest.raises(ImagesAsDataError, match="fractions"):
        iad.learning_curve(tmp_path, fractions=(0.5, 0.25))
    with pytest.raises(ImagesAsDataError, match="fractions"):
        iad.learning_curve(tmp_path, fractions=(1.0,))
