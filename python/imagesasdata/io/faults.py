"""Crash points: the instants at which the fault-injection tests kill the engine with SIGKILL, to show that a kill
at any of them leaves every file the engine writes either old or new, never a mix, and that a resumed job ends
exactly where an uninterrupted one does.

    IMAGESASDATA_CRASH_LOG=FILE   append the name of every crash point this process passes to FILE
    IMAGESASDATA_CRASH_AT=N       kill this process (SIGKILL, no clean-up) at the N-th crash point it passes

The tests first run a job with the log on to count its crash points, then kill a fresh process at each of them
in turn. A crash point that is given the temporary file being written cuts it to half its length before the
kill: a write cut off midway. Both variables are read once, at import; unset (always, outside the tests), a crash
point costs one comparison.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

_CRASH_AT = int(os.environ.get("IMAGESASDATA_CRASH_AT") or 0)
_CRASH_LOG = os.environ.get("IMAGESASDATA_CRASH_LOG") or None
_passed = 0
_lock = threading.Lock()


def crash_point(name: str, partial: Path | None = None) -> None:
    """Count this crash point; log it and/or kill the process here when the test environment asks for it."""
    if not (_CRASH_AT or _CRASH_LOG):
        return
    global _passed
    with _lock:
        _passed += 1
        number = _passed
        if _CRASH_LOG:
            with open(_CRASH_LOG, "a") as log:
                log.write(f"{number}\t{name}\n")
        if number == _CRASH_AT:
            if partial is not None and Path(partial).exists():
                size = Path(partial).stat().st_size
                os.truncate(partial, size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
