"""The VLM coder over real HTTP: the stand-in OpenAI-compatible server (autotag/standin_vlm.py) on 127.0.0.1,
started here, reached by the `openai` client. The server answers in the documented chat-completions shape
(structured output, log-probabilities with alternatives, n samples, refusals, 429 with Retry-After) and counts
every request and answer, so "sent once" is counted where it is paid: at the server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

pytest.importorskip("openai")

import imagesasdata as iad  # noqa: E402
from imagesasdata.autotag import ResponseCache  # noqa: E402
from imagesasdata.autotag.codebooks import codebook  # noqa: E402
from imagesasdata.autotag.standin_vlm import StandinVLM, pixel_key  # noqa: E402
from imagesasdata.autotag.vlm import OPERATION, VLM_SCHEMA, endpoint_host, image_tokens  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
CANARY_KEY = "sk-imagesasdata-canary-0123456789abcdef"
BOOK = {"glasses": "The person wears glasses or spectacles.", "smiling": "The person smiles with the mouth open."}
# codebook(BOOK, name="faces").prompt_sha256 under PROMPT_FORMAT imagesasdata.codebook.prompt/1
PINNED_PROMPT_SHA256 = "3e420cdbca35f62dd51ab1ff46d336ba5d1da15dcb544cf60600aeecfc3de34b"


@pytest.fixture(scope="module")
def standin_server():
    standin = StandinVLM(false_positive=0.2, false_negative=0.3, error_rate=0.25, seed=3)
    url = standin.start()
    yield url, standin
    standin.stop()


@pytest.fixture()
def faces(tmp_path, sample_data) -> Path:
    """16 real face photos (PNG, 92×112), 4 people × 4, in a flat folder."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for person in sorted((sample_data / "faces").iterdir())[:4]:
        for image in sorted(person.glob("*.png"))[:4]:
            shutil.copy(image, folder / f"{person.name}_{image.name}")
    return folder


def truth_of(path: Path) -> dict:
    """A made-up key the stand-in answers from: people s1 and s3 'wear glasses', photos 1-2 'smile'."""
    person, photo = path.stem.split("_")
    return {"glasses": person in ("s1", "s3"), "smiling": photo in ("1", "2"),
            "category": "s1" if person == "s1" else "other"}


@pytest.fixture()
def server(standin_server, faces):
    url, standin = standin_server
    standin.reset()
    standin.key = {pixel_key(p.read_bytes()): truth_of(p) for p in faces.glob("*.png")}
    yield url, standin
    standin.release.set()
    standin.gate.set()


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IMAGESASDATA_VLM_ENDPOINT", raising=False)


def code(images, url, cache, book=BOOK, **options):
    options.setdefault("progress", False)
    return iad.vlm_code(images, book, model="standin", endpoint=url, cache=cache, **options)


# ------------------------------------------------------------------------------------------ codebooks

def test_codebook_prompt_is_byte_identical_hashed_and_keys_the_cache(server, faces, tmp_path):
    url, standin = server
    book = codebook(BOOK, name="faces")
    # The same codebook, written as YAML, as JSON and as a table, gives the same prompt bytes and hash.
    book.write(tmp_path / "book.yaml")
    book.write(tmp_path / "book.json")
    (tmp_path / "book.csv").write_text("category,definition\n" + "".join(f'{k},"{v}"\n' for k, v in BOOK.items()))
    for source in (tmp_path / "book.yaml", tmp_path / "book.json"):
        assert codebook(source).prompt().encode() == book.prompt().encode()
        assert codebook(source).prompt_sha256 == book.prompt_sha256
    assert codebook(tmp_path / "book.csv", name="faces").prompt_sha256 == book.prompt_sha256
    # ... on any machine: the prompt is built from the codebook alone (no time, no machine, no dict order), so
    # its hash is the one recorded here when the prompt format was last changed (codebook.PROMPT_FORMAT).
    assert book.prompt_sha256 == PINNED_PROMPT_SHA256
    # The hash recorded on every row is the codebook's, and the request carried exactly that prompt.
    table = code(faces, url, tmp_path / "cache", book)
    assert set(table["prompt_sha256"].to_pylist()) == {book.prompt_sha256}
    assert {b["messages"][0]["content"] for b in standin.bodies} == {book.prompt()}
    assert standin.requests == 16
    # Changing one word of a definition changes the hash and misses the cache: every image is asked again.
    reworded = codebook({**BOOK, "glasses": "The person wears spectacles."}, name="faces")
    assert reworded.prompt_sha256 != book.prompt_sha256
    again = code(faces, url, tmp_path / "cache", reworded)
    assert standin.requests == 32 and set(again["prompt_sha256"].to_pylist()) == {reworded.prompt_sha256}
    # The first wording is still cached: not one request.
    assert code(faces, url, tmp_path / "cache", book).equals(table)
    assert standin.requests == 32
    # An example image is part of the prompt: another file, another hash.
    example = tmp_path / "example.png"
    shutil.copy(faces / "s1_1.png", example)
    with_example = codebook({"categories": [{"name": "glasses", "definition": BOOK["glasses"], "examples": [str(example)]}]})
    shutil.copy(faces / "s2_1.png", example)
    assert codebook(with_example).prompt_sha256 != with_example.prompt_sha256


