"""The inventory of an image corpus: one row per file with its size in bytes and pixels, format, colour mode,
SHA-256 and whether it can be read. Headers only (Pillow reads the size without decoding pixels), on a thread
pool, so tens of thousands of files take seconds; `verify=True` decodes every image to catch truncated files.
"""

from __future__ import annotations

import os
import warnings

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from ..io.threads import map_in_threads
from ..data.table import image_table
from ..errors import BadImageError
from ..io.images import open_rgb, sha256_file, unusable_file

INVENTORY_COLUMNS = ("bytes", "width", "height", "format", "mode", "sha256", "readable", "error")
# EXIF orientations 5–8 turn the picture a quarter: the displayed width is the stored height.
QUARTER_TURNS = {5, 6, 7, 8}
EXIF_ORIENTATION = 0x0112


def image_inventory(source, *, verify: bool = False, checksum: bool = True, num_workers: int | None = None,
                    progress: bool = True, label: str | None = None, path: str | None = None) -> pa.Table:
    """Inventory images: one row per file, in the order of `source`.

    source: anything `image_table()` reads (a folder, the book's layout, a CSV/Parquet table or Arrow table with a
      path column, a list of files).
    verify: decode every image fully (slower) instead of reading headers; finds truncated and corrupt files that
      have an intact header.
    checksum: compute each file's SHA-256 (exact duplicates are files with equal hashes).
    Returns a table with columns image_id, path, label, split, bytes, width, height, format, mode, sha256,
    readable, error — then any other columns of a table source. width and height are as displayed (after EXIF
    rotation). Unreadable or missing files are rows with readable = false and the reason in `error`; they never
    stop the inventory.
    """
    table = image_table(source, label=label, path=path)
    paths = table["path"].to_pylist()

    def work(file):
        row = read_header(file, verify=verify)
        if checksum and row["bytes"] is not None:
            try:
                row["sha256"] = sha256_file(file)
            except OSError as error:
                row["error"] = row["error"] or f"cannot be read ({error.strerror or error})"
        return row

    rows = map_in_threads(work, paths, workers=num_workers, desc="inventory", progress=progress)
    return with_inventory_columns(table, rows)


def with_inventory_columns(table: pa.Table, rows: list[dict]) -> pa.Table:
    """The table's image_id, path, label, split, then the inventory columns, then its other columns."""
    types = {"bytes": pa.int64(), "width": pa.int32(), "height": pa.int32(), "format": pa.string(),
             "mode": pa.string(), "sha256": pa.string(), "readable": pa.bool_(), "error": pa.string()}
    columns = {name: table[name] for name in ("image_id", "path", "label", "split")}
    for name in INVENTORY_COLUMNS:
        values = [r.get(name) for r in rows] if name != "readable" else [r.get("error") is None for r in rows]
        columns[name] = pa.array(values, types[name])
    for name in table.column_names:
        if name not in columns:
            columns[name] = table[name]
    return pa.table(columns)


def read_header(path, verify: bool = False) -> dict:
    """bytes, width, height, format, mode and error for one file, reading only its header unless `verify`.

    Never raises for a bad file: the reason is in the `error` entry, worded as open_rgb() words it.
    """
    row = {"bytes": None, "width": None, "height": None, "format": None, "mode": None, "sha256": None,
           "error": None}
    problem = unusable_file(path)   # missing, a link in a loop, a folder, empty, not readable: as open_rgb() says
    if problem:
        if os.path.isfile(path):
            row["bytes"] = os.stat(path).st_size
        row["error"] = problem
        return row
    row["bytes"] = os.stat(path).st_size
    try:
        with warnings.catch_warnings():
            # Files above Pillow's pixel limit are reported like open_rgb() reports them, with their size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                try:
                    orientation = image.getexif().get(EXIF_ORIENTATION)
                except Exception:  # a broken EXIF block does not make the picture unreadable
                    orientation = None
                if orientation in QUARTER_TURNS:
                    width, height = height, width
                row.update(width=width, height=height, format=image.format, mode=image.mode)
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and width * height > limit:
                    row["error"] = (f"refused as a possible decompression bomb ({width * height} pixels); if the "
                                    "image is genuine, raise the limit with max_pixels=")
                    return row
    except Image.DecompressionBombError as error:
        row["error"] = (f"refused as a possible decompression bomb ({error}); if the image is genuine, raise the "
                        "limit with max_pixels=")
        return row
    except UnidentifiedImageError:
        row["error"] = "not an image Pillow can read (supported: JPEG, PNG, GIF, BMP, TIFF, WebP, PGM/PPM)"
        return row
    except PermissionError as error:
        row["error"] = f"cannot be read ({error.strerror}); check the file's permissions"
        return row
    except (OSError, SyntaxError, ValueError) as error:
        row["error"] = f"corrupt or truncated image data ({error})"
        return row
    if verify:
        try:
            open_rgb(path)
        except BadImageError as error:
            row["error"] = error.reason
    return row
