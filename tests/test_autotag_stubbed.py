"""Rekognition answers exactly as the service gave them: botocore's Stubber fed with the book's recorded responses.

../shared/datasets/rekognition_examples holds real DetectLabels and RecognizeCelebrities answers (May 2019) for
the five example images, one CSV row per image × label or image × celebrity. Each test queues those answers,
expecting the exact bytes of the right image, and checks our tables against the CSVs' own per-label values.
Stubber answers before botocore's retry handler runs, so retries are tested over HTTP in test_autotag_server.py;
here a throttling error is what botocore hands over after its retries are spent.
"""

from __future__ import annotations

import ast
import csv
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

boto3 = pytest.importorskip("boto3")
from botocore.stub import Stubber  # noqa: E402

import imagesasdata as iad  # noqa: E402
from imagesasdata.autotag import ResponseCache  # noqa: E402
from imagesasdata.autotag.tables import CELEBRITY_SCHEMA, LABEL_SCHEMA  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def recorded(rekognition_examples):
    """{image_id: DetectLabels answer} and {image_id: RecognizeCelebrities answer} rebuilt from the CSVs."""
    labels = {}
    for row in _rows(rekognition_examples / "awsrekognition_detect_labels.csv"):
        response = ast.literal_eval(row["full_detect_labels_response"])
        response.pop("ResponseMetadata")        # botocore adds its own; the parsed answer never carries the old one
        labels.setdefault(row["image_id"], response)
    celebrities = {}
    for row in _rows(rekognition_examples / "awsrekognition_celeb_detect.csv"):
        faces = celebrities.setdefault(row["image_id"], {"CelebrityFaces": [], "UnrecognizedFaces": []})
        if row["celeb_full_response"]:
            faces["CelebrityFaces"].append(ast.literal_eval(row["celeb_full_response"]))
    return labels, celebrities


def _client():
    return boto3.client("rekognition", region_name="us-east-1")


def _queue(stubber, operation, answers, images, params=None):
    for image in images:
        stubber.add_response(operation, answers[image.name],
                             {"Image": {"Bytes": image.read_bytes()}, **(params or {})})


def test_detect_labels_table_matches_the_books_csv(recorded, rekognition_examples, tmp_path):
    labels, _ = recorded
    images = sorted(rekognition_examples.glob("*.jpg"))
    client = _client()
    with Stubber(client) as stubber:
        _queue(stubber, "detect_labels", labels, images, {"MinConfidence": 55.0})
        table = iad.rekognition_labels(rekognition_examples, client=client, cache=tmp_path / "cache",
                                       concurrency=1, progress=False)
        stubber.assert_no_pending_responses()
    assert table.schema == LABEL_SCHEMA
    assert table["error"].null_count == table.num_rows
    expected = {(r["image_id"], int(r["label_num"]), r["label_str"], float(r["label_conf"]))
                for r in _rows(rekognition_examples / "awsrekognition_detect_labels.csv")}
    got = {(r["image_id"], r["label_rank"], r["label"], r["confidence"]) for r in table.to_pylist()}
    assert got == expected and table.num_rows == 50
    rows = {(r["image_id"], r["label"]): r for r in table.to_pylist()}
    person = rows[("ex_5.jpg", "Person")]
    assert person["instances"] == 3 and person["parents"] == []
    assert person["bounding_boxes"][0] == pytest.approx(
        {"left": 0.5306718945503235, "top": 0.09061721712350845, "width": 0.4613912105560303,
         "height": 0.9038285613059998, "confidence": 99.75495147705078})
    assert rows[("ex_5.jpg", "Portrait")]["parents"] == ["Face", "Person", "Photography"]
    assert rows[("ex_4.jpg", "Crowd")]["instances"] == 0
    assert set(table["label_model_version"].to_pylist()) == {"2.0"}
    # The cached answers rebuild the same table with no client at all (a replication package needs no AWS).
    again = iad.rekognition_labels(rekognition_examples, cache=tmp_path / "cache", progress=False)
    assert again.equals(table)


