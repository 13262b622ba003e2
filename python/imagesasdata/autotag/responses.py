"""The durable response cache: never pay twice for the same image, operation and parameters.

One JSON file per (image SHA-256, operation, parameters), written atomically the moment the response arrives, so
a run that is interrupted — Ctrl-C, a crash, a killed job — resumes where it stopped without repeating a call.
An entry holds the service's answer without its ResponseMetadata (request ids and HTTP headers) and a
description of the bytes sent; never credentials, request headers or the image itself. Plain JSON files can be
read, copied, archived with the data and deleted one by one.

The protocol for any paid service (Rekognition here; a vision-language model coder the same way), per request:

    with cache.claim(sha, operation, key) as claim:        # one process at a time per entry (locks.EntryClaim)
        if cache.get(sha, operation, key) is not None:     # answered by another run while this one waited
            return
        if claim.left_behind is not None:                  # a run sent this request and died before its answer
            ...                                            # was recorded: it may have been billed — count it,
                                                           # and ask again or not (rekognition: resend_in_flight)
        claim.record(sending_record(sha, operation))       # write-ahead, before the request leaves
        response = call_the_service()
        cache.put(sha, operation, key, parameters, response)   # recorded before the claim is released

A kill therefore costs at most the requests in flight at that instant (sent, answer not yet recorded), and the
next run knows exactly which ones they were (their claim files keep the write-ahead record). A kill in the middle
of put() leaves a temporary file of the entry, removed by whoever claims the entry next. Nothing in this module
knows a service: the operation name and the parameters are the caller's.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
from pathlib import Path

from ..errors import ImagesAsDataError, setting
from ..io.tables import write_json

ENTRY_FORMAT = "imagesasdata.autotag.response/1"


def default_cache_dir() -> Path:
    """$IMAGESASDATA_AUTOTAG_CACHE, else $XDG_CACHE_HOME/imagesasdata/autotag, else ~/.cache/imagesasdata/autotag."""
    if os.environ.get("IMAGESASDATA_AUTOTAG_CACHE"):
        return Path(os.environ["IMAGESASDATA_AUTOTAG_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "imagesasdata" / "autotag"


def parameters_key(parameters: dict) -> str:
    """A short stable hash of the call's parameters (key order does not matter)."""
    text = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResponseCache:
    """Raw responses on disk under `directory`/<operation>/<first two hex digits>/<sha256>-<parameters key>.json."""

    def __init__(self, directory=None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        if self.directory.exists() and not self.directory.is_dir():
            raise ImagesAsDataError(f"{setting('cache', str(self.directory))} is a file; give a folder for the response cache",
                                    what="option", option="cache", value=str(self.directory), path=str(self.directory))

    def path(self, image_sha256: str, operation: str, key_parameters: dict) -> Path:
        return (self.directory / operation / image_sha256[:2]
                / f"{image_sha256}-{parameters_key(key_parameters)}.json")

    def claim(self, image_sha256: str, operation: str, key_parameters: dict):
        """A lock on one entry across processes (locks.EntryClaim): whoever holds it asks the service; others wait,
        then read its answer. Two runs sharing a cache therefore never pay twice for one image."""
        from ..io.locks import EntryClaim

        entry = self.path(image_sha256, operation, key_parameters)
        return EntryClaim(entry.with_name(f".{entry.stem}.claim"), on_claim=lambda: self._remove_partial(entry))

    @staticmethod
    def _remove_partial(entry: Path) -> None:
        """Remove the temporary files of an interrupted write of `entry` (only the claim's holder writes it, so
        none can be in progress); the cache is shared, so nothing else in it is touched."""
        from ..io.locks import is_our_temporary

        if entry.parent.is_dir():
            for leftover in entry.parent.glob(f".{entry.name}.*.part"):
                if is_our_temporary(leftover.name):
                    leftover.unlink(missing_ok=True)

    def in_flight(self, image_sha256: str, operation: str, key_parameters: dict) -> dict | None:
        """The write-ahead record of a request about this entry whose answer has not been recorded (sent by a live
        run, or by one that was killed), read without claiming it; None when there is none."""
        from ..io.locks import EntryClaim

        entry = self.path(image_sha256, operation, key_parameters)
        return EntryClaim.recorded(entry.with_name(f".{entry.stem}.claim"))

    def has(self, image_sha256: str, operation: str, key_parameters: dict) -> bool:
        return self.path(image_sha256, operation, key_parameters).is_file()

    def get(self, image_sha256: str, operation: str, key_parameters: dict) -> dict | None:
        """The cached entry, or None. An unreadable entry (only possible after a power cut) counts as missing."""
        path = self.path(image_sha256, operation, key_parameters)
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or "response" not in entry:
            return None
        return entry

    def put(self, image_sha256: str, operation: str, key_parameters: dict, parameters: dict, response: dict,
            sent: dict | None = None) -> Path:
        """Store one response atomically (temporary file + rename: a reader never sees half an entry)."""
        entry = {
            "format": ENTRY_FORMAT,
            "image_sha256": image_sha256,
            "operation": operation,
            "parameters": parameters,
            "received_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sent": sent,
            "response": {k: v for k, v in response.items() if k != "ResponseMetadata"},
        }
        return write_json(entry, self.path(image_sha256, operation, key_parameters))

    def __len__(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("*/*/*.json"))

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, {len(self)} responses)"


def sending_record(image_sha256: str, operation: str) -> dict:
    """The write-ahead record of a request about to be sent (EntryClaim.record): what, when, by which process."""
    return {"operation": operation, "image_sha256": image_sha256, "pid": os.getpid(), "host": socket.gethostname(),
            "sent_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")}
