"""Locks on the directories the engine writes (a run, a grid, a labelling output) and on single cache entries.

A lock is the operating system's `flock` on a small file inside the directory, held for the life of the job.
The kernel releases it when the holding process ends, however it ends, so a lock left by a killed process is
simply taken over by the next job: no stale-lock clean-up, no timeouts. The file records who holds the lock
(process id, host, start time, command) so that the refusal can say who is in the way. `flock` works across
processes on one machine and on NFSv4 shares (Linux maps it to a byte-range lock); on a file system that
cannot lock at all, the error says so instead of carrying on unprotected.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import ImagesAsDataError

LOCK_FILE = ".imagesasdata.lock"


def owner_record() -> dict:
    """Who holds a lock: process id, host, start time and command (the command line cut to 300 characters)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300]}


def describe_owner(owner_text: str) -> str:
    """owner_record()'s JSON as a phrase for an error message ("process 12 on node-3, since …: …")."""
    try:
        owner = json.loads(owner_text)
        return f"process {owner['pid']} on {owner['host']}, since {owner['since']}: {owner['command']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


class DirectoryLock:
    """An exclusive lock on `directory` (created if needed) for one job; a context manager.

    `what` names the directory in the refusal ("run", "grid", "labelling"). Raises ImagesAsDataError naming the
    holder when another process (or another job in this process) holds it.
    """

    def __init__(self, directory, what: str = "directory"):
        self.directory = Path(directory)
        self.what = what
        self.path = self.directory / LOCK_FILE
        self._fd = None
        self.previous_owner = None   # who held it last, when the lock was left by a process that ended

    def acquire(self) -> "DirectoryLock":
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ImagesAsDataError(
                    f"{self.directory} is in use: another job is writing this {self.what} ({describe_owner(holder)}). "
                    f"Wait for it to finish, or write to another folder", what="file", path=self.directory
                ) from None
            raise ImagesAsDataError(f"{self.directory}: cannot lock this folder ({error.strerror}); the file system "
                                    "does not support locks — write to a local disk or an NFSv4 share",
                                    what="file", path=self.directory) from None
        left = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        self.previous_owner = describe_owner(left) if left else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner_record()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


