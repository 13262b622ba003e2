"""Looking before dropping: duplicate groups as tables, contact sheets and thumbnails."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from ...errors import ImagesAsDataError
from ...io.sheets import Layout, Line, Tile, contact_picture, save_picture, thumbnail_or_none
from .grouping import find_duplicates
from .hashing import centre_crop, image_hashes
from .search import brute_force_pairs, hamming_pairs, hex_to_codes


def duplicate_groups(duplicates: pa.Table, min_size: int = 2) -> pa.Table:
    """Return the members of groups with at least `min_size` images: representative first, then by distance and
    table order, with `position` (0 = representative) within each group. Raises ImagesAsDataError when
    `duplicates` is not find_duplicates()'s table."""
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


DEDUPE_LAYOUT = Layout(pad=8, caption=30, header=22, heading_y=4, min_width=320, title=14, right=40, footer=18)
KEEP_GREEN = (0, 150, 0)


def contact_sheet(duplicates: pa.Table, out=None, *, min_size: int = 2, max_groups: int = 40, max_per_group: int = 8,
                  thumb_size: int = 112):
    """A picture of each duplicate group, one row per group, so a person can confirm them before anything is
    dropped (the book insists on this). The representative comes first, framed in green; each thumbnail is
    captioned with its image_id and its distance to the representative ("exact" for byte-identical copies).

    Returns the Pillow image; also saves it to `out` (PNG or JPEG, atomically) when given. Groups beyond
    `max_groups` and members beyond `max_per_group` are counted in the last caption, not drawn.
    Raises ImagesAsDataError when `duplicates` is not find_duplicates()'s table or `out` is not .png/.jpg.
    """
    members = duplicate_groups(duplicates, min_size=min_size).to_pylist()
    group_ids = list(dict.fromkeys(r["group_id"] for r in members))
    shown = group_ids[:max_groups]
    lines = []
    for group in shown:
        group_rows = [r for r in members if r["group_id"] == group]
        tiles = [Tile(member["path"], str(member["image_id"]), note=_note(member),
                      note_colour=(0, 110, 0) if member["is_representative"] else "black",
                      frame=KEEP_GREEN if member["is_representative"] else None)
                 for member in group_rows[:max_per_group]]
        lines.append(Line(tiles, title=f"group {group}", more=max(0, len(group_rows) - max_per_group)))
    more = len(group_ids) - len(shown)
    sheet = contact_picture(f"{len(group_ids)} duplicate groups, {len(members)} of {len(duplicates)} images", lines,
                            thumb_size=thumb_size, columns=max_per_group, layout=DEDUPE_LAYOUT,
                            footer=f"… {more} more groups not drawn (max_groups={max_groups})" if more else None,
                            empty="no duplicates found")
    if out is not None:
        save_picture(sheet, out, "contact sheet")
    return sheet


def _note(member: dict) -> str:
    if member["is_representative"]:
        return "keep"
    if member["exact_duplicate"]:
        return "exact"
    d = member["distance_to_representative"]
    return f"{d} bits" if d is not None else "unreadable"


def duplicate_thumbnails(duplicates: pa.Table, folder, *, min_size: int = 2, thumb_size: int = 128) -> pa.Table:
    """Write a PNG thumbnail of every member of a duplicate group into `folder` (group<g>_<position>.png,
    atomically). Returns duplicate_groups() with a `thumbnail` column (its path; null when unreadable): what an R
    plot of the groups needs. Raises ImagesAsDataError when `duplicates` is not find_duplicates()'s table."""
    groups = duplicate_groups(duplicates, min_size=min_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, position, path in zip(groups["group_id"].to_pylist(), groups["position"].to_pylist(),
                                     groups["path"].to_pylist()):
        thumb = thumbnail_or_none(path, thumb_size)
        if thumb is None:
            paths.append(None)
            continue
        target = save_picture(thumb, folder / f"group{group:05d}_{position:03d}.png", "thumbnail")
        paths.append(str(target.resolve()))
    return groups.append_column("thumbnail", pa.array(paths, pa.string()))


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
