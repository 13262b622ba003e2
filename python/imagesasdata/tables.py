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

from .errors import ImagesAsDataError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def is_table_file(path) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def to_arrow(data) -> pa.Table:
    """A pyarrow.Table from a pyarrow Table/RecordBatch, a pandas DataFrame, a dict of columns, or a CSV/Parquet path."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, (str, os.PathLike)) and is_table_file(data):
        return read_table(data)
    if isinstance(data, dict):
        return pa.table(data)
    if hasattr(data, "to_arrow") and not hasattr(data, "columns"):
        return data.to_arrow()
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ImagesAsDataError(
        f"cannot read a table from {type(data).__name__}; pass a CSV or Parquet path, a pandas DataFrame or a pyarrow Table"
    )


def read_table(path) -> pa.Table:
    """Read a CSV, TSV or Parquet file; strings stay strings (no guessing that '007' is a number)."""
    path = Path(path)
    if not path.exists():
        raise ImagesAsDataError(f"{path}: no such file")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind == "parquet":
        return pq.read_table(path)
    if kind in ("csv", "tsv"):
        parse = pa_csv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
        try:
            return pa_csv.read_csv(path, parse_options=parse)
        except pa.ArrowInvalid as error:
            raise ImagesAsDataError(f"{path}: not a readable {kind.upper()} file ({error})")
    raise ImagesAsDataError(f"{path}: unknown table format; use .csv, .tsv or .parquet")


@contextmanager
def atomic_path(target):
    """Yield a temporary path beside `target`; on success it replaces `target` in one step, on failure it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_table(table: pa.Table, path) -> Path:
    """Write a table to .parquet or .csv (by suffix), atomically. List and struct columns need Parquet."""
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImagesAsDataError(f"{path}: choose an output ending in .parquet or .csv")
    with atomic_path(path) as temporary:
        if kind == "parquet":
            pq.write_table(table, temporary)
        else:
            nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
            if nested:
                raise ImagesAsDataError(f"{path}: columns {nested} hold lists; write .parquet instead of .csv")
            pa_csv.write_csv(table, temporary, pa_csv.WriteOptions(delimiter="\t" if kind == "tsv" else ","))
    return path


def write_json(obj, path) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)


def read_json(path):
    return json.loads(Path(path).read_text())
