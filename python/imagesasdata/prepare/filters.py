"""Dropping images too small to be worth labelling. The book's corpus went from about 9,500 to 8,148 images once
files under 5 KB (icons, avatars, tracking pixels, broken downloads) were removed.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import ImagesAsDataError
from .inventory import INVENTORY_COLUMNS, image_inventory

# The book's cut: files under 5 KB. Read as 5 KiB (5,120 bytes), the size file managers call "5 KB".
DEFAULT_MIN_BYTES = 5 * 1024


def filter_small(source, *, min_bytes: int | None = DEFAULT_MIN_BYTES, min_width: int | None = None,
                 min_height: int | None = None, num_workers: int | None = None, progress: bool = True) -> pa.Table:
    """Mark images to keep and to remove for being too small, with the reason.

    source: the result of image_inventory(), or anything it reads (then the inventory is made first).
    min_bytes: files with fewer bytes are removed (default 5,120: the book's "under 5 KB"); None to skip.
    min_width, min_height: images narrower or shorter than this many pixels are removed; None to skip.
    Returns the inventory with two more columns: kept (bool) and reason (why it was removed, null when kept).
    Unreadable files are removed with reason "unreadable: …" — a file that cannot be opened cannot be labelled.
    """
    limits = {"min_bytes": min_bytes, "min_width": min_width, "min_height": min_height}
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ImagesAsDataError(f"{name} must be a whole number of {'bytes' if name == 'min_bytes' else 'pixels'} "
                                    f"(0 or more) or None (got {value!r})")
    if all(v is None for v in limits.values()):
        raise ImagesAsDataError("nothing to filter on: give min_bytes, min_width or min_height")
    table = _inventory(source, num_workers, progress)
    kept, reasons = [], []
    for row in table.select(["bytes", "width", "height", "error"]).to_pylist():
        why = []
        if row["error"] is not None:
            why.append(f"unreadable: {row['error']}")
        else:
            if min_bytes is not None and row["bytes"] < min_bytes:
                why.append(f"file smaller than {min_bytes:,} bytes ({row['bytes']:,})")
            if min_width is not None and row["width"] < min_width:
                why.append(f"narrower than {min_width} pixels ({row['width']})")
            if min_height is not None and row["height"] < min_height:
                why.append(f"shorter than {min_height} pixels ({row['height']})")
        kept.append(not why)
        reasons.append("; ".join(why) or None)
    for name in ("kept", "reason"):
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("kept", pa.array(kept, pa.bool_()))
    return table.append_column("reason", pa.array(reasons, pa.string()))


def _inventory(source, workers, progress) -> pa.Table:
    if isinstance(source, pa.Table) and all(c in source.column_names for c in INVENTORY_COLUMNS):
        return source
    from ..io.tables import is_table_file, read_table

    if isinstance(source, str) and is_table_file(source):
        table = read_table(source)
        if all(c in table.column_names for c in INVENTORY_COLUMNS):
            return table
    return image_inventory(source, num_workers=workers, progress=progress)
