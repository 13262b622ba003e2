"""Where a job writes its output: a local folder, or an s3:// prefix that every node of a cluster (and a job
resubmitted on another machine) can reach.

Both offer the same few operations — does a file exist, read and write JSON and Parquet tables, list the files of
a subfolder, count a table's rows — with the same guarantees:

- **Whole or absent.** A local file is written to a temporary file and renamed (tables.atomic_path); an S3 object
  is one PUT, which S3 makes visible only once it is complete. A reader never sees half a file, so a file that is
  there is finished.
- **One job at a time.** A local folder is locked with flock (locks.claimed_directory). An s3:// prefix is
  claimed by the object <prefix>/.imagesasdata.lock: created with a conditional put (If-None-Match: *), and renewed
  every lease_s / 4 seconds by a thread with If-Match on its own last ETag, so a renewal fails — and the job stops
  writing — once another job has taken the claim over. A second job is refused while the claim is being renewed.
  The claim of a job that was killed is taken over at once when it ran on this machine (its process is gone), else
  once it has gone lease_s seconds without renewal, by S3's clock (its Date header against the object's
  LastModified), never by comparing two machines' clocks. An endpoint that ignores conditional puts is refused:
  without them two jobs could not be kept apart.
"""

from __future__ import annotations

import fnmatch
import io as _io
import json
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ImagesAsDataError
from ..schema import setting
from . import tables
from .locks import LOCK_FILE, claimed_directory, describe_owner, owner_record
from .s3 import (WriteConflict, get_s3_object, head_s3_object, is_uri, list_s3_keys, split_uri,
                 write_s3_bytes)

LEASE_S = 60.0          # an S3 claim not renewed for this long belongs to a job that is gone
ROWS_METADATA = "rows"  # S3 object metadata on every table written: its row count, read without downloading it
_PARALLEL_REQUESTS = 16


def is_s3(out) -> bool:
    return isinstance(out, (str, os.PathLike)) and is_uri(out) and str(out).startswith("s3://")


class LocalOutput:
    """A local (or shared) folder. Paths in messages and in `location` are the folder's."""

    kind = "local"

    def __init__(self, path):
        self.path = Path(path)
        self.location = self.path

    def address(self, name: str) -> str:
        return str(self.path / name)

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def read_json(self, name: str, what: str | None = None):
        return tables.read_json(self.path / name, what)

    def write_json(self, obj, name: str) -> None:
        self.check()
        tables.write_json(obj, self.path / name)

    def read_table(self, name: str) -> pa.Table:
        return pq.read_table(self.path / name)

    def read_tables(self, names) -> list[pa.Table]:
        return [self.read_table(name) for name in names]

    def write_table(self, table: pa.Table, name: str) -> None:
        self.check()
        tables.write_table(table, self.path / name)

    def names(self, folder: str, pattern: str = "*") -> list[str]:
        """The file names in `folder` matching `pattern`, sorted."""
        where = self.path / folder
        return sorted(p.name for p in where.glob(pattern)) if where.is_dir() else []

    def rows(self, names) -> dict:
        """{name: rows} of the Parquet tables `names`, from their footers."""
        return {name: pq.read_metadata(self.path / name).num_rows for name in names}

    def check(self) -> None:
        """Nothing to check: the folder's lock is the kernel's, held until this process ends."""


