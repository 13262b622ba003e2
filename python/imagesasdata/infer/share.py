"""Sharing results without the pictures (the book's sections 8.1–8.2): images are often copyrighted or show private
people, so a replication package holds identifiers, SHA-256 hashes and labels — no pixels — and a datasheet
(data provenance, hashes, split sizes, metrics with intervals, intended use, the ethical questions of section 8).
A reader who has the images (from the platform, the archive, the authors under agreement) re-joins the labels
by hash with rejoin_shared(); a changed or substituted file does not match.

    share_corpus(labels, out, run=...)    labels.parquet + labels.csv + datasheet.json + datasheet.md
    rejoin_shared(shared, images)         the shared rows with the reader's own paths, matched by SHA-256
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ImagesAsDataError
from ..io.tables import read_table, to_arrow, write_json, write_table

DATASHEET = "datasheet.json"
SHARED_LABELS = "labels.parquet"
# Our paraphrase of the questions the book's section 8 asks of an images-as-data project; answers= fills them in.
QUESTIONS = {
    "copyright": "Who holds the rights to the images, and may they be redistributed? (If not: this package shares "
                 "hashes and labels only.)",
    "privacy": "Do the images show identifiable private individuals? Was there consent or another legal and "
               "ethical basis (IRB approval, public figures acting in public)?",
    "annotators": "Did annotators see disturbing content? How were they warned and protected (prescreen, "
                  "opt-out, support)?",
    "representation": "Whose images are in the training data and whose are missing? Does accuracy differ across "
                      "groups of people or kinds of image?",
    "access": "How can a reader obtain the images to re-join them by hash (URLs, platform ids, an archive, a data "
              "agreement), and under which terms?",
    "intended_use": "What are the labels and the model for, and what should they not be used for?",
}
PATHLIKE = ("path",)


@dataclass
class SharedCorpus:
    """What share_corpus() wrote: the shared table, the datasheet (a dict) and the folder."""

    labels: pa.Table
    datasheet: dict
    folder: Path

    def __repr__(self) -> str:
        return (f"imagesasdata shared corpus in {self.folder}: {self.labels.num_rows} images, no pixels "
                f"({', '.join(sorted(p.name for p in self.folder.iterdir() if not p.name.startswith('.')))})")


def _shareable_columns(table: pa.Table, ids: bool, drop) -> list[str]:
    """Columns that carry no pixels and no local file names: paths, binary data and what the user drops go."""
    keep = []
    for field in table.schema:
        name = field.name
        binary = pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) or \
            (pa.types.is_list(field.type) and pa.types.is_binary(field.type.value_type))
        if binary or name in drop or name.endswith(PATHLIKE) or name == "thumbnail":
            continue
        if name == "image_id" and not ids:
            continue
        keep.append(name)
    return keep


def _hashes(table: pa.Table) -> list:
    from ..io.images import sha256_file, unusable_file
    from ..io.threads import map_in_threads

    for given in ("image_sha256", "sha256"):
        if given in table.column_names:
            return table[given].to_pylist()
    if "path" not in table.column_names:
        raise ImagesAsDataError("the table has neither a path column (to hash the images) nor an image_sha256 column")

    def digest(path):
        return None if path is None or unusable_file(Path(path)) else sha256_file(path)

    return map_in_threads(digest, table["path"].to_pylist())


def share_corpus(labels, out, *, run=None, title: str | None = None, sources: str | None = None,
                 answers: dict | None = None, ids: bool = True, drop=(), overwrite: bool = False) -> SharedCorpus:
    """Write a labelled corpus as identifiers, hashes and labels only (no pixels, no local paths), with a datasheet.

    labels: any table of images with a path column (or image_sha256): predict() or label_corpus() output, a
      coded sheet, an image_table() with labels, face or OCR tables…
    out: the folder to write (locked while written; an existing one is replaced only with overwrite=True):
      labels.parquet and labels.csv (image_id, image_sha256 and every column but paths and binary data),
      datasheet.json and datasheet.md.
    run: the fitted run whose labels these are: its architecture, options, split sizes and metrics with 95%
      intervals (Wilson for proportions, bootstrap for F1) go into the datasheet.
    title, sources (where the images came from, when, how they were selected), answers: {question: answer} for
      the section-8 questions (keys: copyright, privacy, annotators, representation, access, intended_use);
      unanswered ones are listed as such.
    ids: keep image_id (file names can identify people: ids=False shares hashes only). drop: more columns to
      leave out.
    Returns a SharedCorpus (labels, datasheet, folder). Rows whose image cannot be read have a null hash and are
    counted in the datasheet.
    """
    from .. import __version__
    from ..io.locks import claimed_directory

    table = to_arrow(labels)
    if table.num_rows == 0:
        raise ImagesAsDataError("the labels table has no rows")
    answers = dict(answers or {})
    unknown = [k for k in answers if k not in QUESTIONS]
    if unknown:
        raise ImagesAsDataError(f"answers: unknown questions {unknown}; the questions are {', '.join(QUESTIONS)}")
    drop = {drop} if isinstance(drop, str) else set(drop or ())
    hashes = _hashes(table)
    shared = table.select(_shareable_columns(table, ids, drop | {"image_sha256", "sha256"}))
    position = 1 if ids and "image_id" in shared.column_names else 0
    shared = shared.add_column(position, "image_sha256", pa.array(hashes, pa.string()))
    with claimed_directory(out, what="shared corpus", marker=DATASHEET, resume=False, overwrite=overwrite,
                           option_hint="overwrite=True (CLI: --overwrite)") as folder:
        write_table(shared, folder / SHARED_LABELS)
        nested = [f.name for f in shared.schema if pa.types.is_nested(f.type)]
        csv_written = not nested
        if csv_written:
            write_table(shared, folder / "labels.csv")
        known = [h for h in hashes if h is not None]
        datasheet = {
            "format": "imagesasdata.datasheet/1",
            "title": title or "Untitled labelled image corpus",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "imagesasdata_version": __version__,
            "contents": "identifiers, SHA-256 hashes and labels only: no image, thumbnail or pixel, and no local path",
            "provenance": {"sources": sources or "not stated", "rows": table.num_rows, "hashed": len(known),
                           "distinct_images": len(set(known)), "unreadable": table.num_rows - len(known),
                           "corpus_sha256": _corpus_hash(known)},
            "files": {name: _file_hash(folder / name) for name in (SHARED_LABELS, "labels.csv") if (folder / name).exists()},
            "columns": [{"name": f.name, "type": str(f.type)} for f in shared.schema],
            "labels": _label_counts(shared),
            "splits": _split_counts(shared),
            "run": _run_section(run) if run is not None else None,
            "questions": {key: {"question": text, "answer": answers.get(key) or "not answered"}
                          for key, text in QUESTIONS.items()},
            "rejoin": "imagesasdata.rejoin_shared(<this folder>, <your copy of the images>) (R: rejoin_shared()); "
                      "images are matched by the SHA-256 of their file bytes, so re-encoded or resized copies do "
                      "not match",
        }
        if datasheet["splits"] is None and datasheet["run"] is not None:
            datasheet["splits"] = datasheet["run"].get("splits")
        write_json(datasheet, folder / DATASHEET)
        from ..io.tables import atomic_path

        with atomic_path(folder / "datasheet.md") as temporary:
            temporary.write_text(datasheet_markdown(datasheet), encoding="utf-8")
    return SharedCorpus(shared, datasheet, folder)


def _file_hash(path: Path) -> str:
    from ..io.images import sha256_file

    return sha256_file(path)


def _corpus_hash(hashes) -> str:
    """One fingerprint of the set of images: the SHA-256 of their sorted, distinct hashes, one per line."""
    return hashlib.sha256("\n".join(sorted(set(hashes))).encode()).hexdigest()


def _label_counts(table: pa.Table) -> dict:
    counts = {}
    for name in ("label", "predicted"):
        if name in table.column_names:
            values = table[name].to_pylist()
            counts[name] = {str(v): values.count(v) for v in sorted(set(values), key=lambda v: (v is None, str(v)))}
    return counts


def _split_counts(table: pa.Table) -> dict | None:
    if "split" not in table.column_names:
        return None
    values = table["split"].to_pylist()
    return {str(v): values.count(v) for v in sorted(set(values), key=lambda v: (v is None, str(v)))}


def _run_section(run) -> dict:
    from ..measure.metrics import metrics_from_confusion
    from ..runs import as_run_directory

    run = as_run_directory(run)
    description = run.description
    splits = run.splits["split"].to_pylist()
    metrics = []
    confusion = run.confusion
    for split in sorted(set(confusion["split"].to_pylist())):
        part = confusion.filter(pc.equal(confusion["split"], split))
        for row in metrics_from_confusion(part, run.classes, run.positive_class).to_pylist():
            metrics.append({"split": split, **row})
    return {
        "run_id": description.get("run_id"), "created": description.get("created"), "status": run.status,
        "architecture": description.get("architecture"), "weights": description.get("weights"),
        "classes": run.classes, "positive_class": run.positive_class,
        "hyperparameters": description.get("hyperparameters"), "seed": description.get("seed"),
        "best_epoch": run.best_epoch, "versions": description.get("versions"),
        "weights_sha256": (description.get("files") or {}).get("model.safetensors"),
        # The hash of every training image, so a reader can check they hold the very images the model saw.
        "training_images": (description.get("training_images") or {}).get("count"),
        "training_image_sha256": sorted(set(((description.get("training_images") or {}).get("sha256") or {}).values())),
        "splits": {s: splits.count(s) for s in sorted(set(splits))},
        "metrics": metrics,
    }


def datasheet_markdown(sheet: dict) -> str:
    """The datasheet as Markdown, for people (datasheet.json holds the same)."""
    p = sheet["provenance"]
    lines = [f"# {sheet['title']}", "", f"Created {sheet['created']} with imagesasdata {sheet['imagesasdata_version']}.",
             "", f"**Contents.** {sheet['contents']}.", "", "## Provenance", "",
             f"- Sources: {p['sources']}", f"- Rows: {p['rows']}; hashed: {p['hashed']}; distinct images: "
             f"{p['distinct_images']}; unreadable: {p['unreadable']}",
             f"- Corpus fingerprint (SHA-256 of the sorted image hashes): `{p['corpus_sha256']}`", "", "## Files", ""]
    lines += [f"- `{name}`: SHA-256 `{digest}`" for name, digest in sheet["files"].items()]
    if sheet.get("splits"):
        lines += ["", "## Splits", "", "| split | images |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sheet["splits"].items()]
    for column, counts in (sheet.get("labels") or {}).items():
        lines += ["", f"## Values of `{column}`", "", "| value | images |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in counts.items()]
    run = sheet.get("run")
    if run:
        lines += ["", "## Model", "", f"- Run {run['run_id']} ({run['status']}), {run['architecture']} "
                  f"(weights: {run['weights']}), best epoch {run['best_epoch']}, seed {run['seed']}",
                  f"- Classes: {', '.join(run['classes'])}" + (f" (positive: {run['positive_class']})"
                                                               if run.get("positive_class") else ""),
                  "", "| split | metric | estimator | class | estimate | 95% interval | method | n |",
                  "|---|---|---|---|---|---|---|---|"]
        for m in run["metrics"]:
            interval = "" if m["lower"] is None or m["lower"] != m["lower"] else f"{m['lower']:.3f}–{m['upper']:.3f}"
            lines.append(f"| {m['split']} | {m['metric']} | {m['estimator']} | {m['class'] or ''} | "
                         f"{m['estimate']:.3f} | {interval} | {m['interval'] or ''} | {m['n']} |")
    lines += ["", "## Questions (the book's section 8)", ""]
    for item in sheet["questions"].values():
        lines += [f"**{item['question']}**", "", item["answer"], ""]
    lines += ["## Re-joining the images", "", sheet["rejoin"], ""]
    return "\n".join(lines)


def rejoin_shared(shared, images) -> pa.Table:
    """Match a shared corpus to your own copy of the images by SHA-256.

    shared: a share_corpus() folder (or its labels.parquet, or the table). images: your images — a folder, a list
    of files, or a table with a path column.
    Returns the shared rows with `path` (yours; null where you lack the image) and `local_image_id`, in the shared
    table's order. Identical copies under several names match the first. Raises ImagesAsDataError when the
    shared table has no image_sha256 column.
    """
    from ..data.table import image_table

    if isinstance(shared, (str, Path)) and Path(shared).is_dir():
        shared = read_table(Path(shared) / SHARED_LABELS)
    table = to_arrow(shared)
    if "image_sha256" not in table.column_names:
        raise ImagesAsDataError("the shared table has no image_sha256 column; pass a share_corpus() folder")
    local = images if isinstance(images, pa.Table) and "path" in images.column_names else image_table(images)
    local_hashes = _hashes(local.drop_columns([c for c in ("image_sha256", "sha256") if c in local.column_names]))
    where: dict = {}
    for image_id, path, digest in zip(local["image_id"].to_pylist(), local["path"].to_pylist(), local_hashes):
        if digest is not None:
            where.setdefault(digest, (image_id, path))
    found = [where.get(h) for h in table["image_sha256"].to_pylist()]
    table = table.append_column("local_image_id", pa.array([f[0] if f else None for f in found], pa.string()))
    return table.append_column("path", pa.array([f[1] if f else None for f in found], pa.string()))
