"""io/sheets.py, the one writer of contact sheets, coding sheets and thumbnails, on real images (the callers' own
tests check their sheets: test_dedupe, test_moderation, test_inside_embeddings, test_inside_selection,
test_analysis_workflow)."""

import base64
import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from imagesasdata.errors import BadImageError, ImagesAsDataError
from imagesasdata.io.sheets import (Layout, Line, Tile, coding_table, contact_page, contact_picture, save_picture,
                                    shorten, thumbnail, thumbnail_data_uri, thumbnail_or_none, write_sheet)
from imagesasdata.io.tables import read_table


@pytest.fixture()
def images(tmp_path, orl_faces, rekognition_examples):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 broken")
    return [orl_faces / "s1" / "1.pgm", rekognition_examples / "ex_2.jpg", broken]


def test_thumbnails_fit_keep_the_aspect_and_blur(images):
    face, photo, broken = images
    small = thumbnail(face, 56)
    assert small.size == (46, 56)                       # ORL photos are 92 x 112
    wide = thumbnail(photo, 64)
    assert max(wide.size) == 64 and wide.mode == "RGB"
    detail = lambda im: np.abs(np.diff(np.asarray(im.convert("L"), dtype=float), axis=1)).mean()  # noqa: E731
    assert detail(thumbnail(photo, 64, blur=0.12)) < 0.3 * detail(wide)
    with pytest.raises(BadImageError):
        thumbnail(broken, 64)
    assert thumbnail_or_none(broken, 64) is None and thumbnail_or_none(None, 64) is None
    assert thumbnail_data_uri(broken, 64) is None
    uri = thumbnail_data_uri(face, 56)
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (46, 56)
    assert shorten("a_very_long_file_name.jpg", 48) == "…ame.jpg" and shorten("ok.jpg", 48) == "ok.jpg"


def test_contact_picture_draws_lines_frames_placeholders_and_counts(images, tmp_path):
    face, photo, broken = images
    layout = Layout(pad=8, caption=30, header=22, title=14, right=40, footer=18, min_width=100)
    lines = [Line([Tile(str(face), "face", note="keep", frame=(0, 150, 0)), Tile(str(photo), "photo")],
                  title="group 1", more=3),
             Line([Tile(str(broken), "broken")], title="group 2")]
    sheet = contact_picture("two groups", lines, thumb_size=48, columns=2, layout=layout, footer="1 more")
    cell_h = 14 + 48 + 30 + 8
    assert sheet.size == (8 + 2 * 56 + 40, 22 + 2 * cell_h + 18 + 8)
    pixels = np.asarray(sheet)
    first = pixels[22 + 14:22 + 14 + 48, 8 + 1:8 + 47]                  # the face, centred in its square
    assert first.std() > 10
    assert tuple(pixels[22 + 14 - 2, 8 + 20]) == (0, 150, 0)             # its green frame
    grey = pixels[22 + cell_h + 14 + 2, 8 + 2]                           # the unreadable image: a grey square
    assert tuple(grey) == (220, 220, 220)
    empty = contact_picture("nothing", [], thumb_size=48, columns=4, layout=layout, empty="no duplicates found")
    assert empty.size == (8 + 56 + 40, 22 + cell_h + 8) and np.asarray(empty.convert("L")).min() < 200   # text drawn
    assert save_picture(sheet, tmp_path / "s.png").exists()
    with pytest.raises(ImagesAsDataError, match=r"s\.gif: save the contact sheet as \.png or \.jpg"):
        save_picture(sheet, tmp_path / "s.gif")


def test_coding_sheet_csv_and_its_view(images, tmp_path):
    face, photo, broken = images
    table = pa.table({"image_id": ["a", "b<c>", "d"], "path": [str(face), str(photo), str(broken)], "x": [1, 2, 3]})
    sheet = coding_table(table, ("code", "note"), extra={"warning": pa.array([None, "look", None], pa.string())})
    assert sheet.column_names == ["image_id", "path", "warning", "code", "note"]
    assert sheet["code"].null_count == 3
    path = write_sheet(sheet, tmp_path / "wave1.csv", view_title="Coding sheet", view_heading="Coding: 3 images",
                       paragraphs=("Code <b>every</b> image",), thumb_size=64)
    back = read_table(path)
    assert back.column_names == sheet.column_names and back["image_id"].to_pylist() == ["a", "b<c>", "d"]
    page = (tmp_path / "wave1.html").read_text(encoding="utf-8")
    assert page.count("<figure>") == 3 and page.count("data:image/jpeg;base64,") == 2
    assert "b&lt;c&gt;" in page and "<p>Code <b>every</b> image</p>" in page and "unreadable" in page
    assert "<title>Coding sheet</title>" in page and "<h1>Coding: 3 images</h1>" in page
    assert "Coding sheet" in contact_page("Coding sheet", "h", [], thumb_size=64)
    assert not (tmp_path / "plain.html").exists() and write_sheet(sheet, tmp_path / "plain.csv").exists()
    with pytest.raises(ImagesAsDataError, match="image_id"):
        coding_table(pa.table({"path": ["x"]}))