def test_example_images_go_with_every_request_and_are_priced(server, faces, tmp_path):
    url, standin = server
    book = codebook({"categories": [{"name": "glasses", "definition": BOOK["glasses"],
                                     "examples": [str(faces / "s1_1.png"), str(faces / "s3_1.png")]}]})
    assert "(2 example images of glasses come before the image to code.)" in book.prompt()
    target = [str(faces / "s2_2.png")]
    plan = code(target, url, tmp_path / "cache", book, dry_run=True).to_pylist()[0]
    text_tokens = (len(book.prompt()) + len("Code this image.")) // 4 + 1
    assert plan["estimated_input_tokens"] == text_tokens + 3 * image_tokens(92, 112, "auto", 85, 170)
    table = code(target, url, tmp_path / "cache", book)
    assert table["error"].null_count == table.num_rows
    content = standin.bodies[-1]["messages"][1]["content"]
    texts = [part["text"] for part in content if part["type"] == "text"]
    assert texts == ["Example images from the codebook:", "Example of glasses (1 of 2):", "Example of glasses (2 of 2):",
                     "Code this image."]
    import base64

    sent = [base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) for part in content if part["type"] == "image_url"]
    assert [pixel_key(data) for data in sent] == [pixel_key((faces / n).read_bytes()) for n in ("s1_1.png", "s3_1.png", "s2_2.png")]
    assert standin.received == [pixel_key((faces / "s2_2.png").read_bytes())]      # the image coded is the last


@pytest.mark.parametrize("spec, message", [
    ({}, "no categories"),
    ({"categories": [{"name": "a", "definition": "A"}, {"name": "a", "definition": "B"}]}, "repeat"),
    ({"categories": [{"name": "a", "definition": ""}]}, "no definition"),
    ({"categories": [{"name": "a", "definition": "A", "examples": ["nowhere.png"]}]}, "does not exist"),
    ({"kind": "both", "categories": [{"name": "a", "definition": "A"}]}, "kind"),
    ({"kind": "one", "categories": [{"name": "a", "definition": "A"}]}, "at least 2"),
    ({"categories": [{"name": "a", "definition": "A"}], "colour": "red"}, "unknown fields"),
])
def test_bad_codebooks_are_refused_with_the_reason(spec, message):
    with pytest.raises(ImagesAsDataError, match=message):
        codebook(spec)


# ------------------------------------------------------------------------------------------ answers

def test_structured_output_and_probabilities_from_logprobs(server, faces, tmp_path):
    url, standin = server
    table = code(faces, url, tmp_path / "cache")
    assert table.schema == VLM_SCHEMA
    assert table.num_rows == 32 and table["error"].null_count == 32
    body = standin.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == codebook(BOOK).schema()
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["temperature"] == 0
    image = body["messages"][1]["content"][-1]["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")
    # Each probability is the one a hand computation gets from the cached response's log-probabilities: the
    # answer token's alternatives "true" and "false", normalised.
    cache = ResponseCache(tmp_path / "cache")
    rows = {(r["image_id"], r["category"]): r for r in table.to_pylist()}
    checked = 0
    for entry_path in (tmp_path / "cache" / OPERATION).glob("*/*.json"):
        entry = json.loads(entry_path.read_text())
        choice = entry["response"]["attempts"][-1]["choices"][0]
        answer = json.loads(choice["message"]["content"])
        decided = [t for t in choice["logprobs"]["content"] if len(t["top_logprobs"]) == 2]
        assert len(decided) == 2
        files = [p for p in faces.glob("*.png") if hashlib.sha256(p.read_bytes()).hexdigest() == entry["image_sha256"]]
        for (name, token) in zip(("glasses", "smiling"), decided):
            chances = {t["token"]: math.exp(t["logprob"]) for t in token["top_logprobs"]}
            row = rows[(files[0].name, name)]
            assert row["present"] == answer[name]["present"]
            assert row["probability"] == pytest.approx(chances["true"] / (chances["true"] + chances["false"]), abs=1e-12)
            assert row["reason"] == answer[name]["reason"]
            checked += 1
    assert checked == 32 and len(cache) == 16
    # Answers are the stand-in's, which follow its key with simulated mistakes: not all right, not all wrong.
    right = [r["present"] == truth_of(faces / r["image_id"])[r["category"]] for r in table.to_pylist()]
    assert 0 < sum(right) < len(right)
    # A second run is answered from the cache: not one request, the same table.
    before = standin.requests
    assert code(faces, url, tmp_path / "cache").equals(table)
    assert standin.requests == before