class EntryClaim:
    """A blocking lock on one cache entry (e.g. one image's answer from a paid service): the first process to
    claim it does the work; any other waits for it, then finds the answer in the cache. Released when the work
    is done, or by the kernel when the holder dies (then the next waiter does the work). The claim file is
    removed by its holder, so a cache of thousands of entries is not littered with them; a waiter that wakes on
    a removed file claims the entry afresh (the usual unlink-then-unlock protocol).

    Write-ahead: record(details) writes, durably, what the holder is about to do (a request about to be sent)
    into the claim file. The holder removes the file once the work is recorded; if it dies first, the file stays,
    and whoever claims the entry next finds the record in `left_behind`: work that was started and may have been
    done (a paid request that may have been billed) without its result reaching the cache. keep() leaves the
    record in place when the claim is released (nothing was done about it), so the next claimer sees it too.
    """

    def __init__(self, path, on_claim=None):
        self.path = Path(path)
        self._fd = None
        self._keep = False
        self._on_claim = on_claim   # called once the claim is held (e.g. to remove the entry's half-written files)
        self.left_behind: dict | None = None

    def __enter__(self) -> "EntryClaim":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                self._fd = fd
                self._keep = False
                self.left_behind = self._read_record(fd)
                if self._on_claim is not None:
                    self._on_claim()
                return self
            os.close(fd)   # the holder removed the file while we waited: claim the new one

    @staticmethod
    def _read_record(fd) -> dict | None:
        text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        return record if isinstance(record, dict) else {"record": "unreadable (cut off by a kill)"}

    def record(self, details: dict) -> None:
        """Write `details` into the claim file and flush it to disk: a write-ahead record that outlives a kill."""
        data = json.dumps(details, default=str).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def keep(self) -> None:
        """On release, leave the claim file and its record (the recorded work is still unaccounted for)."""
        self._keep = True

    def __exit__(self, *exc) -> None:
        import fcntl

        try:
            if not self._keep:
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def recorded(path) -> dict | None:
        """The record in the claim file at `path`, read without claiming it (None: no file, or nothing recorded).
        While its holder lives this is work in progress; after a kill, work that may have been done."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return EntryClaim._read_record(fd)
        finally:
            os.close(fd)


# The names of our own temporary files and folders: tempfile.mkstemp/mkdtemp with the prefix ".<target name>." and
# the suffix ".part" (io/tables.atomic_path, runs.write_checkpoint) add eight characters drawn from [a-z0-9_].
# Only names of exactly this shape are ever removed, so a user's "notes.part" or ".draft.part" is left alone.
_OUR_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")


def is_our_temporary(name: str) -> bool:
    """True for the name of a temporary file or folder the engine creates while writing (".model.json.k3j2x9qa.part")."""
    return bool(_OUR_TEMPORARY.match(name))


def leftovers(folder: Path, extra=None) -> list[Path]:
    """The temporary files and folders a killed job left in `folder` and its subfolders (names of our own shape, or
    matched by `extra`, a function of the name), except inside subfolders that are claimed directories of their own
    (they clean up when they are claimed)."""
    found = []
    ours = (lambda name: is_our_temporary(name) or extra(name)) if extra else is_our_temporary
    for root, dirs, files in os.walk(folder):
        found += [Path(root) / d for d in dirs if ours(d)]
        dirs[:] = [d for d in dirs if not ours(d) and not (Path(root) / d / LOCK_FILE).exists()]
        found += [Path(root) / f for f in files if ours(f)]
    return found


def remove_leftovers(folder: Path, extra=None) -> list[Path]:
    """Delete what leftovers() finds (the caller holds the folder's lock: no other writer can be at work); return it."""
    found = leftovers(folder, extra)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def tidy_if_idle(folder: Path, what: str = "directory", extra=None) -> list[Path]:
    """Remove the leftovers of a killed job from `folder` when it is opened for reading, but only if no job is
    writing it now (its lock is free; a live writer's temporary files are work in progress). A folder that cannot
    be locked (read-only, another user's) is left as it is. Returns what was removed."""
    if not leftovers(folder, extra):
        return []
    lock = DirectoryLock(folder, what)
    try:
        lock.acquire()
    except (ImagesAsDataError, OSError):
        return []
    try:
        return remove_leftovers(folder, extra)
    finally:
        lock.release()


@contextmanager
def claimed_directory(out, *, what: str, marker: str, resume: bool = True, overwrite: bool = False,
                      option_hint: str = "resume=True (CLI: --resume)", leftovers=None):
    """The directory a job writes — `out`, or a new temporary folder when it is None — created and locked for the
    job's life (yielded as a resolved Path).

    what: "run", "grid" or "labelling", for messages. marker: the file that says the folder holds one (model.json,
      grid.json, labelling.json). An existing one is continued only when `resume` is true and replaced (its
      contents deleted) only when `overwrite` is; a folder that holds other files is never written into.
    Leftover temporary files of a killed job (".name.xxxxxxxx.part", in subfolders too; `leftovers`, a function of a
    name, adds names of other temporary files that belong to this kind of folder) are removed: no other writer can
    be at work.
    If the job fails before it writes anything, a folder this call created is removed again.
    """
    created_temporary = out is None
    if out is None:
        folder = Path(tempfile.mkdtemp(prefix=f"imagesasdata-{what}-"))
    else:
        folder = Path(out).expanduser().absolute()
        try:
            folder = folder.resolve()
        except (OSError, RuntimeError):   # a symlink loop on the way: the checks below name the folder
            pass
        if folder.exists() and not folder.is_dir():
            raise ImagesAsDataError(f"{folder} is a file; out must name a folder for the {what}",
                                    what="file", path=folder)
    created = created_temporary or not folder.exists()
    had_lock_file = (folder / LOCK_FILE).exists()
    lock = DirectoryLock(folder, what)
    lock.acquire()
    try:
        remove_leftovers(folder, leftovers)
        contents = [p.name for p in folder.iterdir() if p.name != LOCK_FILE]
        if contents and not (folder / marker).exists():
            raise ImagesAsDataError(
                f"{folder} is not empty and holds no {what} (it holds {', '.join(sorted(contents)[:5])}"
                f"{' …' if len(contents) > 5 else ''}); choose a new or empty folder", what="file", path=folder
            )
        if contents and overwrite:
            for name in contents:
                path = folder / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        elif contents and not resume:
            raise ImagesAsDataError(
                f"{folder} already holds a {what}; pass {option_hint} to continue it, overwrite=True (CLI: "
                "--overwrite) to replace it, or choose another folder", what="file", path=folder
            )
        yield folder
    except BaseException:
        lock.release()
        if created and not [p for p in folder.iterdir() if p.name != LOCK_FILE]:
            shutil.rmtree(folder, ignore_errors=True)
        elif not had_lock_file and not (folder / marker).exists():   # leave a refused folder as it was
            (folder / LOCK_FILE).unlink(missing_ok=True)
        raise
    lock.release()
