"""Finding pairs of hashes within a Hamming distance: multi-index hashing (Norouzi, Punjani & Fleet 2012), and
the brute-force comparison the tests check it against."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ...errors import ImagesAsDataError


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
