"""Looking before dropping: duplicate groups as tables, contact sheets and thumbnails."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from ...errors import BadImageError, ImagesAsDataError
from ...io.images import open_rgb
from .grouping import find_duplicates
from .hashing import centre_crop, image_hashes
from .search import brute_force_pairs, hamming_pairs, hex_to_codes


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
        from ...io.tables import atomic_path

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
    from ...io.tables import atomic_path

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
