"""One-time notices where the book's section 8 bites: identifying people by their faces, and sending images to a
commercial tagger. Each is printed once per session (on stderr), can be silenced, and is recorded in the output
either way (the returned tables' schema metadata, key "imagesasdata.notices"), so a result file says what its
production involved even when nobody read the console.

Silence: suppress_notices("face_identification") (or no argument for all), or the environment variable
IMAGESASDATA_QUIET_NOTICES=face_identification,commercial_tagger (or "all").
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import threading

from .errors import ImagesAsDataError, did_you_mean

QUIET_ENV = "IMAGESASDATA_QUIET_NOTICES"
METADATA_KEY = b"imagesasdata.notices"

AI_OPT_OUT_URL = "https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_ai-opt-out.html"
REKOGNITION_RETENTION_URL = "https://docs.aws.amazon.com/rekognition/latest/dg/security-data-encryption.html"

TEXTS = {
    "face_identification": (
        "you are identifying people by their faces. The book (section 8) warns that face identification on photos "
        "of protests and other political events can serve surveillance and put the people in them at risk. Identify "
        "people only where the research question needs it and your ethics review covers it; counting faces "
        "(face_counts()) often answers the question without naming anyone; keep identities out of what you share "
        "(share_corpus() shares labels without pixels)."
    ),
    "commercial_tagger": (
        "images are being sent to {provider} (region {region}, under the account of your AWS credentials). What "
        "leaves this machine: each image's bytes -- the file as it is on disk when it is a JPEG or PNG under 5 MB, "
        "with any metadata embedded in it (EXIF: camera, time, GPS position), else a re-encoded copy without it. "
        "The answers are cached here; the images are not kept here by the engine. Retention, as AWS documents it: "
        "images passed to Rekognition API operations may be stored and used to improve the service unless your "
        "organisation has opted out with an AWS Organizations AI services opt-out policy ({opt_out}; Rekognition "
        "Developer Guide, 'Data encryption', {retention}). Check that your data agreements and ethics approval "
        "allow this."
    ),
}

_lock = threading.Lock()
_shown: set = set()
_suppressed: set = set()


def suppress_notices(*kinds) -> None:
    """Silence these notices (all of them when none is named) for the rest of the session; outputs still record
    them. Returns None; raises ImagesAsDataError for an unknown notice."""
    for kind in kinds:
        _check(kind)
    with _lock:
        _suppressed.update(kinds or TEXTS)


def notice(kind: str, **details) -> dict:
    """Print the notice `kind` once per session unless silenced; return its record (kind, text, shown: whether it
    was printed now, time) for the output."""
    _check(kind)
    text = TEXTS[kind].format(**{"opt_out": AI_OPT_OUT_URL, "retention": REKOGNITION_RETENTION_URL, **details})
    quiet = {k.strip() for k in os.environ.get(QUIET_ENV, "").split(",") if k.strip()}
    with _lock:
        show = kind not in _shown and kind not in _suppressed and not ({kind, "all"} & quiet)
        if show:
            _shown.add(kind)
    if show:
        print(f"imagesasdata notice ({kind}; shown once -- silence it with "
              f"imagesasdata.suppress_notices({kind!r}) or {QUIET_ENV}={kind}): {text}", file=sys.stderr, flush=True)
    return {"notice": kind, "text": text, "shown": show,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def with_notices(table, records):
    """The Arrow table with these notice records in its schema metadata (added to any already there)."""
    if not records:
        return table
    metadata = dict(table.schema.metadata or {})
    kept = recorded(table) + list(records)
    metadata[METADATA_KEY] = json.dumps(kept).encode()
    return table.replace_schema_metadata(metadata)


def recorded(table) -> list:
    """The notice records an output table carries (empty when none)."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else []


def _check(kind) -> None:
    if kind not in TEXTS:
        raise ImagesAsDataError(f"unknown notice {kind!r}: {', '.join(TEXTS)}" + did_you_mean(str(kind), TEXTS))