def _tokens(pieces, decided):
    """A choice whose content is `pieces` joined; decided: {piece index: {alternative token: probability}}."""
    content = []
    for k, piece in enumerate(pieces):
        alternatives = decided.get(k, {piece: 1.0})
        content.append({"token": piece, "logprob": math.log(alternatives[piece]),
                        "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alternatives.items()]})
    return {"message": {"content": "".join(pieces)}, "logprobs": {"content": content}}


def test_probabilities_from_real_tokenisations():
    """How tokenizers really split JSON: the answer may share a token with what precedes it (':true'), and a
    category's name may take several tokens, the first of them shared by two categories."""
    from imagesasdata.autotag.vlm import answer_probabilities

    book = codebook({"glasses": "G.", "beard": "B."})
    pieces = ['{"', 'glasses', '":{"', 'present', '":true', ',"', 'reason', '":"', 'frames', '"},"', 'beard', '":{"',
              'present', '":', 'false', ',"', 'reason', '":"', 'none', '"}}']
    choice = _tokens(pieces, {4: {'":true': 0.7, '":false': 0.2, '":"': 0.1}, 14: {"false": 0.9, "true": 0.05}})
    answer = json.loads(choice["message"]["content"])
    chances = answer_probabilities(book, choice, answer)
    assert chances["glasses"] == pytest.approx(0.7 / 0.9) and chances["beard"] == pytest.approx(0.05 / 0.95)

    one = codebook({"protest": "P.", "police": "Q.", "other": "O."}, kind="one")
    pieces = ['{"', 'category', '":"', 'p', 'rotest', '","', 'reason', '":"', 'signs', '"}']
    # 'p' leads to protest or police; 'o' to other. Then 'rotest' vs 'olice' decide between the two.
    choice = _tokens(pieces, {3: {"p": 0.8, "o": 0.2}, 4: {"rotest": 0.75, "olice": 0.25}})
    chances = answer_probabilities(one, choice, json.loads(choice["message"]["content"]))
    assert chances == pytest.approx({"protest": 0.8 * 0.75, "police": 0.8 * 0.25, "other": 0.2})
    # A response without log-probabilities, or whose tokens do not spell the content, gives none.
    assert answer_probabilities(one, {"message": choice["message"]}, {}) is None


def test_pick_one_codebook_and_predictions_table(server, faces, tmp_path):
    url, standin = server
    book = codebook({"s1": "The person with the beard and glasses.", "other": "Anyone else."}, kind="one")
    table = code(faces, url, tmp_path / "cache", book)
    assert standin.bodies[0]["response_format"]["json_schema"]["schema"]["properties"]["category"]["enum"] == ["s1", "other"]
    per_image = {}
    for row in table.to_pylist():
        per_image.setdefault(row["image_id"], []).append(row)
    for rows in per_image.values():
        assert sum(r["probability"] for r in rows) == pytest.approx(1.0)
        assert sum(r["present"] for r in rows) == 1
        chosen = next(r for r in rows if r["present"])
        assert chosen["reason"] and chosen["probability"] == max(r["probability"] for r in rows)
    predictions = iad.vlm_predictions(table)
    assert predictions.column_names == ["image_id", "path", "image_sha256", "predicted", "prob_s1", "prob_other", "error"]
    assert predictions.num_rows == 16
    for row in predictions.to_pylist():
        chosen = next(r for r in per_image[row["image_id"]] if r["present"])
        assert row["predicted"] == chosen["category"] and row[f"prob_{chosen['category']}"] == chosen["probability"]
    with pytest.raises(ImagesAsDataError, match="category="):
        iad.vlm_predictions(code(faces, url, tmp_path / "cache"))


def test_probability_as_the_share_of_sampled_answers(server, faces, tmp_path):
    url, standin = server
    table = code(faces, url, tmp_path / "cache", probability="samples", samples=5)
    assert {b["n"] for b in standin.bodies} == {5} and {b["temperature"] for b in standin.bodies} == {1.0}
    assert "logprobs" not in standin.bodies[0]
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache" / OPERATION).glob("*/*.json")]
    share = {}
    for entry in entries:
        answers = [json.loads(c["message"]["content"]) for c in entry["response"]["attempts"][-1]["choices"]]
        share[entry["image_sha256"]] = {n: sum(a[n]["present"] for a in answers) / 5 for n in BOOK}
    for row in table.to_pylist():
        assert row["samples"] == 5
        assert row["probability"] == share[row["image_sha256"]][row["category"]]
        assert row["present"] == (row["probability"] > 0.5)


def test_rate_limits_are_retried_after_the_servers_delay(server, faces, tmp_path):
    """Every image's first request gets 429 with Retry-After: 1; the client waits and asks again."""
    url, standin = server
    standin.throttle_first = True
    for extra in sorted(faces.glob("*.png"))[4:]:
        extra.unlink()
    started = time.monotonic()
    table = code(faces, url, tmp_path / "cache", concurrency=4)
    assert time.monotonic() - started >= 1.0                    # the server's Retry-After was honoured
    assert table["error"].null_count == table.num_rows
    assert set(standin.throttled.values()) == {1} and len(standin.throttled) == 4
    assert set(standin.answered.values()) == {1} and standin.requests == 8


def test_malformed_refused_and_slow_answers_are_rows_not_crashes(server, faces, tmp_path):
    url, standin = server
    keys = {p.name: pixel_key(p.read_bytes()) for p in faces.glob("*.png")}
    standin.garble[keys["s1_1.png"]] = 1            # one malformed answer, then a good one: retried
    standin.garble[keys["s1_2.png"]] = 5            # never valid within retries=2: an error row
    standin.refuse.add(keys["s2_1.png"])
    table = code(faces, url, tmp_path / "cache", retries=2)
    errors = {r["image_id"]: r["error"] for r in table.to_pylist() if r["error"]}
    assert set(errors) == {"s1_2.png", "s2_1.png"}
    assert errors["s1_2.png"].startswith("malformed answer: not JSON")
    assert errors["s2_1.png"].startswith("refused: I'm sorry")
    assert Counter(standin.received)[keys["s1_1.png"]] == 2 and Counter(standin.received)[keys["s1_2.png"]] == 3
    assert Counter(standin.received)[keys["s2_1.png"]] == 1      # a refusal is an answer: not asked again
    # Paid answers are kept, errors included: a rerun sends nothing; retry_errors asks those two again.
    before = standin.requests
    assert code(faces, url, tmp_path / "cache").equals(table)
    assert standin.requests == before
    standin.garble.clear()
    standin.refuse.clear()
    fixed = code(faces, url, tmp_path / "cache", retry_errors=True)
    assert standin.requests == before + 2 and fixed["error"].null_count == fixed.num_rows

    # A request slower than the timeout is abandoned and retried by the client (the server saw it twice: a
    # timed-out request may have been paid for); with no retries left it is an error row, not cached.
    standin.reset()
    standin.key = {pixel_key(p.read_bytes()): truth_of(p) for p in faces.glob("*.png")}
    standin.slow_first = 3.5
    two = [str(faces / "s3_1.png"), str(faces / "s3_2.png")]
    table = code(two, url, tmp_path / "slow", timeout=1.5, max_retries=1)
    assert table["error"].null_count == table.num_rows and standin.requests == 4
    standin.reset()
    standin.slow_first = 2.5
    table = code([str(faces / "s4_1.png")], url, tmp_path / "slower", timeout=1.0, max_retries=0)
    assert table["error"].to_pylist()[0].startswith("timed out")
    assert len(ResponseCache(tmp_path / "slower")) == 0


def test_servers_without_json_schema_or_logprobs(server, faces, tmp_path, caplog):
    url, standin = server
    standin.json_schema = False
    standin.logprobs = False
    caplog.set_level(logging.WARNING, logger="imagesasdata")
    table = code(faces, url, tmp_path / "cache", concurrency=1)
    assert table["error"].null_count == table.num_rows
    assert table["probability"].null_count == table.num_rows      # no log-probabilities: no probability
    assert "schema goes in the prompt" in caplog.text and "no log-probabilities" in caplog.text
    answered = [b for b in standin.bodies if "response_format" not in b and "logprobs" not in b]
    assert len(answered) == 16 and set(standin.answered.values()) == {1}
    # Insisting on json_schema with such a server: each image an error row, not a crash.
    insisted = code(faces, url, tmp_path / "strict", structured="json_schema", probability="none")
    assert {e.split(":")[0] for e in insisted["error"].to_pylist()} == {"HTTP 400"}


# ------------------------------------------------------------------------------------------ cost, privacy

def test_dry_run_counts_what_is_then_sent(server, faces, tmp_path, capsys):
    url, standin = server
    shutil.copy(faces / "s1_1.png", faces / "copy_of_s1_1.png")     # a duplicate: one request, not two
    (faces / "broken.png").write_bytes(b"")                          # cannot be read: not sent
    (faces / "notes.png").write_text("not an image")                  # readable, never sent
    plan = code(faces, url, tmp_path / "cache", dry_run=True)
    assert standin.requests == 0
    row = plan.to_pylist()[0]
    assert (row["images"], row["distinct_images"], row["unreadable"], row["cached"], row["requests"]) == (19, 16, 2, 0, 16)
    assert row["remote"] is False and row["estimated_cost_usd"] == 0.0
    assert row["prompt_sha256"] == codebook(BOOK).prompt_sha256
    text_tokens = (len(codebook(BOOK).prompt()) + len("Code this image.")) // 4 + 1
    assert row["estimated_input_tokens"] == 16 * (text_tokens + image_tokens(92, 112, "auto", 85, 170))
    assert "16 requests" in capsys.readouterr().out
    table = code(faces, url, tmp_path / "cache")
    assert standin.requests == row["requests"]                       # the plan was exact
    assert {r["image_id"] for r in table.to_pylist() if r["error"]} == {"broken.png", "notes.png"}
    assert code(faces, url, tmp_path / "cache", dry_run=True)["requests"].to_pylist() == [0]
    # A documented model's price: OpenAI's published figures; the estimate is tokens × price.
    priced = iad.vlm_code(faces, BOOK, model="gpt-4o-mini", endpoint="http://192.0.2.1:9/v1", cache=tmp_path / "c2",
                          dry_run=True, progress=False).to_pylist()[0]
    assert priced["remote"] is True and priced["host"] == "192.0.2.1"
    expected = (priced["estimated_input_tokens"] * 0.15 + priced["estimated_output_tokens"] * 0.60) / 1e6
    assert priced["estimated_cost_usd"] == pytest.approx(expected)
    # OpenAI's worked examples: 1024×1024 high detail is 4 tiles (765 tokens), 2048×4096 is 6 tiles (1105).
    assert image_tokens(1024, 1024, "high", 85, 170) == 765 and image_tokens(2048, 4096, "high", 85, 170) == 1105
    assert image_tokens(4000, 1000, "low", 85, 170) == 85 and image_tokens(92, 112, "auto", 2833, 5667) == 8500


def test_private_by_default(server, faces, tmp_path, monkeypatch):
    assert endpoint_host("http://127.0.0.1:8000/v1") == ("127.0.0.1", False)
    assert endpoint_host("http://localhost:11434/v1") == ("localhost", False)
    assert endpoint_host("http://[::1]:8000/v1") == ("::1", False)
    assert endpoint_host("https://api.openai.com/v1")[1] is True
    assert endpoint_host("http://192.168.1.20:8000/v1") == ("192.168.1.20", True)   # another machine on the LAN
    with pytest.raises(ImagesAsDataError, match=r"16 images would be sent to 192\.0\.2\.1.*allow_remote=True"):
        iad.vlm_code(faces, BOOK, model="m", endpoint="http://192.0.2.1:9/v1", cache=tmp_path / "cache", progress=False)
    with pytest.raises(ImagesAsDataError, match="no API key: set the environment variable OPENAI_API_KEY"):
        iad.vlm_code(faces, BOOK, model="m", endpoint="http://192.0.2.1:9/v1", cache=tmp_path / "cache",
                     allow_remote=True, progress=False)


def test_images_are_downscaled_before_upload(server, tmp_path):
    url, standin = server
    folder = tmp_path / "large"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (60, 40, 3), dtype=np.uint8)).save(folder / "small.jpg", quality=90)
    table = code(folder, url, tmp_path / "cache", max_side=256)
    assert table["error"].null_count == table.num_rows
    import base64
    import io

    sizes = set()
    for body in standin.bodies:
        url_data = body["messages"][1]["content"][-1]["image_url"]["url"]
        with Image.open(io.BytesIO(base64.b64decode(url_data.split(",", 1)[1]))) as sent:
            sizes.add(sent.size)
    assert sizes == {(256, 192), (40, 60)}                           # the small one went as it is
    sent = {p.name: ResponseCache(tmp_path / "cache").get(hashlib.sha256(p.read_bytes()).hexdigest(), OPERATION,
            json.loads(next((tmp_path / "cache" / OPERATION).glob("*/*.json")).read_text())["parameters"])["sent"]
            for p in folder.iterdir()}
    assert (sent["wide.png"]["width"], sent["wide.png"]["height"]) == (256, 192)
    assert "resized from 1600×1200" in sent["wide.png"]["note"]


def test_key_from_the_environment_never_written_and_fatal_errors(server, faces, tmp_path, monkeypatch, caplog):
    url, standin = server
    standin.api_key = CANARY_KEY
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(ImagesAsDataError, match="refused the key"):
            code(faces, url, tmp_path / "cache")                      # no key in the environment
        monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
        table = code(faces, url, tmp_path / "cache")
        assert table["error"].null_count == table.num_rows
        pq.write_table(table, tmp_path / "codes.parquet")
        written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
        assert CANARY_KEY.encode() not in written and CANARY_KEY not in caplog.text
    finally:
        standin.api_key = None
    standin.model = "standin"
    try:
        with pytest.raises(ImagesAsDataError, match="has no model 'nosuch'"):
            iad.vlm_code(faces, BOOK, model="nosuch", endpoint=url, cache=tmp_path / "other", progress=False)
    finally:
        standin.model = None
    with pytest.raises(ImagesAsDataError, match="cannot reach http://127.0.0.1:9/v1"):
        iad.vlm_code(faces, BOOK, model="m", endpoint="http://127.0.0.1:9/v1", cache=tmp_path / "third",
                     max_retries=0, progress=False)


# ------------------------------------------------------------------------------------------ processes

# A process that codes images into a cache, as a user's script would (the CLI is tested in-process below: its
# start-up imports torch for the other verbs, which would only slow these tests down).
RUNNER = """
import json, sys
from imagesasdata.autotag.vlm import vlm_code
from imagesasdata.io.tables import write_table
a = json.loads(sys.argv[1])
table = vlm_code(a["images"], a["book"], model="standin", endpoint=a["url"], cache=a["cache"], concurrency=2,
                 progress=False)
write_table(table, a["out"])
"""


def _run(images, book, url, cache, out):
    arguments = json.dumps({"images": str(images), "book": str(book), "url": url, "cache": str(cache), "out": str(out)})
    return subprocess.Popen([sys.executable, "-c", RUNNER, arguments], cwd=REPOSITORY, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))