class S3Output:
    """An s3://bucket/prefix. Every file is one object under the prefix; tables carry their row count as object
    metadata. Writes go through check(): a job that has lost its claim writes nothing more."""

    kind = "s3"

    def __init__(self, uri: str, endpoint_url: str | None = None, lease: "S3Lease | None" = None):
        bucket, prefix = split_uri(str(uri))
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.lease = lease

    def address(self, name: str) -> str:
        return f"{self.location}/{name}"

    def exists(self, name: str) -> bool:
        return head_s3_object(self.address(name), self.endpoint_url) is not None

    def _get(self, name: str) -> bytes:
        found = get_s3_object(self.address(name), self.endpoint_url)
        if found is None:
            raise ImagesAsDataError(f"{self.address(name)}: no such object", what="file", path=self.address(name))
        return found["data"]

    def read_json(self, name: str, what: str | None = None):
        data = self._get(name)
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            if what is None:
                raise
            raise ImagesAsDataError(f"{self.address(name)} is damaged: not valid JSON ({error}); it should hold "
                                    f"{what}") from None
        if what is not None and not isinstance(value, dict):
            raise ImagesAsDataError(f"{self.address(name)} does not hold {what}")
        return value

    def write_json(self, obj, name: str) -> None:
        self.check()
        text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
        write_s3_bytes(self.address(name), text.encode(), self.endpoint_url)

    def read_table(self, name: str) -> pa.Table:
        return pq.read_table(_io.BytesIO(self._get(name)))

    def read_tables(self, names) -> list[pa.Table]:
        with ThreadPoolExecutor(_PARALLEL_REQUESTS) as pool:
            return list(pool.map(self.read_table, names))

    def write_table(self, table: pa.Table, name: str) -> None:
        self.check()
        if not name.endswith((".parquet", ".pq")):
            raise ImagesAsDataError(f"{self.address(name)}: tables go to S3 as Parquet (.parquet)")
        buffer = _io.BytesIO()
        pq.write_table(table, buffer)
        write_s3_bytes(self.address(name), buffer.getvalue(), self.endpoint_url,
                       metadata={ROWS_METADATA: str(table.num_rows)})

    def names(self, folder: str, pattern: str = "*") -> list[str]:
        start = f"{self.prefix}/{folder}/" if self.prefix else f"{folder}/"
        found = [key[len(start):] for key in list_s3_keys(f"s3://{self.bucket}/{start}", self.endpoint_url)]
        return sorted(name for name in found if "/" not in name and fnmatch.fnmatchcase(name, pattern))

    def rows(self, names) -> dict:
        def rows_of(name):
            found = head_s3_object(self.address(name), self.endpoint_url)
            if found is None:
                return name, None
            stated = found["metadata"].get(ROWS_METADATA)
            if stated is not None and stated.isdigit():
                return name, int(stated)
            return name, self.read_table(name).num_rows   # an object not written by us (copied in): count it

        with ThreadPoolExecutor(_PARALLEL_REQUESTS) as pool:
            return {name: rows for name, rows in pool.map(rows_of, names) if rows is not None}

    def check(self) -> None:
        if self.lease is not None:
            self.lease.check()


def open_output(path, endpoint_url: str | None = None):
    """A job's output for reading (no claim): LocalOutput or S3Output."""
    if is_s3(path):
        return S3Output(str(path), endpoint_url)
    if isinstance(path, (str, os.PathLike)) and is_uri(path):
        raise ImagesAsDataError(f"{path}: outputs can be local folders or s3://bucket/prefix URIs", what="file",
                                path=str(path))
    return LocalOutput(Path(path).expanduser().resolve())


@contextmanager
def claimed_output(out, *, what: str, marker: str, endpoint_url: str | None = None, lease_s: float = LEASE_S):
    """The output a job writes, claimed for the job's life: a local folder (locks.claimed_directory, resumed when it
    holds `marker`) or an s3:// prefix (an S3Lease). Yields LocalOutput or S3Output.

    A prefix that holds other objects but no `marker` is refused, as a folder is: a job never writes among
    someone else's files. Raises ImagesAsDataError when another job holds the output."""
    if not is_s3(out):
        if isinstance(out, (str, os.PathLike)) and is_uri(out):
            raise ImagesAsDataError(f"{setting('out', str(out))}: the output can be a local folder or an "
                                    "s3://bucket/prefix URI", what="option", option="out", value=str(out),
                                    path=str(out))
        with claimed_directory(out, what=what, marker=marker, resume=True) as folder:
            yield LocalOutput(folder)
        return
    output = S3Output(str(out), endpoint_url)
    lease = S3Lease(output.address(LOCK_FILE), what, endpoint_url, lease_s)
    lease.acquire()
    output.lease = lease
    try:
        if not output.exists(marker):
            start = f"s3://{output.bucket}/{output.prefix}/" if output.prefix else f"s3://{output.bucket}/"
            others = [key for key in list_s3_keys(start, endpoint_url) if not key.endswith("/" + LOCK_FILE)
                      and key != LOCK_FILE]
            if others:
                raise ImagesAsDataError(f"{output.location} is not empty and holds no {what} (it holds "
                                        f"{', '.join(others[:5])}{' …' if len(others) > 5 else ''}); choose a new "
                                        "prefix")
        yield output
    finally:
        lease.release()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


