"""The local autotagger: the offline ImageNet EfficientNet-Lite0 on real photos, nothing sent anywhere.

Expectations come from looking at the photos: ex_1 is a C-SPAN coffee mug on a window sill, ex_2 a TV news studio
with a wall of screens, ex_3 a TIME magazine cover.
"""

from __future__ import annotations

import shutil

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import imagesasdata as iad
from imagesasdata.autotag import imagenet_categories
from imagesasdata.autotag.tables import LABEL_SCHEMA


@pytest.fixture(scope="module")
def local_tags(rekognition_examples, tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    for image in sorted(rekognition_examples.glob("*.jpg")):
        shutil.copy(image, folder / image.name)
    (folder / "zz_truncated.jpg").write_bytes((rekognition_examples / "ex_1.jpg").read_bytes()[:5000])
    return iad.autotag_local(folder, top_k=5, batch_size=4, device="cpu", progress=False)


def _top(table, image_id):
    return [r["label"] for r in table.to_pylist() if r["image_id"] == image_id]


def test_imagenet_names_come_from_torchvision_metadata():
    categories = imagenet_categories()
    assert len(categories) == 1000 and categories[0] == "tench" and categories[504] == "coffee mug"


def test_top_labels_of_real_photos(local_tags):
    assert local_tags.schema == LABEL_SCHEMA                                     # concatenates with Rekognition's
    assert set(local_tags["tagger"].to_pylist()) == {"efficientnet_lite0"}
    assert _top(local_tags, "ex_1.jpg")[0] == "coffee mug"
    assert "cup" in _top(local_tags, "ex_1.jpg")
    assert {"television", "monitor", "screen"} & set(_top(local_tags, "ex_2.jpg"))
    assert "book jacket" in _top(local_tags, "ex_3.jpg")
    for image_id in ("ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg"):
        rows = [r for r in local_tags.to_pylist() if r["image_id"] == image_id]
        confidences = [r["confidence"] for r in rows]
        assert [r["label_rank"] for r in rows] == [1, 2, 3, 4, 5]
        assert confidences == sorted(confidences, reverse=True)
        assert 0 < sum(confidences) <= 100.0 + 1e-6                               # percentages of one softmax
        assert all(r["error"] is None and r["parents"] is None and r["instances"] is None for r in rows)
    assert local_tags["label_model_version"].to_pylist()[0].startswith("efficientnet_lite0 ImageNet-1k")


def test_unreadable_image_is_a_row_with_its_error(local_tags):
    rows = [r for r in local_tags.to_pylist() if r["image_id"] == "zz_truncated.jpg"]
    assert len(rows) == 1 and rows[0]["label"] is None and "truncated" in rows[0]["error"]


def test_confidence_floor_keeps_images_with_empty_rows(rekognition_examples):
    table = iad.autotag_local([str(rekognition_examples / "ex_1.jpg"), str(rekognition_examples / "ex_4.jpg")],
                              top_k=5, min_confidence=50, device="cpu", progress=False)
    rows = {Path(r["image_id"]).name: r for r in table.to_pylist()}   # files listed: ids are the paths as written
    assert table.num_rows == 2
    assert rows["ex_1.jpg"]["label"] == "coffee mug" and rows["ex_1.jpg"]["confidence"] >= 50
    assert rows["ex_4.jpg"]["label"] is None and rows["ex_4.jpg"]["error"] is None   # nothing that sure: empty row


def test_local_tags_side_by_side_with_rekognition_and_validated(local_tags):
    """ImageNet has no "person" class: the proxy a study needs may simply not exist in a tagger (the book's
    point about Rekognition and protest)."""
    manual = pa.table({"image_id": ["ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg", "zz_truncated.jpg"],
                       "label": ["mug", "other", "other", "other", "other", "mug"]})
    result = iad.compare_tags(local_tags, manual, ["coffee mug", "cup"], manual_positive="mug")
    assert result.count("true positive") == 1 and result.count("true negative") == 4
    assert result.excluded["image_id"].to_pylist() == ["zz_truncated.jpg"]       # could not be tagged
    with pytest.warns(UserWarning, match="never occur"):
        iad.compare_tags(local_tags, manual, "person", manual_positive="mug")
    frequencies = iad.label_frequencies(local_tags, min_confidence=10)
    assert frequencies.filter(pc.equal(frequencies["label"], "coffee mug"))["images"].to_pylist() == [1]