def _book_file(tmp_path) -> Path:
    return codebook(BOOK, name="faces").write(tmp_path / "book.yaml")


def test_killed_run_resumes_and_sends_no_answered_image_again(server, faces, tmp_path):
    """SIGKILL a run while the server holds its 8th and 9th requests unanswered (7 answers cached); run it again.
    Each image is answered exactly once (counted by the server); the only images sent twice are the two in flight
    at the kill, which the resumed run reports; the table equals an uninterrupted run's."""
    url, standin = server
    cache, out, book = tmp_path / "cache", tmp_path / "codes.parquet", _book_file(tmp_path)
    standin.answer_limit = 7
    first = _run(faces, book, url, cache, out)
    deadline = time.monotonic() + 180
    while not (len(ResponseCache(cache)) >= 7 and len(standin.held) == 2):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never reached 7 cached answers"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL and not out.exists()
    held, answered_then, sent_then = set(standin.held), set(standin.answered), len(standin.received)
    assert len(ResponseCache(cache)) == 7 == len(answered_then)
    assert len(list(cache.rglob("*.pending"))) == 2                        # the write-ahead notes of the two
    standin.release.set()
    standin.answer_limit = None

    second = _run(faces, book, url, cache, out)
    _, errors = second.communicate(timeout=240)
    assert second.returncode == 0, errors.decode()
    assert "2 requests were sent by a run that stopped before their answers arrived" in errors.decode()
    keys = {pixel_key(p.read_bytes()) for p in faces.glob("*.png")}
    assert set(standin.answered) == keys and set(standin.answered.values()) == {1}
    sent = Counter(standin.received)
    assert {k for k, n in sent.items() if n > 1} == held                  # only the two in flight went again
    assert not answered_then & set(standin.received[sent_then:])
    assert not list(cache.rglob("*.pending"))
    resumed = pq.read_table(out)
    uninterrupted = code(faces, url, tmp_path / "fresh", book)
    assert resumed.equals(uninterrupted)


