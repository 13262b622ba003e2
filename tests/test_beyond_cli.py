"""The CLI verbs beyond one label per image, run as a user would run them (a subprocess), on the tweeted examples."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pyarrow.csv as pa_csv
import pytest

from cli_runner import run


def test_faces_and_ocr(rekognition_examples, tmp_path):
    result = run("faces", rekognition_examples, "--out", tmp_path / "faces.parquet", "--counts", tmp_path / "counts.csv",
                 "--no-progress")
    assert "faces in 5 images (2 without a face, 0 unreadable)" in result.stdout
    counts = {r["image_id"]: r["faces"] for r in pa_csv.read_csv(tmp_path / "counts.csv").to_pylist()}
    assert counts["ex_1.jpg"] == 0 and counts["ex_5.jpg"] == 4
    run("ocr", rekognition_examples / "ex_3.jpg", "--out", tmp_path / "text.csv", "--words", tmp_path / "words.parquet",
        "--no-progress")
    text = pa_csv.read_csv(tmp_path / "text.csv").to_pylist()[0]["text"]
    assert "BLACK LIVES MATTER" in " ".join(text.split())
    assert pq.read_table(tmp_path / "words.parquet").num_rows >= 8
    missing = run("ocr", rekognition_examples / "ex_3.jpg", "--out", tmp_path / "x.csv", "--languages", "xyz", check=False)
    assert missing.returncode == 1 and "apt-get install tesseract-ocr-xyz" in missing.stderr


def test_screen_share_and_rejoin(rekognition_examples, tmp_path):
    run("moderation-local", rekognition_examples, "--out", tmp_path / "tags.parquet", "--detectors", "nudity",
        "--no-progress")
    result = run("screen", tmp_path / "tags.parquet", "--out", tmp_path / "screen.parquet", "--sheet",
                 tmp_path / "sheet.png", "--coding-sheet", tmp_path / "coding.csv", "--variables", "protest,crowd")
    assert "0 of 5 images flagged; nothing was deleted" in result.stdout
    coding = pa_csv.read_csv(tmp_path / "coding.csv")
    assert coding.column_names == ["image_id", "path", "protest", "crowd"] and coding.num_rows == 5
    assert (tmp_path / "sheet.png").stat().st_size > 1000
    run("share", tmp_path / "coding.csv", "--out", tmp_path / "shared", "--sources", "tweets, May 2019",
        "--answer", "copyright=the tweets' authors; not redistributed")
    assert "not redistributed" in (tmp_path / "shared" / "datasheet.md").read_text()
    mine = tmp_path / "mine"
    shutil.copytree(rekognition_examples, mine, ignore=shutil.ignore_patterns("*.csv", "ex_2.jpg"))
    result = run("rejoin", tmp_path / "shared", mine, "--out", tmp_path / "joined.csv")
    assert "4 of 5 shared images found in your copy" in result.stdout


def test_video_verbs(orl_faces, tmp_path):
    av = pytest.importorskip("av")
    from PIL import Image

    with av.open(str(tmp_path / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 92, 112, "yuv420p"
        for person in ("s1", "s2"):
            frame = av.VideoFrame.from_image(Image.open(orl_faces / person / "1.pgm").convert("RGB"))
            for _ in range(8):
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    result = run("video-frames", tmp_path / "clip.mp4", "--out", tmp_path / "frames", "--every", "0",
                 "--scene-threshold", "0.1", "--no-progress")
    assert "2 frames written" in result.stdout
    frames = pq.read_table(tmp_path / "frames" / "frames.parquet")
    assert frames["timestamp"].to_pylist() == [0.0, 2.0]
    run("label-video", tmp_path / "clip.mp4", "--tagger", "local", "--out", tmp_path / "labelled", "--every", "1",
        "--summary", tmp_path / "summary.csv", "--no-progress")
    summary = pa_csv.read_csv(tmp_path / "summary.csv")
    assert set(summary["frames_total"].to_pylist()) == {4}
