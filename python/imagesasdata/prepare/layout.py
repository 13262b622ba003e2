"""The book's folder layout from a table: train/<class>/, val/<class>/ (and test/<class>/), filled with symbolic
links to the images (or copies), so the folders can be handed to any tool that reads class folders.

The table is split first when it has no split yet — stratified, seeded, near-duplicate groups kept whole — by
splits.split_table(). The folder is written beside its destination and swapped in at the end: an interrupted
run leaves the old folder (or none), never half of one, and writing the same table again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import pyarrow as pa

from ..data.table import image_table
from ..errors import ImagesAsDataError, listing
from ..data.splits import split_table

LAYOUT_MODES = ("symlink", "copy")
LAYOUT_RECORD = ".imagesasdata-layout.json"


def split_images(table, *, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0,
                 balance: bool = False, group: str | None = "auto", label: str | None = None,
                 path: str | None = None) -> pa.Table:
    """Give every image a split (train/val/test), keeping near-duplicate groups in one split.

    table: anything image_table() reads with a label column (e.g. find_duplicates() or emotion_labels() filtered
      to one emotion).
    group: the column of group ids that must not straddle two splits; "auto" uses group_id when present (the
      result of find_duplicates()), None splits image by image.
    Rows with an error (unreadable images) are left out with a warning. A table that already has a split keeps
    it; a group found in two given splits is an error.
    Returns the table with its split column filled (rows dropped by balance= are left out).
    """
    data = image_table(table, label=label, path=path)
    data = _usable(data)
    labels = data["label"].to_pylist()
    unlabelled = [f"row {i + 1} ({data['image_id'][i].as_py()})" for i, v in enumerate(labels) if v is None or v == ""]
    if unlabelled:
        raise ImagesAsDataError(f"{len(unlabelled)} images have no label: {listing(unlabelled)}; label them or drop them first")
    group = _group_column(data, group)
    splits = data["split"].to_pylist()
    if group and all(s is not None for s in splits):
        where = {}
        for g, s in zip(data[group].to_pylist(), splits):
            where.setdefault(g, set()).add(s)
        straddling = [f"{g} ({', '.join(sorted(s))})" for g, s in where.items() if len(s) > 1]
        if straddling:
            raise ImagesAsDataError(
                f"near-duplicate groups in two splits: {listing(straddling)}; copies of one picture in train and val "
                "inflate validation accuracy — drop the split column to split again, or move them"
            )
    return split_table(data, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, balance=balance,
                       group=group)


def write_layout(table, out, *, mode: str = "symlink", val_fraction: float = 0.2, test_fraction: float = 0.0,
                 seed: int = 0, balance: bool = False, group: str | None = "auto", label: str | None = None,
                 path: str | None = None) -> pa.Table:
    """Write the book's layout, out/<split>/<label>/<file>, from a labelled table (split first if needed).

    mode: "symlink" (links to the original files; nothing is duplicated) or "copy".
    Other options as for split_images(). File names are the images' file names, or their path below the images'
    common folder with "/" as "__" when two images share a name. An existing `out` is replaced only if write_layout wrote it.
    Returns the split table with a layout_path column (the file written for each image).
    """
    if mode not in LAYOUT_MODES:
        raise ImagesAsDataError(f"mode must be 'symlink' or 'copy' (got {mode!r})")
    out = Path(out).expanduser().resolve()
    data = split_images(table, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, balance=balance,
                        group=group, label=label, path=path)
    paths = data["path"].to_pylist()
    labels = data["label"].to_pylist()
    splits = data["split"].to_pylist()
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise ImagesAsDataError(f"{len(missing)} images are not on disk: {listing(missing)}; fix the paths or drop these rows")
    bad = sorted({lab for lab in labels if lab in (".", "..") or "/" in lab or "\\" in lab or lab.startswith(".")})
    if bad:
        raise ImagesAsDataError(f"labels {bad} cannot be folder names; rename them (no slashes, no leading dot)")
    names = _file_names(paths)
    relative = [f"{s}/{lab}/{name}" for s, lab, name in zip(splits, labels, names)]
    manifest = {"mode": mode, "files": dict(zip(relative, paths))}
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    result = data.append_column("layout_path", pa.array([str(out / r) for r in relative], pa.string()))
    if _existing_digest(out) == digest and all((out / r).exists() for r in relative):
        return result
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for r, source in zip(relative, paths):
            target = staging / r
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "symlink":
                try:
                    os.symlink(source, target)
                except OSError as error:
                    raise ImagesAsDataError(f"cannot make symbolic links here ({error}); use mode='copy'")
            else:
                shutil.copy2(source, target)
        (staging / LAYOUT_RECORD).write_text(json.dumps({"digest": digest, **manifest}, indent=1) + "\n")
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _usable(data: pa.Table) -> pa.Table:
    if "error" not in data.column_names:
        return data
    errors = data["error"].to_pylist()
    bad = [i for i, e in enumerate(errors) if e is not None]
    if not bad:
        return data
    ids = data["image_id"].to_pylist()
    warnings.warn(f"leaving out {len(bad)} images with an error: {listing([ids[i] for i in bad])}")
    keep = [i for i, e in enumerate(errors) if e is None]
    return data.take(pa.array(keep, pa.int64()))


def _group_column(data, group):
    if group == "auto":
        return "group_id" if "group_id" in data.column_names else None
    if group is not None and group not in data.column_names:
        from ..errors import did_you_mean

        raise ImagesAsDataError(f"no group column {group!r} (columns: {', '.join(data.column_names)}).{did_you_mean(group, data.column_names)}")
    return group


def _file_names(paths):
    """Each image's file name in the layout: its own name, or — when two images share one — its path below the
    images' common folder with "/" as "__" (s1__1.pgm, s2__1.pgm)."""
    base = [Path(p).name for p in paths]
    counts = Counter(base)
    common = Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else Path()
    names = []
    for path, name in zip(paths, base):
        if counts[name] == 1:
            names.append(name)
            continue
        names.append(Path(path).relative_to(common).as_posix().replace("/", "__"))
    if len(set(names)) != len(names):
        repeated = [n for n, c in Counter(names).items() if c > 1]
        raise ImagesAsDataError(f"images listed twice ({listing(repeated)}); list each image once")
    return names


def _existing_digest(out: Path):
    try:
        return json.loads((out / LAYOUT_RECORD).read_text()).get("digest")
    except (OSError, ValueError):
        return None


def _swap(staging: Path, out: Path) -> None:
    """Put the staged folder at `out`, replacing a layout written earlier; refuse to replace anything else."""
    if out.is_symlink() or out.is_file():
        raise ImagesAsDataError(f"{out} exists and is not a folder; choose another destination",
                                what="file", path=out)
    if out.exists():
        if any(out.iterdir()) and not (out / LAYOUT_RECORD).exists():
            raise ImagesAsDataError(
                f"{out} exists and was not written by write_layout; choose another folder or remove it yourself",
                what="file", path=out
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / "layout")
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(old / "layout", out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)
