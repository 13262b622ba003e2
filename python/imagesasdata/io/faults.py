"""Crash points: the instants at which the fault-injection tests kill the engine with SIGKILL, to show that a kill
at any of them leaves every file the engine writes either old or new, never a mix, and that a resumed job ends
exactly where an uninterrupted one does.

    IMAGESASDATA_CRASH_LOG=FILE   append the name of every crash point this process passes to FILE
    IMAGESASDATA_CRASH_AT=N       kill this process (SIGKILL, no clean-up) at the N-th crash point it passes
    IMAGESASDATA_CRASH_IN_WRITE=NAME:OFFSET
                                  kill this process when a write through write_bytes() of the file NAME (the
                                  target's name, e.g. model.safetensors) has put exactly OFFSET bytes on disk

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
_CRASH_IN_WRITE = None
if os.environ.get("IMAGESASDATA_CRASH_IN_WRITE"):
    _name, _offset = os.environ["IMAGESASDATA_CRASH_IN_WRITE"].rsplit(":", 1)
    _CRASH_IN_WRITE = (_name, int(_offset))
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


def write_bytes(handle, data: bytes, name: str) -> None:
    """Write `data` to the open file `handle` (the temporary file of the target named `name`). In the tests
    (IMAGESASDATA_CRASH_IN_WRITE=name:offset) the process is killed once exactly `offset` bytes are on disk: a
    write cut off at a chosen byte."""
    if _CRASH_IN_WRITE is not None and _CRASH_IN_WRITE[0] == name:
        handle.write(data[:_CRASH_IN_WRITE[1]])
        handle.flush()
        os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    handle.write(data)
