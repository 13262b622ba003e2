"""Duplicate images: exact copies (equal SHA-256) and near duplicates (re-encoded, resized, recompressed or
lightly cropped copies), found by perceptual hashes from `imagehash` and a Hamming-distance threshold.

"No need to pay twice for the same picture", and no copy of a validation image in the training split. Every image
is linked to its group's representative, the copy to keep (the book's reference script writes the same link as a
CSV); groups can be seen on a contact sheet before anything is dropped.

Choices, measured on the ORL faces and the five tweeted images in ../shared/datasets (see tests/test_dedupe.py):
- phash with hash_size=16 (256 bits). At 64 bits, photos of two different ORL people come as close as 6 bits while
  a JPEG at quality 50 moves up to 4: no threshold separates them. At 256 bits, copies re-encoded, halved or
  recompressed stay within 22 bits and different people are at least 60 bits apart.
- threshold 24 bits (9.4% of the hash). Of the 1,800 pairs of photos of the same ORL person taken at different
  moments, 6 fall within it (0.3%): near-identical poses, shown on the contact sheet for a person to judge.
- Light crops. A perceptual hash follows the whole frame, so a crop moves it (an even border of 1% moves ~20 of
  256 bits, 3% ~60, 5% ~100). Each image is therefore also hashed after trimming an even border of 1, 2, 3, 4 and
  5% (CROP_SCALES), and a pair is near-duplicate when a trimmed hash of one is close to the full hash of the other:
  any even border up to 5% is then found. A crop that also shifts the picture is not: half a percent off-centre
  moves ~26 bits (found about a third of the time), 2% ~44 (never). That is no accident of this hash: a shift of the frame
  is exactly what separates two photos of a person who moved, and every hash tried (phash, dhash, whash,
  average_hash) that tolerates it also groups different moments.
- Search: multi-index hashing (Norouzi, Punjani & Fleet 2012). Each hash is cut into m chunks of about log2(n)
  bits; two hashes within r bits agree within ⌊r/m⌋ bits on at least one chunk (pigeonhole), so only images
  sharing a chunk up to ⌊r/m⌋ flipped bits are compared. (A BK-tree would prune little: with random 256-bit hashes
  128 ± 8 bits apart, a 24-bit radius cuts few branches.) Timings: benchmarks/dedupe_speed.py.
- Groups are connected components of the near-duplicate graph (union-find: single linkage), so a chain of
  small steps joins a group; distance_to_representative says how far each member is from the copy kept.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from .cache import map_in_threads
from .data import image_table
from .errors import BadImageError, ImagesAsDataError, did_you_mean
from .images import open_rgb, sha256_file
from .inventory import read_header

HASH_METHODS = ("phash", "dhash", "whash", "average_hash")
DEFAULT_HASH_SIZE = 16
DEFAULT_THRESHOLD = 24  # bits of a 256-bit hash; other sizes scale it (DEFAULT_THRESHOLD_FRACTION)
DEFAULT_THRESHOLD_FRACTION = DEFAULT_THRESHOLD / 256
# Share of width and height kept when trimming an even border of 1, 2, 3, 4 and 5% from each side.
CROP_SCALES = (0.98, 0.96, 0.94, 0.92, 0.90)
# Images are hashed from a copy whose shorter side is at most this (JPEGs decoded at reduced scale): the hash
# reads 64 × 64 pixels, and large photos decode several times faster.
WORKING_SIZE = 256
KEEP_RULES = ("largest", "first")

HASH_COLUMNS = ("bytes", "width", "height", "sha256", "perceptual_hash", "crop_hashes", "error")
DUPLICATE_COLUMNS = ("group_id", "representative", "group_size", "is_representative", "distance_to_representative",
                     "exact_duplicate")


# --------------------------------------------------------------------------------------------------- hashing

def image_hashes(source, *, method: str = "phash", hash_size: int = DEFAULT_HASH_SIZE, crop_scales=CROP_SCALES,
                 workers: int | None = None, progress: bool = True, reuse=None) -> pa.Table:
    """Content and perceptual hashes of every image, in the order of `source`.

    source: anything image_table() reads (folder, table, list of files).
    method, hash_size: the imagehash function (phash, dhash, whash, average_hash) and its size (bits = size²).
    crop_scales: also hash each image after trimming an even border, keeping these shares of width and height.
    reuse: an earlier result (table or Parquet path) whose hashes are kept for files with the same SHA-256 and the
      same settings, so an interrupted or extended corpus is only hashed for what is new.
    Returns the image_table() columns plus bytes, width, height, sha256, perceptual_hash (hex, the whole image),
    crop_hashes (hex, space-separated, one per crop scale) and error (why an image could not be hashed).
    """
    _check_method(method, hash_size)
    crop_scales = _check_scales(crop_scales)
    table = image_table(source)
    settings = _settings(method, hash_size, crop_scales)
    known = _reusable(reuse, settings)
    function = _hash_function(method)

    def work(path):
        row = read_header(path)
        row.update(perceptual_hash=None, crop_hashes=None)
        if row["bytes"] is None:
            return row
        try:
            row["sha256"] = sha256_file(path)
        except OSError as error:
            row["error"] = f"cannot be read ({error.strerror or error})"
            return row
        if row["sha256"] in known:
            row.update(known[row["sha256"]])
            return row
        try:
            full, crops = _perceptual_hashes(path, function, hash_size, crop_scales)
        except BadImageError as error:
            row["error"] = error.reason
            return row
        row.update(perceptual_hash=full, crop_hashes=" ".join(crops), error=None)
        return row

    paths = table["path"].to_pylist()
    rows = map_in_threads(work, paths, workers=workers, desc="hashing images", progress=progress)
    types = {"bytes": pa.int64(), "width": pa.int32(), "height": pa.int32()}
    columns = {name: table[name] for name in ("image_id", "path", "label", "split")}
    for name in HASH_COLUMNS:
        columns[name] = pa.array([r.get(name) for r in rows], types.get(name, pa.string()))
    for name in table.column_names:
        if name not in columns:
            columns[name] = table[name]
    return pa.table(columns).replace_schema_metadata({b"imagesasdata.hash_settings": settings.encode()})


def _perceptual_hashes(path, function, hash_size, crop_scales):
    from PIL import Image

    image = open_rgb(path, draft_size=WORKING_SIZE)
    short = min(image.size)
    if short > WORKING_SIZE:
        scale = WORKING_SIZE / short
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    grey = image.convert("L")
    full = _hex(function(grey, hash_size=hash_size))
    crops = [_hex(function(centre_crop(grey, s), hash_size=hash_size)) for s in crop_scales]
    return full, crops


def centre_crop(image, keep: float):
    """The middle of `image`, keeping this share of its width and height (an even border trimmed away)."""
    width, height = image.size
    left, top = width * (1 - keep) / 2, height * (1 - keep) / 2
    box = (round(left), round(top), max(round(left) + 1, round(width - left)), max(round(top) + 1, round(height - top)))
    return image.crop(box)


def _hex(image_hash) -> str:
    return np.packbits(np.asarray(image_hash.hash, dtype=bool).ravel()).tobytes().hex()


def _hash_function(method):
    try:
        import imagehash
    except ImportError:
        raise ImagesAsDataError("near-duplicate search needs the imagehash package: pip install 'imagesasdata[dedupe]'")
    return getattr(imagehash, method)


def _check_method(method, hash_size):
    if method not in HASH_METHODS:
        raise ImagesAsDataError(f"method {method!r} is not one of {', '.join(HASH_METHODS)}.{did_you_mean(method, HASH_METHODS)}")
    if not isinstance(hash_size, (int, np.integer)) or not 4 <= hash_size <= 32:
        raise ImagesAsDataError(f"hash_size must be a whole number from 4 to 32 (got {hash_size!r}); 16 gives 256-bit hashes")
    if method == "whash" and hash_size & (hash_size - 1):
        raise ImagesAsDataError(f"whash needs a hash_size that is a power of 2 (got {hash_size}); use 8 or 16")


def _check_scales(scales):
    scales = tuple(float(s) for s in (scales or ()))
    bad = [s for s in scales if not 0.5 <= s < 1]
    if bad:
        raise ImagesAsDataError(f"crop_scales must lie between 0.5 and 1 (got {bad}); 0.9 trims a 5% border from each side")
    return scales


def _settings(method, hash_size, crop_scales) -> str:
    return f"{method} hash_size={hash_size} crop_scales={','.join(f'{s:g}' for s in crop_scales)} working_size={WORKING_SIZE}"


def _reusable(reuse, settings) -> dict:
    if reuse is None:
        return {}
    from .tables import to_arrow

    previous = to_arrow(reuse)
    recorded = (previous.schema.metadata or {}).get(b"imagesasdata.hash_settings", b"").decode()
    if recorded != settings:
        warnings.warn(f"not reusing earlier hashes: they were made with {recorded or 'unknown settings'}, not {settings}")
        return {}
    known = {}
    for row in previous.select(["sha256", "width", "height", "perceptual_hash", "crop_hashes"]).to_pylist():
        if row["sha256"] and row["perceptual_hash"]:
            known[row["sha256"]] = {k: row[k] for k in ("width", "height", "perceptual_hash", "crop_hashes")}
    return known


# ---------------------------------------------------------------------------------------------- the search

def hex_to_codes(hex_strings) -> np.ndarray:
    """Hex hashes (equal length) as an n × words uint64 array, zero-padded to whole 64-bit words."""
    raw = [bytes.fromhex(h) for h in hex_strings]
    if not raw:
        return np.zeros((0, 1), dtype=np.uint64)
    width = len(raw[0])
    if any(len(r) != width for r in raw):
        raise ImagesAsDataError("perceptual hashes of different lengths cannot be compared; hash every image with the same settings")
    padded = -(-width // 8) * 8
    buffer = np.zeros((len(raw), padded), dtype=np.uint8)
    buffer[:, :width] = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), width)
    return buffer.view(np.uint64)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances between rows of uint64 code arrays (broadcasting over leading axes)."""
    x = np.bitwise_xor(a, b)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).sum(axis=-1, dtype=np.int32)
    return _POPCOUNT8[x.view(np.uint8)].sum(axis=-1, dtype=np.int32)


