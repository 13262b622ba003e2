"""Making images fit Rekognition (JPEG/PNG, ≤ 5 MB, 80–10,000 px a side) in memory, and the response cache."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imagesasdata.autotag import ResponseCache, prepare_image
from imagesasdata.autotag.payload import MAX_BYTES
from imagesasdata.errors import BadImageError
from imagesasdata.io.images import open_rgb


def test_acceptable_files_go_as_they_are(rekognition_examples):
    path = rekognition_examples / "ex_2.jpg"
    payload = prepare_image(path)
    assert payload.data == path.read_bytes() and payload.note is None
    assert (payload.format, payload.width, payload.height) == ("JPEG", 1200, 675)


def test_grey_pgm_becomes_a_lossless_png(orl_faces):
    payload = prepare_image(orl_faces / "s1" / "1.pgm")
    assert payload.format == "PNG" and "converted from PPM" in payload.note
    sent = np.asarray(Image.open(io.BytesIO(payload.data)).convert("RGB"))
    assert np.array_equal(sent, np.asarray(open_rgb(orl_faces / "s1" / "1.pgm")))


def test_a_real_photo_shrinks_to_a_byte_limit(rekognition_examples):
    """The same loop that keeps photos under 5 MB, on a real 150 kB photo and a 40 kB limit."""
    payload = prepare_image(rekognition_examples / "ex_2.jpg", max_bytes=40_000)
    assert len(payload.data) <= 40_000 and payload.format == "JPEG"
    assert payload.width < 1200 and abs(payload.width / payload.height - 1200 / 675) < 0.01
    assert "resized from 1200×675" in payload.note


def test_noise_over_five_megabytes_is_reencoded(tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)).save(path)
    assert path.stat().st_size > MAX_BYTES
    payload = prepare_image(path)
    assert len(payload.data) <= MAX_BYTES and payload.format == "JPEG" and (payload.width, payload.height) == (1400, 1400)


def test_shapes_that_cannot_fit_and_broken_files(tmp_path, rekognition_examples):
    Image.new("RGB", (20000, 50)).save(tmp_path / "strip.png")
    with pytest.raises(BadImageError, match="cannot fit"):
        prepare_image(tmp_path / "strip.png")
    (tmp_path / "cut.jpg").write_bytes((rekognition_examples / "ex_1.jpg").read_bytes()[:3000])
    with pytest.raises(BadImageError, match="truncated"):
        prepare_image(tmp_path / "cut.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match="empty file"):
        prepare_image(tmp_path / "empty.jpg")
    with pytest.raises(BadImageError, match="not found"):
        prepare_image(tmp_path / "absent.jpg")


def test_cache_entries_are_keyed_by_hash_operation_and_parameters(tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    sha = "ab" * 32
    response = {"Labels": [], "LabelModelVersion": "3.0",
                "ResponseMetadata": {"RequestId": "r-1", "HTTPHeaders": {"x-amzn-requestid": "r-1"}}}
    path = cache.put(sha, "DetectLabels", {"MinConfidence": 55.0}, {"MinConfidence": 55.0}, response, {"bytes": 10})
    assert cache.has(sha, "DetectLabels", {"MinConfidence": 55.0})
    assert not cache.has(sha, "DetectLabels", {"MinConfidence": 60.0})
    assert not cache.has(sha, "RecognizeCelebrities", {"MinConfidence": 55.0})
    assert cache.get(sha, "DetectLabels", {"MinConfidence": 55.0})["response"] == {"Labels": [], "LabelModelVersion": "3.0"}
    assert "ResponseMetadata" not in path.read_text() and "r-1" not in path.read_text()
    assert len(cache) == 1 and not list(path.parent.glob("*.part"))
    path.write_text("{not json")                                                  # e.g. after a power cut
    assert cache.get(sha, "DetectLabels", {"MinConfidence": 55.0}) is None
