"""The small-image filter on real images and real small copies of them (thumbnails, icons)."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from imagesasdata import ImagesAsDataError, filter_small, image_inventory
from imagesasdata.cli import main
from imagesasdata.io.tables import read_table


@pytest.fixture()
def folder(tmp_path, orl_faces, rekognition_examples):
    root = tmp_path / "images"
    root.mkdir()
    for k in (1, 2, 4, 5):
        shutil.copy(rekognition_examples / f"ex_{k}.jpg", root / f"ex_{k}.jpg")  # 26–151 KB
    shutil.copy(orl_faces / "s7" / "3.pgm", root / "face.pgm")  # 10,354 bytes, 92 × 112
    # A thumbnail (an avatar-sized copy) and a tiny icon: both well under 5 KB.
    Image.open(rekognition_examples / "ex_3.jpg").resize((60, 80)).save(root / "thumb.jpg", quality=80)
    Image.open(orl_faces / "s7" / "3.pgm").resize((23, 28)).save(root / "icon.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def test_book_rule_removes_files_under_5_kb_with_reason(folder):
    table = filter_small(folder, progress=False)
    rows = {r["image_id"]: r for r in table.to_pylist()}
    sizes = {k: (folder / k).stat().st_size for k in rows}
    assert sizes["thumb.jpg"] < 5120 and sizes["icon.png"] < 5120 and sizes["face.pgm"] > 5120
    assert {k for k, r in rows.items() if r["kept"]} == {"ex_1.jpg", "ex_2.jpg", "ex_4.jpg", "ex_5.jpg", "face.pgm"}
    assert rows["thumb.jpg"]["reason"] == f"file smaller than 5,120 bytes ({sizes['thumb.jpg']:,})"
    assert rows["broken.jpg"]["reason"].startswith("unreadable:")
    assert all(r["reason"] is None for r in rows.values() if r["kept"])


def test_pixel_minimums_and_combined_reasons(folder):
    rows = {r["image_id"]: r for r in filter_small(folder, min_bytes=None, min_width=100, min_height=120,
                                                   progress=False).to_pylist()}
    # The ORL face is 92 × 112: too narrow and too short, though its file is large.
    assert not rows["face.pgm"]["kept"]
    assert rows["face.pgm"]["reason"] == "narrower than 100 pixels (92); shorter than 120 pixels (112)"
    assert rows["ex_4.jpg"]["kept"]  # 506 × 253
    both = {r["image_id"]: r for r in filter_small(folder, min_width=100, progress=False).to_pylist()}
    assert both["icon.png"]["reason"].startswith("file smaller than") and "narrower than 100 pixels (23)" in both["icon.png"]["reason"]


def test_an_inventory_is_used_as_it_is(folder):
    inventory = image_inventory(folder, progress=False)
    (folder / "ex_1.jpg").unlink()  # the table, not the disk, is what is filtered
    table = filter_small(inventory)
    assert table.num_rows == 8 and table.column_names[-2:] == ["kept", "reason"]
    assert {r["image_id"] for r in table.to_pylist() if r["kept"]} >= {"ex_1.jpg"}


def test_bad_options(folder):
    with pytest.raises(ImagesAsDataError, match="nothing to filter on"):
        filter_small(folder, min_bytes=None, progress=False)
    with pytest.raises(ImagesAsDataError, match="min_width"):
        filter_small(folder, min_width=-3, progress=False)


def test_cli_filter_small(folder, tmp_path):
    kept, removed = tmp_path / "kept.csv", tmp_path / "removed.csv"
    assert main(["filter-small", str(folder), "--out", str(kept), "--removed", str(removed), "--no-progress"]) == 0
    assert read_table(kept).num_rows == 5
    assert sorted(read_table(removed)["image_id"].to_pylist()) == ["broken.jpg", "icon.png", "thumb.jpg"]
