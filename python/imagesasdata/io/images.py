"""Reading images from disk: every supported format becomes an 8-bit RGB Pillow image, or a BadImageError.

Grey, CMYK, 16-bit, palette and transparent images become RGB; EXIF orientation is applied; animated GIFs give
their first frame; Pillow's decompression-bomb guard is enforced as an error, not a warning.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import BadImageError, ImagesAsDataError

# Extensions we read. PGM/PPM/PBM are the netpbm family (the ORL faces are PGM).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)

# Transparent pixels are composited onto white: logos and screenshots shared online expect a light page.
TRANSPARENT_BACKGROUND = (255, 255, 255)

# A truncated JPEG must be reported, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path) -> bool:
    """True when the file name has an image extension we can read (the content is checked when decoding)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """Image files under `folder`, sorted, and the other (non-image) files found beside them.

    Hidden files and folders (".DS_Store", ".ipynb_checkpoints") are ignored altogether. Everything else with an
    image extension is listed, even when it cannot be an image — a broken link, a link in a loop, a folder named
    x.jpg, a name that is not valid UTF-8 — so that it becomes a row with the reason instead of vanishing.
    """
    folder = Path(folder)
    images, others = [], []
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, dirs, files in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        images += [Path(root) / d for d in dirs if is_image_file(d)]   # a folder named x.jpg: listed, and searched
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if is_image_file(path):
                images.append(path)
            elif os.path.isfile(path):
                others.append(path)
    return sorted(images), sorted(others)


def path_text(path) -> str:
    """A path as text that Arrow, Parquet and R can hold. A name that is not valid UTF-8 (a file copied from an
    old Windows or Mac disk) keeps its odd bytes as backslash escapes, e.g. 'caf\\xe9.jpg'; open_rgb() recognises
    such a name and says what is wrong with it."""
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def _undecodable_original(path: str) -> bytes | None:
    """The bytes name of an existing file whose name path_text() escaped, or None."""
    if "\\x" not in path:
        return None
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), path.encode("utf-8"))
    return raw if raw != path.encode("utf-8") and os.path.lexists(raw) else None


def unusable_file(path: Path) -> str | None:
    """Why `path` cannot be an image file before it is even opened (missing, a link in a loop, a folder, not
    readable), or None."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        original = _undecodable_original(str(path))
        if original is not None:
            return ("its name is not valid UTF-8 (bytes " + repr(os.path.basename(original)) + "); rename the file "
                    "to a UTF-8 name (e.g. `convmv -f latin1 -t utf8 --notest`) and run again")
        if os.path.islink(path):
            return f"a broken symbolic link (to {path_text(os.readlink(path))!r}); fix or remove the link"
        return "file not found; check the path (relative paths are resolved from the table's folder)"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link in a loop (it points back to itself); fix or remove the link"
        return f"cannot be read ({error.strerror or error}); check the file's permissions"
    if stat.S_ISDIR(status.st_mode):
        return "a folder, not an image file (its name ends like an image's); rename it or list the files inside"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file (a device, socket or pipe)"
    if status.st_size == 0:
        return "empty file (0 bytes); the download or copy probably failed — remove it or fetch it again"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied); check the file's permissions (chmod a+r)"
    return None


def open_rgb(path, draft_size: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode `path`. Returns a fully loaded 8-bit RGB Pillow image.

    draft_size: when the image will be shrunk to about this many pixels on its shorter side, JPEGs are decoded
    at a reduced scale (Pillow's draft mode), which is several times faster on large photos.
    max_pixels: larger images are refused as decompression bombs (default: Pillow's limit, ~89 megapixels).
    Raises BadImageError saying why the file cannot be used.
    """
    path = Path(path)
    problem = unusable_file(path)
    if problem:
        raise BadImageError(path_text(path), problem)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if limit is not None and image.width * image.height > limit:
                    raise Image.DecompressionBombError(f"{image.width * image.height} pixels")
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)
                if draft_size and image.format == "JPEG":
                    _draft(image, draft_size)
                image.load()
                image = ImageOps.exif_transpose(image)
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImageError(
            path,
            f"refused as a possible decompression bomb ({error}); if the image is genuine, raise the limit "
            "with max_pixels=",
        )
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image Pillow can read (supported: JPEG, PNG, GIF, BMP, TIFF, WebP, PGM/PPM)")
    except PermissionError as error:
        raise BadImageError(path, f"cannot be read ({error.strerror}); check the file's permissions")
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated", "broken data stream").
        raise BadImageError(path, f"corrupt or truncated image data ({error})")


def _draft(image: Image.Image, target: int) -> None:
    """Ask the JPEG decoder for the smallest scale whose shorter side still covers `target` pixels."""
    short = min(image.size)
    if short <= target:
        return
    scale = short / target
    image.draft("RGB", (max(1, int(image.width / scale)), max(1, int(image.height / scale))))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency onto white, 16-bit and float grey rescaled, CMYK converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes: the identity of an image in run directories and caches."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_folder(folder) -> Path:
    """The folder as a Path, or an error saying it does not exist."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise ImagesAsDataError(f"{folder}: no such folder; check the path", what="file", path=str(folder))
    if not folder.is_dir():
        raise ImagesAsDataError(f"{folder}: expected a folder of images, got a file", what="file", path=str(folder))
    return folder
