"""A STAND-IN for a vision-language model server, for the tests and the vignette. It is not a model.

It speaks the OpenAI-compatible chat-completions API on 127.0.0.1 (POST /v1/chat/completions, GET /v1/models)
with answers shaped like the documented ones — structured output (response_format json_schema), log-probabilities
with top alternatives, n samples, refusals, 429 rate limits with Retry-After — so that vlm_code() can be run end
to end on a machine without a model. It does not look at what a picture shows:

- it recognises an image by its decoded pixels (so a re-encoded copy is the same image) and looks its true codes
  up in a key it was started with (`--key`: a CSV with a path column and one yes/no column per category, or a
  `category` column for a pick-one codebook); images not in the key are coded "no" (or the last category);
- it then makes mistakes on purpose, seeded by the image, the category and the SHA-256 of the system prompt, at
  the rates it was given (`--false-positive`, `--false-negative`, `--error-rate` for pick-one codebooks) — so a
  second wording of the codebook makes other mistakes (prompt sensitivity), and its "probability" is higher for
  answers it did not flip, as a somewhat informative model's would be.

    python -m imagesasdata.autotag.standin_vlm --key truth.csv --false-positive 0.1 --false-negative 0.25 \\
        --port-file port.txt

Tests drive it in-process (StandinVLM), switching on rate limits, malformed answers, refusals, slow answers,
held requests and a missing json_schema support, and read its counts of what it received and answered.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SCHEMA_MARKER = "JSON schema of the answer:"
YES = {"1", "yes", "y", "true", "t", "positive"}
NO = {"0", "no", "n", "false", "f", "negative", ""}


def pixel_key(data: bytes) -> str:
    """An image's identity for the stand-in: SHA-256 of its decoded RGB pixels and size (not of the file bytes)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def _uniform(*parts) -> float:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class StandinVLM:
    """The stand-in's state: its key, its error rates, the behaviours a test switches on, and its counts."""

    def __init__(self, key: dict | None = None, *, false_positive: float = 0.0, false_negative: float = 0.0,
                 error_rate: float = 0.0, seed: int = 0, model: str | None = None, api_key: str | None = None):
        self.key = key or {}
        self.false_positive, self.false_negative, self.error_rate = false_positive, false_negative, error_rate
        self.seed, self.model, self.api_key = seed, model, api_key
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self.reset()

    def reset(self):
        """Forget the counts and behaviours, after the requests still being answered (a slow one) are done."""
        deadline = time.monotonic() + 30
        while getattr(self, "in_flight", 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            self.in_flight = 0
            self.requests = 0               # chat-completion requests received
            self.received = []              # pixel key of the image to code, per request, in arrival order
            self.answered = Counter()       # pixel key -> 200 answers given
            self.bodies = []                # the request bodies (parsed JSON), for tests that check what was sent
            self.throttled = Counter()
            self.throttle_first = False     # answer each image's first request with 429 and Retry-After
            self.retry_after = "1"
            self.garble = Counter()         # pixel key -> number of malformed answers still to give
            self.refuse = set()             # pixel keys answered with a refusal
            self.slow_first = 0.0           # seconds to sleep before answering each image's first request
            self.slowed = Counter()
            self.json_schema = True         # False: answer 400 to response_format json_schema, as some servers do
            self.logprobs = True
            self.answer_limit = None        # answer this many requests, then hold every further one unanswered
            self.admitted = 0
            self.held = []
            self.release = threading.Event()
            self.gate_after = None          # answer this many, then make the others wait for the gate
            self.gate = threading.Event()
            self.waiting = 0

    # ---------------------------------------------------------------------------------------------- serving

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port) in a daemon thread; return the base URL (…/v1)."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    body = {"object": "list", "data": [{"id": standin.model or "standin-vlm", "object": "model",
                                                        "created": 0, "owned_by": "imagesasdata-standin"}]}
                    return self._send(200, body)
                return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._send(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
                status, payload, headers = standin.respond(body, self.headers.get("Authorization", ""))
                self._send(status, payload, headers)

            def _send(self, status, payload, headers=None):
                if payload is None:   # held: the connection is dropped unanswered when released
                    self.close_connection = True
                    return
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://{host}:{self.server.server_address[1]}/v1"

    def stop(self):
        self.release.set()
        self.gate.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None

    # ---------------------------------------------------------------------------------------------- answering

    def respond(self, body: dict, authorization: str = ""):
        """(status, JSON payload or None for a held request, headers) for one chat-completion request."""
        with self.lock:
            self.in_flight += 1
        try:
            return self._respond(body, authorization)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _respond(self, body: dict, authorization: str):
        if self.api_key and authorization != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), {}
        if self.model and body.get("model") != self.model:
            return 404, _error(f"The model `{body.get('model')}` does not exist.", "invalid_request_error",
                               "model_not_found"), {}
        system, images = _prompt_and_images(body.get("messages") or [])
        image = images[-1] if images else None
        key = pixel_key(image) if image else None
        with self.lock:
            self.requests += 1
            self.received.append(key)
            self.bodies.append(body)
            if body.get("response_format", {}).get("type") == "json_schema" and not self.json_schema:
                return 400, _error("response_format json_schema is not supported by this server", "invalid_request_error",
                                   param="response_format"), {}
            if body.get("logprobs") and not self.logprobs:
                return 400, _error("logprobs are not supported", "invalid_request_error", param="logprobs"), {}
            if self.throttle_first and not self.throttled[key]:
                self.throttled[key] += 1
                return 429, _error("Rate limit reached for requests. Please try again in 1s.", "requests",
                                   "rate_limit_exceeded"), {"Retry-After": self.retry_after}
            hold = self.answer_limit is not None and self.admitted >= self.answer_limit
            gated = self.gate_after is not None and self.admitted >= self.gate_after and not self.gate.is_set()
            self.waiting += gated
            slow = self.slow_first if self.slow_first and not self.slowed[key] else 0.0
            self.slowed[key] += 1
            if hold:
                self.held.append(key)
            else:
                self.admitted += 1
        if hold:
            self.release.wait(120)
            return 503, None, {}
        if gated:
            self.gate.wait(120)
        if slow:
            time.sleep(slow)
        schema = _schema(body, system)
        if schema is None or key is None:
            return 400, _error("the stand-in needs an image and the codebook's JSON schema", "invalid_request_error"), {}
        prompt_hash = hashlib.sha256(system.encode()).hexdigest()
        choices = []
        n = int(body.get("n") or 1)
        for index in range(n):
            with self.lock:
                garbled = self.garble[key] > 0
                if garbled:
                    self.garble[key] -= 1
            if key in self.refuse:
                choice = {"index": index, "message": {"role": "assistant", "content": None,
                                                      "refusal": "I'm sorry, I can't help with coding this image."},
                          "logprobs": None, "finish_reason": "stop"}
            elif garbled:
                choice = {"index": index, "message": {"role": "assistant", "content": "Sure! The image shows people. "
                                                      "{'protest': yes", "refusal": None},
                          "logprobs": None, "finish_reason": "stop"}
            else:
                choice = self._choice(index, schema, key, prompt_hash, n, body)
            choices.append(choice)
        with self.lock:
            self.answered[key] += 1
        prompt_tokens = len(system) // 4 + 85 * len(images)
        completion = sum(len(c["message"]["content"] or "") // 4 for c in choices)
        return 200, {"id": f"chatcmpl-standin-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                     "model": body.get("model"), "system_fingerprint": "imagesasdata-standin",
                     "choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                                                   "total_tokens": prompt_tokens + completion}}, {}

    def _choice(self, index: int, schema: dict, key: str, prompt_hash: str, n: int, body: dict) -> dict:
        properties = schema.get("properties") or {}
        truth = self.key.get(key, {})
        sampled = n > 1 or float(body.get("temperature") or 0) > 0
        answer, decisions = {}, []
        if set(properties) == {"category", "reason"} and "enum" in properties["category"]:
            options = list(properties["category"]["enum"])
            true = truth.get("category") if truth.get("category") in options else options[-1]
            wrong = _uniform(self.seed, key, prompt_hash, "error") < self.error_rate
            given = options[(options.index(true) + 1 + int(_uniform(self.seed, key, "other") * (len(options) - 1)))
                            % len(options)] if wrong and len(options) > 1 else true
            p = _confidence(self.seed, key, prompt_hash, "category", wrong)
            if sampled and _uniform(self.seed, key, prompt_hash, "sample", index) > p:
                others = [o for o in options if o != given]
                given = others[int(_uniform(self.seed, key, "pick", index) * len(others))] if others else given
            answer = {"category": given, "reason": f"stand-in: {'a simulated mistake' if given != true else 'its key'}"}
            alternatives = {json.dumps(o): (p if o == given else (1 - p) / max(1, len(options) - 1)) for o in options}
            decisions.append(("category", json.dumps(given), alternatives))
        else:
            for name in properties:
                true = bool(truth.get(name, False))
                rate = self.false_negative if true else self.false_positive
                wrong = _uniform(self.seed, key, prompt_hash, name) < rate
                given = true != wrong
                p = _confidence(self.seed, key, prompt_hash, name, wrong)
                if sampled and _uniform(self.seed, key, prompt_hash, name, "sample", index) > p:
                    given = not given
                answer[name] = {"present": given,
                                "reason": f"stand-in: {'a simulated mistake' if given != true else 'its key'}"}
                decisions.append((name, json.dumps(given), {"true": p if given else 1 - p,
                                                            "false": 1 - p if given else p}))
        content = json.dumps(answer, separators=(",", ":"))
        logprobs = {"content": _logprob_tokens(content, decisions), "refusal": None} if body.get("logprobs") else None
        return {"index": index, "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": logprobs, "finish_reason": "stop"}


def _confidence(seed, key, prompt_hash, name, wrong: bool) -> float:
    """The stand-in's probability for the answer it gives: 0.55-0.99 when it follows its key, 0.5-0.8 when not."""
    u = _uniform(seed, key, prompt_hash, name, "confidence")
    return 0.5 + 0.3 * u if wrong else 0.55 + 0.44 * u


def _logprob_tokens(content: str, decisions) -> list:
    """Tokens of `content` in the documented logprobs shape: a decided answer (true/false, a category's quoted
    name) is one token with its alternatives in top_logprobs; every other token is certain (logprob 0)."""
    pieces = re.findall(r'"(?:[^"\\]|\\.)*"|true|false|[{}:,\[\]]|\s+|[^"{}:,\[\]\s]+', content)
    tokens, position = [], 0
    decided = iter(decisions)
    pending = next(decided, None)
    for piece in pieces:
        entry = {"token": piece, "logprob": 0.0, "bytes": list(piece.encode()), "top_logprobs": []}
        if pending is not None and piece == pending[1]:
            # the value of the next decided answer (they come in the answer's order)
            context = content[max(0, position - 40):position]
            if context.rstrip().endswith(":") and ('"present":' in context[-12:] or '"category":' in context[-13:]):
                alternatives = sorted(pending[2].items(), key=lambda item: -item[1])
                entry["logprob"] = math.log(max(pending[2][piece], 1e-12))
                entry["top_logprobs"] = [{"token": t, "logprob": math.log(max(p, 1e-12)), "bytes": list(t.encode())}
                                         for t, p in alternatives]
                pending = next(decided, None)
        if not entry["top_logprobs"]:
            entry["top_logprobs"] = [{"token": piece, "logprob": 0.0, "bytes": list(piece.encode())}]
        tokens.append(entry)
        position += len(piece)
    return tokens


def _prompt_and_images(messages) -> tuple[str, list]:
    system, images = "", []
    for message in messages:
        content = message.get("content")
        if message.get("role") == "system" and isinstance(content, str):
            system += content
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    if url.startswith("data:") and "," in url:
                        images.append(base64.b64decode(url.split(",", 1)[1]))
                elif part.get("type") == "text" and message.get("role") == "system":
                    system += part.get("text", "")
    return system, images


def _schema(body: dict, system: str):
    form = body.get("response_format") or {}
    if form.get("type") == "json_schema":
        return (form.get("json_schema") or {}).get("schema")
    if SCHEMA_MARKER in system:
        text = system.split(SCHEMA_MARKER, 1)[1].strip().splitlines()[0]
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def read_key(path) -> dict:
    """{pixel key: {category: bool} or {"category": name}} from a CSV with a path column and the true codes."""
    path = Path(path)
    out = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            image = Path(row.pop("path"))
            if not image.is_absolute():
                image = path.parent / image
            codes = {}
            for name, value in row.items():
                if name == "category":
                    codes["category"] = value
                elif name != "image_id":
                    text = str(value).strip().lower()
                    if text not in YES | NO:
                        raise SystemExit(f"{path}: {name}={value!r} for {image} is not yes/no")
                    codes[name] = text in YES
            out[pixel_key(image.read_bytes())] = codes
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagesasdata.autotag.standin_vlm",
                                     description="A stand-in OpenAI-compatible VLM server for tests and the vignette "
                                                 "(not a model: it answers from a key, with simulated mistakes).")
    parser.add_argument("--key", help="CSV: path, then one yes/no column per category (or a category column)")
    parser.add_argument("--false-positive", type=float, default=0.0, help="share of true 'no' answered 'yes'")
    parser.add_argument("--false-negative", type=float, default=0.0, help="share of true 'yes' answered 'no'")
    parser.add_argument("--error-rate", type=float, default=0.0, help="pick-one codebooks: share answered wrongly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="answer only requests for this model name (404 otherwise)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--port-file", help="write the chosen port to this file once serving")
    args = parser.parse_args(argv)
    standin = StandinVLM(read_key(args.key) if args.key else {}, false_positive=args.false_positive,
                         false_negative=args.false_negative, error_rate=args.error_rate, seed=args.seed,
                         model=args.model)
    url = standin.start("127.0.0.1", args.port)
    if args.port_file:
        temporary = Path(args.port_file + ".part")
        temporary.write_text(str(standin.server.server_address[1]))
        temporary.replace(args.port_file)
    print(f"stand-in VLM serving {url} (not a model: answers from its key with simulated mistakes)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
