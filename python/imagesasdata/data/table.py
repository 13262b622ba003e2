"""From what the user has — a folder in the book's layout, a folder of class folders, a table, a list of files —
to one Arrow table with the columns every later stage reads: image_id, path, label, split.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, literal
from ..io.images import IMAGE_EXTENSIONS, is_image_file, list_image_files, path_text, require_folder
from ..io.tables import is_table_file, to_arrow

SPLITS = ("train", "val", "test")
# Folder and column spellings accepted for each split of the book's layout.
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
PATH_COLUMN_GUESSES = ("path", "file", "filename", "file_name", "image", "image_path", "filepath")
CORE_COLUMNS = ("image_id", "path", "label", "split")


def image_table(source, *, label: str | None = None, path: str | None = None, image_id: str | None = None,
                split: str | None = None, root=None, encoding: str = "utf-8") -> pa.Table:
    """Inventory labelled (or unlabelled) images. Returns a table with columns image_id, path, label, split;
    raises ImagesAsDataError for a source it cannot read, missing columns or no images.

    source: a folder in the book's layout (train/ and val/, optionally test/, each holding one folder per class);
      a folder of class folders (split later); a folder of images (unlabelled); a CSV/Parquet file, pandas
      DataFrame or pyarrow Table with a path column and optionally a label column; or a list of image paths.
    label, path, image_id, split: column names in a table source (defaults: "label"; the first of
      path/file/filename/image…; "image_id" and "split" when present).
    root: folder that relative paths in a table are resolved against (default: the table file's folder, or the
      working directory for in-memory tables).
    encoding: the text encoding of a CSV/TSV source (default UTF-8).
    Paths in the result are absolute. image_id is stable, whatever else is read with an image: for a folder, the
    path below that folder (s1/1.png); for a table, its image_id column (image_id=) or else the path as the
    table writes it; for a list of files, the path as written. Pass your own ids in a table to join on them.
    """
    if isinstance(source, (str, os.PathLike)) and not is_table_file(source):
        if Path(source).is_file() and is_image_file(source):
            return _from_files([source])
        return _from_folder(require_folder(source))
    if isinstance(source, (list, tuple)):
        return _from_files(source)
    if root is None and isinstance(source, (str, os.PathLike)):
        root = Path(source).expanduser().resolve().parent
    return _from_table(to_arrow(source, encoding), label=label, path=path, image_id=image_id, split=split,
                       root=Path(root) if root is not None else Path.cwd())


def _from_folder(folder: Path) -> pa.Table:
    subdirs = {d.name.lower(): d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")}
    split_dirs = {SPLIT_ALIASES[name]: d for name, d in subdirs.items() if name in SPLIT_ALIASES}
    if split_dirs:
        if "train" not in split_dirs:
            raise ImagesAsDataError(
                f"{folder}: found {', '.join(sorted(d.name for d in split_dirs.values()))}/ but no train/ folder; "
                "the book's layout is train/<class>/ and val/<class>/ (test/ optional)", what="file", path=str(folder)
            )
        rows = []
        for split_name, split_dir in sorted(split_dirs.items()):
            rows += _class_folder_rows(split_dir, folder, split_name)
    else:
        rows = _class_folder_rows(folder, folder, None)
    if not rows:
        _, others = list_image_files(folder)
        hint = f"; it holds {len(others)} other files ({listing([o.name for o in others], 5)})" if others else ""
        raise ImagesAsDataError(
            f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}){hint}", what="file",
            path=str(folder)
        )
    return _build(rows)


def _class_folder_rows(folder: Path, relative_to: Path, split_name):
    """Rows for images in class subfolders of `folder`; images directly inside it are unlabelled."""
    images, _ = list_image_files(folder)
    rows = []
    for image in images:
        parts = image.relative_to(folder).parts
        label = path_text(parts[0]) if len(parts) > 1 else None
        rows.append((path_text(image.relative_to(relative_to).as_posix()), absolute_path(image), label, split_name))
    return rows


def absolute_path(path) -> str:
    """The absolute, symlink-resolved path as text (path_text). A broken link or a link in a loop is kept as the
    link itself (nothing raises here), so that decoding names the link on that image's row."""
    given = os.path.abspath(os.path.expanduser(path))
    return path_text(os.path.realpath(given) if os.path.exists(given) else given)


def _from_files(files) -> pa.Table:
    if not files:
        raise ImagesAsDataError("no image paths given")
    return _build([(written_id(f), absolute_path(f), None, None) for f in files])


def written_id(path) -> str:
    """The image_id of a path listed by the user: the path as written (POSIX separators, ~ expanded), so that a
    file gets the same id in whatever call or batch it comes."""
    return path_text(Path(path).expanduser().as_posix())