def search_plan(bits: int, threshold: int, n: int) -> tuple[list[int], int]:
    """Chunk widths and per-chunk radius for multi-index hashing of n codes.

    Cut the hash into m chunks; two codes within `threshold` bits differ by at most ⌊threshold/m⌋ bits in some
    chunk (pigeonhole). Each chunk then costs (codes probed: all flips of up to that many bits) × (1 + codes met
    per probe, n / 2^width for well-spread hashes); m is chosen to minimise the total, which gives chunks of
    about log2(n) bits, as Norouzi, Punjani & Fleet (2012) recommend.
    """
    best = None
    for m in range(max(1, -(-bits // MAX_CHUNK_BITS)), bits + 1):
        widths = [bits // m + (1 if k < bits % m else 0) for k in range(m)]
        radius = threshold // m
        probes = sum(math.comb(widths[0], i) for i in range(radius + 1))
        cost = m * probes * (1 + n / 2.0 ** widths[-1])
        if best is None or cost < best[0]:
            best = (cost, widths, radius)
    return best[1], best[2]


MAX_CHUNK_BITS = 32
TABLE_CHUNK_BITS = 22  # up to this width, buckets are found by a table lookup (4M entries) instead of a search


def _chunk_values(codes: np.ndarray, start: int, width: int, rows: int = 65536) -> np.ndarray:
    """Bits start … start + width − 1 of each code (bit k of word w is bit 64·w + k) as uint64 numbers."""
    out = np.empty(len(codes), dtype=np.uint64)
    weights = np.uint64(1) << np.arange(width, dtype=np.uint64)
    for first in range(0, len(codes), rows):
        block = np.unpackbits(codes[first:first + rows].view(np.uint8), axis=1, bitorder="little")
        out[first:first + rows] = block[:, start:start + width].astype(np.uint64) @ weights
    return out


def _masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for positions in itertools.combinations(range(width), r):
            masks.append(sum(1 << p for p in positions))
    return np.array(masks, dtype=np.uint64)


def hamming_pairs(codes: np.ndarray, threshold: int, queries: np.ndarray | None = None,
                  block: int | None = None, plan=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within `threshold` bits, by multi-index hashing.

    codes: n × words uint64 (see hex_to_codes). queries: q × words; when None, pairs within `codes` (i < j).
    plan: (chunk widths, radius) instead of search_plan()'s choice, for experiments and tests.
    Returns arrays (query_row, code_row, distance), sorted, each pair once; the same answer as
    brute_force_pairs(), with work that grows about linearly in n for well-spread hashes (see search_plan()).
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    self_join = queries is None
    queries = codes if self_join else np.ascontiguousarray(queries, dtype=np.uint64)
    if codes.shape[1] != queries.shape[1]:
        raise ImagesAsDataError("queries and codes must have the same hash length")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
    if len(codes) == 0 or len(queries) == 0:
        return empty
    widths, radius = plan or search_plan(codes.shape[1] * 64, int(threshold), len(codes))
    if sum(widths) != codes.shape[1] * 64 or radius < int(threshold) // len(widths) or max(widths) > MAX_CHUNK_BITS:
        raise ImagesAsDataError(f"plan {plan} does not cover {codes.shape[1] * 64}-bit codes at threshold {threshold}")
    found_q, found_c = [], []
    offset = 0
    for width in widths:
        masks = _masks(width, radius)
        # Bound the temporaries: block × masks probes at a time.
        step = block or max(1, 2**22 // len(masks))
        code_values = _chunk_values(codes, offset, width)
        query_values = code_values if self_join else _chunk_values(queries, offset, width)
        offset += width
        order = np.argsort(code_values, kind="stable")
        if width <= TABLE_CHUNK_BITS:
            per_value = np.bincount(code_values.astype(np.int64), minlength=1 << width)
            start = np.concatenate([[0], np.cumsum(per_value)[:-1]])
        else:
            keys = code_values[order]
        for first in range(0, len(queries), step):
            probes = (query_values[first:first + step, None] ^ masks[None, :]).ravel()
            if width <= TABLE_CHUNK_BITS:
                probes = probes.astype(np.int64)
                low, counts = start[probes], per_value[probes]
            else:
                low = np.searchsorted(keys, probes, "left")
                counts = np.searchsorted(keys, probes, "right") - low
            total = int(counts.sum())
            if total == 0:
                continue
            rows = np.arange(first, min(first + step, len(queries)))
            q = np.repeat(np.repeat(rows, len(masks)), counts)
            # Position of each candidate inside its bucket, then its row in `codes`.
            within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            c = order[np.repeat(low, counts) + within]
            if self_join:
                keep = q < c
                q, c = q[keep], c[keep]
            close = hamming(queries[q], codes[c]) <= threshold
            found_q.append(q[close])
            found_c.append(c[close])
    if not found_q:
        return empty
    q = np.concatenate(found_q)
    c = np.concatenate(found_c)
    key = np.unique(q.astype(np.int64) * len(codes) + c)
    q, c = key // len(codes), key % len(codes)
    return q, c, hamming(queries[q], codes[c])


def brute_force_pairs(codes: np.ndarray, threshold: int, queries: np.ndarray | None = None,
                      block: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same answer as hamming_pairs() by comparing every pair (n² work): the reference it is tested against."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    self_join = queries is None
    queries = codes if self_join else np.ascontiguousarray(queries, dtype=np.uint64)
    # About 32 million words per block: a few hundred MB of temporaries whatever n is.
    block = block or max(1, 2**25 // max(1, codes.size))
    found = []
    for start in range(0, len(queries), block):
        distances = hamming(queries[start:start + block, None, :], codes[None, :, :])
        q, c = np.nonzero(distances <= threshold)
        q = q + start
        if self_join:
            keep = q < c
            q, c = q[keep], c[keep]
        found.append((q, c))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
    q = np.concatenate([f[0] for f in found]).astype(np.int64)
    c = np.concatenate([f[1] for f in found]).astype(np.int64)
    order = np.lexsort((c, q))
    q, c = q[order], c[order]
    return q, c, hamming(queries[q], codes[c])


# ------------------------------------------------------------------------------------------------- grouping

def find_duplicates(source, *, threshold: int | None = None, method: str = "phash", hash_size: int = DEFAULT_HASH_SIZE,
                    crop_scales=CROP_SCALES, keep: str = "largest", near: bool = True, workers: int | None = None,
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
    _check_method(method, hash_size)
    bits = hash_size * hash_size
    if threshold is None:
        threshold = round(DEFAULT_THRESHOLD_FRACTION * bits)
    if not isinstance(threshold, (int, np.integer)) or isinstance(threshold, bool) or not 0 <= threshold < bits // 2:
        raise ImagesAsDataError(
            f"threshold must be a whole number of bits from 0 to {bits // 2 - 1} (got {threshold!r}); "
            f"the default for {bits}-bit hashes is {round(DEFAULT_THRESHOLD_FRACTION * bits)}"
        )
    table = _hashed(source, near, method, hash_size, crop_scales, workers, progress)
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
    from .tables import to_arrow

    given = None
    if isinstance(source, pa.Table) or (not isinstance(source, (list, tuple)) and _is_table_like(source)):
        given = to_arrow(source)
        if not all(c in given.column_names for c in ("image_id", "path", "sha256", "perceptual_hash", "crop_hashes")):
            given = None
    if given is not None:
        recorded = (given.schema.metadata or {}).get(b"imagesasdata.hash_settings", b"").decode()
        wanted = _settings(method, hash_size, _check_scales(crop_scales))
        if recorded and recorded != wanted and near:
            raise ImagesAsDataError(
                f"the hashes in this table were made with {recorded}; hash again with image_hashes() to use {wanted}"
            )
        if "error" not in given.column_names:
            given = given.append_column("error", pa.nulls(given.num_rows, pa.string()))
        return given
    if near:
        return image_hashes(source, method=method, hash_size=hash_size, crop_scales=crop_scales, workers=workers,
                            progress=progress)
    # Exact copies only: the bytes' hash and the header, no decoding.
    from .inventory import image_inventory

    inventory = image_inventory(source, workers=workers, progress=progress)
    out = inventory.drop_columns(["format", "mode", "readable"])
    errors = out["error"]
    out = out.drop_columns(["error"])
    out = out.append_column("perceptual_hash", pa.nulls(out.num_rows, pa.string()))
    out = out.append_column("crop_hashes", pa.nulls(out.num_rows, pa.string()))
    return out.append_column("error", errors)


def _is_table_like(source) -> bool:
    from .tables import is_table_file

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


# ------------------------------------------------------------------------------------------------ inspection

def duplicate_groups(duplicates: pa.Table, min_size: int = 2) -> pa.Table:
    """Members of groups with at least `min_size` images: representative first, then by distance and table order.
    Adds `position` (0 = representative) within each group."""
    _require_columns(duplicates, ("group_id", "group_size", "is_representative", "distance_to_representative"))
    rows = [dict(r, _row=i) for i, r in enumerate(duplicates.to_pylist()) if r["group_size"] >= min_size]
    rows.sort(key=lambda r: (r["group_id"], not r["is_representative"],
                             r["distance_to_representative"] if r["distance_to_representative"] is not None else math.inf,
                             r["_row"]))
    keep = [r["_row"] for r in rows]
    out = duplicates.take(pa.array(keep, pa.int64())) if keep else duplicates.slice(0, 0)
    positions, previous, k = [], None, 0
    for r in rows:
        k = 0 if r["group_id"] != previous else k + 1
        previous = r["group_id"]
        positions.append(k)
    return out.append_column("position", pa.array(positions, pa.int32()))


def contact_sheet(duplicates: pa.Table, out=None, *, min_size: int = 2, max_groups: int = 40, max_per_group: int = 8,
                  thumb_size: int = 112):
    """A picture of each duplicate group, one row per group, so a person can confirm them before anything is
    dropped (the book insists on this). The representative comes first, framed in green; each thumbnail is
    captioned with its image_id and its distance to the representative ("exact" for byte-identical copies).

    Returns the Pillow image; also saves it to `out` (PNG or JPEG) when given. Groups beyond `max_groups` and
    members beyond `max_per_group` are counted in the last caption, not drawn.
    """
    from PIL import Image, ImageDraw

    members = duplicate_groups(duplicates, min_size=min_size).to_pylist()
    group_ids = list(dict.fromkeys(r["group_id"] for r in members))
    shown = group_ids[:max_groups]
    font = _font(11)
    pad, caption, title = 8, 30, 14
    cell_w, cell_h = thumb_size + pad, title + thumb_size + caption + pad
    header = 22
    widest = max([sum(1 for r in members if r["group_id"] == g) for g in shown] + [1])
    width = max(320, pad + min(widest, max_per_group) * cell_w + 40)
    height = header + max(1, len(shown)) * cell_h + (18 if len(group_ids) > len(shown) else 0) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    total = len(duplicates)
    draw.text((pad, 4), f"{len(group_ids)} duplicate groups, {len(members)} of {total} images", fill="black", font=font)
    if not shown:
        draw.text((pad, header + 10), "no duplicates found", fill="grey", font=font)
    for row, group in enumerate(shown):
        group_rows = [r for r in members if r["group_id"] == group]
        y = header + row * cell_h
        draw.text((pad, y), f"group {group}", fill="black", font=font)
        for k, member in enumerate(group_rows[:max_per_group]):
            x = pad + k * cell_w
            thumb = _thumbnail(member["path"], thumb_size)
            top = y + title
            if thumb is None:
                draw.rectangle([x, top, x + thumb_size - 1, top + thumb_size - 1], fill=(220, 220, 220))
                draw.text((x + 6, top + thumb_size // 2 - 6), "unreadable", fill="black", font=font)
            else:
                sheet.paste(thumb, (x + (thumb_size - thumb.width) // 2, top + (thumb_size - thumb.height) // 2))
            if member["is_representative"]:
                draw.rectangle([x - 2, top - 2, x + thumb_size + 1, top + thumb_size + 1], outline=(0, 150, 0), width=3)
                note = "keep"
            elif member["exact_duplicate"]:
                note = "exact"
            else:
                d = member["distance_to_representative"]
                note = f"{d} bits" if d is not None else "unreadable"
            draw.text((x, top + thumb_size + 2), _shorten(str(member["image_id"]), thumb_size), fill="black", font=font)
            draw.text((x, top + thumb_size + 14), note, fill=(0, 110, 0) if note == "keep" else "black", font=font)
        if len(group_rows) > max_per_group:
            draw.text((pad + max_per_group * cell_w, y + title + thumb_size // 2), f"+{len(group_rows) - max_per_group}",
                      fill="black", font=font)
    if len(group_ids) > len(shown):
        draw.text((pad, height - 20), f"… {len(group_ids) - len(shown)} more groups not drawn (max_groups={max_groups})",
                  fill="black", font=font)
    if out is not None:
        from .tables import atomic_path

        out = Path(out)
        kind = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower())
        if kind is None:
            raise ImagesAsDataError(f"{out}: save the contact sheet as .png or .jpg")
        with atomic_path(out) as temporary:
            sheet.save(temporary, format=kind)
    return sheet


def duplicate_thumbnails(duplicates: pa.Table, folder, *, min_size: int = 2, thumb_size: int = 128) -> pa.Table:
    """Write a PNG thumbnail of every member of a duplicate group into `folder` and return duplicate_groups() with
    a `thumbnail` column (its path; null when unreadable): what an R plot of the groups needs."""
    from .tables import atomic_path

    groups = duplicate_groups(duplicates, min_size=min_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, position, path in zip(groups["group_id"].to_pylist(), groups["position"].to_pylist(),
                                     groups["path"].to_pylist()):
        thumb = _thumbnail(path, thumb_size)
        if thumb is None:
            paths.append(None)
            continue
        target = folder / f"group{group:05d}_{position:03d}.png"
        with atomic_path(target) as temporary:
            thumb.save(temporary, format="PNG")
        paths.append(str(target.resolve()))
    return groups.append_column("thumbnail", pa.array(paths, pa.string()))


def _thumbnail(path, size):
    from PIL import Image

    try:
        image = open_rgb(path, draft_size=size)
    except BadImageError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _shorten(text, pixels):
    limit = max(4, pixels // 6)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _require_columns(table, names):
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the table lacks columns {missing}; pass the result of find_duplicates()")


def representatives(duplicates: pa.Table) -> pa.Table:
    """One row per group: the copies to keep (all images when there are no duplicates)."""
    import pyarrow.compute as pc

    _require_columns(duplicates, ("is_representative",))
    return duplicates.filter(pc.equal(duplicates["is_representative"], True))


__all__ = ["image_hashes", "find_duplicates", "hamming_pairs", "brute_force_pairs", "contact_sheet",
           "duplicate_groups", "duplicate_thumbnails", "representatives", "hex_to_codes", "centre_crop"]
