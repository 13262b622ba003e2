"""Near-duplicate groups: the pairs within the threshold joined into connected components (single linkage),
each linked to the copy to keep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ...errors import ImagesAsDataError, did_you_mean
from .hashing import (CROP_SCALES, DEFAULT_HASH_SIZE, DEFAULT_THRESHOLD_FRACTION, check_method, check_scales,
                      hash_settings, image_hashes)
from .search import hamming, hamming_pairs, hex_to_codes


KEEP_RULES = ("largest", "first")
DUPLICATE_COLUMNS = ("group_id", "representative", "group_size", "is_representative", "distance_to_representative",
                     "exact_duplicate")


def find_duplicates(source, *, threshold: int | None = None, method: str = "phash", hash_size: int = DEFAULT_HASH_SIZE,
                    crop_scales=CROP_SCALES, keep: str = "largest", near: bool = True, num_workers: int | None = None,
                    progress: bool = True) -> pa.Table:
    """Group exact and near-duplicate images and pick the copy to keep in each group.

    source: anything image_table() reads, or the result of image_hashes() (then nothing is hashed again).
    threshold: largest Hamming distance (bits) between near duplicates; default 24 for 256-bit hashes, scaled
      for other hash sizes. Lower it to group only closer copies.
    near: False groups exact (byte-identical) copies only, without decoding any image.
    keep: which member represents its group — "largest" (most pixels, then most bytes, then first in the table:
      the best-quality copy) or "first" (first in the table; for a folder, the first path in sort order).
    Returns the source's columns plus sha256, perceptual_hash, group_id (1, 2, … in the order of the
    representatives), representative (image_id of the copy kept), group_size, is_representative,
    distance_to_representative (bits; 0 for byte-identical copies; null when unreadable), exact_duplicate (a
    byte-identical copy of the representative) and error (why an image could not be hashed; it stays alone).
    """
    if keep not in KEEP_RULES:
        raise ImagesAsDataError(f"keep must be one of {', '.join(KEEP_RULES)} (got {keep!r}).{did_you_mean(keep, KEEP_RULES)}")
    check_method(method, hash_size)
    bits = hash_size * hash_size
    if threshold is None:
        threshold = round(DEFAULT_THRESHOLD_FRACTION * bits)
    if not isinstance(threshold, (int, np.integer)) or isinstance(threshold, bool) or not 0 <= threshold < bits // 2:
        raise ImagesAsDataError(
            f"threshold must be a whole number of bits from 0 to {bits // 2 - 1} (got {threshold!r}); "
            f"the default for {bits}-bit hashes is {round(DEFAULT_THRESHOLD_FRACTION * bits)}"
        )
    table = _hashed(source, near, method, hash_size, crop_scales, num_workers, progress)
    n = table.num_rows
    sha = table["sha256"].to_pylist()
    full_hex = table["perceptual_hash"].to_pylist()
    hashed = [i for i, h in enumerate(full_hex) if h]

    parent = np.arange(n)
    edges = []
    by_sha = {}
    for i, digest in enumerate(sha):
        if digest:
            edges.append((by_sha.setdefault(digest, i), i))
    full = crops = None
    if near and hashed:
        full = hex_to_codes([full_hex[i] for i in hashed])
        crop_hex = [(table["crop_hashes"][i].as_py() or "").split() for i in hashed]
        scales = min(len(c) for c in crop_hex)
        crops = [hex_to_codes([c[s] for c in crop_hex]) for s in range(scales)]
        edges += _near_edges(hashed, full, crops, threshold)
    groups = _components(n, edges) if edges else parent

    order_key = _keep_order(table, keep)
    members = {}
    for i in range(n):
        members.setdefault(int(groups[i]), []).append(i)
    representative_of = np.zeros(n, dtype=np.int64)
    representatives = []
    for rows in members.values():
        chosen = min(rows, key=order_key)
        representatives.append(chosen)
        representative_of[rows] = chosen
    group_number = {rep: k + 1 for k, rep in enumerate(sorted(representatives))}

    distance = [None] * n
    failed = table["error"].to_pylist()
    for i in range(n):
        rep = int(representative_of[i])
        if failed[i] is not None:
            continue
        if i == rep:
            distance[i] = 0
        elif sha[i] and sha[i] == sha[rep]:
            distance[i] = 0
    if full is not None:
        position = {row: k for k, row in enumerate(hashed)}
        pending = [i for i in range(n) if distance[i] is None and i in position and int(representative_of[i]) in position]
        if pending:
            found = _pair_distances(np.array([position[i] for i in pending]),
                                    np.array([position[int(representative_of[i])] for i in pending]), full, crops)
            for i, d in zip(pending, found.tolist()):
                distance[i] = d
    ids = table["image_id"].to_pylist()
    size = {rep: len(rows) for rep, rows in zip(representatives, members.values())}
    result = {
        "group_id": pa.array([group_number[int(representative_of[i])] for i in range(n)], pa.int64()),
        "representative": pa.array([ids[int(representative_of[i])] for i in range(n)], pa.string()),
        "group_size": pa.array([size[int(representative_of[i])] for i in range(n)], pa.int64()),
        "is_representative": pa.array([i == int(representative_of[i]) for i in range(n)], pa.bool_()),
        "distance_to_representative": pa.array(distance, pa.int32()),
        "exact_duplicate": pa.array([i != int(representative_of[i]) and sha[i] is not None
                                     and sha[i] == sha[int(representative_of[i])] for i in range(n)], pa.bool_()),
    }
    out = table
    for name in DUPLICATE_COLUMNS:
        if name in out.column_names:
            out = out.drop_columns([name])
    errors = out["error"]
    # The trimmed-border hashes serve the search only; image_hashes() keeps them for another run.
    out = out.drop_columns([c for c in ("error", "crop_hashes") if c in out.column_names])
    for name in DUPLICATE_COLUMNS:
        out = out.append_column(name, result[name])
    out = out.append_column("error", errors)
    return out.replace_schema_metadata({**(table.schema.metadata or {}),
                                        b"imagesasdata.threshold": str(threshold).encode()})


def _hashed(source, near, method, hash_size, crop_scales, workers, progress) -> pa.Table:
    """The source with hash columns: as given when it already has them, else computed (sha256 only if not near)."""
    from ...io.tables import to_arrow

    given = None
    if isinstance(source, pa.Table) or (not isinstance(source, (list, tuple)) and _is_table_like(source)):
        given = to_arrow(source)
        if not all(c in given.column_names for c in ("image_id", "path", "sha256", "perceptual_hash", "crop_hashes")):
            given = None
    if given is not None:
        recorded = (given.schema.metadata or {}).get(b"imagesasdata.hash_settings", b"").decode()
        wanted = hash_settings(method, hash_size, check_scales(crop_scales))
        if recorded and recorded != wanted and near:
            raise ImagesAsDataError(
                f"the hashes in this table were made with {recorded}; hash again with image_hashes() to use {wanted}"
            )
        if "error" not in given.column_names:
            given = given.append_column("error", pa.nulls(given.num_rows, pa.string()))
        return given
    if near:
        return image_hashes(source, method=method, hash_size=hash_size, crop_scales=crop_scales, num_workers=workers,
                            progress=progress)
    # Exact copies only: the bytes' hash and the header, no decoding.
    from ..inventory import image_inventory

    inventory = image_inventory(source, num_workers=workers, progress=progress)
    out = inventory.drop_columns(["format", "mode", "readable"])
    errors = out["error"]
    out = out.drop_columns(["error"])
    out = out.append_column("perceptual_hash", pa.nulls(out.num_rows, pa.string()))
    out = out.append_column("crop_hashes", pa.nulls(out.num_rows, pa.string()))
    return out.append_column("error", errors)


def _is_table_like(source) -> bool:
    from ...io.tables import is_table_file

    if isinstance(source, (str, Path)):
        return is_table_file(source)
    return isinstance(source, (dict, pa.RecordBatch)) or type(source).__module__.startswith("pandas")


def _near_edges(hashed, full, crops, threshold) -> list:
    """(row, row) edges between images whose full hashes, or a trimmed hash of one and the full hash of the other,
    are within `threshold` bits. Identical full hashes are searched once."""
    unique, first, inverse = np.unique(full, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    edges = [(hashed[int(first[u])], hashed[k]) for k, u in enumerate(inverse) if first[u] != k]
    q, c, _ = hamming_pairs(unique, threshold)
    edges += [(hashed[int(first[a])], hashed[int(first[b])]) for a, b in zip(q, c)]
    if crops:
        stacked = np.concatenate(crops)
        q, c, _ = hamming_pairs(unique, threshold, queries=stacked)
        owner = q % len(full)
        edges += [(hashed[int(o)], hashed[int(first[b])]) for o, b in zip(owner, c) if inverse[o] != b]
    return edges


def _pair_distances(a, b, full, crops) -> np.ndarray:
    """Distances between hashed images a[k] and b[k]: the closest of whole-vs-whole and trimmed-vs-whole, both ways."""
    best = hamming(full[a], full[b])
    for scale in crops or ():
        best = np.minimum(best, np.minimum(hamming(scale[a], full[b]), hamming(full[a], scale[b])))
    return best


def _components(n, edges) -> np.ndarray:
    """Union-find over the edges: each image's group root (path halving keeps the trees flat)."""
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)])


def _keep_order(table, keep):
    """Sort key: the smallest key in a group is its representative. Unreadable images come last."""
    readable = [e is None for e in table["error"].to_pylist()]
    if keep == "first":
        return lambda i: (not readable[i], i)
    width = table["width"].to_pylist()
    height = table["height"].to_pylist()
    nbytes = table["bytes"].to_pylist()
    return lambda i: (not readable[i], -((width[i] or 0) * (height[i] or 0)), -(nbytes[i] or 0), i)
