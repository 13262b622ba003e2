"""Coding images with a vision-language model: a codebook in words, one answer per image and category, through
the OpenAI-compatible chat API — hosted providers and local servers (vLLM, Ollama, llama.cpp) alike, via one
client, the `openai` package, pointed at `endpoint` (its base_url).

- The prompt is built from the codebook (codebook.py) deterministically and its SHA-256 recorded on every row.
- Answers are forced into the codebook's JSON schema: structured output (response_format json_schema) where the
  server supports it; where it answers 400 to that, the schema is in the prompt and answers are validated and
  asked again (`retries`). Refusals, content filters and answers that never become valid are rows with an error.
- A probability per answer: from the answer token's log-probabilities (probability="logprobs"), or the share of
  `samples` answers drawn at temperature 1 (probability="samples"), so calibration, thresholds and the
  corrected estimators apply unchanged.
- Never pay twice: answers are cached (responses.ResponseCache, operation "vlm-chat") by endpoint, model, prompt
  hash, options and image SHA-256, with the cross-process claims and write-ahead markers of paid.py: two runs
  sharing a cache send each image once; a killed run repeats only the requests in flight. dry_run=True counts
  the requests and estimates tokens and cost, sending nothing.
- Rate limits (429, honouring Retry-After), timeouts and server errors are retried with exponential backoff by
  the openai client (`max_retries`); at most `concurrency` requests are in flight.
- Private by default: an endpoint outside this machine needs allow_remote=True, and the run says how many images
  leave the machine and to which host. Images are downscaled to `max_side` pixels (longest side) before upload.
- The API key comes from the environment variable `api_key_env` (OPENAI_API_KEY by default); it is never taken
  as an argument, stored, logged or written into an error.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import math
import os
import re
import socket
import threading
from urllib.parse import urlparse

import pyarrow as pa

from ..errors import BadImageError, ImagesAsDataError, check_number, did_you_mean, setting
from .codebooks import Codebook, codebook as make_codebook
from .inputs import hash_files, image_inputs
from .paid import Answer, Fatal, ask_each, interrupted_requests
from .payload import prepare_image
from .responses import ResponseCache

log = logging.getLogger("imagesasdata.autotag")

OPERATION = "vlm-chat"
DEFAULT_ENDPOINT = "http://localhost:11434/v1"     # Ollama's OpenAI-compatible endpoint on this machine
DEFAULT_MAX_SIDE = 1024
MAX_BYTES = 20 * 1024 * 1024                        # OpenAI's documented limit per image
PROBABILITIES = ("logprobs", "samples", "none")
STRUCTURED = ("auto", "json_schema", "prompt")
DETAILS = ("auto", "low", "high")
TOP_LOGPROBS = 5
USER_TEXT = "Code this image."

# USD per million tokens (input, output) and OpenAI's image-token formula per model (base tokens, tokens per
# 512-px tile; "low" detail costs the base alone). Source: OpenAI's pricing page and vision guide
# (platform.openai.com/docs/pricing, /docs/guides/images-vision), as transcribed by several third-party pages in
# 2026 that agree on these figures. Prices change: pass prices= for yours, and for any other model or provider.
# A local endpoint costs nothing per token. Token counts are estimates (text: about 4 characters a token).
PRICES = {
    "gpt-4o": {"input_per_million": 2.50, "output_per_million": 10.00, "image_base_tokens": 85, "image_tile_tokens": 170},
    "gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.60, "image_base_tokens": 2833,
                    "image_tile_tokens": 5667},
}
GENERIC_IMAGE_TOKENS = {"image_base_tokens": 85, "image_tile_tokens": 170}
OUTPUT_TOKENS_PER_ANSWER = 40   # a yes/no and a one-sentence reason, for the estimate

VLM_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("image_sha256", pa.string()), ("tagger", pa.string()),
    ("category", pa.string()),
    ("present", pa.bool_()),            # kind "each": the category is in the image; kind "one": it is the one chosen
    ("probability", pa.float64()),      # P(present): from log-probabilities or the share of samples; null if none
    ("reason", pa.string()),            # the model's stated reason (kind "one": on the chosen category's row)
    ("samples", pa.int32()),            # answers behind a samples-share probability (null for log-probabilities)
    ("codebook_kind", pa.string()),     # "each" or "one"
    ("model", pa.string()),             # the model named by the server's answer
    ("prompt_sha256", pa.string()),
    ("error", pa.string()),
])
PLAN_SCHEMA = pa.schema([
    ("endpoint", pa.string()), ("host", pa.string()), ("remote", pa.bool_()), ("model", pa.string()),
    ("images", pa.int64()), ("distinct_images", pa.int64()), ("unreadable", pa.int64()), ("cached", pa.int64()),
    ("requests", pa.int64()), ("samples_per_request", pa.int64()), ("estimated_input_tokens", pa.int64()),
    ("estimated_output_tokens", pa.int64()), ("input_per_million", pa.float64()),
    ("output_per_million", pa.float64()), ("estimated_cost_usd", pa.float64()), ("prompt_sha256", pa.string()),
])


def vlm_code(images, codebook, *, model: str, endpoint: str | None = None, allow_remote: bool = False,
             api_key_env: str = "OPENAI_API_KEY", max_side: int = DEFAULT_MAX_SIDE, detail: str = "auto",
             probability: str = "logprobs", samples: int = 5, temperature: float | None = None, seed: int = 0,
             structured: str = "auto", retries: int = 2, max_retries: int = 6, timeout: float = 120.0,
             concurrency: int = 4, cache=None, retry_errors: bool = False, dry_run: bool = False,
             prices: dict | None = None, progress: bool = True) -> pa.Table:
    """Code images with a vision-language model: one row per image × codebook category.

    images: a folder, files, a CSV/Parquet table or data frame with a path column, or an image_table().
    codebook: a Codebook, or anything codebook() reads (a YAML/JSON file, {category: definition}, a table).
    model: the model's name at the endpoint ("gpt-4o-mini"; "qwen2.5vl:7b" in Ollama; what vLLM serves).
    endpoint: the server's OpenAI-compatible base URL (default $IMAGESASDATA_VLM_ENDPOINT, else Ollama's
      http://localhost:11434/v1; OpenAI's is https://api.openai.com/v1). allow_remote: required for an endpoint
      outside this machine (the images leave it). api_key_env: the environment variable holding the API key.
    max_side: images are downscaled so that their longest side is at most this (pixels) before upload; detail:
      OpenAI's image detail ("auto", "low", "high"; others ignore it).
    probability: "logprobs" (the answer token's probability; needs a server that returns log-probabilities),
      "samples" (the share of `samples` answers drawn at temperature 1, in one request with n=samples) or "none".
    temperature: default 0 (1 for samples). seed: sent for servers that honour it.
    structured: "auto" (JSON schema output, falling back to the schema in the prompt when the server refuses it),
      "json_schema" or "prompt". retries: further requests when an answer is not valid (each is paid).
    max_retries, timeout: the openai client's retries (rate limits, honouring Retry-After; timeouts; 5xx) and its
      timeout per request in seconds. concurrency: requests in flight at once.
    cache: folder of the response cache (default: default_cache_dir()). retry_errors: ask again for images whose
      cached answer is an error (a refusal, an invalid answer); otherwise a rerun never pays for them again.
    dry_run: print and return the plan (requests, estimated tokens and cost), sending nothing.
    prices: {"input_per_million": USD, "output_per_million": USD} for the estimate (default: PRICES for known
      OpenAI models, 0 for a local endpoint, unknown otherwise).
    Returns columns image_id, path, image_sha256, tagger, category, present, probability, reason, samples,
    codebook_kind, model, prompt_sha256, error (one row per image with its error when the image could not be
    coded). Raises ImagesAsDataError for bad options, a remote endpoint without allow_remote, and failures every
    request would repeat (unreachable endpoint, refused key, unknown model).
    """
    book = codebook if isinstance(codebook, Codebook) else make_codebook(codebook)
    options = _check_options(model, max_side, detail, probability, samples, temperature, structured, retries,
                             max_retries, timeout, concurrency)
    options["seed"] = int(check_number("seed", seed, 0, None, integer=True))
    endpoint = _endpoint(endpoint)
    host, remote = endpoint_host(endpoint)
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, unreadable = hash_files(paths)
    store = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
    prompt_hash = book.prompt_sha256
    key_parameters = {"endpoint": endpoint, "model": model, "prompt_sha256": prompt_hash, "max_side": options["max_side"],
                      "detail": detail, "probability": probability, "samples": options["samples"],
                      "temperature": options["temperature"], "seed": int(seed), "structured": structured}
    distinct = {}
    for sha, path in zip(hashes, paths):
        if sha is not None:
            distinct.setdefault(sha, path)
    todo, replace = [], {}
    for sha in distinct:
        entry = store.get(sha, OPERATION, key_parameters)
        if entry is None:
            todo.append(sha)
        elif retry_errors and entry_error(book, entry) is not None:
            todo.append(sha)
            replace[sha] = entry.get("received_at")
    if dry_run:
        return _plan(book, distinct, todo, len(paths), len(unreadable), endpoint, host, remote, model, options,
                     prices, detail)
    if todo and remote and not allow_remote:
        raise ImagesAsDataError(
            f"{len(todo)} images would be sent to {host} ({endpoint}), outside this machine. Images are private by "
            f"default: pass allow_remote=True (CLI: --allow-remote) to send them, after checking that your data's "
            f"terms allow it; or use a model served on this machine (Ollama, vLLM, llama.cpp)")
    if todo and remote:
        message = (f"sending {len(todo)} images to {host} ({endpoint}), outside this machine, downscaled to at most "
                   f"{options['max_side']} px")
        log.warning(message)
        print(message)
    interrupted = interrupted_requests(store, todo, OPERATION, key_parameters)
    if interrupted:
        log.warning("%d requests were sent by a run that stopped before their answers arrived (they may have been "
                    "paid for); asking again", len(interrupted))
    failures = {}
    if todo:
        client = _client(endpoint, remote, api_key_env, options)
        sender = _Sender(client, book, model, options, distinct, endpoint, _secrets(api_key_env))
        try:
            failures = ask_each(store, OPERATION, key_parameters, dict(key_parameters), todo, sender.send,
                                concurrency=options["concurrency"], progress=progress, what="vlm", replace=replace)
        except Fatal as problem:
            raise ImagesAsDataError(f"coding stopped: {problem}. Answers received so far are cached in "
                                    f"{store.directory}", what="file", path=store.directory) from None
        if failures:
            log.warning("vlm: %d of %d images have no valid answer (see the error column)", len(failures), len(todo))
    rows = []
    tagger = f"vlm:{model}"
    for index, (image_id, path, sha) in enumerate(zip(ids, paths, hashes)):
        image = {"image_id": image_id, "path": path, "image_sha256": sha, "tagger": tagger,
                 "codebook_kind": book.kind, "prompt_sha256": prompt_hash}
        entry = None if sha is None else store.get(sha, OPERATION, key_parameters)
        if sha is None:
            rows.append({**image, "error": unreadable[index]})
        elif entry is None:
            rows.append({**image, "error": failures.get(sha) or "no answer in the cache; run again to ask"})
        else:
            rows += answer_rows(image, book, entry["response"], probability)
    return pa.Table.from_pylist([{name: row.get(name) for name in VLM_SCHEMA.names} for row in rows], schema=VLM_SCHEMA)


# ------------------------------------------------------------------------------------------ options and privacy

def _check_options(model, max_side, detail, probability, samples, temperature, structured, retries, max_retries,
                   timeout, concurrency) -> dict:
    if not isinstance(model, str) or not model.strip():
        raise ImagesAsDataError("model= names the model at the endpoint, e.g. 'gpt-4o-mini', 'qwen2.5vl:7b'")
    for name, value, choices in (("detail", detail, DETAILS), ("probability", probability, PROBABILITIES),
                                 ("structured", structured, STRUCTURED)):
        if value not in choices:
            raise ImagesAsDataError(f"{setting(name, value)}: choose {', '.join(choices)}.{did_you_mean(str(value), choices)}",
                                    what="option", option=name, value=value)
    samples = int(check_number("samples", samples, 2, 128, integer=True)) if probability == "samples" else 1
    if temperature is None:
        temperature = 1.0 if probability == "samples" else 0.0
    return {"max_side": int(check_number("max_side", max_side, 16, None, integer=True)), "samples": samples,
            "temperature": float(check_number("temperature", temperature, 0, 2)),
            "retries": int(check_number("retries", retries, 0, 10, integer=True)),
            "max_retries": int(check_number("max_retries", max_retries, 0, 50, integer=True)),
            "timeout": float(check_number("timeout", timeout, 0.1, None)),
            "concurrency": int(check_number("concurrency", concurrency, 1, 64, integer=True)),
            "probability": probability, "structured": structured, "detail": detail}


def _endpoint(endpoint) -> str:
    endpoint = endpoint or os.environ.get("IMAGESASDATA_VLM_ENDPOINT") or DEFAULT_ENDPOINT
    parsed = urlparse(str(endpoint))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ImagesAsDataError(f"{setting('endpoint', endpoint)}: give the server's base URL, e.g. http://localhost:11434/v1 "
                                "(Ollama), http://localhost:8000/v1 (vLLM), https://api.openai.com/v1",
                                what="option", option="endpoint", value=endpoint)
    return str(endpoint).rstrip("/")


def endpoint_host(endpoint: str) -> tuple[str, bool]:
    """(host, remote): remote unless the host is a loopback address or a name that resolves only to loopback."""
    host = urlparse(endpoint).hostname or ""
    try:
        return host, not ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return host, False
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return host, True
    local = bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    return host, not local


def _secrets(api_key_env: str) -> list:
    key = os.environ.get(api_key_env) or ""
    return [key] if len(key) >= 8 else []


def _client(endpoint: str, remote: bool, api_key_env: str, options: dict):
    try:
        from openai import OpenAI
    except ImportError:
        raise ImagesAsDataError("vlm_code needs the openai package: pip install openai (it comes with imagesasdata)") from None
    key = os.environ.get(api_key_env)
    if not key:
        if remote:
            raise ImagesAsDataError(f"no API key: set the environment variable {api_key_env} (or name another with "
                                    "api_key_env=); keys are never taken as arguments or stored")
        key = "not-needed"   # local servers (Ollama, vLLM, llama.cpp) ignore it; the client insists on one
    return OpenAI(base_url=endpoint, api_key=key, timeout=options["timeout"], max_retries=options["max_retries"])


# ------------------------------------------------------------------------------------------ requests

class _Sender:
    """Builds and sends one image's request, with the fallbacks a server's abilities call for."""

    def __init__(self, client, book: Codebook, model: str, options: dict, distinct: dict, endpoint: str, secrets):
        self.client, self.book, self.model, self.options = client, book, model, options
        self.distinct, self.endpoint, self.secrets = distinct, endpoint, secrets
        self.lock = threading.Lock()
        self.json_schema = options["structured"] in ("auto", "json_schema")
        self.logprobs = options["probability"] == "logprobs"
        self.examples = None

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def example_parts(self) -> list:
        with self.lock:
            if self.examples is None:
                parts = []
                for category in self.book.categories:
                    for number, path in enumerate(category.examples, start=1):
                        try:
                            payload = prepare_image(path, max_bytes=MAX_BYTES, min_side=1,
                                                    max_side=self.options["max_side"])
                        except BadImageError as error:
                            raise Fatal(f"example image {path} of {category.name!r}: {error.reason}") from None
                        parts += [{"type": "text", "text": f"Example of {category.name} ({number} of "
                                                           f"{len(category.examples)}):"},
                                  _image_part(payload, self.options["detail"])]
                if parts:
                    parts = [{"type": "text", "text": "Example images from the codebook:"}] + parts
                self.examples = parts
            return self.examples

    def send(self, sha: str) -> Answer:
        import openai

        try:
            payload = prepare_image(self.distinct[sha], max_bytes=MAX_BYTES, min_side=1, max_side=self.options["max_side"])
        except BadImageError as error:
            return Answer(error=error.reason)
        content = self.example_parts() + [{"type": "text", "text": USER_TEXT}, _image_part(payload, self.options["detail"])]
        messages = [{"role": "system", "content": self.book.prompt()}, {"role": "user", "content": content}]
        attempts, error = [], None
        for _attempt in range(self.options["retries"] + 1):
            try:
                response = self._create(messages)
            except openai.APIConnectionError as problem:   # includes timeouts after the client's own retries
                if isinstance(problem, openai.APITimeoutError):
                    error = f"timed out after {self.options['timeout']:g} s ({self.options['max_retries']} retries)"
                    break
                raise Fatal(f"cannot reach {self.endpoint} ({self.scrub(str(problem))}); is the server running? "
                            "check endpoint=") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as problem:
                raise Fatal(f"the endpoint refused the key ({self.scrub(_api_message(problem))}); check the "
                            "environment variable named by api_key_env") from None
            except openai.NotFoundError as problem:
                raise Fatal(f"{self.endpoint} has no model {self.model!r} ({self.scrub(_api_message(problem))}); "
                            "check model= (ollama list, or the server's /v1/models)") from None
            except openai.RateLimitError as problem:
                error = f"rate limited after {self.options['max_retries']} retries ({self.scrub(_api_message(problem))}); run again later"
                break
            except openai.APIStatusError as problem:
                error = f"HTTP {problem.status_code}: {self.scrub(_api_message(problem))}"
                break
            attempts.append(response)
            _, problem = parse_response(self.book, response)
            if problem is None or problem.startswith("refused") or problem.startswith("content filter"):
                error = None
                break
            error = problem
        if not attempts:
            return Answer(error=error)
        stored = {"attempts": attempts, "structured": "json_schema" if self.json_schema else "prompt",
                  "logprobs": self.logprobs}
        _, final_problem = parse_response(self.book, attempts[-1])
        return Answer(stored, payload.describe(), final_problem)

    def _create(self, messages) -> dict:
        """One chat completion as a plain dict; drops response_format or logprobs when the server refuses them."""
        import openai

        while True:
            request = {"model": self.model, "messages": messages, "temperature": self.options["temperature"],
                       "seed": self.seed_value()}
            if self.options["samples"] > 1:
                request["n"] = self.options["samples"]
            if self.json_schema:
                request["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "codes", "strict": True, "schema": self.book.schema()}}
            if self.logprobs:
                request.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
            try:
                return self.client.chat.completions.create(**request).model_dump(mode="json", exclude_unset=False)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as problem:
                text = _api_message(problem).lower()
                with self.lock:
                    if self.json_schema and self.options["structured"] == "auto" and any(
                            word in text for word in ("response_format", "json_schema", "schema", "structured")):
                        log.warning("%s does not take response_format json_schema; the schema goes in the prompt and "
                                    "answers are validated", self.endpoint)
                        self.json_schema = False
                        continue
                    if self.logprobs and "logprob" in text:
                        log.warning("%s returns no log-probabilities: probability will be null", self.endpoint)
                        self.logprobs = False
                        continue
                raise

    def seed_value(self) -> int:
        return int(self.options.get("seed", 0))


def _image_part(payload, detail: str) -> dict:
    data = base64.b64encode(payload.data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/{payload.format.lower()};base64,{data}",
                                               "detail": detail}}


def _api_message(problem) -> str:
    body = getattr(problem, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(getattr(problem, "message", problem))[:300]


# ------------------------------------------------------------------------------------------ answers

def _content_json(content: str):
    text = content.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, flags=re.S)
    if fenced:
        text = fenced.group(1)
    return json.loads(text)


def check_answer(book: Codebook, answer) -> str | None:
    """None when `answer` (parsed JSON) follows the codebook's schema, else what is wrong."""
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    if book.kind == "one":
        if answer.get("category") not in book.names:
            return f"category {answer.get('category')!r} is not one of {', '.join(book.names)}"
        if not isinstance(answer.get("reason", ""), str):
            return "reason is not text"
        return None
    missing = [name for name in book.names if name not in answer]
    if missing:
        return f"no answer for {', '.join(missing)}"
    for name in book.names:
        item = answer[name]
        if not isinstance(item, dict) or not isinstance(item.get("present"), bool):
            return f"{name}: present is not true or false"
        if not isinstance(item.get("reason", ""), str):
            return f"{name}: reason is not text"
    return None


def _choice_answer(book: Codebook, choice: dict):
    """(parsed answer, problem) of one choice of a chat completion."""
    message = choice.get("message") or {}
    if message.get("refusal"):
        return None, f"refused: {str(message['refusal'])[:200]}"
    if choice.get("finish_reason") == "content_filter":
        return None, "content filter: the provider withheld the answer"
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        return None, "malformed answer: empty"
    try:
        answer = _content_json(content)
    except ValueError:
        cut = " (cut off: the answer hit the token limit)" if choice.get("finish_reason") == "length" else ""
        return None, f"malformed answer: not JSON{cut}: {content.strip()[:80]!r}"
    problem = check_answer(book, answer)
    return (answer, None) if problem is None else (None, f"malformed answer: {problem}")


def parse_response(book: Codebook, response: dict):
    """([(choice, answer)] valid choices, problem of the first choice or None)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices:
        return [], "malformed answer: no choices in the response"
    valid, first_problem = [], None
    for number, choice in enumerate(choices):
        answer, problem = _choice_answer(book, choice if isinstance(choice, dict) else {})
        if problem is None:
            valid.append((choice, answer))
        elif number == 0:
            first_problem = problem
    if not valid:
        return [], first_problem
    return valid, None


def entry_error(book: Codebook, entry: dict) -> str | None:
    """The error of a cached entry's last answer (a refusal, an invalid answer), or None when it is valid."""
    attempts = (entry.get("response") or {}).get("attempts") or []
    if not attempts:
        return "no answer"
    return parse_response(book, attempts[-1])[1]


def answer_rows(image: dict, book: Codebook, stored: dict, probability: str) -> list[dict]:
    """Rows (one per category) from a cached entry's response: its last attempt's answer."""
    attempts = stored.get("attempts") or []
    if not attempts:
        return [{**image, "error": "the cached entry holds no answer; run again with retry_errors=True"}]
    response = attempts[-1]
    valid, problem = parse_response(book, response)
    model = response.get("model") if isinstance(response, dict) else None
    if problem is not None or not valid:
        return [{**image, "model": model, "error": problem or "malformed answer"}]
    base = {**image, "model": model}
    if probability == "samples":
        return _sample_rows(base, book, valid)
    choice, answer = valid[0]
    chance = answer_probabilities(book, choice, answer) if probability == "logprobs" else None
    rows = []
    if book.kind == "one":
        for name in book.names:
            chosen = answer["category"] == name
            rows.append({**base, "category": name, "present": chosen,
                         "probability": None if chance is None else chance.get(name),
                         "reason": answer.get("reason") if chosen else None})
    else:
        for name in book.names:
            rows.append({**base, "category": name, "present": answer[name]["present"],
                         "probability": None if chance is None else chance.get(name),
                         "reason": answer[name].get("reason")})
    return rows


def _sample_rows(base: dict, book: Codebook, valid: list) -> list[dict]:
    n = len(valid)
    rows = []
    for name in book.names:
        if book.kind == "one":
            votes = [answer["category"] == name for _, answer in valid]
        else:
            votes = [answer[name]["present"] for _, answer in valid]
        share = sum(votes) / n
        majority = share > 0.5 or (share == 0.5 and votes[0])
        if book.kind == "one":
            counts = {c: sum(a["category"] == c for _, a in valid) for c in book.names}
            best = max(book.names, key=lambda c: (counts[c], c == valid[0][1]["category"]))
            majority = name == best
        reason = None
        for (_, answer), vote in zip(valid, votes):
            if vote == majority:
                reason = answer.get("reason") if book.kind == "one" else answer[name].get("reason")
                break
        if book.kind == "one" and not majority:
            reason = None
        rows.append({**base, "category": name, "present": majority, "probability": share, "reason": reason,
                     "samples": n})
    return rows


# ------------------------------------------------------------------------------------------ log-probabilities

def answer_probabilities(book: Codebook, choice: dict, answer: dict) -> dict | None:
    """{category: probability} from the log-probabilities of the tokens that decide each answer; None when the
    response carries none. kind "each": P(present) per category; kind "one": P(category), summing to 1."""
    tokens = ((choice.get("logprobs") or {}).get("content")) or []
    content = (choice.get("message") or {}).get("content") or ""
    if not tokens or "".join(t.get("token", "") for t in tokens) != content:
        return None
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token.get("token", ""))
    if book.kind == "one":
        match = re.search(r'"category"\s*:\s*', content)
        if not match:
            return None
        options = {name: json.dumps(name, ensure_ascii=False) for name in book.names}
        return _option_probabilities(tokens, starts, content, match.end(), options)
    out = {}
    for name in book.names:
        key = re.search(re.escape(json.dumps(name, ensure_ascii=False)) + r"\s*:\s*\{", content)
        if not key:
            return None
        value = re.compile(r'"present"\s*:\s*').search(content, key.end())
        if not value:
            return None
        found = _option_probabilities(tokens, starts, content, value.end(), {"true": "true", "false": "false"})
        if found is None:
            return None
        out[name] = found["true"]
    return out


