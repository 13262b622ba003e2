"""Rekognition over real HTTP: a moto server on localhost, started here, reached through endpoint_url.

moto 5.2.5 implements DetectLabels (one fixed "Mobile Phone" answer for any image) but not RecognizeCelebrities,
so celebrities are tested with botocore's Stubber (test_autotag_stubbed.py). In front of moto sits a small WSGI
recorder that notes the SHA-256 of every image it receives and, on demand, answers with throttling errors, holds
requests (to kill a run mid-way deterministically), or answers garbage — what a real service does on a bad day.
No request leaves this machine; the credentials are fake and set for the test only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

pytest.importorskip("moto")
pytest.importorskip("boto3")

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import imagesasdata as iad  # noqa: E402
from imagesasdata.autotag import ResponseCache  # noqa: E402
from imagesasdata.autotag.payload import MAX_BYTES, MAX_SIDE, MIN_SIDE  # noqa: E402
from imagesasdata.autotag.tables import LABEL_SCHEMA  # noqa: E402
from imagesasdata.io.images import sha256_file  # noqa: E402
from imagesasdata.io.tables import write_table  # noqa: E402

ACCESS_KEY = "AKIAIMAGESASDATA7TST"            # fake, distinctive: searched for in every output below
SECRET_KEY = "imagesasdata/Canary+Secret/Key0123456789abcdef"
REPOSITORY = Path(__file__).resolve().parents[1]


class Recorder:
    """WSGI middleware in front of moto: records each image received; can throttle, hold or garble answers."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = 0
            self.received = []          # (sha256 of the bytes sent, image bytes) in arrival order
            self.answered = Counter()   # sha256 -> answers moto gave
            self.throttled = Counter()  # sha256 -> throttling errors we gave
            self.held = []              # sha256 of requests held (never answered)
            self.throttle_first = False  # throttle each image's first request: exactly half of all calls
            self.admitted = 0
            self.answer_limit = None    # let this many requests through, then hold every further one
            self.answer_then_hold_after = None   # let this many through, then answer (bill) the others but hold
            self.held_answers = []      # sha256 of requests answered by moto whose answers are held back
            self.garble = set()         # image hashes answered with a 200 and a body that is not JSON
            self.echo_key = set()       # image hashes answered with an error message quoting the access key
            self.gate_after = None      # let this many requests through, then make the others wait for the gate
            self.gate = threading.Event()
            self.waiting = 0            # requests waiting at the gate
            self.release = threading.Event()

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            image = base64.b64decode(json.loads(body)["Image"]["Bytes"])
        except (ValueError, KeyError, TypeError):
            return self.app(environ, start_response)
        sha = hashlib.sha256(image).hexdigest()
        with self.lock:
            self.requests += 1
            self.received.append((sha, image))
            hold = self.answer_limit is not None and self.admitted >= self.answer_limit
            gated = self.gate_after is not None and self.admitted >= self.gate_after and not self.gate.is_set()
            self.waiting += gated
            throttle = self.throttle_first and not self.throttled[sha]
            hold_answer = self.answer_then_hold_after is not None and self.admitted >= self.answer_then_hold_after
            if hold:
                self.held.append(sha)
            elif throttle:
                self.throttled[sha] += 1
            else:
                self.admitted += 1
        if hold:
            self.release.wait(60)
            return _error(start_response, 503, "ServiceUnavailableException", "held by the test")
        if throttle:
            return _error(start_response, 400, "ThrottlingException", "Rate exceeded")
        if sha in self.garble:
            start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
            return [b"<html>upstream proxy error</html>"]
        if sha in self.echo_key:
            credential = environ.get("HTTP_AUTHORIZATION", "").split("Credential=")[-1].split("/")[0]
            return _error(start_response, 400, "InvalidImageFormatException", f"request from {credential} rejected")
        if gated:
            self.gate.wait(120)
        answer = self.app(environ, start_response)
        with self.lock:
            self.answered[sha] += 1
            if hold_answer:
                self.held_answers.append(sha)
        if hold_answer:   # answered (billed) by the service, but the answer is not on its way yet
            self.release.wait(60)
        return answer