def _from_table(table: pa.Table, *, label, path, image_id, split, root: Path) -> pa.Table:
    columns = table.column_names
    if table.num_rows == 0:
        raise ImagesAsDataError("the table has no rows; add one row per image (a path column and a label column)")
    path_column = path or next((c for c in PATH_COLUMN_GUESSES if c in columns), None)
    if path_column is None or path_column not in columns:
        raise ImagesAsDataError(
            f"no path column{f' {path!r}' if path else ''} in the table (columns: {', '.join(columns)}); "
            f"name it with path=…{did_you_mean(path, columns) if path else ''}", what="column", option="path",
            value=path, choices=columns
        )
    if label is not None and label not in columns:
        raise ImagesAsDataError(
            f"no label column {label!r} in the table (columns: {', '.join(columns)}).{did_you_mean(label, columns)}",
            what="column", option="label", value=label, choices=columns
        )
    label_column = label or ("label" if "label" in columns else None)
    raw_paths = _strings(table[path_column])
    missing = [i + 1 for i, p in enumerate(raw_paths) if p is None or p == ""]
    if missing:
        raise ImagesAsDataError(f"column {path_column!r} is empty in rows {listing(missing)}; every row needs an image path",
                                what="column", option="path", value=path_column, row=missing[0])
    paths = [absolute_path(root / Path(p).expanduser()) for p in raw_paths]
    if image_id or "image_id" in columns:
        ids = _strings(table[image_id or "image_id"])
    else:   # the path as the table writes it: the same row of the same table always gets the same id
        ids = [written_id(p) for p in raw_paths]
    labels = _strings(table[label_column]) if label_column else [None] * len(paths)
    split_column = split or ("split" if "split" in columns else None)
    splits = [_split_name(s, i) for i, s in enumerate(_strings(table[split_column]))] if split_column else [None] * len(paths)
    out = _build(list(zip(ids, paths, labels, splits)))
    used = {path_column, label_column, split_column, image_id or "image_id"}
    for name in columns:
        if name not in used and name not in CORE_COLUMNS:
            out = out.append_column(name, table[name])
    return out


def _split_name(value, row):
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key not in SPLIT_ALIASES:
        raise ImagesAsDataError(f"row {row + 1}: split {value!r} is not one of train, val, test", what="column",
                                option="split", value=value, row=row + 1, choices=["train", "val", "test"])
    return SPLIT_ALIASES[key]


def _strings(column) -> list:
    """A column as Python strings with None for missing; numbers and booleans become their text."""
    values = column.to_pylist()
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def _build(rows) -> pa.Table:
    image_ids, paths, labels, splits = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return pa.table({
        "image_id": pa.array(image_ids, pa.string()),
        "path": pa.array(paths, pa.string()),
        "label": pa.array(labels, pa.string()),
        "split": pa.array(splits, pa.string()),
    })


def natural_key(text: str):
    """Sort 's2' before 's10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def class_names(table: pa.Table) -> list[str]:
    """The classes present, in natural sort order (their order in probability columns and confusion matrices)."""
    return sorted({v for v in table["label"].to_pylist() if v is not None}, key=natural_key)


def order_classes(classes, order=None) -> list[str]:
    """The classes present in `order` (e.g. an R factor's levels) when given; it must name exactly these classes."""
    if order is None:
        return list(classes)
    missing = [c for c in classes if c not in order]
    extra = [c for c in order if c not in classes]
    if missing or extra:
        raise ImagesAsDataError(
            f"class_order {list(order)} does not match the labels' classes {list(classes)}"
            + (f": it lacks {listing(missing)}" if missing else "") + (f"; no image is labelled {listing(extra)}" if extra else "")
            + ". Give every class that has images, once (in R: drop unused factor levels with droplevels())")
    return list(order)


def choose_positive_class(classes, positive_class=None):
    """The class whose precision/recall is reported in a binary task: as given, else 'positive', else the second."""
    if len(classes) != 2:
        if positive_class is not None and positive_class not in classes:
            raise ImagesAsDataError(f"positive_class {literal(positive_class)} is not one of the classes {literal(list(classes))}",
                                    what="option", option="positive_class", value=positive_class,
                                    expected="one of the classes", choices=classes)
        return positive_class
    if positive_class is not None:
        if str(positive_class) not in classes:
            raise ImagesAsDataError(
                f"positive_class {literal(positive_class)} is not one of the classes {literal(list(classes))}."
                f"{did_you_mean(positive_class, classes)}", what="option", option="positive_class", value=positive_class,
                expected="one of the classes", choices=classes
            )
        return str(positive_class)
    return "positive" if "positive" in classes else classes[1]


def check_labeled(table: pa.Table) -> list[str]:
    """Check a table is fit to train on; return its classes. Raises ImagesAsDataError naming the rows at fault."""
    if table.num_rows == 0:
        raise ImagesAsDataError("no images to train on")
    labels = table["label"].to_pylist()
    missing = [f"row {i + 1} ({table['image_id'][i].as_py()})" for i, v in enumerate(labels) if v is None or v == ""]
    if missing:
        raise ImagesAsDataError(
            f"{len(missing)} images have no label: {listing(missing)}. Label them, or drop them before training"
        )
    counts = Counter(table["path"].to_pylist())
    duplicated = [p for p, n in counts.items() if n > 1]
    if duplicated:
        raise ImagesAsDataError(
            f"{len(duplicated)} paths appear more than once: {listing(duplicated)}. Each image may be listed only once "
            "(a duplicate could land in both train and val and inflate validation accuracy)"
        )
    classes = class_names(table)
    if len(classes) < 2:
        raise ImagesAsDataError(
            f"only one class ({classes[0]!r}) among the labels; a classifier needs images of at least two classes"
        )
    per_class = Counter(labels)
    small = [f"{c!r} ({per_class[c]})" for c in classes if per_class[c] < 2]
    if small:
        raise ImagesAsDataError(
            f"classes with fewer than 2 images: {', '.join(small)}; each class needs at least one image for training "
            "and one for validation — label more images of it, or drop the class"
        )
    return classes