def test_two_processes_sharing_a_cache_send_each_image_once(server, faces, tmp_path):
    """Two processes code the same 16 images into one cache at once, the second in the opposite order; the
    server holds requests until both are at work. Each image is sent exactly once."""
    url, standin = server
    standin.gate_after = 2
    files = sorted(faces.glob("*.png"))
    (tmp_path / "backwards.csv").write_text("path\n" + "\n".join(str(f) for f in reversed(files)) + "\n")
    book, cache = _book_file(tmp_path), tmp_path / "cache"
    first = _run(faces, book, url, cache, tmp_path / "first.parquet")
    deadline = time.monotonic() + 180
    while standin.waiting < 2:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    second = _run(tmp_path / "backwards.csv", book, url, cache, tmp_path / "second.parquet")
    while standin.waiting < 4:
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    standin.gate.set()
    for process in (first, second):
        _, errors = process.communicate(timeout=240)
        assert process.returncode == 0, errors.decode()
    keys = {pixel_key(p.read_bytes()) for p in files}
    assert Counter(standin.received) == Counter({k: 1 for k in keys})
    a, b = pq.read_table(tmp_path / "first.parquet"), pq.read_table(tmp_path / "second.parquet")
    order = [("image_sha256", "ascending"), ("category", "ascending")]
    assert a.drop_columns(["image_id", "path"]).sort_by(order).equals(b.drop_columns(["image_id", "path"]).sort_by(order))