class S3Lease:
    """An exclusive claim on an S3 output for one job (see the module's docstring); acquire(), check(), release().

    what: names the output in messages ("labelling"). lease_s: how long a claim may go without renewal before
    another job takes it over. previous_owner: who held it last, when this job took over a killed job's claim."""

    def __init__(self, uri: str, what: str, endpoint_url: str | None = None, lease_s: float = LEASE_S):
        self.uri, self.what, self.endpoint_url, self.lease_s = uri, what, endpoint_url, float(lease_s)
        self.etag = None
        self.lost: str | None = None
        self.previous_owner: str | None = None
        self._record = {**owner_record(), "boot": _boot_id(), "token": secrets.token_hex(8), "lease_s": self.lease_s}
        self._renewals = 0
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    # ---------------------------------------------------------------------------------------- claiming

    def _body(self, **extra) -> bytes:
        return json.dumps({**self._record, "renewals": self._renewals, **extra}).encode()

    def _same_machine(self, holder: dict) -> bool:
        return holder.get("host") == self._record["host"] and holder.get("boot") == self._record["boot"]

    def _in_use(self, holder: dict, age_s: float) -> ImagesAsDataError:
        return ImagesAsDataError(
            f"{self.uri.rsplit('/', 1)[0]} is in use: another job is writing this {self.what} "
            f"({describe_owner(json.dumps(holder))}; its claim was renewed {age_s:.0f} s ago). Wait for it to finish, "
            f"or write to another prefix. The claim of a job that was killed is taken over by the next job once it "
            f"has gone {self.lease_s:.0f} s without renewal")

    def acquire(self) -> "S3Lease":
        """Claim the output, waiting (at most lease_s seconds) to see whether another machine's claim is still
        renewed. Returns self; raises ImagesAsDataError when another job holds it."""
        watched = None   # the ETag of another machine's claim this call is waiting on
        while True:
            try:
                self.etag = write_s3_bytes(self.uri, self._body(), self.endpoint_url, if_none_match=True)
                break
            except WriteConflict:
                pass
            found = get_s3_object(self.uri, self.endpoint_url)
            if found is None:
                continue   # released and removed meanwhile: try again
            try:
                holder = json.loads(found["data"])
                holder = holder if isinstance(holder, dict) else {}
            except (ValueError, UnicodeDecodeError):
                holder = {}
            ended = self._same_machine(holder) and not _process_alive(holder.get("pid"))
            if holder.get("released") or ended or found["age_s"] >= self.lease_s:
                try:
                    self.etag = write_s3_bytes(self.uri, self._body(), self.endpoint_url, if_match=found["etag"])
                except WriteConflict:
                    continue   # another job took it first: look again
                if not holder.get("released"):
                    self.previous_owner = describe_owner(json.dumps(holder))
                break
            if self._same_machine(holder) or (watched is not None and watched != found["etag"]):
                raise self._in_use(holder, found["age_s"])   # alive here, or renewed while we watched
            if watched is None:
                watched = found["etag"]
                logging.getLogger(__name__).warning(
                    "%s is claimed by %s, renewed %.0f s ago; waiting up to %.0f s to see whether that job is still "
                    "running (a killed job's claim lapses after %.0f s)", self.uri, describe_owner(json.dumps(holder)),
                    found["age_s"], self.lease_s - found["age_s"], self.lease_s)
            time.sleep(min(2.0, max(0.2, self.lease_s - found["age_s"])))
        self._require_conditional_writes()
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(target=self._renew, name="imagesasdata-s3-claim", daemon=True)
        self._thread.start()
        return self

    def _require_conditional_writes(self) -> None:
        """A second create-if-absent of the claim must be refused; an endpoint that accepts it ignores conditions,
        and then nothing keeps two jobs apart."""
        try:
            write_s3_bytes(self.uri, self._body(), self.endpoint_url, if_none_match=True)
        except WriteConflict:
            return
        raise ImagesAsDataError(f"{self.uri}: this S3 endpoint ignores conditional writes (If-None-Match), which "
                                "imagesasdata needs to keep two jobs from writing one output; use AWS S3, MinIO or "
                                "another endpoint that honours them, or a shared folder")

    # ---------------------------------------------------------------------------------------- holding

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            with self._guard:
                self._renewals += 1
                try:
                    etag = write_s3_bytes(self.uri, self._body(), self.endpoint_url, if_match=self.etag)
                except WriteConflict:
                    self.lost = "another job took the claim over"
                    return
                except ImagesAsDataError:
                    continue   # S3 unreachable for now: try again; check() stops the job once the lease is over
                self.etag, self._renewed_at = etag, time.monotonic()

    def check(self) -> None:
        """Raise ImagesAsDataError when this job no longer holds its claim (taken over, or not renewed for a whole
        lease): it must write nothing more. Returns None."""
        problem = self.lost or ("it could not be renewed for {:.0f} s".format(self.lease_s)
                                if time.monotonic() - self._renewed_at > self.lease_s else None)
        if problem:
            raise ImagesAsDataError(
                f"{self.uri.rsplit('/', 1)[0]}: this job lost its claim on the {self.what} ({problem}) and stopped "
                "writing; another job may be writing there now. Run the same command again to resume once it has "
                "finished: every file written so far is whole")

    def release(self) -> None:
        """Stop renewing and mark the claim released (if this job still holds it), so the next job takes it at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._guard:
            if self.etag is not None and self.lost is None:
                try:
                    write_s3_bytes(self.uri, self._body(released=True), self.endpoint_url, if_match=self.etag)
                except (WriteConflict, ImagesAsDataError):
                    pass
            self.etag = None

    def __enter__(self) -> "S3Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
