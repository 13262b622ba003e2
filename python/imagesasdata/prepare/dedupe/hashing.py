"""Perceptual and exact hashes of every image (imagehash), with trimmed-border hashes for light crops;
reused from an earlier result when the settings match."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa

from ...data.table import image_table
from ...errors import BadImageError, ImagesAsDataError, did_you_mean
from ...io.images import open_rgb, sha256_file
from ...io.threads import map_in_threads
from ..inventory import read_header


HASH_METHODS = ("phash", "dhash", "whash", "average_hash")
DEFAULT_HASH_SIZE = 16
DEFAULT_THRESHOLD = 24  # bits of a 256-bit hash; other sizes scale it (DEFAULT_THRESHOLD_FRACTION)
DEFAULT_THRESHOLD_FRACTION = DEFAULT_THRESHOLD / 256
# Share of width and height kept when trimming an even border of 1, 2, 3, 4 and 5% from each side.
CROP_SCALES = (0.98, 0.96, 0.94, 0.92, 0.90)
# Images are hashed from a copy whose shorter side is at most this (JPEGs decoded at reduced scale): the hash
# reads 64 × 64 pixels, and large photos decode several times faster.
WORKING_SIZE = 256

HASH_COLUMNS = ("bytes", "width", "height", "sha256", "perceptual_hash", "crop_hashes", "error")



def image_hashes(source, *, method: str = "phash", hash_size: int = DEFAULT_HASH_SIZE, crop_scales=CROP_SCALES,
                 num_workers: int | None = None, progress: bool = True, reuse=None) -> pa.Table:
    """Content and perceptual hashes of every image, in the order of `source`.

    source: anything image_table() reads (folder, table, list of files).
    method, hash_size: the imagehash function (phash, dhash, whash, average_hash) and its size (bits = size²).
    crop_scales: also hash each image after trimming an even border, keeping these shares of width and height.
    reuse: an earlier result (table or Parquet path) whose hashes are kept for files with the same SHA-256 and the
      same settings, so an interrupted or extended corpus is only hashed for what is new.
    Returns the image_table() columns plus bytes, width, height, sha256, perceptual_hash (hex, the whole image),
    crop_hashes (hex, space-separated, one per crop scale) and error (why an image could not be hashed).
    """
    check_method(method, hash_size)
    crop_scales = check_scales(crop_scales)
    table = image_table(source)
    settings = hash_settings(method, hash_size, crop_scales)
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
    rows = map_in_threads(work, paths, workers=num_workers, desc="hashing images", progress=progress)
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
        raise ImagesAsDataError("near-duplicate search needs the imagehash package: pip install 'imagesasdata[dedupe]'", what="missing_extra", extra="dedupe")
    return getattr(imagehash, method)


def check_method(method, hash_size):
    if method not in HASH_METHODS:
        raise ImagesAsDataError(f"method {method!r} is not one of {', '.join(HASH_METHODS)}.{did_you_mean(method, HASH_METHODS)}")
    if not isinstance(hash_size, (int, np.integer)) or not 4 <= hash_size <= 32:
        raise ImagesAsDataError(f"hash_size must be a whole number from 4 to 32 (got {hash_size!r}); 16 gives 256-bit hashes")
    if method == "whash" and hash_size & (hash_size - 1):
        raise ImagesAsDataError(f"whash needs a hash_size that is a power of 2 (got {hash_size}); use 8 or 16")


def check_scales(scales):
    scales = tuple(float(s) for s in (scales or ()))
    bad = [s for s in scales if not 0.5 <= s < 1]
    if bad:
        raise ImagesAsDataError(f"crop_scales must lie between 0.5 and 1 (got {bad}); 0.9 trims a 5% border from each side")
    return scales


def hash_settings(method, hash_size, crop_scales) -> str:
    return f"{method} hash_size={hash_size} crop_scales={','.join(f'{s:g}' for s in crop_scales)} working_size={WORKING_SIZE}"


def _reusable(reuse, settings) -> dict:
    if reuse is None:
        return {}
    from ...io.tables import to_arrow

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