def test_cli_verbs(server, faces, tmp_path, capsys):
    from imagesasdata.cli import main

    url, standin = server
    book = _book_file(tmp_path)
    assert main(["codebook", str(book)]) == 0
    printed = capsys.readouterr().out
    assert codebook(book).prompt() in printed and PINNED_PROMPT_SHA256 in printed
    options = ["--codebook", str(book), "--model", "standin", "--endpoint", url, "--cache", str(tmp_path / "cache"),
               "--no-progress"]
    assert main(["vlm-code", str(faces), *options, "--dry-run"]) == 0
    assert "16 requests" in capsys.readouterr().out and standin.requests == 0
    assert main(["vlm-code", str(faces), *options]) == 1                    # no --out
    assert "--out" in capsys.readouterr().err
    assert main(["vlm-code", str(faces), *options, "--out", str(tmp_path / "codes.parquet")]) == 0
    assert standin.requests == 16
    assert main(["vlm-predictions", str(tmp_path / "codes.parquet"), "--category", "glasses", "--out",
                 str(tmp_path / "predictions.csv")]) == 0
    import pyarrow.csv as pacsv

    predictions = pacsv.read_csv(tmp_path / "predictions.csv")
    assert predictions.num_rows == 16 and {"predicted", "prob_yes", "prob_no"} <= set(predictions.column_names)
    pq.write_table(_annotations(faces), tmp_path / "annotations.parquet")
    assert main(["coder-agreement", str(tmp_path / "annotations.parquet"), f"vlm={tmp_path / 'codes.parquet'}",
                 "--out", str(tmp_path / "agreement.csv")]) == 0
    agreement = pacsv.read_csv(tmp_path / "agreement.csv")
    assert {c for c in agreement["coder"].to_pylist() if c} == {"vlm", "A"}
    assert main(["vlm-code", str(faces), *options, "--endpoint", "http://192.0.2.1:9/v1", "--out",
                 str(tmp_path / "remote.parquet")]) == 1
    assert "--allow-remote" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ validated, corrected

