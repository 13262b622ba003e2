"""Embedding tables as matrices, and back: the one place that checks an embeddings table (image_embeddings()'s
fixed-width `embedding` column, or the wide dim_0001… columns R users may choose)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, listing
from ..io.tables import to_arrow

WIDE_PREFIX = "dim_"


def embedding_matrix(embeddings, column: str = "embedding") -> tuple[pa.Table, np.ndarray]:
    """Return (the table, an images × dimensions float64 matrix) from an embeddings table: image_embeddings()'s result, a
    Parquet file of it, or a wide table (image_id and dim_0001… columns).

    Raises ImagesAsDataError when there is no image_id or embedding column, an image id repeats, vectors differ in
    length, or an image has no embedding (it could not be read): the message names those images.
    """
    table = to_arrow(embeddings)
    if "image_id" not in table.column_names:
        raise ImagesAsDataError(f"the embeddings have no image_id column (columns: {listing(table.column_names, 8)}); "
                                "pass the table image_embeddings() returns")
    ids = [str(v) if v is not None else None for v in table["image_id"].to_pylist()]
    if any(v is None for v in ids):
        raise ImagesAsDataError("the embeddings table has rows without an image_id; give every row one")
    seen, repeated = set(), []
    for image_id in ids:
        if image_id in seen:
            repeated.append(image_id)
        seen.add(image_id)
    if repeated:
        raise ImagesAsDataError(f"image ids {listing(sorted(set(repeated)))} appear more than once in the embeddings; "
                                "keep one row per image")
    wide = sorted(c for c in table.column_names if c.startswith(WIDE_PREFIX))
    if column in table.column_names:
        values = table[column].to_pylist()
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            raise ImagesAsDataError(_no_features(table, ids, missing))
        widths = {len(v) for v in values}
        if len(widths) > 1:
            raise ImagesAsDataError(f"the embeddings have vectors of different lengths ({listing(sorted(widths))}); "
                                    "they come from different networks — compute them again with one network")
        matrix = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    elif wide:
        matrix = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in wide]) \
            if table.num_rows else np.zeros((0, len(wide)))
        missing = [i for i in range(table.num_rows) if np.isnan(matrix[i]).any()]
        if missing:
            raise ImagesAsDataError(_no_features(table, ids, missing))
    else:
        raise ImagesAsDataError(f"the embeddings have no {column!r} column and no {WIDE_PREFIX}… columns; pass the "
                                "table image_embeddings() returns")
    if not np.isfinite(matrix).all():
        bad = [ids[i] for i in np.flatnonzero(~np.isfinite(matrix).all(axis=1))]
        raise ImagesAsDataError(f"the embeddings of {listing(bad)} hold numbers that are not finite; compute them again")
    return table, matrix


def _no_features(table: pa.Table, ids, rows) -> str:
    errors = table["error"].to_pylist() if "error" in table.column_names else [None] * table.num_rows
    named = [f"{ids[i]!r}" + (f" ({errors[i]})" if errors[i] else "") for i in rows]
    return (f"{len(rows)} image(s) have no embedding: {listing(named, 5)}. They could not be read; leave them out "
            "(keep the rows whose error is empty) or fix the files and compute the embeddings again")


def embeddings_wide(embeddings, prefix: str = WIDE_PREFIX) -> pa.Table:
    """Return the embeddings with one numeric column per dimension (dim_0001, dim_0002, …) instead of a vector column:
    image_id, path (when present), then the dimensions. Images without an embedding are an error (see
    embedding_matrix())."""
    table, matrix = embedding_matrix(embeddings)
    width = len(str(matrix.shape[1]))
    columns = {"image_id": table["image_id"]}
    if "path" in table.column_names:
        columns["path"] = table["path"]
    for j in range(matrix.shape[1]):
        columns[f"{prefix}{j + 1:0{max(4, width)}d}"] = pa.array(matrix[:, j], pa.float64())
    return pa.table(columns)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (cosine geometry); a zero row stays zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def optional_column(table: pa.Table, name: str) -> pa.Array:
    """table[name], or a column of nulls (strings) when the table lacks it."""
    if name in table.column_names:
        return table[name]
    return pa.nulls(table.num_rows, pa.string())
