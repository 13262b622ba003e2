"""Amazon Rekognition as an autotagger (the book's section 6.1), made safe, cheap and checkable.

- Credentials come from the standard AWS chain only (environment, ~/.aws, a profile, an instance role); nothing
  here takes a key as an argument, and no key lands in a table, a cache entry, a log line or an error message.
- Never pay twice: images are deduplicated by content hash before any call, and each answer is stored in the
  response cache (responses.py) the moment it arrives, before the request counts as done; a rerun, or a run
  after an interruption, only asks for what is missing. Runs that share a cache at the same time claim each image
  before asking (a lock per cache entry), so two processes never send the same image.
- What a kill can cost: the requests in flight at that instant (at most `concurrency`, 4 by default) — sent, and
  perhaps billed, with no answer recorded yet. Each request is written ahead into its claim before it is sent, so
  the next run knows exactly which these were: it says how many, and asks about them again (at most that many
  repeated charges) or, with resend_in_flight=False, does not (zero repeats; those images get an error row
  naming the option). Measured against a moto server killed while answers were on their way: the repeats were
  exactly the requests in flight, none of the answered ones (tests/test_autotag_server.py).
  `dry_run=True` reads every image as a real run would, counts the calls and prices them, and sends nothing.
- Limits and faults: images are made to fit the service's limits in memory (payload.py); throttling and transient
  errors are retried by botocore's adaptive retry mode; one image's error is a row with an `error`, never the end
  of the run. Only problems that would fail every call (no credentials, keys refused, endpoint unreachable) stop it.
- The table is always built from the cache, so an interrupted-and-resumed run gives exactly the table of an
  uninterrupted one.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from ..errors import BadImageError, check_number, ImagesAsDataError, setting
from ..notices import notice, with_notices
from .inputs import hash_files, image_inputs
from .payload import prepare_image
from .responses import ResponseCache, sending_record
from .tables import (CELEBRITY_SCHEMA, LABEL_SCHEMA, MalformedResponse, celebrity_rows, check_celebrities_response,
                     check_labels_response, error_row, label_rows, rows_to_table)

log = logging.getLogger("imagesasdata.autotag")

# USD per 1,000 images for DetectLabels and RecognizeCelebrities — both are Rekognition Image "Group 2" APIs —
# for the first 1 million images a month: $0.0010 per image ("Group 2 (DetectLabels), first 1 million images",
# then $0.0008 for the next 1.5 million). Source: https://aws.amazon.com/rekognition/pricing/, as transcribed on
# 2026-10-07 by api-evangelist/amazon-rekognition (plans/amazon-rekognition-plans-pricing.yml); the group
# membership of RecognizeCelebrities is from the same AWS page. Volume tiers, regions and the free tier differ:
# pass price_per_1000 for yours.
DEFAULT_PRICE_PER_1000 = 1.00
DEFAULT_REGION = "us-east-1"
DEFAULT_MIN_CONFIDENCE = 55.0   # the service's own default, and the floor of the book's recorded answers
IN_FLIGHT_HELP = ("it was sent by an earlier run that stopped before the answer was recorded, so the service may "
                  "have billed it already; not sent again. Run with resend_in_flight=True (CLI: --resend-in-flight) "
                  "to ask again")
PLAN_SCHEMA = pa.schema([
    ("operation", pa.string()), ("images", pa.int64()), ("distinct_images", pa.int64()), ("unreadable", pa.int64()),
    ("cached", pa.int64()), ("calls", pa.int64()), ("price_per_1000", pa.float64()), ("estimated_cost_usd", pa.float64()),
])

# Error codes that mean every call will fail the same way: stop at once instead of writing one error per image.
FATAL_ERROR_CODES = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException", "ExpiredTokenException",
    "InvalidClientTokenId", "MissingAuthenticationTokenException", "SignatureDoesNotMatch", "AuthFailure",
})
CREDENTIALS_HELP = (
    "imagesasdata reads AWS credentials from the standard chain only: environment variables "
    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), ~/.aws/credentials (`aws configure`), a named "
    "profile (AWS_PROFILE or profile=), or an instance role. It never takes keys as arguments and never stores them"
)


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    check: Callable
    rows: Callable
    schema: pa.Schema


OPERATIONS = {
    "DetectLabels": Operation("DetectLabels", "detect_labels", check_labels_response, label_rows, LABEL_SCHEMA),
    "RecognizeCelebrities": Operation("RecognizeCelebrities", "recognize_celebrities", check_celebrities_response,
                                      celebrity_rows, CELEBRITY_SCHEMA),
}


class _Fatal(Exception):
    """A failure that every remaining call would repeat."""


def rekognition_labels(images, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, max_labels: int | None = None,
                       cache=None, region: str | None = None, endpoint_url: str | None = None,
                       profile: str | None = None, concurrency: int = 4, max_attempts: int = 10,
                       dry_run: bool = False, price_per_1000: float = DEFAULT_PRICE_PER_1000, client=None,
                       progress: bool = True, resend_in_flight: bool = True) -> pa.Table:
    """Label images with Rekognition DetectLabels: one row per image × label.

    images: a folder, a list of files, a CSV/Parquet table or data frame with a path column, or an image_table().
    min_confidence, max_labels: passed to the service (it returns labels at or above min_confidence, at most
      max_labels of them; 55 is its default).
    cache: folder of the response cache (default: default_cache_dir()). region, endpoint_url, profile: where to
      send and whose credentials (the standard AWS chain). concurrency: calls in flight at once. max_attempts:
      botocore's adaptive retry budget per call. dry_run: print and return the number of calls and their estimated
      cost at price_per_1000 (USD per 1,000 images), sending nothing. client: a ready boto3 Rekognition client
      (then region, profile, concurrency's pool size and max_attempts are the client's own).
    resend_in_flight: ask again about images whose requests a killed run had sent without recording the answer
      (they may have been billed: at most `concurrency` of them per kill, counted in a warning); False never sends
      them twice and gives them an error row instead.
    Returns columns image_id, path, image_sha256, tagger, label, confidence (0–100), label_rank, parents, aliases,
    categories, instances, bounding_boxes, label_model_version, error — or, with dry_run, the plan (one row).
    Raises ImagesAsDataError for bad options and for failures that would hit every image (credentials, endpoint).
    """
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    parameters = {"MinConfidence": min_confidence}
    if max_labels is not None:
        parameters["MaxLabels"] = int(check_number("max_labels", max_labels, 1, None, integer=True))
    return _tag(OPERATIONS["DetectLabels"], images, parameters, cache=cache, region=region, endpoint_url=endpoint_url,
                profile=profile, concurrency=concurrency, max_attempts=max_attempts, dry_run=dry_run,
                price_per_1000=price_per_1000, client=client, progress=progress, resend_in_flight=resend_in_flight)


def rekognition_celebrities(images, *, cache=None, region: str | None = None, endpoint_url: str | None = None,
                            profile: str | None = None, concurrency: int = 4, max_attempts: int = 10,
                            dry_run: bool = False, price_per_1000: float = DEFAULT_PRICE_PER_1000, client=None,
                            progress: bool = True, resend_in_flight: bool = True) -> pa.Table:
    """Recognise celebrities with Rekognition RecognizeCelebrities: one row per image × celebrity.

    Options as for rekognition_labels(). Returns columns image_id, path, image_sha256, tagger, celebrity,
    celebrity_id, match_confidence (0–100), celebrity_rank, urls, known_gender, face_confidence, face_box,
    unrecognized_faces, error; an image with nobody recognised has one row with an empty celebrity.
    """
    return _tag(OPERATIONS["RecognizeCelebrities"], images, {}, cache=cache, region=region,
                endpoint_url=endpoint_url, profile=profile, concurrency=concurrency, max_attempts=max_attempts,
                dry_run=dry_run, price_per_1000=price_per_1000, client=client, progress=progress,
                resend_in_flight=resend_in_flight)


def rekognition_client(region: str | None = None, endpoint_url: str | None = None, profile: str | None = None,
                       concurrency: int = 4, max_attempts: int = 10):
    """A boto3 Rekognition client with botocore's adaptive retries (client-side rate limiting plus exponential
    backoff on throttling and transient errors) and a connection pool as large as the concurrency.

    Credentials: the standard AWS chain only. Raises ImagesAsDataError when boto3 or the credentials are missing.
    """
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound
    except ImportError:
        raise ImagesAsDataError("Rekognition needs boto3: pip install 'imagesasdata[aws]'", what="missing_extra", extra="aws") from None
    try:
        session = boto3.Session(profile_name=profile)
    except ProfileNotFound:
        raise ImagesAsDataError(f"{setting('profile', profile)}: no such AWS profile in ~/.aws/config or ~/.aws/credentials",
                                what="option", option="profile", value=profile) from None
    if session.get_credentials() is None:
        raise ImagesAsDataError(f"no AWS credentials found. {CREDENTIALS_HELP}")
    config = Config(retries={"mode": "adaptive", "max_attempts": int(max_attempts)},
                    max_pool_connections=max(10, int(concurrency)), user_agent_extra="imagesasdata")
    return session.client("rekognition", region_name=region or session.region_name or DEFAULT_REGION,
                          endpoint_url=endpoint_url, config=config)


def _tag(op: Operation, images, parameters: dict, *, cache, region, endpoint_url, profile, concurrency, max_attempts,
         dry_run, price_per_1000, client, progress, resend_in_flight: bool = True) -> pa.Table:
    concurrency = int(check_number("concurrency", concurrency, 1, None, integer=True))
    max_attempts = int(check_number("max_attempts", max_attempts, 1, None, integer=True))
    price_per_1000 = check_number("price_per_1000", price_per_1000, 0, None)
    if not isinstance(resend_in_flight, bool):
        raise ImagesAsDataError(f"{setting('resend_in_flight', resend_in_flight)} must be True or False",
                                what="option", option="resend_in_flight", value=resend_in_flight)
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, unreadable = hash_files(paths)
    store = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
    endpoint = endpoint_url or _custom_endpoint(client)
    # Answers from a test server or a proxy never mix with the service's: the endpoint is part of the key.
    key_parameters = dict(parameters, endpoint_url=endpoint) if endpoint else dict(parameters)
    distinct = {}
    for sha, path in zip(hashes, paths):
        if sha is not None:
            distinct.setdefault(sha, path)
    # get(), not has(): an entry that cannot be read (a power cut mid-write) is asked for again.
    todo = [sha for sha in distinct if store.get(sha, op.name, key_parameters) is None]
    if dry_run:
        # Exactly what a real run would send: images that cannot be prepared (not an image, corrupt) are not sent,
        # and are counted with the unreadable files, not as distinct images.
        unpreparable = {sha for sha in todo if _preparation_error(distinct[sha]) is not None}
        in_flight = sum(1 for sha in todo if sha not in unpreparable
                        and store.in_flight(sha, op.name, key_parameters) is not None)
        calls = len(todo) - len(unpreparable) - (0 if resend_in_flight else in_flight)
        return _plan(op, len(paths), len(distinct) - len(unpreparable),
                     len(unreadable) + sum(1 for sha in hashes if sha in unpreparable),
                     len(distinct) - len(todo), calls, price_per_1000, in_flight, resend_in_flight)
    log.info("%s: %d images, %d distinct, %d answers cached, %d calls to make",
             op.name, len(paths), len(distinct), len(distinct) - len(todo), len(todo))
    failures = {}
    records = []
    if todo:
        if client is None:
            client = rekognition_client(region, endpoint_url, profile, concurrency, max_attempts)
        # Section 8: what leaves the machine and what the provider may keep; face identification too, for
        # celebrities. Shown once per session, recorded in the returned table either way (notices.py).
        records.append(notice("commercial_tagger", provider="Amazon Rekognition",
                              region=getattr(client.meta, "region_name", None) or "unknown"))
        if op.name == "RecognizeCelebrities":
            records.append(notice("face_identification"))
        failures = _call_all(op, todo, distinct, parameters, key_parameters, store, client, concurrency, progress,
                             resend_in_flight)
    rows = []
    for index, (image_id, path, sha) in enumerate(zip(ids, paths, hashes)):
        image = {"image_id": image_id, "path": path, "image_sha256": sha}
        if sha is None:
            rows.append(error_row(image, unreadable[index]))
        elif sha in failures:
            rows.append(error_row(image, failures[sha]))
        else:
            entry = store.get(sha, op.name, key_parameters)
            try:
                if entry is None:
                    raise MalformedResponse("its cached answer is missing or unreadable; run again to ask again")
                op.check(entry["response"])
                rows += op.rows(image, entry["response"])
            except MalformedResponse as error:
                rows.append(error_row(image, f"malformed answer: {error}"))
    return with_notices(rows_to_table(rows, op.schema), records)


def _call_all(op: Operation, todo, distinct, parameters, key_parameters, store, client, concurrency, progress,
              resend_in_flight: bool = True) -> dict:
    """Ask the service about each image hash in `todo`; return {hash: error} for those that failed. Requests that
    a killed run had sent without recording their answers are asked again (resend_in_flight) or left out with an
    error; either way a warning says how many."""
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                     PartialCredentialsError)
    from tqdm.auto import tqdm

    secrets = _credential_strings(client)
    stop = threading.Event()
    left_behind = []   # hashes whose requests a killed run had sent, answers never recorded

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def ask(sha: str):
        if stop.is_set():
            return "not sent: the run stopped before this image"
        # One process at a time per image: another run sharing this cache may be asking about it right now.
        with store.claim(sha, op.name, key_parameters) as claim:
            if store.get(sha, op.name, key_parameters) is not None:
                return None   # answered by the other run while this one waited
            if claim.left_behind is not None:
                left_behind.append(sha)
                if not resend_in_flight:
                    claim.keep()
                    sent = claim.left_behind.get("sent_at", "at an unknown time")
                    return f"{IN_FLIGHT_HELP} (sent {sent})"
            return send(sha, claim)

    def send(sha: str, claim):
        path = distinct[sha]
        try:
            payload = prepare_image(path)
        except BadImageError as error:
            return error.reason
        if payload.note:
            log.info("%s: %s", path, payload.note)
        claim.record(sending_record(sha, op.name))   # written ahead: a kill from here on leaves this record
        try:
            response = getattr(client, op.method)(Image={"Bytes": payload.data}, **parameters)
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", "error"), details.get("Message", "")
            if code in FATAL_ERROR_CODES:
                raise _Fatal(f"Rekognition refused the credentials ({code}: {scrub(message)}). {CREDENTIALS_HELP}")
            attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts")
            tried = f" (after {attempts + 1} attempts)" if attempts else ""
            return scrub(f"{code}: {message}{tried}")
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise _Fatal(f"{error}. {CREDENTIALS_HELP}")
        except EndpointConnectionError as error:
            raise _Fatal(f"cannot reach Rekognition ({scrub(str(error))}); check region=/endpoint_url= and the network")
        except BotoCoreError as error:
            return scrub(f"{type(error).__name__}: {error}")
        response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        try:
            op.check(response)
        except MalformedResponse as error:
            return f"malformed answer: {error} (not cached; a rerun asks again)"
        store.put(sha, op.name, key_parameters, parameters, response, payload.describe())
        return None

    failures, fatal = {}, None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rekognition")
    try:
        with tqdm(total=len(todo), desc=op.name, unit="img", disable=not progress, leave=False) as bar:
            futures = {pool.submit(ask, sha): sha for sha in todo}
            for future in as_completed(futures):
                bar.update(1)
                try:
                    error = future.result()
                except _Fatal as problem:
                    fatal = fatal or str(problem)
                    stop.set()
                    continue
                if error is not None:
                    failures[futures[future]] = error
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        log.warning("%s interrupted: %d answers are in the cache %s; run the same call again to continue",
                    op.name, len(store), store.directory)
        raise
    pool.shutdown(wait=True)
    if left_behind:
        what = ("asked again: the service may bill them twice" if resend_in_flight else
                "not sent again (resend_in_flight=False): they have error rows")
        log.warning("%s: %d image(s) had been sent by an earlier run that stopped before their answers were "
                    "recorded; %s", op.name, len(left_behind), what)
    if fatal:
        raise ImagesAsDataError(f"{op.name} stopped: {fatal}. Answers received so far are cached in {store.directory}",
                                what="file", path=store.directory)
    if failures:
        log.warning("%s: %d of %d images failed (see the error column); errors are not cached, so running again "
                    "retries them", op.name, len(failures), len(todo))
    return failures


def _preparation_error(path) -> str | None:
    try:
        prepare_image(path)
    except BadImageError as error:
        return error.reason
    return None


def _plan(op: Operation, images, distinct, unreadable, cached, calls, price_per_1000, in_flight=0,
          resend_in_flight=True) -> pa.Table:
    cost = calls * price_per_1000 / 1000
    doubt = ""
    if in_flight:
        doubt = (f"; {in_flight} of these were sent by a run that has not recorded their answers (still running, "
                 "or killed: they may have been billed already)"
                 + ("" if resend_in_flight else ", and would not be sent again (resend_in_flight=False)"))
    print(f"{op.name} dry run: {images} files, {distinct} distinct readable images, {cached} already answered in "
          f"the cache → {calls} calls, about ${cost:,.2f} at ${price_per_1000:,.2f} per 1,000 images"
          + (f"; {unreadable} files cannot be read or are not images (not sent)" if unreadable else "")
          + doubt + ". Nothing was sent.")
    return pa.Table.from_pylist([{"operation": op.name, "images": images, "distinct_images": distinct,
                                  "unreadable": unreadable, "cached": cached, "calls": calls,
                                  "price_per_1000": price_per_1000, "estimated_cost_usd": cost}], schema=PLAN_SCHEMA)


def _custom_endpoint(client):
    """The endpoint of a user-built client when it is not an AWS one (a local test server, a proxy)."""
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return None if url is None or ".amazonaws.com" in url else url


def _credential_strings(client) -> list[str]:
    """The client's access key, secret key and session token: scrubbed from any error text we record."""
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:
        return []
    try:
        frozen = credentials.get_frozen_credentials()
    except Exception:  # a refresh failure here is reported by the call itself
        return []
    # Real keys are 16+ characters; scrubbing a short test value would only garble messages.
    return [s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s and len(s) >= 8]
