"""Text in images (the book's section 1.2: memes, screenshots, posters, magazine covers) as data, on this machine.

    ocr_words(images)     one row per word: its text, confidence and box, in reading order
    ocr_text(words)       one row per image: the text (lines joined by newlines), ready for text-as-data tools
    ocr_languages()       the Tesseract language packs installed here

The engine is Tesseract 5 (Debian's `tesseract-ocr`, language packs `tesseract-ocr-<lang>`), called through
pytesseract: an LSTM recogniser maintained for 20 years, with models for 100+ languages installed by the system's
package manager, nothing downloaded at run time, and no torch (this is a corpus-preparation step).

Photos are not pages. Each image is read as grey (Tesseract 5 itself re-reads a line inverted when it reads it
badly, so white text on dark bands is found too); on request it is read again, inverted or as its near-white
pixels only ('bright': the white, black-outlined letters of memes), and the readings are merged, keeping the more
confident word where they overlap. Words below a confidence (photos' textures read as nonsense words) are
dropped, and the words are put back in reading order (top to bottom, left to right).
An unreadable image, a language pack that is not installed (per-image languages), or a time-out is a row with
its error; the run goes on.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache

import pyarrow as pa

from ..errors import BadImageError, ImagesAsDataError, check_number, did_you_mean, setting
from ..schema import render
from ..io.images import open_rgb

# Page segmentation modes by name (tesseract --help-psm): "sparse" finds scattered text in no particular layout
# (memes, posters, screenshots with pictures); "auto" expects the columns and paragraphs of a page.
LAYOUTS = {"sparse": 11, "auto": 3, "block": 6, "line": 7, "word": 8}
READINGS = ("original", "inverted", "bright")
BRIGHT_LEVEL = 230   # grey level above which a pixel counts as the white fill of a meme's letters
WORD_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("languages", pa.string()),
    ("word_id", pa.int32()),            # reading order within the image, 1 = first
    ("line", pa.int32()),               # line number within the image, top to bottom
    ("word", pa.string()),
    ("confidence", pa.float64()),       # Tesseract's word confidence, 0–100
    ("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64()),   # pixels
    ("reading", pa.string()),           # which reading found it: "original" or "inverted"
    ("error", pa.string()),
])
TEXT_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("languages", pa.string()), ("text", pa.string()),
    ("words", pa.int32()), ("mean_confidence", pa.float64()), ("error", pa.string()),
])


def _pytesseract():
    try:
        import pytesseract
    except ImportError:
        raise ImagesAsDataError("OCR needs pytesseract: pip install 'imagesasdata[beyond]' (and Debian's "
                                "tesseract-ocr: apt-get install tesseract-ocr)", what="missing_extra", extra="beyond") from None
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise ImagesAsDataError("OCR needs the tesseract program: apt-get install tesseract-ocr (Debian/Ubuntu), "
                                "brew install tesseract (macOS), or set TESSERACT_CMD to its path")
    return pytesseract


@lru_cache(maxsize=4)
def _installed(command: str) -> tuple[str, ...]:
    pytesseract = _pytesseract()
    return tuple(sorted(pytesseract.get_languages(config="")))


def ocr_languages() -> list[str]:
    """Return the Tesseract language codes installed on this machine (e.g. ['deu', 'eng', 'osd']). Raises
    ImagesAsDataError when pytesseract or the tesseract program is missing."""
    pytesseract = _pytesseract()
    return list(_installed(pytesseract.pytesseract.tesseract_cmd))


def _package(code: str) -> str:
    return "tesseract-ocr-" + code.lower().replace("_", "-")


def missing_languages(languages: str) -> list[str]:
    """The codes of a 'eng+deu' language string whose packs are not installed."""
    pytesseract = _pytesseract()
    installed = _installed(pytesseract.pytesseract.tesseract_cmd)
    return [code for code in languages.split("+") if code and code not in installed]


def _language_problem(languages: str) -> str | None:
    missing = missing_languages(languages)
    if not missing:
        return None
    pytesseract = _pytesseract()
    installed = _installed(pytesseract.pytesseract.tesseract_cmd)
    hint = did_you_mean(missing[0], installed)
    return (f"Tesseract language pack{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not installed (installed: {', '.join(installed) or 'none'}).{hint} "
            f"Install with: apt-get install {' '.join(_package(m) for m in missing)}")


def _language_string(languages) -> str:
    if isinstance(languages, (list, tuple)):
        languages = "+".join(str(code) for code in languages)
    text = str(languages or "").strip()
    if not text or any(not part.replace("_", "").isalnum() for part in text.split("+")):
        raise ImagesAsDataError(f"{setting('languages', languages)}: give Tesseract language codes, e.g. 'eng', 'deu' or "
                                "['eng', 'deu'] (see ocr_languages())",
                                what="option", option="languages", value=languages)
    return text


def ocr_words(images, *, languages="eng", language_column: str | None = None, layout: str = "auto",
              readings=("original",), min_side: int = 0, min_confidence: float = 50.0, timeout: float = 120,
              num_workers: int | None = None, progress: bool = True) -> pa.Table:
    """Read the text in images: one row per word, with its confidence and box, in reading order.

    images: a folder, a list of files, a CSV/Parquet table or data frame with a path column, or an image_table().
    languages: Tesseract language code(s) for every image — 'eng', 'deu', 'eng+deu' or ['eng', 'deu'] (see
      ocr_languages(); more from Debian's tesseract-ocr-<code> packages). A pack that is not installed is an
      ImagesAsDataError saying how to install it.
    language_column: a column of the images table giving each image's languages instead (e.g. detected from the
      post's metadata); an image whose pack is missing becomes a row with that error, and the others are read.
    layout: 'auto' (Tesseract finds blocks and lines: captions, screenshots, covers; the default), 'sparse' (as
      much text as possible in no particular order: finds more scattered words, and more nonsense in photos),
      'block' (one block of text), 'line' or 'word'.
    readings: how each image is read, the words of all readings merged (the most confident where they overlap):
      'original' (the default; Tesseract inverts badly read lines itself), 'inverted' (the whole image inverted:
      occasionally finds a word more on dark covers), 'bright' (only near-white pixels, as black on white: the
      white, black-outlined letters of memes). Each reading costs one Tesseract call.
    min_side: enlarge images whose shorter side is below this many pixels (at most 3×) before reading; helps
      when letters are under about 15 pixels high, hurts when they are already large (default 0: never).
    min_confidence: drop words below this confidence (0–100). Photos give Tesseract textures that it reads as
      short nonsense words of low confidence; 50 removes most of them and few real words.
    timeout: seconds allowed per image (a row with an error after that).
    Returns columns image_id, path, languages, word_id, line, word, confidence, left, top, width, height (pixels
    of the original image), reading, error. An image without text is one row with a null word.
    """
    from tqdm.auto import tqdm

    from ..io.threads import map_in_threads

    pytesseract = _pytesseract()
    if layout not in LAYOUTS:
        raise ImagesAsDataError(f"{setting('layout', layout)}: choose one of {', '.join(LAYOUTS)}.{did_you_mean(layout, LAYOUTS)}",
                                what="option", option="layout", value=layout)
    readings = (readings,) if isinstance(readings, str) else tuple(readings or ())
    unknown = [r for r in readings if r not in READINGS]
    if unknown or not readings:
        raise ImagesAsDataError(f"{setting('readings', list(readings))}: choose one or more of {', '.join(READINGS)}",
                                what="option", option="readings", value=list(readings))
    min_side = int(check_number("min_side", min_side, 0, 20000))
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    timeout = check_number("timeout", timeout, 1)
    table = _images(images)
    if language_column is not None:
        if language_column not in table.column_names:
            raise ImagesAsDataError(f"{setting('language_column', language_column)} is not a column of the images table "
                                    f"(columns: {', '.join(table.column_names)}).{did_you_mean(language_column, table.column_names)}",
                                    what="option", option="language_column", value=language_column)
        per_image = [None if v is None else str(v) for v in table[language_column].to_pylist()]
        fallback = _language_string(languages)
        per_image = [v.strip() if v and v.strip() else fallback for v in per_image]
    else:
        fallback = _language_string(languages)
        problem = _language_problem(fallback)
        if problem:
            raise ImagesAsDataError(f"{setting('languages', languages)}: {problem}",
                                    what="option", option="languages", value=languages)
        per_image = [fallback] * table.num_rows
    psm = LAYOUTS[layout]

    def work(item):
        image_id, path, langs = item
        base = {"image_id": image_id, "path": path, "languages": langs}
        try:
            problem = _language_problem(langs) if language_column is not None else None
            if problem:
                return [dict(base, error=render(problem))]   # a table holds plain text, never marks
            image = open_rgb(path)
            words = _read(pytesseract, image, langs, psm, readings, min_side, timeout)
        except BadImageError as error:
            return [dict(base, error=error.reason)]
        except _OCRFailed as error:
            return [dict(base, error=str(error))]
        finally:
            bar.update(1)
        words = [w for w in words if w["confidence"] >= min_confidence]
        return [dict(base, word_id=k, **w) for k, w in enumerate(_reading_order(words), start=1)] or [base]

    items = list(zip(table["image_id"].to_pylist(), table["path"].to_pylist(), per_image))
    with tqdm(total=len(items), desc="reading text", unit="img", disable=not progress, leave=False) as bar:
        results = map_in_threads(work, items, workers=num_workers)
    return pa.Table.from_pylist([{n: r.get(n) for n in WORD_SCHEMA.names} for rows in results for r in rows],
                                schema=WORD_SCHEMA)


class _OCRFailed(Exception):
    pass


def _read(pytesseract, image, languages: str, psm: int, readings, min_side: int, timeout: float) -> list[dict]:
    from PIL import Image, ImageOps

    grey = image.convert("L")
    scale = 1.0
    if min_side and min(grey.size) < min_side:
        scale = min(3.0, min_side / min(grey.size))
        grey = grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.Resampling.LANCZOS)
    words = []
    for reading in readings:
        if reading == "inverted":
            picture = ImageOps.invert(grey)
        elif reading == "bright":
            picture = grey.point(lambda v: 0 if v >= BRIGHT_LEVEL else 255)
        else:
            picture = grey
        try:
            data = pytesseract.image_to_data(picture, lang=languages, config=f"--psm {psm}",
                                             output_type=pytesseract.Output.DICT, timeout=timeout)
        except RuntimeError as error:       # pytesseract's time-out
            raise _OCRFailed(f"Tesseract took longer than timeout={timeout:g} s on this image ({error})") from None
        except pytesseract.TesseractError as error:
            raise _OCRFailed(f"Tesseract failed: {str(error.message).strip() or error}") from None
        for i, text in enumerate(data["text"]):
            confidence = float(data["conf"][i])
            # Marks without a letter or digit ('—', '=', '“>') are, in photos, almost always texture.
            if data["level"][i] != 5 or not any(ch.isalnum() for ch in text or "") or confidence < 0:
                continue
            words.append({"word": text.strip(), "confidence": confidence, "left": data["left"][i] / scale,
                          "top": data["top"][i] / scale, "width": data["width"][i] / scale,
                          "height": data["height"][i] / scale, "reading": reading})
    return _merge(words) if len(readings) > 1 else words


def _overlap(a: dict, b: dict) -> float:
    """Intersection over the smaller box: two readings of one word overlap almost entirely."""
    width = min(a["left"] + a["width"], b["left"] + b["width"]) - max(a["left"], b["left"])
    height = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min(a["width"] * a["height"], b["width"] * b["height"])
    return width * height / smaller if smaller > 0 else 0.0


def _merge(words: list[dict]) -> list[dict]:
    """Keep the most confident reading of each place in the image (a word read in both passes, once)."""
    kept: list[dict] = []
    for word in sorted(words, key=lambda w: -w["confidence"]):
        if all(_overlap(word, other) < 0.5 for other in kept):
            kept.append(word)
    return kept


def _reading_order(words: list[dict]) -> list[dict]:
    """Words grouped into lines (their vertical centres within half a word's height) top to bottom, each line left
    to right; adds `line`."""
    lines: list[list[dict]] = []
    for word in sorted(words, key=lambda w: w["top"] + w["height"] / 2):
        centre = word["top"] + word["height"] / 2
        if lines:
            last = lines[-1]
            last_centre = sum(w["top"] + w["height"] / 2 for w in last) / len(last)
            last_height = sum(w["height"] for w in last) / len(last)
            if abs(centre - last_centre) <= 0.5 * max(last_height, word["height"]):
                last.append(word)
                continue
        lines.append([word])
    ordered = []
    for number, line in enumerate(lines, start=1):
        ordered += [dict(w, line=number) for w in sorted(line, key=lambda w: w["left"])]
    return ordered


def ocr_text(words, *, min_confidence: float | None = None, **options) -> pa.Table:
    """One row per image with its text: words joined by spaces, lines by newlines, in reading order.

    words: an ocr_words() table; or images (anything ocr_words() takes), which are read first with `options`.
    min_confidence: leave out words below this confidence (0–100); default: ocr_words()'s 50 when images are
      read here, no further filtering of a words table.
    Returns columns image_id, path, languages, text (null when no word was read), words (count),
    mean_confidence, error — ready for quanteda, tidytext or scikit-learn.
    """
    if not (isinstance(words, pa.Table) and {"word", "line", "word_id"} <= set(words.column_names)):
        read = {} if min_confidence is None else {"min_confidence": min_confidence}
        words = ocr_words(words, **read, **options)
    elif options:
        raise ImagesAsDataError(f"options {', '.join(options)} apply when ocr_text() reads images; the words table "
                                "was already read")
    min_confidence = 0.0 if min_confidence is None else check_number("min_confidence", min_confidence, 0, 100)
    images: dict = {}
    for row in words.to_pylist():
        entry = images.setdefault((row["image_id"], row["path"]), {
            "image_id": row["image_id"], "path": row["path"], "languages": row["languages"], "lines": {},
            "confidences": [], "error": row["error"]})
        if row["word"] is None or row["confidence"] < min_confidence:
            continue
        entry["lines"].setdefault(row["line"], []).append((row["word_id"], row["word"]))
        entry["confidences"].append(row["confidence"])
    rows = []
    for entry in images.values():
        lines = [" ".join(w for _, w in sorted(entry["lines"][n])) for n in sorted(entry["lines"])]
        confidences = entry["confidences"]
        rows.append({"image_id": entry["image_id"], "path": entry["path"], "languages": entry["languages"],
                     "text": "\n".join(lines) if lines else None, "words": len(confidences) if entry["error"] is None else None,
                     "mean_confidence": sum(confidences) / len(confidences) if confidences else None,
                     "error": entry["error"]})
    return pa.Table.from_pylist(rows, schema=TEXT_SCHEMA)


def _images(images) -> pa.Table:
    from ..data.table import image_table

    if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names):
        return images
    return image_table(images)


TESSERACT_ENVIRONMENT = "TESSERACT_CMD"
if os.environ.get(TESSERACT_ENVIRONMENT):   # where tesseract is not on PATH (e.g. a Windows install)
    try:
        import pytesseract as _configured

        _configured.pytesseract.tesseract_cmd = os.environ[TESSERACT_ENVIRONMENT]
    except ImportError:
        pass
