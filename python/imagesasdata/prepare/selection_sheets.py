"""Selection sheets: the images chosen for hand-labelling (select_images()) go out as a sheet a coder fills in, come
back checked, and join the training table.

The sheet has the columns of the gold-sample coding sheets (image_id, path, code, note: the same thing for coders
to fill in, whatever chose the images), in the order to code the images. It shows no model output (no predicted
class, no probability): a coder who sees the model's guess is anchored by it, and the labels would then validate the
model against itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..data.table import image_table
from ..errors import ImagesAsDataError, did_you_mean, listing, literal, setting
from ..io.sheets import CODE_COLUMNS, coding_table, write_sheet, write_text
from ..io.tables import to_arrow

SHEET_COLUMNS = ("image_id", "path", *CODE_COLUMNS)


def write_selection_sheet(images, path, *, classes=None) -> Path:
    """Write a sheet for coding `images` (select_images()'s table, or any table with image_id and path) to `path`
    (.csv, or .parquet): image_id, path, and empty code and note columns, the rows in the order to code them
    (select_images()'s rank), written atomically. classes: the codes coders may use, written beside the sheet as
    <name>.classes.txt. Returns the sheet's path. Raises ImagesAsDataError when `images` lacks image_id or path, or
    `path` is not .csv or .parquet."""
    table = to_arrow(images)
    missing = [c for c in ("image_id", "path") if c not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the images lack {listing(missing)}; pass select_images()'s table or one with "
                                "image_id and path columns")
    if "rank" in table.column_names:
        table = table.sort_by("rank")
    path = write_sheet(coding_table(table, CODE_COLUMNS), Path(path).expanduser())
    if classes is not None:
        write_text("".join(f"{c}\n" for c in classes), path.with_name(path.stem + ".classes.txt"))
    return path


def read_selection_sheet(sheet, *, classes=None, code: str = "code", encoding: str = "utf-8") -> pa.Table:
    """Return the coded rows of a selection sheet: image_id, path, label (the code, surrounding spaces trimmed) and note.
    Rows not coded yet (an empty code) are left out with a warning.

    classes: the codes allowed (a run's classes); any other code is an error naming its line.
    Raises ImagesAsDataError for a sheet without image_id, path or code columns, or codes outside `classes`.
    """
    from ..io.tables import read_table

    table = read_table(sheet, encoding) if isinstance(sheet, (str, Path)) else to_arrow(sheet)
    missing = [c for c in ("image_id", "path", code) if c not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the sheet lacks the column(s) {listing(missing)} (it has "
                                f"{listing(table.column_names, 8)}); use the sheet write_selection_sheet() wrote",
                                what="column", option="code" if code in missing else None,
                                value=missing[0] if len(missing) == 1 else missing, choices=table.column_names,
                                path=str(sheet) if isinstance(sheet, (str, Path)) else None)
    labels = [None if v is None or not str(v).strip() else str(v).strip() for v in table[code].to_pylist()]
    coded = [i for i, v in enumerate(labels) if v is not None]
    if len(coded) < table.num_rows:
        warnings.warn(f"{table.num_rows - len(coded)} of {table.num_rows} images on the sheet have no code yet and "
                      "are left out", stacklevel=2)
    if classes is not None:
        allowed = [str(c) for c in classes]
        wrong = [(i + 2, labels[i]) for i in coded if labels[i] not in allowed]   # +2: the header is line 1
        if wrong:
            shown = listing([f"line {line}: {literal(value)}" for line, value in wrong], 5)
            raise ImagesAsDataError(f"the sheet has codes that are not classes ({', '.join(allowed)}): "
                                    f"{shown}.{_hint(wrong[0][1], allowed)} Correct them in the sheet", what="file",
                                    path=str(sheet) if isinstance(sheet, (str, Path)) else None,
                                    row=[line for line, _ in wrong], value=wrong[0][1], choices=allowed)
    rows = pa.array(coded, pa.int64())
    return pa.table({"image_id": table["image_id"].cast(pa.string()).take(rows),
                     "path": table["path"].cast(pa.string()).take(rows),
                     "label": pa.array([labels[i] for i in coded], pa.string()),
                     "note": table["note"].cast(pa.string()).take(rows) if "note" in table.column_names
                     else pa.nulls(len(coded), pa.string())})


def _hint(value: str, allowed) -> str:
    """' Did you mean …?' — a coder's "Protest" for "protest" first, then spelling."""
    same = [c for c in allowed if c.casefold() == value.casefold()]
    return f" Did you mean {literal(same[0])}?" if same else did_you_mean(value, allowed)


def add_coded_images(training, coded, *, split: str | None = "auto") -> pa.Table:
    """Return the training table with the coded images added: image_id, path, label, split (image_table()'s
    columns), ready for finetune().

    training: anything image_table() reads (the labelled images so far). coded: read_selection_sheet()'s table.
    split: the split new images join. "auto": "train" when the training table has splits (the validation images
      stay as they were, so accuracy before and after is comparable), else none (finetune() draws them all).
    An image already in the training table (same file) with the same label is not added twice; with another label
    it is an error naming it. A coded image whose image_id is taken by another file gets its path as image_id.
    Raises ImagesAsDataError for a split= that does not match the training table, coded images without image_id,
    path and label, or an image coded with another label than it has in training.
    """
    base = training if isinstance(training, pa.Table) and {"image_id", "path", "label", "split"} <= \
        set(training.column_names) else image_table(training)
    base = base.select(["image_id", "path", "label", "split"])
    has_splits = base.num_rows > 0 and base["split"].null_count == 0
    if split == "auto":
        split = "train" if has_splits else None
    elif (split is None) == has_splits:
        raise ImagesAsDataError(f"{setting('split', split)}, but the training table {'has' if has_splits else 'has no'} splits; "
                                "every row needs a split or none does — leave split='auto'",
                                what="option", option="split", value=split)
    coded = to_arrow(coded)
    missing = [c for c in ("image_id", "path", "label") if c not in coded.column_names]
    if missing:
        raise ImagesAsDataError(f"the coded images lack {listing(missing)}; pass read_selection_sheet()'s table")
    coded = coded.filter(pc.is_valid(coded["label"]))
    label_of = dict(zip(base["path"].to_pylist(), base["label"].to_pylist()))
    taken = set(base["image_id"].to_pylist())
    rows, conflicts, repeated = [], [], 0
    for image_id, path, value in zip(coded["image_id"].to_pylist(), coded["path"].to_pylist(), coded["label"].to_pylist()):
        if path in label_of:
            if label_of[path] not in (None, value):
                conflicts.append(f"{image_id} ({label_of[path]!r} in training, {value!r} on the sheet)")
            else:
                repeated += 1
            continue
        new_id = image_id if image_id not in taken else path
        taken.add(new_id)
        label_of[path] = value
        rows.append({"image_id": new_id, "path": path, "label": value, "split": split})
    if conflicts:
        raise ImagesAsDataError(f"coded images already in the training table with another label: {listing(conflicts, 5)}; "
                                "settle which label is right and correct one of the tables")
    if repeated:
        warnings.warn(f"{repeated} coded image(s) were already in the training table and are not added twice",
                      stacklevel=2)
    added = pa.Table.from_pylist(rows, schema=base.schema)
    return pa.concat_tables([base, added])
