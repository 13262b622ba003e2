"""The inventory on real images: sizes, formats and hashes as the files really are; bad files listed, never fatal."""

from __future__ import annotations

import hashlib
import os
import shutil

import pyarrow as pa
import pytest
from PIL import Image

from imagesasdata import ImagesAsDataError, image_inventory, open_rgb
from imagesasdata.cli import main
from imagesasdata.io.tables import read_table


@pytest.fixture()
def mixed(tmp_path, orl_faces, rekognition_examples):
    """ORL faces of two people, the five tweeted JPEGs, and the bad files a scrape brings."""
    root = tmp_path / "scrape"
    shutil.copytree(orl_faces / "s1", root / "s1")
    shutil.copytree(orl_faces / "s2", root / "s2")
    for k in range(1, 6):
        shutil.copy(rekognition_examples / f"ex_{k}.jpg", root / f"ex_{k}.jpg")
    data = (rekognition_examples / "ex_1.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])  # intact header, half the pixels
    (root / "page.jpg").write_text("<html>404 Not Found</html>")  # an error page saved as .jpg
    (root / "empty.png").write_bytes(b"")
    # A phone photo stored sideways, with EXIF orientation 6 ("turn a quarter clockwise to show").
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(rekognition_examples / "ex_4.jpg").save(root / "sideways.jpg", exif=exif.tobytes())
    return root


def test_inventory_reports_each_file_as_it_is(mixed):
    table = image_inventory(mixed, progress=False)
    assert table.column_names[:12] == ["image_id", "path", "label", "split", "bytes", "width", "height", "format",
                                       "mode", "sha256", "readable", "error"]
    rows = {r["image_id"]: r for r in table.to_pylist()}
    assert len(rows) == 29
    for image_id in ["s1/1.pgm", "s2/10.pgm", "ex_1.jpg", "ex_3.jpg", "ex_5.jpg"]:
        row = rows[image_id]
        decoded = open_rgb(row["path"])
        assert (row["width"], row["height"]) == decoded.size
        assert row["bytes"] == os.path.getsize(row["path"])
        with open(row["path"], "rb") as handle:
            assert row["sha256"] == hashlib.sha256(handle.read()).hexdigest()
        assert row["readable"] and row["error"] is None
    assert (rows["s1/1.pgm"]["format"], rows["s1/1.pgm"]["mode"]) == ("PPM", "L")  # Pillow's netpbm plugin
    assert (rows["ex_2.jpg"]["format"], rows["ex_2.jpg"]["mode"]) == ("JPEG", "RGB")
    assert rows["s1/1.pgm"]["label"] == "s1"  # class folders become labels, as everywhere in the engine
    # Width and height as displayed: the sideways photo is 253 wide once turned, as open_rgb() shows it.
    assert (rows["sideways.jpg"]["width"], rows["sideways.jpg"]["height"]) == (253, 506) == open_rgb(rows["sideways.jpg"]["path"]).size


def test_bad_files_are_listed_not_fatal(mixed):
    rows = {r["image_id"]: r for r in image_inventory(mixed, progress=False).to_pylist()}
    assert not rows["page.jpg"]["readable"] and "not an image" in rows["page.jpg"]["error"]
    assert not rows["empty.png"]["readable"] and "empty file" in rows["empty.png"]["error"]
    assert rows["empty.png"]["bytes"] == 0 and rows["page.jpg"]["sha256"] is not None
    # Headers only: the truncated JPEG looks fine until its pixels are decoded.
    assert rows["truncated.jpg"]["readable"] and rows["truncated.jpg"]["width"] == 900
    verified = {r["image_id"]: r for r in image_inventory(mixed, verify=True, progress=False).to_pylist()}
    assert not verified["truncated.jpg"]["readable"] and "truncated" in verified["truncated.jpg"]["error"]
    assert sum(not r["readable"] for r in verified.values()) == 3


def test_table_source_missing_files_and_extra_columns(tmp_path, orl_faces):
    table = pa.table({"file": [str(orl_faces / "s3" / "1.pgm"), str(tmp_path / "gone.jpg")], "protest": [1, 0]})
    out = image_inventory(table, progress=False, checksum=False)
    rows = out.to_pylist()
    assert rows[0]["readable"] and rows[0]["sha256"] is None and rows[0]["protest"] == 1
    assert not rows[1]["readable"] and "file not found" in rows[1]["error"] and rows[1]["bytes"] is None


def test_threads_keep_the_order(mixed):
    one = image_inventory(mixed, num_workers=1, progress=False)
    four = image_inventory(mixed, num_workers=4, progress=False)
    assert one.equals(four)


def test_empty_inputs_say_so(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(ImagesAsDataError, match="no images found"):
        image_inventory(tmp_path, progress=False)
    with pytest.raises(ImagesAsDataError, match="no such folder"):
        image_inventory(tmp_path / "missing", progress=False)
    with pytest.raises(ImagesAsDataError, match="no rows"):
        image_inventory(pa.table({"path": pa.array([], pa.string())}), progress=False)


def test_cli_inventory(mixed, tmp_path, capsys):
    out = tmp_path / "inventory.csv"
    assert main(["inventory", str(mixed), "--out", str(out), "--no-progress"]) == 0
    table = read_table(out)
    assert table.num_rows == 29 and sum(not r for r in table["readable"].to_pylist()) == 2
    assert "2 unreadable" in capsys.readouterr().out
