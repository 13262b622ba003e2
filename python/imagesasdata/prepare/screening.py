"""From moderation labels to decisions a person can check (the book's section 8.3): which images to hold back from
annotators, a contact sheet on which flagged images are blurred, and a coding sheet without them.

    screen_images(moderation)         one row per image: flagged, the reasons, the highest confidence
    screening_sheet(screen, out)      thumbnails of every image, the flagged ones blurred beyond recognition and
                                      framed in red with their reasons: check the flags without seeing the content
    coding_sheet(screen, out)         the CSV annotators fill in (image_id, path, an empty column per variable),
                                      flagged images left out unless show_flagged=True

Nothing is ever deleted, moved or changed: flagged images stay where they are, and the screen is a table.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..errors import ImagesAsDataError, check_number, listing, setting
from ..io.sheets import (Layout, Line, Tile, coding_table, contact_picture, save_picture, shorten,
                         write_sheet)

SCREEN_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("flagged", pa.bool_()),
    ("reasons", pa.list_(pa.string())),     # "category: label (confidence %)", most confident first
    ("max_confidence", pa.float64()), ("error", pa.string()),
])


def screen_images(moderation, *, min_confidence: float = 50.0, categories=None) -> pa.Table:
    """Decide which images to hold back: one row per image of a moderation table (moderation_local() or
    rekognition_moderation(), or several of them stacked).

    min_confidence: a label at or above this confidence (0–100) flags its image.
    categories: flag only for these top-level categories (e.g. ["Explicit Nudity", "Violence"]); default: any.
    An image that could not be screened (unreadable, or the service failed) is flagged too — it has not been
    checked — with its error as the reason. Returns image_id, path, flagged, reasons, max_confidence, error.
    """
    from ..io.tables import to_arrow

    table = to_arrow(moderation)
    needed = ("image_id", "path", "label", "confidence", "category", "error")
    missing = [n for n in needed if n not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the table lacks columns {missing}; pass the result of moderation_local() or "
                                "rekognition_moderation()")
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    wanted = None
    if categories is not None:
        wanted = {str(c) for c in ([categories] if isinstance(categories, str) else categories)}
    columns = list(needed) + (["taxonomy_level"] if "taxonomy_level" in table.column_names else [])
    images: dict = {}
    for row in table.select(columns).to_pylist():
        entry = images.setdefault(row["image_id"], {"image_id": row["image_id"], "path": row["path"], "hits": [],
                                                    "error": None})
        if row["error"] is not None:
            entry["error"] = row["error"]
            continue
        if row["label"] is None or row["confidence"] is None or row["confidence"] < min_confidence:
            continue
        if wanted is not None and row["category"] not in wanted:
            continue
        # Equal confidences (a label and its parents): the most specific label first.
        entry["hits"].append((row["confidence"], row.get("taxonomy_level") or 0, row["category"], row["label"]))
    rows = []
    for entry in images.values():
        hits = sorted(entry["hits"], reverse=True)
        reasons = [f"{category}: {label} ({confidence:.0f}%)" if category != label else f"{label} ({confidence:.0f}%)"
                   for confidence, _, category, label in hits]
        if entry["error"] is not None:
            reasons.append(f"not screened: {entry['error']}")
        rows.append({"image_id": entry["image_id"], "path": entry["path"],
                     "flagged": bool(hits) or entry["error"] is not None, "reasons": reasons,
                     "max_confidence": hits[0][0] if hits else None, "error": entry["error"]})
    return pa.Table.from_pylist(rows, schema=SCREEN_SCHEMA)


def _screen(screen) -> pa.Table:
    from ..io.tables import to_arrow

    table = to_arrow(screen)
    missing = [n for n in ("image_id", "path", "flagged") if n not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the table lacks columns {missing}; pass the result of screen_images()")
    if "reasons" not in table.column_names and "reasons_text" in table.column_names:
        # From R, where list columns do not travel: the reasons joined by "; ".
        reasons = [[] if t is None or t == "" else t.split("; ") for t in table["reasons_text"].to_pylist()]
        table = table.drop_columns(["reasons_text"]).append_column("reasons", pa.array(reasons, pa.list_(pa.string())))
    return table


SCREENING_LAYOUT = Layout(pad=8, caption=30, header=24, heading_y=6, min_width=360, footer=16)
FLAG_RED = (200, 0, 0)


def screening_sheet(screen, out=None, *, blur: float = 0.12, blur_all: bool = False, thumb_size: int = 128,
                    columns: int = 8, max_images: int = 400):
    """A contact sheet of a screen_images() table: every image a thumbnail, flagged ones blurred beyond
    recognition, framed in red and captioned with their first reason; the others sharp (or blurred too, with
    blur_all=True), so that a person can check the flags without seeing what they flag.

    blur: the blur's radius as a share of the thumbnail's side (0.12: colours and rough shapes only).
    Returns the Pillow image; saves it to `out` (.png or .jpg, atomically) when given. Images beyond max_images are
    counted in the caption, not drawn. Raises ImagesAsDataError for a table without image_id, path and flagged, an
    option out of range, or another suffix of `out`.
    """
    table = _screen(screen)
    blur = check_number("blur", blur, 0, 1)
    thumb_size = int(check_number("thumb_size", thumb_size, 16, 1024, integer=True))
    columns = int(check_number("columns", columns, 1, 100, integer=True))
    rows = table.to_pylist()
    shown = rows[:int(max_images)]
    tiles = [Tile(row["path"], str(row["image_id"]),
                  note=shorten((row.get("reasons") or [""])[0], thumb_size) if row["flagged"] else None,
                  note_colour=FLAG_RED, frame=FLAG_RED if row["flagged"] else None,
                  blur=blur if (row["flagged"] or blur_all) else 0.0)
             for row in shown]
    flagged = sum(1 for r in rows if r["flagged"])
    more = len(rows) - len(shown)
    sheet = contact_picture(f"{flagged} of {len(rows)} images flagged (blurred, red frame); nothing was deleted",
                            [Line(tiles)], thumb_size=thumb_size, columns=columns, layout=SCREENING_LAYOUT,
                            footer=f"… {more} more images not drawn (max_images={max_images})" if more else None)
    if out is not None:
        save_picture(sheet, out, "screening sheet")
    return sheet


def coding_sheet(screen, out=None, *, variables=("label",), show_flagged: bool = False) -> pa.Table:
    """The sheet annotators fill in: image_id, path and an empty column for each variable to code, one row per
    image — without the flagged images unless show_flagged=True (then with a `flagged` column and the reasons,
    so that coders are warned before they open one).

    screen: a screen_images() table (or any table with image_id, path and flagged).
    out: write the sheet to this .csv or .parquet file (atomically) as well.
    Returns the sheet. Flagged images are only left out of the sheet: no file is deleted or moved.
    """
    table = _screen(screen)
    variables = [variables] if isinstance(variables, str) else list(variables or [])
    clash = [v for v in variables if v in ("image_id", "path", "flagged", "reasons")]
    if clash or not all(isinstance(v, str) and v for v in variables):
        raise ImagesAsDataError(f"{setting('variables', variables)}: give names of the columns coders fill in, other than "
                                f"image_id, path, flagged and reasons{f' (not {listing(clash)})' if clash else ''}",
                                what="option", option="variables", value=variables)
    rows = table.to_pylist()
    kept = [r for r in rows if show_flagged or not r["flagged"]]
    images = pa.table({"image_id": pa.array([r["image_id"] for r in kept], pa.string()),
                       "path": pa.array([r["path"] for r in kept], pa.string())})
    extra = {}
    if show_flagged:
        extra["flagged"] = pa.array([bool(r["flagged"]) for r in kept], pa.bool_())
        extra["warning"] = pa.array(["; ".join(r.get("reasons") or []) if r["flagged"] else None for r in kept],
                                    pa.string())
    sheet = coding_table(images, variables, extra=extra)
    if out is not None:
        write_sheet(sheet, out)
    return sheet