def _annotations(faces: Path) -> pa.Table:
    """Two simulated human coders: the key, with coder B disagreeing on two images."""
    rows = []
    for path in sorted(faces.glob("*.png")):
        truth = truth_of(path)
        for coder in ("A", "B"):
            glasses = truth["glasses"] != (coder == "B" and path.name in ("s1_1.png", "s2_2.png"))
            rows.append({"image_id": path.name, "annotator": coder, "glasses": "yes" if glasses else "no",
                         "smiling": truth["smiling"]})
    return pa.Table.from_pylist(rows)


def test_agreement_alpha_and_prompt_sensitivity(server, faces, tmp_path):
    import krippendorff

    url, _ = server
    codes = code(faces, url, tmp_path / "cache")
    annotations = _annotations(faces)
    result = iad.coder_agreement(annotations, {"vlm": codes})
    rows = {(r["variable"], r["coder"], r["versus"], r["metric"]): r for r in result.to_pylist()}
    machine = {(r["image_id"], r["category"]): r["present"] for r in codes.to_pylist()}
    human = {(r["image_id"], r["annotator"]): r for r in annotations.to_pylist()}
    images = sorted(p.name for p in faces.glob("*.png"))
    for variable in ("glasses", "smiling"):
        def said(image, coder):
            value = human[(image, coder)][variable]
            return value in ("yes", True)
        # agreement with each coder, by hand
        for coder in ("A", "B"):
            by_hand = np.mean([machine[(i, variable)] == said(i, coder) for i in images])
            assert rows[(variable, "vlm", coder, "percent_agreement")]["estimate"] == pytest.approx(by_hand)
        # alpha among the humans, and with the machine as a third coder, by the krippendorff package directly
        humans = np.array([[float(said(i, c)) for i in images] for c in ("A", "B")])
        with_machine = np.vstack([humans, [[float(machine[(i, variable)]) for i in images]]])
        assert rows[(variable, None, "humans", "krippendorff_alpha")]["estimate"] == pytest.approx(
            krippendorff.alpha(reliability_data=humans, level_of_measurement="nominal"))
        assert rows[(variable, "vlm", "humans", "krippendorff_alpha")]["estimate"] == pytest.approx(
            krippendorff.alpha(reliability_data=with_machine, level_of_measurement="nominal"))
    assert rows[("glasses", "A", "B", "percent_agreement")]["estimate"] == pytest.approx(14 / 16)

    # Two wordings of the codebook make different mistakes (the stand-in's are seeded by the prompt).
    reworded = code(faces, url, tmp_path / "cache", {"glasses": "Spectacles are worn.", "smiling": "A visible smile."})
    sensitivity = {(r["variable"], r["metric"]): r for r in iad.prompt_sensitivity(codes, reworded).to_pylist()}
    for variable in ("glasses", "smiling"):
        same = [machine[(i, variable)] == r["present"] for i in images for r in reworded.to_pylist()
                if r["image_id"] == i and r["category"] == variable]
        assert sensitivity[(variable, "percent_agreement")]["estimate"] == pytest.approx(np.mean(same))
        assert sensitivity[(variable, "changed")]["estimate"] == len(same) - sum(same)
    assert sum(sensitivity[(v, "changed")]["estimate"] for v in ("glasses", "smiling")) > 0
    assert sensitivity[("glasses", "percent_agreement")]["first"] == codes["prompt_sha256"][0].as_py()[:12]

    # compare_tags reads VLM codes as a tag table: the book's Table 6.1 shape for "glasses".
    manual = pa.table({"image_id": images, "label": ["yes" if truth_of(faces / i)["glasses"] else "no" for i in images]})
    comparison = iad.compare_tags(codes, manual, "glasses")
    assert comparison.count("true positive") == sum(machine[(i, "glasses")] and truth_of(faces / i)["glasses"] for i in images)
    assert comparison.count("false positive") == sum(machine[(i, "glasses")] and not truth_of(faces / i)["glasses"] for i in images)


