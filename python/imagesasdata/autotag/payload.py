"""The bytes sent to Rekognition: the file itself when the service accepts it, else a copy made to fit, in memory.

Rekognition takes JPEG or PNG only, at most 5 MB of image bytes, 80 to 10,000 pixels per side (Guidelines and
quotas in Amazon Rekognition, https://docs.aws.amazon.com/rekognition/latest/dg/limits.html; botocore's model caps
ImageBlob at 5,242,880 bytes). Anything else would be refused after a round trip, so it is fixed here first:
other formats are converted, large images are downscaled and re-encoded, tiny ones are enlarged. The file on disk
is never changed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import BadImageError
from ..io.images import open_rgb

MAX_BYTES = 5 * 1024 * 1024
MIN_SIDE = 80
MAX_SIDE = 10_000
SENT_AS_IS = ("JPEG", "PNG")
JPEG_QUALITY = 90


@dataclass
class Payload:
    """Image bytes ready for the service, with what was done to them (note is None when the file went as it is)."""

    data: bytes
    format: str
    width: int
    height: int
    note: str | None = None

    def describe(self) -> dict:
        """What was sent, for the response cache (never the bytes themselves)."""
        return {"format": self.format, "width": self.width, "height": self.height, "bytes": len(self.data),
                "note": self.note}


def prepare_image(path, max_bytes: int = MAX_BYTES, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> Payload:
    """The file's bytes when Rekognition accepts them as they are; otherwise a converted, resized copy.

    Raises BadImageError for files that cannot be read or cannot be made to fit (e.g. a 20000×50 strip).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, "file not found; check the path")
    except OSError as error:
        raise BadImageError(path, f"cannot be read ({error.strerror or error})")
    if not raw:
        raise BadImageError(path, "empty file (0 bytes); the download or copy probably failed — remove it or fetch it again")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind, (width, height) = probe.format, probe.size
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image Pillow can read (supported: JPEG, PNG, GIF, BMP, TIFF, WebP, PGM/PPM)")
    except Image.DecompressionBombError as error:
        raise BadImageError(path, f"refused as a possible decompression bomb ({error})")
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImageError(path, f"corrupt or truncated image data ({error})")
    fits = len(raw) <= max_bytes and min(width, height) >= min_side and max(width, height) <= max_side
    if kind in SENT_AS_IS and fits:
        # Decode once so that a truncated file is reported here, free, rather than by the service, per call.
        open_rgb(path)
        return Payload(raw, kind, width, height)
    return _refit(path, kind, len(raw), max_bytes, min_side, max_side)


def _refit(path: Path, kind: str, size: int, max_bytes: int, min_side: int, max_side: int) -> Payload:
    image = open_rgb(path)   # EXIF orientation applied, any mode to RGB: the service sees what a viewer shows
    width, height = image.size
    scale = min(1.0, max_side / max(width, height))
    if min(width, height) * scale < min_side:
        scale = min_side / min(width, height)
        if max(width, height) * scale > max_side:
            raise BadImageError(path, f"{width}×{height} pixels cannot fit Rekognition's limits ({min_side} to "
                                      f"{max_side} pixels per side); crop it to a less extreme shape")
    notes = []
    if kind not in SENT_AS_IS:
        notes.append(f"converted from {kind or 'an unknown format'}")
    # Lossless PNG for converted drawings and scans when it fits; JPEG otherwise, shrinking until it fits.
    form = "PNG" if kind != "JPEG" else "JPEG"
    for _attempt in range(12):
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image if new_size == image.size else image.resize(new_size, Image.LANCZOS)
        data = _encode(resized, form)
        if len(data) <= max_bytes:
            if new_size != (width, height):
                notes.append(f"resized from {width}×{height} to {new_size[0]}×{new_size[1]}")
            if size > max_bytes:
                notes.append(f"{size / 2**20:.1f} MB file re-encoded to {len(data) / 2**20:.1f} MB")
            return Payload(data, form, new_size[0], new_size[1], "; ".join(notes) or f"re-encoded as {form}")
        if form == "PNG":
            form = "JPEG"     # a photo stored losslessly: JPEG is the usual way to make it small
            continue
        shrink = math.sqrt(max_bytes / len(data)) * 0.95
        if min(new_size) * shrink < min_side:
            break
        scale *= shrink
    raise BadImageError(path, f"cannot be made smaller than {max_bytes / 2**20:.0f} MB without going under "
                              f"{min_side} pixels a side; Rekognition cannot take it")


def _encode(image: Image.Image, form: str) -> bytes:
    buffer = io.BytesIO()
    if form == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()
