"""Arrow tables in and out: every engine result is a pyarrow.Table; files are written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..errors import ImagesAsDataError, setting

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def is_table_file(path) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def to_arrow(data, encoding: str = "utf-8") -> pa.Table:
    """A pyarrow.Table from a pyarrow Table/RecordBatch, a pandas DataFrame, a dict of columns, or a CSV/Parquet path
    (CSV text in `encoding`)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, (str, os.PathLike)) and is_table_file(data):
        return read_table(data, encoding)
    if isinstance(data, dict):
        return pa.table(data)
    if hasattr(data, "to_arrow") and not hasattr(data, "columns"):
        return data.to_arrow()
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ImagesAsDataError(
        f"cannot read a table from {type(data).__name__}; pass a CSV or Parquet path, a pandas DataFrame or a pyarrow Table"
    )


def read_table(path, encoding: str = "utf-8") -> pa.Table:
    """Read a CSV, TSV or Parquet file; strings stay strings (no guessing that '007' is a number).

    encoding: the text encoding of a CSV/TSV file (default UTF-8; e.g. "latin-1" or "cp1252" for files saved by
    older Excel versions). Text that is not valid in it is an error naming the row, never bytes passed on as text.
    """
    path = Path(path)
    if not path.exists():
        raise ImagesAsDataError(f"{path}: no such file", what="file", path=str(path))
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind == "parquet":
        try:
            return pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise ImagesAsDataError(f"{path}: not a readable Parquet file ({error})",
                                    what="file", path=path) from None
    if kind in ("csv", "tsv"):
        parse = pa_csv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
        try:
            table = pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(encoding=encoding), parse_options=parse)
        except LookupError:
            raise ImagesAsDataError(f"{setting('encoding', encoding)} is not a text encoding Python knows (e.g. utf-8, latin-1)",
                                    what="option", option="encoding", value=encoding) from None
        except pa.ArrowInvalid as error:
            raise ImagesAsDataError(f"{path}: not a readable {kind.upper()} file ({error})",
                                    what="file", path=path) from None
        check_text(table, path, encoding)
        return table
    raise ImagesAsDataError(f"{path}: unknown table format; use .csv, .tsv or .parquet", what="file", path=path)


def check_text(table: pa.Table, path: Path, encoding: str) -> None:
    """Arrow reads a column with bytes that are not valid text as binary; refuse it, naming the first bad line.

    Lines are the file's own line numbers (the header is line 1, the first data row line 2), the rule every error
    about a CSV sheet follows (a quoted value spanning lines would shift it)."""
    for name in table.column_names:
        if pa.types.is_binary(table.schema.field(name).type) or pa.types.is_large_binary(table.schema.field(name).type):
            for row, value in enumerate(table[name].to_pylist()):
                try:
                    None if value is None else value.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ImagesAsDataError(
                        f"{path}: line {row + 2} (column {name!r}) is not valid {encoding} text (byte "
                        f"{value[error.start:error.start + 1]!r} at position {error.start}). Save the file as UTF-8, or "
                        "pass its encoding (encoding='latin-1', 'cp1252', …)", what="file", path=path, row=row + 2
                    ) from None


def _process_umask() -> int:
    """This process's umask, read without changing it (os.umask would change it for every thread meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


_UMASK = _process_umask()


def fsync_directory(folder) -> None:
    """Make a rename or a new entry in `folder` durable (a power cut after it cannot undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target):
    """Yield a temporary path beside `target`; on success it replaces `target` in one step, on failure it is removed.

    The file is flushed to disk before the rename and gets the permissions of a file created normally (mkstemp
    makes it private, which would lock colleagues on a shared project folder out of the results). A kill at any
    instant leaves `target` whole: either the old file or the new one, and at worst a temporary file of our own
    shape (".<name>.xxxxxxxx.part", locks.is_our_temporary) that the next job on the folder removes. Write into the
    yielded path yourself: a library that makes temporary files of its own beside it would defeat that.
    """
    from .faults import crash_point

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        crash_point(f"writing {target.name}", partial=Path(temporary))
        os.replace(temporary, target)
        fsync_directory(target.parent)
        crash_point(f"wrote {target.name}")
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_table(table: pa.Table, path) -> Path:
    """Write a table to .parquet or .csv (by suffix), atomically. List and struct columns need Parquet."""
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImagesAsDataError(f"{path}: choose an output ending in .parquet or .csv", what="file", path=path)
    with atomic_path(path) as temporary:
        if kind == "parquet":
            pq.write_table(table, temporary)
        else:
            nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
            if nested:
                raise ImagesAsDataError(f"{path}: columns {nested} hold lists; write .parquet instead of .csv",
                                        what="file", path=path)
            pa_csv.write_csv(table, temporary, pa_csv.WriteOptions(delimiter="\t" if kind == "tsv" else ","))
    return path


def write_json(obj, path) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)


def read_json(path, what: str | None = None):
    """The JSON in `path`. With `what` (e.g. "a run description"), a damaged file or one that does not hold a JSON
    object is an ImagesAsDataError saying so, instead of a parser's traceback."""
    path = Path(path)
    if what is None:
        return json.loads(path.read_text())
    try:
        value = json.loads(path.read_text())
    except UnicodeDecodeError:
        value = None
    except json.JSONDecodeError as error:
        raise ImagesAsDataError(f"{path} is damaged: not valid JSON ({error.msg} at line {error.lineno}); it should "
                                f"hold {what}", what="file", path=path, row=error.lineno) from None
    if not isinstance(value, dict):
        raise ImagesAsDataError(f"{path} does not hold {what} (found {type(value).__name__} instead of a JSON object)",
                                what="file", path=path)
    return value