def test_vlm_codes_flow_into_a_gold_sample_and_corrected_prevalence(server, orl_faces, tmp_path):
    """120 ORL photos coded 'glasses' by the stand-in (which errs more on true yes than on true no: the naive
    share is biased); a gold sample of 40 coded with the truth; corrected_prevalence runs on the VLM's codes with
    no glue beyond vlm_predictions()."""
    url, standin = server
    paths = sorted(orl_faces.glob("s[1-9]/*.pgm")) + sorted(orl_faces.glob("s1[0-2]/*.pgm"))
    truth = {str(p): p.parent.name in ("s2", "s7", "s10", "s12") for p in paths}   # made-up: "wears glasses"
    standin.key = {pixel_key(p.read_bytes()): {"glasses": truth[str(p)]} for p in paths}
    codes = code([str(p) for p in paths], url, tmp_path / "cache", {"glasses": BOOK["glasses"]}, concurrency=4)
    predictions = iad.vlm_predictions(codes, "glasses")
    assert predictions.num_rows == 120 and predictions["predicted"].null_count == 0
    gold = iad.draw_gold_sample(predictions, 40, seed=1)
    gold = gold.append_column("label", pa.array(["yes" if truth[p] else "no" for p in gold["path"].to_pylist()]))
    result = iad.corrected_prevalence(predictions, gold, classes=["yes", "no"])
    estimates = {(r["class"], r["method"]): r for r in result.to_pylist()}
    naive = np.mean([p == "yes" for p in predictions["predicted"].to_pylist()])
    assert estimates[("yes", "naive")]["estimate"] == pytest.approx(naive)
    gold_share = np.mean([truth[p] for p in gold["path"].to_pylist()])
    assert estimates[("yes", "gold_only")]["estimate"] == pytest.approx(gold_share)
    corrected = estimates[("yes", "corrected")]
    assert corrected["n_gold"] == 40 and corrected["conf_low"] <= corrected["estimate"] <= corrected["conf_high"]
    assert corrected["estimate"] != pytest.approx(naive)
