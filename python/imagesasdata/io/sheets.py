"""Sheets people look at and fill in, written one way for every stage that needs them: duplicate groups
(prepare/dedupe), screening (prepare/screening.py), clusters (explore/sheets.py), selection sheets
(prepare/selection_sheets.py) and gold samples (analysis/gold.py).

    thumbnail(path, size)                 an image shrunk to fit size × size (optionally blurred)
    contact_picture(heading, lines, ...)  a contact sheet as one picture: thumbnails captioned, framed, in lines
    save_picture(picture, out, what)      a picture saved atomically as .png or .jpg
    contact_page(title, tiles, ...)       a contact sheet as an HTML page with the thumbnails embedded
    coding_table(images, blank)           the table coders fill in: image_id, path, empty columns
    write_sheet(sheet, path, ...)         that table written atomically (CSV or Parquet), with its HTML view

Pillow only, no torch; every file is written through io/tables.atomic_path, so a kill leaves the old file or the
new one. An unreadable image is drawn as a grey square marked "unreadable": one bad file never spoils a sheet.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..errors import BadImageError, ImagesAsDataError
from .images import open_rgb
from .tables import atomic_path, write_table

PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
UNREADABLE_GREY = (220, 220, 220)


# ------------------------------------------------------------------------------------------ thumbnails

def thumbnail(path, size: int, *, blur: float = 0.0):
    """Return the image at `path` shrunk to fit size × size (aspect kept; JPEGs decoded at reduced scale first),
    blurred with a Gaussian of radius `blur` × its longer side when blur > 0 (0.12: colours and rough shapes only).

    Raises BadImageError when the file cannot be read as an image.
    """
    from PIL import Image, ImageFilter

    image = open_rgb(path, draft_size=size)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    if blur > 0:
        # Shrink first, then blur: the radius is relative to what is shown, so the blur hides the same at any size.
        image = image.filter(ImageFilter.GaussianBlur(radius=blur * max(image.size)))
    return image


def thumbnail_or_none(path, size: int, *, blur: float = 0.0):
    """Return thumbnail(path, size, blur=blur), or None when `path` is missing or not a readable image (a sheet
    draws a placeholder instead). Raises nothing for a bad file."""
    if path is None:
        return None
    try:
        return thumbnail(path, size, blur=blur)
    except (BadImageError, OSError, TypeError, ValueError):
        return None


def thumbnail_data_uri(path, size: int) -> str | None:
    """Return a thumbnail of `path` as a data: URI (JPEG, base64) to embed in an HTML page, or None when the image
    cannot be read. Raises nothing for a bad file."""
    image = thumbnail_or_none(path, size)
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def font(size: int = 11):
    """Return Pillow's default font at `size` pixels (the fixed bitmap font on Pillow < 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def shorten(text: str, pixels: int) -> str:
    """Return `text` cut to what fits under a thumbnail `pixels` wide (about 6 px a character), keeping its end
    (file names differ at the end), with "…" for what was cut."""
    limit = max(4, pixels // 6)
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


# ------------------------------------------------------------------------------------------ contact sheets as pictures

@dataclass(frozen=True)
class Tile:
    """One image on a contact sheet: its file, a caption under it (shortened to fit), an optional second line
    (`note`, in `note_colour`), an optional frame colour, and how much to blur it (see thumbnail())."""
    path: str | None
    caption: str
    note: str | None = None
    note_colour: object = "black"
    frame: tuple | None = None
    blur: float = 0.0


@dataclass(frozen=True)
class Line:
    """Tiles that start a new line of the sheet (wrapping after `columns`), under an optional title; `more` counts
    the tiles left out, written as "+N" at the line's end."""
    tiles: list
    title: str | None = None
    more: int = 0


@dataclass(frozen=True)
class Layout:
    """Spacing of a contact picture in pixels: padding, room under a thumbnail for its captions, the heading's band
    (and where its text sits), the narrowest sheet, room for a title above each line, room right of the widest line
    (for "+N"), and the footer's band."""
    pad: int = 8
    caption: int = 30
    header: int = 24
    heading_y: int = 6
    min_width: int = 360
    title: int = 0
    right: int = 0
    footer: int = 16


def contact_picture(heading: str, lines, *, thumb_size: int, columns: int, layout: Layout = Layout(),
                    footer: str | None = None, empty: str | None = None):
    """Return a contact sheet as a Pillow image: `heading` on top, then each Line of Tiles (wrapping after
    `columns`), every thumbnail centred in a thumb_size square, an unreadable one drawn as a grey square marked
    "unreadable"; `footer` (e.g. what was not drawn) at the bottom; `empty` where there are no tiles at all.
    Raises nothing for bad images."""
    from PIL import Image, ImageDraw

    lines = list(lines)
    face = font(11)
    pad, size = layout.pad, thumb_size
    cell_w, cell_h = size + pad, layout.title + size + layout.caption + pad
    rows = [max(1, math.ceil(len(line.tiles) / columns)) for line in lines]
    widest = max([len(line.tiles) for line in lines] + [1])
    width = max(layout.min_width, pad + min(columns, widest) * cell_w + layout.right)
    height = layout.header + max(1, sum(rows)) * cell_h + (layout.footer if footer else 0) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, layout.heading_y), heading, fill="black", font=face)
    if empty and not any(line.tiles for line in lines):
        draw.text((pad, layout.header + 10), empty, fill="grey", font=face)
    y = layout.header
    for line, line_rows in zip(lines, rows):
        if line.title:
            draw.text((pad, y), line.title, fill="black", font=face)
        for k, tile in enumerate(line.tiles):
            x, top = pad + (k % columns) * cell_w, y + layout.title + (k // columns) * cell_h
            _draw_tile(sheet, draw, tile, x, top, size, face)
        if line.more:
            last = y + (line_rows - 1) * cell_h
            draw.text((pad + min(columns, len(line.tiles)) * cell_w, last + layout.title + size // 2),
                      f"+{line.more}", fill="black", font=face)
        y += line_rows * cell_h
    if footer:
        draw.text((pad, height - layout.footer - 2), footer, fill="black", font=face)
    return sheet


def _draw_tile(sheet, draw, tile: Tile, x: int, top: int, size: int, face) -> None:
    image = thumbnail_or_none(tile.path, size, blur=tile.blur)
    if image is None:
        draw.rectangle([x, top, x + size - 1, top + size - 1], fill=UNREADABLE_GREY)
        draw.text((x + 6, top + size // 2 - 6), "unreadable", fill="black", font=face)
    else:
        sheet.paste(image, (x + (size - image.width) // 2, top + (size - image.height) // 2))
    if tile.frame is not None:
        draw.rectangle([x - 2, top - 2, x + size + 1, top + size + 1], outline=tile.frame, width=3)
    draw.text((x, top + size + 2), shorten(str(tile.caption), size), fill="black", font=face)
    if tile.note:
        draw.text((x, top + size + 14), tile.note, fill=tile.note_colour, font=face)


def save_picture(picture, out, what: str = "contact sheet") -> Path:
    """Save a Pillow image to `out` (.png, .jpg or .jpeg) atomically and return its path.
    Raises ImagesAsDataError for another suffix, naming `what` was being saved."""
    out = Path(out)
    kind = PICTURE_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ImagesAsDataError(f"{out}: save the {what} as .png or .jpg", path=str(out))
    with atomic_path(out) as temporary:
        picture.save(temporary, format=kind)
    return out


# ------------------------------------------------------------------------------------------ contact sheets as pages

def contact_page(title: str, heading: str, tiles, *, thumb_size: int, paragraphs=()) -> str:
    """Return an HTML page titled `title`: `heading` on top, `paragraphs` (HTML, written as given), then every Tile as a
    figure with its thumbnail embedded (a data: URI, so the page is one file) and its caption escaped; an
    unreadable image is a grey box marked "unreadable". Raises nothing for bad images."""
    cells = []
    for tile in tiles:
        uri = thumbnail_data_uri(tile.path, thumb_size) if tile.path else None
        caption = html.escape(str(tile.caption))
        picture = f'<img src="{uri}" alt="{caption}">' if uri else '<div class="missing">unreadable</div>'
        cells.append(f"<figure>{picture}<figcaption>{caption}</figcaption></figure>")
    text = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} figure{{display:inline-block;margin:6px;width:{thumb_size}px;
vertical-align:top}} img{{max-width:{thumb_size}px;max-height:{thumb_size}px}} figcaption{{font-size:12px;
word-break:break-all}} .missing{{width:{thumb_size}px;height:{thumb_size}px;background:#ddd}}</style></head>
<body><h1>{html.escape(heading)}</h1>
{text}
{"".join(cells)}
</body></html>
"""


def write_text(text: str, target) -> Path:
    """Write `text` to `target` as UTF-8, atomically, and return its path."""
    target = Path(target)
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------------ coding sheets

CODE_COLUMNS = ("code", "note")   # what coders fill in on a gold or selection sheet: the code, a remark


def coding_table(images: pa.Table, blank=CODE_COLUMNS, *, extra: dict | None = None) -> pa.Table:
    """Return the sheet coders fill in: image_id and path (as text) of `images`, in their order, then the `extra`
    columns ({name: array}, e.g. a warning), then an empty text column for each name in `blank`.
    Raises ImagesAsDataError when `images` lacks image_id or path."""
    missing = [c for c in ("image_id", "path") if c not in images.column_names]
    if missing:
        raise ImagesAsDataError(f"the images lack {', '.join(missing)}; a coding sheet needs image_id and path")
    n = images.num_rows
    columns = {"image_id": images["image_id"].cast(pa.string()), "path": images["path"].cast(pa.string())}
    columns.update(extra or {})
    for name in blank:
        columns[name] = pa.nulls(n, pa.string())
    return pa.table(columns)


def write_sheet(sheet: pa.Table, path, *, view_title: str | None = None, view_heading: str | None = None,
                paragraphs=(), thumb_size: int = 192) -> Path:
    """Write a coding sheet (coding_table()) to `path` (.csv, UTF-8, or .parquet) atomically and return its path.
    With view_title, first write its HTML view beside it (the same name, .html): the sheet's images as a contact
    page captioned by image_id, under `view_heading` (default: the title) and `paragraphs` (HTML). The view comes
    first, so that a sheet that exists always has its view. Raises ImagesAsDataError for another suffix."""
    path = Path(path)
    if view_title is not None:
        tiles = [Tile(p, i) for i, p in zip(sheet["image_id"].to_pylist(), sheet["path"].to_pylist())]
        page = contact_page(view_title, view_heading or view_title, tiles, thumb_size=thumb_size, paragraphs=paragraphs)
        write_text(page, path.with_suffix(".html"))
    return write_table(sheet, path)