def test_celebrity_table_matches_the_books_csv(recorded, rekognition_examples, tmp_path):
    _, celebrities = recorded
    images = sorted(rekognition_examples.glob("*.jpg"))
    client = _client()
    with Stubber(client) as stubber:
        _queue(stubber, "recognize_celebrities", celebrities, images)
        table = iad.rekognition_celebrities(rekognition_examples, client=client, cache=tmp_path / "cache",
                                            concurrency=1, progress=False)
        stubber.assert_no_pending_responses()
    assert table.schema == CELEBRITY_SCHEMA
    got = {r["image_id"]: [] for r in table.to_pylist()}
    for r in table.to_pylist():
        if r["celebrity"] is not None:
            got[r["image_id"]].append(r)
    csv_rows = _rows(rekognition_examples / "awsrekognition_celeb_detect.csv")
    assert sorted(got) == sorted({r["image_id"] for r in csv_rows})             # every image appears, found or not
    assert table.num_rows == len(csv_rows) == 6
    for row in csv_rows:
        if not row["celeb_name"]:
            assert got[row["image_id"]] == []                                      # a row with empty fields
            continue
        mine = next(r for r in got[row["image_id"]] if r["celebrity_rank"] == int(row["celeb_num"]))
        face = ast.literal_eval(row["celeb_face_data"])
        assert mine["celebrity"] == row["celeb_name"]
        assert mine["celebrity_id"] == row["celeb_id"]
        assert mine["urls"] == ast.literal_eval(row["celeb_urls"])
        assert mine["match_confidence"] == float(row["celeb_match_conf"])
        assert mine["face_confidence"] == float(row["celeb_face_conf"])
        assert mine["face_box"] == {k.lower(): v for k, v in face["BoundingBox"].items()}
    assert [r["celebrity"] for r in got["ex_4.jpg"]] == ["Paul Ryan", "Steve Scalise"]
    # The celebrity table validates like a label table (the book's Table 6.2 workflow). Coded by looking: ex_2
    # (a TV interview) and ex_4 (a press conference) show members of Congress; the other three do not.
    manual = pa.table({"image_id": [f"ex_{i}.jpg" for i in range(1, 6)], "congress": [0, 1, 0, 1, 0]})
    result = iad.compare_tags(table, manual, ["Ed Royce", "Paul Ryan", "Steve Scalise"], manual_label="congress",
                              min_confidence=99)
    assert result.manual_positive == "1"
    assert (result.count("true positive"), result.count("true negative")) == (2, 3)
    frequencies = iad.label_frequencies(table)
    assert set(frequencies["label"].to_pylist()) == {"Ed Royce", "Paul Ryan", "Steve Scalise"}
    assert set(frequencies["images"].to_pylist()) == {1} and set(frequencies["tagged_images"].to_pylist()) == {5}


def test_duplicates_are_sent_once(recorded, rekognition_examples, tmp_path):
    labels, _ = recorded
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(rekognition_examples / "ex_1.jpg", folder / "a.jpg")
    shutil.copy(rekognition_examples / "ex_1.jpg", folder / "b_same_as_a.jpg")
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_response("detect_labels", labels["ex_1.jpg"],
                             {"Image": {"Bytes": (folder / "a.jpg").read_bytes()}, "MinConfidence": 55.0})
        table = iad.rekognition_labels(folder, client=client, cache=tmp_path / "cache", progress=False)
        stubber.assert_no_pending_responses()                                   # one call, and only one
    assert table["error"].null_count == table.num_rows == 4
    assert table["image_id"].to_pylist() == ["a.jpg", "a.jpg", "b_same_as_a.jpg", "b_same_as_a.jpg"]
    assert table["label"].to_pylist() == ["Cup", "Coffee Cup"] * 2


