"""Every supported format and colour mode becomes 8-bit RGB; bad files raise a BadImageError that says why."""

import io

import numpy as np
import pytest
from PIL import Image

from imagesasdata.errors import BadImageError
from imagesasdata.io.images import list_image_files, open_rgb, sha256_file


@pytest.fixture()
def face(orl_faces) -> Image.Image:
    return Image.open(orl_faces / "s1" / "1.pgm")


@pytest.mark.parametrize("suffix,mode", [
    (".jpg", "L"), (".jpg", "RGB"), (".jpg", "CMYK"), (".png", "RGBA"), (".png", "P"), (".png", "L"),
    (".gif", "P"), (".bmp", "RGB"), (".tif", "RGB"), (".tif", "I;16"), (".webp", "RGB"), (".ppm", "RGB"), (".pgm", "L"),
])
def test_every_format_and_mode_becomes_rgb(tmp_path, face, suffix, mode):
    if mode == "I;16":
        image = Image.fromarray(np.asarray(face, dtype=np.uint16) * 256)  # 16-bit grey (mode I;16)
    else:
        image = face.convert(mode)
    path = tmp_path / f"face{suffix}"
    image.save(path)
    loaded = open_rgb(path)
    assert loaded.mode == "RGB"
    assert loaded.size == face.size
    grey = np.asarray(loaded.convert("L"), dtype=float)
    # Same picture: strongly correlated with the original grey levels (JPEG and palettes are lossy).
    assert np.corrcoef(grey.ravel(), np.asarray(face, dtype=float).ravel())[0, 1] > 0.95


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    image.save(tmp_path / "t.png")
    loaded = np.asarray(open_rgb(tmp_path / "t.png"))
    assert tuple(loaded[5, 5]) == (255, 255, 255)
    assert tuple(loaded[0, 0]) == (0, 0, 255)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(open_rgb(tmp_path / "a.gif"))[4, 4]) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path, face):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    face.convert("RGB").save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    loaded = open_rgb(tmp_path / "rotated.jpg")
    assert loaded.size == (face.height, face.width)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        open_rgb(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path, rekognition_examples):
    data = (rekognition_examples / "ex_1.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match=r"cut\.jpg: corrupt or truncated"):
        open_rgb(tmp_path / "cut.jpg")


def test_non_image_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are my field notes, not a photo")
    with pytest.raises(BadImageError, match=r"notes\.jpg: not an image Pillow can read"):
        open_rgb(tmp_path / "notes.jpg")


def test_missing_file(tmp_path):
    with pytest.raises(BadImageError, match="file not found"):
        open_rgb(tmp_path / "nowhere.png")


def test_decompression_bomb_is_refused(tmp_path):
    Image.new("L", (4000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(BadImageError, match="decompression bomb.*max_pixels"):
        open_rgb(tmp_path / "big.png", max_pixels=1_000_000)
    assert open_rgb(tmp_path / "big.png").size == (4000, 3000)  # below Pillow's default limit


def test_draft_mode_decodes_large_jpegs_smaller_but_large_enough(tmp_path, rekognition_examples):
    image = Image.open(rekognition_examples / "ex_2.jpg")
    big = image.resize((image.width * 4, image.height * 4))
    big.save(tmp_path / "big.jpg", quality=90)
    drafted = open_rgb(tmp_path / "big.jpg", draft_size=256)
    assert min(drafted.size) >= 256
    assert min(drafted.size) < min(big.size)


def test_listing_separates_images_from_other_files(tmp_path, face):
    face.save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    face.save(tmp_path / "sub" / "b.JPG")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".DS_Store").write_text("x")
    images, others = list_image_files(tmp_path)
    assert [p.name for p in images] == ["a.png", "b.JPG"]
    assert [p.name for p in others] == ["readme.txt"]


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    payload = io.BytesIO(b"x" * 3_000_000).getvalue()
    (tmp_path / "f").write_bytes(payload)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(payload).hexdigest()
