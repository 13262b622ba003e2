"""Asking a paid service about each distinct image once, with the response cache (responses.py) and its
cross-process claims (io/locks.EntryClaim) — the loop the VLM coder runs, generic in the request it sends.

For every image hash still missing from the cache: claim the entry (another process sharing the cache waits, then
reads the answer instead of paying again); look in the cache once more; write a small *pending* marker beside the
entry (a write-ahead note: "a request for this is on its way"); send; store the answer the moment it arrives
(atomic write) and remove the marker. A kill therefore repeats only the requests that were in flight — sent, their
answer not yet stored — at most `concurrency` of them; a resumed run finds their markers, says how many were
interrupted (they may have been paid for), and asks again. Everything else it reads from the cache.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..io.tables import write_json
from .responses import ResponseCache

log = logging.getLogger("imagesasdata.autotag")


class Fatal(Exception):
    """A failure every remaining request would repeat (unreachable endpoint, refused key, unknown model)."""


@dataclass
class Answer:
    """What send() returns: the response to store (None: nothing to store), what was sent, and an error (None: ok).
    A stored response with an error (a refusal, an answer that never became valid JSON) is paid for and kept."""

    response: dict | None = None
    sent: dict | None = None
    error: str | None = None


def pending_path(store: ResponseCache, image_sha256: str, operation: str, key_parameters: dict) -> Path:
    entry = store.path(image_sha256, operation, key_parameters)
    return entry.with_name(f".{entry.stem}.pending")


def interrupted_requests(store: ResponseCache, hashes, operation: str, key_parameters: dict) -> list:
    """Image hashes whose request a previous run sent without storing the answer (it was killed meanwhile)."""
    return [sha for sha in hashes if pending_path(store, sha, operation, key_parameters).exists()]


def ask_each(store: ResponseCache, operation: str, key_parameters: dict, parameters: dict, todo: list,
             send: Callable[[str], Answer], *, concurrency: int, progress: bool, what: str,
             replace: dict | None = None) -> dict:
    """Send one request per image hash in `todo` (send(sha) -> Answer), `concurrency` at a time; store answers.

    replace: {sha: received_at} of cached entries to ask again (their answer was an error): replaced unless
    another run replaced them meanwhile (its received_at then differs).
    Returns {sha: error} for the images whose request failed or whose stored answer is an error. A Fatal raised by
    send() stops the run (requests not yet sent are not sent) and is raised again; so is an interruption, after
    the requests in flight have finished.
    """
    replace = replace or {}
    from tqdm.auto import tqdm

    stop = threading.Event()

    def ask(sha: str):
        if stop.is_set():
            return "not sent: the run stopped before this image"
        with store.claim(sha, operation, key_parameters):
            existing = store.get(sha, operation, key_parameters)
            if existing is not None and (sha not in replace or existing.get("received_at") != replace[sha]):
                return None   # answered by another run sharing this cache while this one waited
            marker = pending_path(store, sha, operation, key_parameters)
            write_json({"since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "pid": os.getpid()}, marker)
            try:
                answer = send(sha)
                if answer.response is not None:
                    store.put(sha, operation, key_parameters, parameters, answer.response, answer.sent)
            finally:
                marker.unlink(missing_ok=True)
            return answer.error

    failures, fatal = {}, None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=what)
    try:
        with tqdm(total=len(todo), desc=what, unit="img", disable=not progress, leave=False) as bar:
            futures = {pool.submit(ask, sha): sha for sha in todo}
            for future in as_completed(futures):
                bar.update(1)
                try:
                    error = future.result()
                except Fatal as problem:
                    fatal = fatal or problem
                    stop.set()
                    continue
                if error is not None:
                    failures[futures[future]] = error
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        log.warning("%s interrupted: answers received so far are in the cache %s; run the same call again to "
                    "continue", what, store.directory)
        raise
    pool.shutdown(wait=True)
    if fatal is not None:
        raise fatal
    return failures