def _error(start_response, status, code, message):
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(f"{status} Error", [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code),
                                       ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def moto_server():
    """A real moto server on a free localhost port, behind the Recorder; yields (url, recorder)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    recorder = Recorder(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, recorder, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    recorder.release.set()
    server.shutdown()
    thread.join(10)


@pytest.fixture()
def server(moto_server):
    url, recorder = moto_server
    recorder.reset()
    yield url, recorder
    recorder.release.set()


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    """Fake credentials for this test only, and no ~/.aws files or instance metadata to fall back on."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture()
def faces(tmp_path, sample_data) -> Path:
    """24 real face photos (PNG, 92×112: sent as they are), in a flat folder."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for person in sorted((sample_data / "faces").iterdir())[:3]:
        for image in sorted(person.glob("*.png")):
            shutil.copy(image, folder / f"{person.name}_{image.name}")
    return folder


def test_detect_labels_over_http(server, rekognition_examples, tmp_path):
    url, recorder = server
    table = iad.rekognition_labels(rekognition_examples, endpoint_url=url, cache=tmp_path / "cache", progress=False)
    assert table.schema == LABEL_SCHEMA
    assert table["error"].null_count == table.num_rows
    files = sorted(rekognition_examples.glob("*.jpg"))
    assert table["image_id"].to_pylist() == [f.name for f in files]            # moto answers one label per image
    assert set(table["label"].to_pylist()) == {"Mobile Phone"}
    assert table["parents"].to_pylist()[0] == ["Phone"]
    assert table["instances"].to_pylist()[0] == 1
    assert table["bounding_boxes"].to_pylist()[0][0]["width"] == pytest.approx(0.26779675483703613)
    assert table["label_model_version"].to_pylist()[0] == "3.0"
    # The images were sent as they are (JPEG, < 5 MB): the server saw exactly the files' bytes.
    assert sorted(sha for sha, _ in recorder.received) == sorted(sha256_file(f) for f in files)
    assert table["image_sha256"].to_pylist() == [sha256_file(f) for f in files]
    # A second run is served from the cache: not one request.
    before = recorder.requests
    again = iad.rekognition_labels(rekognition_examples, endpoint_url=url, cache=tmp_path / "cache", progress=False)
    assert recorder.requests == before
    assert again.equals(table)


def test_dry_run_counts_prices_and_sends_nothing(server, faces, tmp_path, capsys):
    url, recorder = server
    shutil.copy(faces / "s1_1.png", faces / "copy_of_s1_1.png")                 # a duplicate: one call, not two
    (faces / "broken.png").write_bytes(b"")                                   # cannot be read: not sent
    (faces / "notes.png").write_text("not an image")                           # readable, but never sent either
    plan = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "cache", dry_run=True,
                                  price_per_1000=1.25, progress=False)
    assert recorder.requests == 0
    row = plan.to_pylist()[0]
    assert row == {"operation": "DetectLabels", "images": 27, "distinct_images": 24, "unreadable": 2, "cached": 0,
                   "calls": 24, "price_per_1000": 1.25, "estimated_cost_usd": pytest.approx(24 * 1.25 / 1000)}
    out = capsys.readouterr().out                 # 25 distinct files, of which 24 readable images (notes.png is not)
    assert "27 files, 24 distinct readable images, 0 already answered in the cache → 24 calls" in out
    assert "2 files cannot be read or are not images (not sent)" in out
    # The plan is exact: a real run sends what it counted.
    iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "exact", progress=False)
    assert recorder.requests == 24
    recorder.reset()
    # Label 10 of them for real, then the plan only counts the other 14.
    some = sorted(faces.glob("s2_*.png")) + sorted(faces.glob("s3_*.png"))[:2]
    iad.rekognition_labels([str(p) for p in some], endpoint_url=url, cache=tmp_path / "cache", progress=False)
    assert recorder.requests == 10
    plan = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "cache", dry_run=True, progress=False)
    assert plan["cached"].to_pylist() == [10] and plan["calls"].to_pylist() == [14]
    assert recorder.requests == 10


def test_throttling_storm_every_image_labelled_once(server, faces, tmp_path):
    """Half of all calls are throttled (each image's first); botocore's adaptive retries carry every image
    through, and each is answered exactly once."""
    url, recorder = server
    recorder.throttle_first = True
    # Adaptive mode slows the client to the rate the service sustains after a throttle (about one call a
    # second at first): eight images keep this test short.
    for extra in sorted(faces.glob("*.png"))[8:]:
        extra.unlink()
    table = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "cache", concurrency=4, progress=False)
    assert table["error"].null_count == table.num_rows, table.filter(table["error"].is_valid())["error"].to_pylist()
    files = sorted(faces.glob("*.png"))
    assert table.num_rows == len(files)
    hashes = {sha256_file(f) for f in files}
    assert set(recorder.answered) == hashes
    assert set(recorder.answered.values()) == {1}                               # every image answered exactly once
    assert recorder.throttled == Counter({sha: 1 for sha in hashes})
    assert recorder.requests == 2 * len(files)                                  # half of all calls were throttled
    assert len(ResponseCache(tmp_path / "cache")) == len(files)


def test_garbled_answers_and_unreadable_files_are_rows_not_crashes(server, faces, tmp_path):
    url, recorder = server
    garbled = faces / "s2_3.png"
    recorder.garble = {sha256_file(garbled)}
    (faces / "empty.png").write_bytes(b"")
    (faces / "notes.png").write_text("not an image")
    cache = tmp_path / "cache"
    table = iad.rekognition_labels(faces, endpoint_url=url, cache=cache, progress=False)
    errors = {r["image_id"]: r["error"] for r in table.to_pylist() if r["error"]}
    assert set(errors) == {"s2_3.png", "empty.png", "notes.png"}
    assert "malformed" in errors["s2_3.png"] and "not cached" in errors["s2_3.png"]
    assert "empty" in errors["empty.png"] and "not an image" in errors["notes.png"]
    assert table.num_rows == 26 and len(ResponseCache(cache)) == 23             # the garbled answer was not kept
    recorder.garble = set()
    again = iad.rekognition_labels(faces, endpoint_url=url, cache=cache, progress=False)
    assert {r["image_id"] for r in again.to_pylist() if r["error"]} == {"empty.png", "notes.png"}
    assert recorder.answered[sha256_file(garbled)] == 1


def test_images_are_made_to_fit_rekognitions_limits(server, tmp_path, orl_faces):
    url, recorder = server
    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1400, 1400, 3), dtype=np.uint8)).save(folder / "noise.png")
    assert (folder / "noise.png").stat().st_size > MAX_BYTES                   # over the 5 MB limit on disk
    ramp = np.tile(np.linspace(0, 255, 10400, dtype=np.uint8), (300, 1))
    Image.fromarray(ramp).convert("RGB").save(folder / "panorama.jpg", quality=80)
    Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(folder / "thumb.png")
    shutil.copy(orl_faces / "s1" / "1.pgm", folder / "face.pgm")               # a format Rekognition refuses
    Image.open(orl_faces / "s2" / "1.pgm").convert("RGB").save(folder / "face.webp")
    table = iad.rekognition_labels(folder, endpoint_url=url, cache=tmp_path / "cache", progress=False)
    assert table["error"].null_count == table.num_rows
    assert len(recorder.received) == 5
    for _, data in recorder.received:
        assert len(data) <= MAX_BYTES
        with Image.open(io.BytesIO(data)) as sent:
            assert sent.format in ("JPEG", "PNG")
            assert MIN_SIDE <= min(sent.size) and max(sent.size) <= MAX_SIDE
            sent.load()
    cache = ResponseCache(tmp_path / "cache")
    sent = {p.name: cache.get(sha256_file(p), "DetectLabels", {"MinConfidence": 55.0, "endpoint_url": url})["sent"]
            for p in folder.iterdir()}
    assert sent["noise.png"]["format"] == "JPEG" and (sent["noise.png"]["width"], sent["noise.png"]["height"]) == (1400, 1400)
    assert (sent["panorama.jpg"]["width"], sent["panorama.jpg"]["height"]) == (10000, 288)
    assert (sent["thumb.png"]["width"], sent["thumb.png"]["height"]) == (96, 80)     # was 60×50
    assert sent["face.pgm"]["format"] == "PNG" and "converted from PPM" in sent["face.pgm"]["note"]
    assert sent["face.webp"]["format"] == "PNG" and "converted from WEBP" in sent["face.webp"]["note"]


def test_no_secret_in_tables_cache_logs_or_errors(server, rekognition_examples, tmp_path, caplog):
    """The access and secret keys appear nowhere we write, even when the service quotes the key back at us."""
    url, recorder = server
    recorder.echo_key = {sha256_file(rekognition_examples / "ex_3.jpg")}
    caplog.set_level(logging.DEBUG, logger="imagesasdata")
    table = iad.rekognition_labels(rekognition_examples, endpoint_url=url, cache=tmp_path / "cache", progress=False)
    write_table(table, tmp_path / "labels.parquet")
    error = table.filter(table["error"].is_valid())["error"].to_pylist()
    assert error == ["InvalidImageFormatException: request from *** rejected"]  # quoted by the server, scrubbed here
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "DetectLabels" in caplog.text                                       # the log was captured at all
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert secret.encode() not in written
        assert secret not in logged


def _cli(args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "imagesasdata.cli", *args], env=env, cwd=REPOSITORY,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_killed_run_resumes_without_sending_any_answered_image_again(server, faces, tmp_path):
    """SIGKILL the CLI after 7 answers are cached, run it again: no answered image is sent twice, and the table
    equals that of an uninterrupted run. The server holds the 8th request unanswered until the kill, so the point
    of the kill is exact; a request that was in flight (sent, never answered) is the only one that may go again."""
    url, recorder = server
    cache = tmp_path / "cache"
    out = tmp_path / "labels.parquet"
    env = dict(os.environ)
    args = ["rekognition-labels", str(faces), "--endpoint-url", url, "--cache", str(cache), "--out", str(out),
            "--concurrency", "2", "--no-progress"]
    recorder.answer_limit = 7
    first = _cli(args, env)
    deadline = time.monotonic() + 120
    while not (len(ResponseCache(cache)) >= 7 and recorder.held):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never reached 7 cached answers"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first_out, first_err = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not out.exists()
    held_then = set(recorder.held)
    answered_then = set(recorder.answered)
    first_run_requests = len(recorder.received)
    assert len(ResponseCache(cache)) == 7 == len(answered_then)
    recorder.release.set()

    recorder.answer_limit = None
    second = _cli(args, env)
    second_out, second_err = second.communicate(timeout=180)
    assert second.returncode == 0, second_err.decode()
    files = sorted(faces.glob("*.png"))
    hashes = {sha256_file(f) for f in files}
    assert set(recorder.answered) == hashes
    assert set(recorder.answered.values()) == {1}                               # no image answered twice
    sent = Counter(sha for sha, _ in recorder.received)
    assert {sha for sha, n in sent.items() if n > 1} <= held_then               # only the unanswered went again
    assert not answered_then & {sha for sha, _ in recorder.received[first_run_requests:]}

    resumed = pq.read_table(out)
    uninterrupted = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "fresh-cache", progress=False)
    assert resumed.equals(uninterrupted)
    assert resumed.num_rows == len(files) and resumed["error"].null_count == len(files)

    # Nothing the CLI printed or wrote holds the credentials it ran with.
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    printed = first_out + first_err + second_out + second_err
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert secret.encode() not in written and secret.encode() not in printed


def test_a_kill_with_answers_on_their_way_repeats_only_those_requests(server, faces, tmp_path, capsys):
    """The worst instant for a kill: the service has answered (and billed) requests whose answers have not reached
    the client. The service answers 7 requests, then answers the next ones but holds their answers back; the run
    (2 requests at a time) is killed with 2 requests billed and unanswered. Each left its write-ahead record in its
    claim, so the next run knows them: with --no-resend-in-flight it sends no image twice (2 error rows name the
    option); by default it asks about exactly those 2 again — the figure: 2 repeated charges for 24 images, the
    requests in flight at the kill, and none of the 7 whose answers had arrived."""
    url, recorder = server
    cache = tmp_path / "cache"
    files = sorted(faces.glob("*.png"))
    args = ["rekognition-labels", str(faces), "--endpoint-url", url, "--cache", str(cache), "--concurrency", "2",
            "--no-progress"]
    recorder.answer_then_hold_after = 7
    first = _cli([*args, "--out", str(tmp_path / "first.parquet")], dict(os.environ))
    deadline = time.monotonic() + 120
    while not (len(ResponseCache(cache)) >= 7 and len(recorder.held_answers) == 2):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never had 2 answers held back"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    billed_unanswered = set(recorder.held_answers)
    answered_before = {sha for sha in recorder.answered if sha not in billed_unanswered}
    assert len(ResponseCache(cache)) == 7 == len(answered_before)
    recorder.release.set()
    recorder.answer_then_hold_after = None
    store, key = ResponseCache(cache), {"MinConfidence": 55.0, "endpoint_url": url}
    assert {sha for sha in map(sha256_file, files) if store.in_flight(sha, "DetectLabels", key)} == billed_unanswered
    # what a kill in the middle of writing an answer leaves: removed by the next run that claims the entry
    entry = store.path(sorted(billed_unanswered)[0], "DetectLabels", key)
    partial = entry.with_name(f".{entry.name}.k3j2x9qa.part")
    partial.write_text('{"format": "imagesasdata.autotag.resp')
    plan = iad.rekognition_labels(faces, endpoint_url=url, cache=cache, dry_run=True, progress=False)
    assert plan["calls"].to_pylist() == [17]
    assert "2 of these were sent by a run that has not recorded their answers" in capsys.readouterr().out

    second = _cli([*args, "--out", str(tmp_path / "second.parquet"), "--no-resend-in-flight"], dict(os.environ))
    _, errors = second.communicate(timeout=180)
    assert second.returncode == 0, errors.decode()
    assert "2 image(s) had been sent by an earlier run that stopped before their answers were recorded; not sent " \
           "again" in errors.decode()
    assert max(recorder.answered.values()) == 1                                 # no image billed twice
    table = pq.read_table(tmp_path / "second.parquet")
    refused = {r["image_sha256"] for r in table.to_pylist() if r["error"]}
    assert refused == billed_unanswered
    assert all("--resend-in-flight" in e for e in table["error"].to_pylist() if e)

    third = _cli([*args, "--out", str(tmp_path / "third.parquet")], dict(os.environ))
    _, errors = third.communicate(timeout=180)
    assert third.returncode == 0, errors.decode()
    assert "2 image(s) had been sent by an earlier run" in errors.decode() and "asked again" in errors.decode()
    twice = {sha for sha, n in recorder.answered.items() if n > 1}
    assert twice == billed_unanswered and set(recorder.answered.values()) <= {1, 2}
    assert set(recorder.answered) == set(map(sha256_file, files))
    assert pq.read_table(tmp_path / "third.parquet")["error"].null_count == len(files)
    assert not list(cache.rglob(".*.claim"))                                   # no claim left once all is answered
    assert not partial.exists() and not list(cache.rglob("*.part"))
    print(f"killed with 2 answers on their way: {len(twice)} repeated charges for {len(files)} images "
          f"(0 with --no-resend-in-flight)")


def test_two_runs_sharing_a_cache_never_pay_twice(server, faces, tmp_path):
    """Two processes label the same 24 images into one cache at the same time, the second in the opposite order.
    The service lets the first run's first 2 requests through and then holds every request until both runs have
    requests waiting: they are surely at work together. Each claims an image before asking about it; a run that
    reaches an image the other has claimed waits for that answer and reads it from the cache. Every image is sent
    exactly once (without the claims the second run sends every image it did not find cached when it started)."""
    url, recorder = server
    recorder.gate_after = 2
    cache = tmp_path / "cache"
    files = sorted(faces.glob("*.png"))
    (tmp_path / "backwards.csv").write_text("path\n" + "\n".join(str(f) for f in reversed(files)) + "\n")
    env = dict(os.environ)
    options = ["--endpoint-url", url, "--cache", str(cache), "--concurrency", "2", "--no-progress"]
    first = _cli(["rekognition-labels", str(faces), *options, "--out", str(tmp_path / "first.parquet")], env)
    deadline = time.monotonic() + 120
    while recorder.waiting < 2:                      # the first run: 2 answered, 2 waiting at the gate
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    second = _cli(["rekognition-labels", str(tmp_path / "backwards.csv"), *options, "--out",
                   str(tmp_path / "second.parquet")], env)
    while recorder.waiting < 4:                      # the second run is asking too
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    recorder.gate.set()
    for process in (first, second):
        output, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors.decode()
    hashes = {sha256_file(f) for f in files}
    assert Counter(sha for sha, _ in recorder.received) == Counter({sha: 1 for sha in hashes})
    first_table, second_table = pq.read_table(tmp_path / "first.parquet"), pq.read_table(tmp_path / "second.parquet")
    # the same answers for the same images (their ids differ: a folder's are file names, a table's its paths)
    assert first_table.drop_columns(["image_id"]).sort_by("image_sha256").equals(
        second_table.drop_columns(["image_id"]).sort_by("image_sha256"))


def test_cli_dry_run_sends_nothing(server, rekognition_examples, tmp_path, capsys):
    from imagesasdata.cli import main

    url, recorder = server
    code = main(["rekognition-labels", str(rekognition_examples), "--endpoint-url", url, "--cache",
                 str(tmp_path / "cache"), "--dry-run", "--price-per-1000", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "5 calls" in out and "$0.01" in out and "Nothing was sent" in out
    assert recorder.requests == 0
    assert main(["rekognition-labels", str(rekognition_examples), "--endpoint-url", url]) == 1   # no --out
    assert "--out" in capsys.readouterr().err


def test_a_notice_says_once_what_leaves_the_machine_and_every_table_records_it(server, faces, rekognition_examples,
                                                                               tmp_path, capsys, monkeypatch):
    """Section 8: the first call that sends images prints what is sent and what AWS documents about keeping it;
    later calls stay quiet; every table that came from a call that sent images records the notice; answers from
    the cache send nothing and carry none. Celebrity recognition adds the face-identification notice."""
    from imagesasdata import notices

    url, _ = server
    monkeypatch.setattr(notices, "_shown", set())
    monkeypatch.setattr(notices, "_suppressed", set())
    monkeypatch.delenv(notices.QUIET_ENV, raising=False)
    first = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "a", progress=False)
    printed = capsys.readouterr().err
    assert printed.count("imagesasdata notice (commercial_tagger") == 1
    assert "EXIF" in printed and notices.AI_OPT_OUT_URL in printed and "us-east-1" in printed
    assert [(r["notice"], r["shown"]) for r in notices.recorded(first)] == [("commercial_tagger", True)]
    second = iad.rekognition_labels(rekognition_examples, endpoint_url=url, cache=tmp_path / "b", progress=False)
    assert "imagesasdata notice" not in capsys.readouterr().err
    assert [(r["notice"], r["shown"]) for r in notices.recorded(second)] == [("commercial_tagger", False)]
    cached = iad.rekognition_labels(faces, endpoint_url=url, cache=tmp_path / "a", progress=False)
    assert notices.recorded(cached) == []
    monkeypatch.setenv(notices.QUIET_ENV, "commercial_tagger")
    celebrities = iad.rekognition_celebrities(rekognition_examples, endpoint_url=url, cache=tmp_path / "c",
                                              progress=False)
    printed = capsys.readouterr().err
    assert "(commercial_tagger" not in printed and printed.count("imagesasdata notice (face_identification") == 1
    assert [r["notice"] for r in notices.recorded(celebrities)] == ["commercial_tagger", "face_identification"]
    iad.suppress_notices()
    assert notices.notice("face_identification")["shown"] is False