def test_malformed_answers_are_errors_and_not_cached(recorded, rekognition_examples, tmp_path):
    labels, _ = recorded
    images = sorted(rekognition_examples.glob("*.jpg"))
    cache = tmp_path / "cache"
    broken = {"ex_2.jpg": {"LabelModelVersion": "2.0"},                          # no Labels at all
              "ex_3.jpg": {"Labels": [{"Confidence": 90.0, "Instances": [], "Parents": []}]}}   # a label with no name
    client = _client()
    with Stubber(client) as stubber:
        _queue(stubber, "detect_labels", {**labels, **broken}, images, {"MinConfidence": 55.0})
        table = iad.rekognition_labels(rekognition_examples, client=client, cache=cache, concurrency=1, progress=False)
    errors = {r["image_id"]: r["error"] for r in table.to_pylist() if r["error"]}
    assert set(errors) == {"ex_2.jpg", "ex_3.jpg"}
    assert "no Labels" in errors["ex_2.jpg"] and "has no Name" in errors["ex_3.jpg"]
    assert len(ResponseCache(cache)) == 3
    # The rerun asks again for exactly those two, and gets good answers this time.
    client = _client()
    with Stubber(client) as stubber:
        _queue(stubber, "detect_labels", labels, [rekognition_examples / "ex_2.jpg", rekognition_examples / "ex_3.jpg"],
               {"MinConfidence": 55.0})
        table = iad.rekognition_labels(rekognition_examples, client=client, cache=cache, concurrency=1, progress=False)
        stubber.assert_no_pending_responses()
    assert table["error"].null_count == table.num_rows == 50


def test_spent_throttling_is_an_error_row_and_a_rerun_fills_it(recorded, rekognition_examples, tmp_path):
    labels, _ = recorded
    images = sorted(rekognition_examples.glob("*.jpg"))
    cache = tmp_path / "cache"
    client = _client()
    with Stubber(client) as stubber:
        for image in images:
            params = {"Image": {"Bytes": image.read_bytes()}, "MinConfidence": 80.0, "MaxLabels": 5}
            if image.name == "ex_4.jpg":
                stubber.add_client_error("detect_labels", "ProvisionedThroughputExceededException", "Slow down",
                                         400, expected_params=params)
            else:
                stubber.add_response("detect_labels", labels[image.name], params)
        table = iad.rekognition_labels(rekognition_examples, min_confidence=80, max_labels=5, client=client,
                                       cache=cache, concurrency=1, progress=False)
    failed = table.filter(table["error"].is_valid()).to_pylist()
    assert [r["image_id"] for r in failed] == ["ex_4.jpg"]
    assert failed[0]["error"].startswith("ProvisionedThroughputExceededException: Slow down")
    assert len(ResponseCache(cache)) == 4
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_response("detect_labels", labels["ex_4.jpg"], {
            "Image": {"Bytes": (rekognition_examples / "ex_4.jpg").read_bytes()}, "MinConfidence": 80.0, "MaxLabels": 5})
        table = iad.rekognition_labels(rekognition_examples, min_confidence=80, max_labels=5, client=client,
                                       cache=cache, progress=False)
        stubber.assert_no_pending_responses()
    assert table["error"].null_count == table.num_rows
    # Other parameters are other questions: the cache keeps them apart.
    plan = iad.rekognition_labels(rekognition_examples, min_confidence=55, cache=cache, dry_run=True, progress=False)
    assert plan["calls"].to_pylist() == [5]


def test_refused_credentials_stop_the_run_with_advice(rekognition_examples, tmp_path):
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_client_error("recognize_celebrities", "UnrecognizedClientException",
                                 "The security token included in the request is invalid.", 400)
        with pytest.raises(ImagesAsDataError, match="refused the credentials.*standard chain"):
            iad.rekognition_celebrities(rekognition_examples, client=client, cache=tmp_path / "cache",
                                        concurrency=1, progress=False)


def test_missing_credentials_are_a_clear_error_unless_everything_is_cached(recorded, rekognition_examples, tmp_path,
                                                                           monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ImagesAsDataError, match="no AWS credentials found.*never takes keys"):
        iad.rekognition_labels(rekognition_examples, cache=tmp_path / "cache", progress=False)
    with pytest.raises(ImagesAsDataError, match="min_confidence=120"):
        iad.rekognition_labels(rekognition_examples, min_confidence=120, cache=tmp_path / "cache")
    with pytest.raises(ImagesAsDataError, match="concurrency=0"):
        iad.rekognition_labels(rekognition_examples, concurrency=0, cache=tmp_path / "cache")