def _option_probabilities(tokens, starts, content: str, value_start: int, options: dict) -> dict | None:
    """P(option) for a value beginning at content[value_start:], from the tokens' top log-probabilities: walking
    from the token that covers value_start, each alternative token is credited to the one option its text still
    fits; the walk ends at the first token that decides among the options."""
    index = max(i for i, s in enumerate(starts) if s <= value_start)
    realised = ""            # the value's text produced by the tokens before this one
    reach = 1.0              # probability of producing `realised`
    live = dict(options)
    mass = {name: 0.0 for name in options}
    while index < len(tokens):
        token = tokens[index]
        before = content[starts[index]:value_start] if starts[index] < value_start else ""
        alternatives = token.get("top_logprobs") or [{"token": token.get("token", ""), "logprob": token.get("logprob", 0.0)}]
        if not any(a.get("token") == token.get("token") for a in alternatives):
            alternatives = alternatives + [{"token": token.get("token", ""), "logprob": token.get("logprob", 0.0)}]
        chosen_fits = None
        for alternative in alternatives:
            text = alternative.get("token", "")
            if before and text.startswith(before):
                text = text[len(before):]
            elif before:
                text = text.lstrip(" \t\n:")
            candidate = realised + text
            fits = [name for name, literal in live.items() if candidate and
                    (literal.startswith(candidate) or candidate.startswith(literal))]
            chance = math.exp(float(alternative.get("logprob", 0.0)))
            if alternative.get("token") == token.get("token"):
                chosen_fits = (fits, chance, text)
            if len(fits) == 1:
                mass[fits[0]] += reach * chance
        if chosen_fits is None:
            return None
        fits, chance, text = chosen_fits
        if len(fits) <= 1:
            break
        realised += text
        reach *= chance
        live = {name: options[name] for name in fits}
        index += 1
    total = sum(mass.values())
    if total <= 0:
        return None
    return {name: value / total for name, value in mass.items()}


