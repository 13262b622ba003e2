"""Running a job in a separate process that is forked from a server which has already imported the engine
(multiprocessing's forkserver): a process of its own for the cost of the job, not of an interpreter start.

The fault-injection tests kill such processes at chosen crash points (faults.py); the locking tests keep one
paused at a chosen place while the test process tries to write into the same folder.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["imagesasdata"])
    return context


TRAINING_GUARD = "IMAGESASDATA_TRAINING"   # tests/conftest.py


def _child(job, crash_at: int, log: str | None, guard: str | None, args):
    from tqdm.auto import tqdm

    from imagesasdata.io import faults

    # The fork server's environment is the one it started with, perhaps during another test: the test's own
    # training guard (conftest.py) is handed over.
    if guard is None:
        os.environ.pop(TRAINING_GUARD, None)
    else:
        os.environ[TRAINING_GUARD] = guard

    tqdm.set_lock(threading.RLock())   # tqdm's default lock is a semaphore a killed process would leak
    faults._CRASH_AT, faults._CRASH_LOG, faults._passed = crash_at, log, 0
    job(*args)


def start(job, *args, crash_at: int = 0, log: Path | None = None):
    """Start job(*args) in a forked process (armed to die at crash point `crash_at`, or logging every crash point
    it passes to `log`); return the multiprocessing Process."""
    process = _context().Process(target=_child, args=(job, crash_at, str(log) if log else None,
                                                      os.environ.get(TRAINING_GUARD), args))
    process.start()
    return process


def run(job, *args, crash_at: int = 0, log: Path | None = None, timeout: float = 600) -> int:
    """Run job(*args) in a forked process to its end; its exit code (-9 when killed by a crash point)."""
    process = start(job, *args, crash_at=crash_at, log=log)
    process.join(timeout)
    assert process.exitcode is not None, "the job did not end"
    return process.exitcode


def wait_for(condition, process=None, timeout: float = 300, what: str = "the condition") -> None:
    """Poll until condition() is true; fail if `process` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.exitcode is None, f"the job ended (exit {process.exitcode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pause_at_epoch(epoch: int, gate: Path) -> None:
    """In a child: make the trainer wait before `epoch` until the file `gate` exists (the test opens it)."""
    from imagesasdata.train import trainer as train

    original = train.Trainer.run_epoch

    def run_epoch(self, number):
        if number == epoch:
            while not gate.exists():
                time.sleep(0.05)
        return original(self, number)

    train.Trainer.run_epoch = run_epoch
