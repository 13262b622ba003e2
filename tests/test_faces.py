"""Faces on real photographs: MTCNN (facenet-pytorch's shipped weights) on the ORL faces (one face per photo), on the
book's tweeted examples (a mug, a studio, a magazine cover, a press conference crowd, a family), checked against
where Rekognition found celebrities' faces in the same images; crops aligned by the eyes; a classifier fine-tuned
on face crops and applied per face, aggregated per image."""

from __future__ import annotations

import ast
import csv
import math
import shutil

import pyarrow as pa
import pytest
from PIL import Image

pytest.importorskip("facenet_pytorch")

import imagesasdata as iad  # noqa: E402
from learned import assert_learned  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402
from imagesasdata.infer.faces import FACE_SCHEMA  # noqa: E402


@pytest.fixture(scope="module")
def orl_detections(orl_faces):
    return iad.detect_faces(orl_faces, progress=False)


def test_one_face_per_orl_photo(orl_detections):
    counts = iad.face_counts(orl_detections)
    assert counts.num_rows == 400 and counts["error"].null_count == 400
    one = sum(1 for n in counts["faces"].to_pylist() if n == 1)
    # Measured: 399 of 400 (99.75%) on this machine; the issue asks for 95%. MTCNN is deterministic on a CPU
    # up to float rounding, which moves a score near the 0.9 threshold at most by 1e-5: the 4.75-point margin
    # holds on any x86-64 CPU.
    assert one / 400 >= 0.95
    assert orl_detections.schema == FACE_SCHEMA
    for row in orl_detections.to_pylist():
        if row["face_id"] is None:
            continue
        assert 0 <= row["left"] and row["left"] + row["width"] <= row["image_width"] + 1e-6
        assert 0 <= row["top"] and row["top"] + row["height"] <= row["image_height"] + 1e-6
        assert 0.9 <= row["score"] <= 1.0
        points = {p["name"]: (p["x"], p["y"]) for p in row["landmarks"]}
        # On an upright face the eyes are above the nose, the nose above the mouth corners.
        assert points["left_eye"][1] < points["nose"][1] < points["mouth_left"][1]
        assert points["left_eye"][0] < points["right_eye"][0]