# ------------------------------------------------------------------------------------------ dry run

def image_tokens(width: int, height: int, detail: str, base: int, tile: int) -> int:
    """OpenAI's published image-token count: "low" detail costs `base`; otherwise the image is scaled to fit
    2048×2048, then its shorter side to 768, and each 512-px tile costs `tile` on top of `base`."""
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return base + tile * math.ceil(width / 512) * math.ceil(height / 512)


def _plan(book: Codebook, distinct: dict, todo: list, images: int, unreadable: int, endpoint, host, remote, model,
          options, prices, detail) -> pa.Table:
    price = dict(GENERIC_IMAGE_TOKENS)
    if model in PRICES:
        price.update(PRICES[model])
    if prices:
        price.update(prices)
    if not remote and not prices:
        price.update(input_per_million=0.0, output_per_million=0.0)
    text_tokens = (len(book.prompt()) + len(USER_TEXT)) // 4 + 1
    example_sizes = []
    for category in book.categories:
        for path in category.examples:
            try:
                payload = prepare_image(path, max_bytes=MAX_BYTES, min_side=1, max_side=options["max_side"])
            except BadImageError as error:
                raise ImagesAsDataError(f"example image {path} of {category.name!r}: {error.reason}",
                                        what="file", path=path) from None
            example_sizes.append((payload.width, payload.height))
    input_tokens = output_tokens = requests = not_sent = 0
    for sha in todo:
        try:
            payload = prepare_image(distinct[sha], max_bytes=MAX_BYTES, min_side=1, max_side=options["max_side"])
        except BadImageError:
            not_sent += 1
            continue
        requests += 1
        sizes = example_sizes + [(payload.width, payload.height)]
        input_tokens += text_tokens + sum(image_tokens(w, h, detail, price["image_base_tokens"],
                                                       price["image_tile_tokens"]) for w, h in sizes)
        output_tokens += options["samples"] * OUTPUT_TOKENS_PER_ANSWER * (len(book.names) if book.kind == "each" else 1)
    known = "input_per_million" in price and "output_per_million" in price
    cost = (input_tokens * price["input_per_million"] + output_tokens * price["output_per_million"]) / 1e6 \
        if known else None
    where = f"{host} (outside this machine)" if remote else f"{host} (this machine)"
    # Distinct images: readable files that are images, duplicates counted once (a file that is not an image is
    # counted among the unreadable, not among the distinct).
    print(f"vlm dry run: {images} images, {len(distinct) - not_sent} distinct, {len(distinct) - len(todo)} already answered in "
          f"the cache → {requests} requests to {model} at {where}, about {input_tokens:,} input and "
          f"{output_tokens:,} output tokens"
          + (f", about ${cost:,.2f}" if cost is not None else "; cost unknown for this model: pass prices=")
          + (f"; {unreadable + not_sent} files cannot be read or are not images (not sent)" if unreadable + not_sent else "")
          + (". Images would leave this machine: the run needs allow_remote=True" if remote else "")
          + ". Nothing was sent.")
    return pa.Table.from_pylist([{
        "endpoint": endpoint, "host": host, "remote": remote, "model": model, "images": images,
        "distinct_images": len(distinct) - not_sent, "unreadable": unreadable + not_sent,
        "cached": len(distinct) - len(todo),
        "requests": requests, "samples_per_request": options["samples"], "estimated_input_tokens": input_tokens,
        "estimated_output_tokens": output_tokens, "input_per_million": price.get("input_per_million"),
        "output_per_million": price.get("output_per_million"), "estimated_cost_usd": cost,
        "prompt_sha256": book.prompt_sha256}], schema=PLAN_SCHEMA)
