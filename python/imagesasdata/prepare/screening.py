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

from ..errors import BadImageError, ImagesAsDataError, check_number, listing
from ..io.images import open_rgb

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


def blurred_thumbnail(path, size: int, blur: float):
    """A thumbnail of at most size × size, blurred with a Gaussian of radius `blur` × its longer side (0: sharp),
    or None when unreadable."""
    from PIL import Image, ImageFilter

    try:
        image = open_rgb(path, draft_size=size)
    except BadImageError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    if blur > 0:
        # Shrink first, then blur: a 1/8-size blur radius leaves colours and rough shapes, no recognisable detail.
        image = image.filter(ImageFilter.GaussianBlur(radius=blur * max(image.size)))
    return image


def screening_sheet(screen, out=None, *, blur: float = 0.12, blur_all: bool = False, thumb_size: int = 128,
                    columns: int = 8, max_images: int = 400):
    """A contact sheet of a screen_images() table: every image a thumbnail, flagged ones blurred beyond
    recognition, framed in red and captioned with their first reason; the others sharp (or blurred too, with
    blur_all=True), so that a person can check the flags without seeing what they flag.

    blur: the blur's radius as a share of the thumbnail's side (0.12: colours and rough shapes only).
    Returns the Pillow image; saves it to `out` (.png or .jpg) when given. Images beyond max_images are counted
    in the caption, not drawn.
    """
    from PIL import Image, ImageDraw

    from .dedupe.sheets import _font, _shorten

    table = _screen(screen)
    blur = check_number("blur", blur, 0, 1)
    thumb_size = int(check_number("thumb_size", thumb_size, 16, 1024, integer=True))
    columns = int(check_number("columns", columns, 1, 100, integer=True))
    rows = table.to_pylist()
    shown = rows[:int(max_images)]
    font = _font(11)
    pad, caption, header = 8, 30, 24
    cell_w, cell_h = thumb_size + pad, thumb_size + caption + pad
    lines = max(1, -(-len(shown) // columns))
    width = max(360, pad + min(columns, max(1, len(shown))) * cell_w)
    height = header + lines * cell_h + pad + (16 if len(rows) > len(shown) else 0)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    flagged = sum(1 for r in rows if r["flagged"])
    draw.text((pad, 6), f"{flagged} of {len(rows)} images flagged (blurred, red frame); nothing was deleted",
              fill="black", font=font)
    for k, row in enumerate(shown):
        x, y = pad + (k % columns) * cell_w, header + (k // columns) * cell_h
        thumb = blurred_thumbnail(row["path"], thumb_size, blur if (row["flagged"] or blur_all) else 0.0)
        if thumb is None:
            draw.rectangle([x, y, x + thumb_size - 1, y + thumb_size - 1], fill=(220, 220, 220))
            draw.text((x + 6, y + thumb_size // 2 - 6), "unreadable", fill="black", font=font)
        else:
            sheet.paste(thumb, (x + (thumb_size - thumb.width) // 2, y + (thumb_size - thumb.height) // 2))
        if row["flagged"]:
            draw.rectangle([x - 2, y - 2, x + thumb_size + 1, y + thumb_size + 1], outline=(200, 0, 0), width=3)
        draw.text((x, y + thumb_size + 2), _shorten(str(row["image_id"]), thumb_size), fill="black", font=font)
        reasons = row.get("reasons") or []
        if row["flagged"] and reasons:
            draw.text((x, y + thumb_size + 14), _shorten(reasons[0], thumb_size), fill=(200, 0, 0), font=font)
    if len(rows) > len(shown):
        draw.text((pad, height - 18), f"… {len(rows) - len(shown)} more images not drawn (max_images={max_images})",
                  fill="black", font=font)
    if out is not None:
        _save_picture(sheet, out, "screening sheet")
    return sheet


def _save_picture(picture, out, what: str) -> None:
    from ..io.tables import atomic_path

    out = Path(out)
    kind = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower())
    if kind is None:
        raise ImagesAsDataError(f"{out}: save the {what} as .png or .jpg")
    with atomic_path(out) as temporary:
        picture.save(temporary, format=kind)


def coding_sheet(screen, out=None, *, variables=("label",), show_flagged: bool = False) -> pa.Table:
    """The sheet annotators fill in: image_id, path and an empty column for each variable to code, one row per
    image — without the flagged images unless show_flagged=True (then with a `flagged` column and the reasons,
    so that coders are warned before they open one).

    screen: a screen_images() table (or any table with image_id, path and flagged).
    out: write the sheet to this .csv or .parquet file (atomically) as well.
    Returns the sheet. Flagged images are only left out of the sheet: no file is deleted or moved.
    """
    from ..io.tables import write_table

    table = _screen(screen)
    variables = [variables] if isinstance(variables, str) else list(variables or [])
    clash = [v for v in variables if v in ("image_id", "path", "flagged", "reasons")]
    if clash or not all(isinstance(v, str) and v for v in variables):
        raise ImagesAsDataError(f"variables={variables!r}: give names of the columns coders fill in, other than "
                                f"image_id, path, flagged and reasons{f' (not {listing(clash)})' if clash else ''}")
    rows = table.to_pylist()
    kept = [r for r in rows if show_flagged or not r["flagged"]]
    columns = {"image_id": pa.array([r["image_id"] for r in kept], pa.string()),
               "path": pa.array([r["path"] for r in kept], pa.string())}
    if show_flagged:
        columns["flagged"] = pa.array([bool(r["flagged"]) for r in kept], pa.bool_())
        columns["warning"] = pa.array(["; ".join(r.get("reasons") or []) if r["flagged"] else None for r in kept],
                                      pa.string())
    for name in variables:
        columns[name] = pa.array([None] * len(kept), pa.string())
    sheet = pa.table(columns)
    if out is not None:
        write_table(sheet, out)
    return sheet