def _rekognition_face_boxes(rekognition_examples):
    """{image_id: [(left, top, width, height) as shares of the picture]} of the faces RecognizeCelebrities named."""
    boxes = {}
    with open(rekognition_examples / "awsrekognition_celeb_detect.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["celeb_full_response"]:
                box = ast.literal_eval(row["celeb_full_response"])["Face"]["BoundingBox"]
                boxes.setdefault(row["image_id"], set()).add((box["Left"], box["Top"], box["Width"], box["Height"]))
    return boxes


def _iou(a, b):
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_tweeted_examples_counts_and_rekognitions_faces(rekognition_examples):
    faces = iad.detect_faces(rekognition_examples, progress=False)
    counts = {r["image_id"]: r["faces"] for r in iad.face_counts(faces).to_pylist()}
    # Exact counts where nothing is near the threshold (measured: no candidate at all on ex_1 and ex_3; the family's
    # four faces score 1.00, the next candidate far below 0.9), a margin for the crowd.
    assert counts["ex_1.jpg"] == 0          # a mug on a window sill: no face, and no error
    assert counts["ex_3.jpg"] == 0          # a magazine cover whose two photos show people a few pixels high
    # A press-conference crowd: Rekognition's DetectLabels saw a Crowd there; we count 13 faces (measured); a
    # count of 10 or more allows for a face or three near the threshold on another CPU.
    assert counts["ex_4.jpg"] >= 10
    assert counts["ex_5.jpg"] == 4          # a family of four facing the camera
    # Every face Rekognition recognised as a celebrity is one of ours (the boxes overlap by IoU >= 0.3; measured
    # 0.68-0.72: the two detectors draw the box around a face differently).
    ours = {}
    for row in faces.to_pylist():
        if row["face_id"] is not None:
            ours.setdefault(row["image_id"], []).append(
                (row["left"] / row["image_width"], row["top"] / row["image_height"],
                 row["width"] / row["image_width"], row["height"] / row["image_height"]))
    theirs = _rekognition_face_boxes(rekognition_examples)
    assert sum(len(v) for v in theirs.values()) == 3
    for image_id, boxes in theirs.items():
        for box in boxes:
            assert max(_iou(box, mine) for mine in ours[image_id]) >= 0.3, (image_id, box)


def test_bad_files_are_rows_and_the_run_goes_on(tmp_path, orl_faces):
    shutil.copy(orl_faces / "s1" / "1.pgm", tmp_path / "good.pgm")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    faces = iad.detect_faces(tmp_path, progress=False)
    rows = {r["image_id"]: r for r in faces.to_pylist()}
    assert rows["good.pgm"]["face_id"] == 1 and rows["good.pgm"]["error"] is None
    assert "corrupt" in rows["broken.jpg"]["error"] or "not an image" in rows["broken.jpg"]["error"]
    assert "empty file" in rows["empty.png"]["error"]
    counts = {r["image_id"]: r for r in iad.face_counts(faces).to_pylist()}
    assert counts["empty.png"]["faces"] is None and counts["good.pgm"]["faces"] == 1


def test_options_are_checked():
    with pytest.raises(ImagesAsDataError, match="threshold"):
        iad.detect_faces([], threshold=2)
    with pytest.raises(ImagesAsDataError, match="min_face_size"):
        iad.detect_faces([], min_face_size=5)


def _eye_angles(faces_table):
    """The angle of the line through the eyes of each face found, in degrees (0 = level), in face_id order."""
    angles = []
    for row in faces_table.to_pylist():
        if row["face_id"] is None:
            continue
        points = {p["name"]: (p["x"], p["y"]) for p in row["landmarks"]}
        (lx, ly), (rx, ry) = points["left_eye"], points["right_eye"]
        angles.append(math.degrees(math.atan2(ry - ly, rx - lx)))
    return angles


def test_alignment_levels_the_eyes(tmp_path, rekognition_examples):
    # The family of ex_5 turned by 20 degrees: each face's aligned crop has level eyes, its plain crop keeps the tilt.
    photo = Image.open(rekognition_examples / "ex_5.jpg").convert("RGB")
    tilted = photo.rotate(20, resample=Image.Resampling.BICUBIC, expand=True)
    tilted.save(tmp_path / "tilted.png")
    faces = iad.detect_faces(tmp_path / "tilted.png", progress=False)
    tilts = _eye_angles(faces)
    assert len(tilts) == 4 and max(abs(t) for t in tilts) > 15     # measured -5, -22, -16 and 32 degrees
    rows = [r for r in faces.to_pylist() if r["face_id"] is not None]
    for align in (True, False):
        for k, crop in enumerate(iad.crop_faces(tilted, rows, size=160, align=align)):
            assert crop.size == (160, 160)
            crop.save(tmp_path / f"{align}_{k}.png")
    for k, tilt in enumerate(tilts):
        aligned = _eye_angles(iad.detect_faces(tmp_path / f"True_{k}.png", progress=False))
        plain = _eye_angles(iad.detect_faces(tmp_path / f"False_{k}.png", progress=False))
        # Re-detected on the crops: level within 4 degrees after alignment (measured under 2); without it, the
        # tilt of the big picture within 4 degrees (measured within 1.2).
        assert len(aligned) == 1 and abs(aligned[0]) < 4
        assert len(plain) == 1 and abs(plain[0] - tilt) < 4


@pytest.fixture(scope="module")
def face_run(tmp_path_factory, orl_faces):
    """Face crops of three ORL people (photos 1-8 train, 9-10 val), and a run fitted on them (frozen backbone:
    seconds, not minutes, on 2 cores)."""
    root = tmp_path_factory.mktemp("orl")
    for person in ("s1", "s3", "s4"):
        for k in range(1, 11):
            split = "train" if k <= 8 else "val"
            target = root / split / person / f"{person}_{k}.pgm"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(orl_faces / person / f"{k}.pgm", target)
    crops = iad.face_crops(root, tmp_path_factory.mktemp("crops") / "out", size=96, largest_only=True, progress=False)
    run = iad.finetune(crops, out=tmp_path_factory.mktemp("run") / "run", epochs=10, image_size=96, freeze="backbone",
                       learning_rate=0.01, augment_crop=False, group="source_image_id", progress=False)
    return crops, run


@pytest.mark.trains
def test_face_crops_keep_label_and_split_and_train(face_run):
    crops, run = face_run
    skipped = pa.parquet.read_table(crops["path"][0].as_py().rsplit("/", 2)[0] + "/skipped.parquet")
    # One face per ORL photo (largest_only), or a line in skipped.parquet: measured 30 of 30 for these people.
    assert crops.num_rows + skipped.num_rows == 30 and crops.num_rows >= 29
    assert set(crops["label"].to_pylist()) == {"s1", "s3", "s4"}
    assert crops["split"].to_pylist().count("val") >= 5
    for row in crops.to_pylist():
        assert row["image_id"] == f"{row['source_image_id']}#face1"
        assert f"/{row['label']}/" in row["path"]
        with Image.open(row["path"]) as crop:
            assert crop.size == (96, 96)
    # Three people, six validation faces: measured 1.0; 4 of 6 is what a model that learned something must reach
    # (chance is 1/3), whatever the CPU's float rounding does to a close call.
    assert_learned(run, "the face_run fixture (3 people, 10 epochs on frozen features)", margin=1 / 3)


@pytest.mark.trains
def test_classify_faces_per_face_and_per_image(face_run, orl_faces, tmp_path, rekognition_examples):
    _, run = face_run
    # A real "group photo": two people's held-out photos side by side; and a picture with no face.
    left, right = Image.open(orl_faces / "s1" / "10.pgm"), Image.open(orl_faces / "s4" / "10.pgm")
    pair = Image.new("RGB", (left.width + right.width + 40, max(left.height, right.height)), (128, 128, 128))
    pair.paste(left.convert("RGB"), (0, 0))
    pair.paste(right.convert("RGB"), (left.width + 40, 0))
    pair.save(tmp_path / "pair.png")
    shutil.copy(rekognition_examples / "ex_1.jpg", tmp_path / "mug.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = iad.classify_faces(run, tmp_path, progress=False)
    assert result.classes == ["s1", "s3", "s4"]
    per_image = {r["image_id"]: r for r in result.images.to_pylist()}
    assert per_image["pair.png"]["faces"] == 2
    assert per_image["mug.jpg"]["faces"] == 0 and per_image["mug.jpg"]["any_s1"] is False
    assert per_image["mug.jpg"]["all_s1"] is None
    assert per_image["broken.png"]["error"] and per_image["broken.png"]["faces"] is None
    faces = result.faces.to_pylist()
    assert len(faces) == 2 and all(abs(sum(f[f"prob_{c}"] for c in result.classes) - 1) < 1e-5 for f in faces)
    # Which face is whose: the left box is s1's photo, the right one s4's.
    truth = ["s1" if f["left"] < left.width else "s4" for f in faces]
    predicted = [f["predicted"] for f in faces]
    pair_row = per_image["pair.png"]
    assert sum(pair_row[f"faces_{c}"] for c in result.classes) == 2
    assert pair_row["any_s1"] == ("s1" in predicted) and pair_row["all_s4"] == all(p == "s4" for p in predicted)
    # The run was right about 6 of 6 validation faces; allow one mistake of two here.
    assert sum(t == p for t, p in zip(truth, predicted)) >= 1
    # Reusing a detection table gives the same answer as detecting again.
    reused = iad.classify_faces(run, tmp_path, faces=iad.detect_faces(tmp_path, progress=False), progress=False)
    assert reused.faces.select(["image_id", "face_id", "predicted"]).equals(
        result.faces.select(["image_id", "face_id", "predicted"]))


def test_face_crops_skip_images_without_faces_with_a_reason(tmp_path, orl_faces, rekognition_examples):
    source = tmp_path / "source"
    (source / "people").mkdir(parents=True)
    shutil.copy(orl_faces / "s4" / "1.pgm", source / "people" / "face.pgm")
    shutil.copy(rekognition_examples / "ex_1.jpg", source / "people" / "mug.jpg")
    with pytest.warns(UserWarning, match="1 of 2 images gave no crop"):
        crops = iad.face_crops(source, tmp_path / "crops", progress=False)
    assert crops.num_rows == 1
    skipped = pa.parquet.read_table(tmp_path / "crops" / "skipped.parquet").to_pylist()
    assert [s["image_id"] for s in skipped] == ["people/mug.jpg"] and "no face found" in skipped[0]["reason"]
    with pytest.raises(ImagesAsDataError, match="overwrite"):
        iad.face_crops(source, tmp_path / "crops", progress=False)


@pytest.mark.trains
def test_identifying_faces_gives_a_one_time_notice_that_the_output_records(face_run, orl_faces, tmp_path, capsys,
                                                                           monkeypatch):
    """Section 8's surveillance concern: the first identification of a session prints the notice; the next is
    quiet; both results record it (in .notices and in their tables' metadata)."""
    from imagesasdata import notices

    monkeypatch.setattr(notices, "_shown", set())
    monkeypatch.setattr(notices, "_suppressed", set())
    monkeypatch.delenv(notices.QUIET_ENV, raising=False)
    _, run = face_run
    shutil.copy(orl_faces / "s1" / "10.pgm", tmp_path / "s1.pgm")
    first = iad.classify_faces(run, tmp_path, progress=False)
    printed = capsys.readouterr().err
    assert printed.count("imagesasdata notice (face_identification") == 1 and "surveillance" in printed
    again = iad.classify_faces(run, tmp_path, progress=False)
    assert "imagesasdata notice" not in capsys.readouterr().err
    assert [(r["notice"], r["shown"]) for r in first.notices] == [("face_identification", True)]
    assert [(r["notice"], r["shown"]) for r in notices.recorded(again.faces)] == [("face_identification", False)]
    assert notices.recorded(again.images) == again.notices
