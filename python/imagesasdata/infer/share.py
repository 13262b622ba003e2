"""Sharing results without the pictures (the book's sections 8.1–8.2): images are often copyrighted or show private
people, so a replication package holds identifiers, SHA-256 hashes and labels — no pixels — and a datasheet
(data provenance, hashes, split sizes, metrics with intervals, intended use, the ethical questions of section 8).
A reader who has the images (from the platform, the archive, the authors under agreement) re-joins the labels
by hash with rejoin_shared(); a changed or substituted file does not match.

    share_corpus(labels, out, run=...)    labels.parquet + labels.csv + datasheet.json + datasheet.md
    rejoin_shared(shared, images)         the shared rows with the reader's own paths, matched by SHA-256

What is written is an allow-list, not "everything but": the columns in SHARED_COLUMNS (the engine's own label,
prediction, face, OCR, tagger, video and screening columns) and those the caller names in columns=; the datasheet's
fields are those built below, the run's options among them only by name (RUN_OPTIONS, RUN_VERSIONS). Every text
value written — cells, error messages, options, titles and answers — has its local paths replaced by file names
(LocalPaths); this machine's folders (the home directory, the working and temporary folders, the folders of the
images and of the run) are cut out of text wherever they remain.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ImagesAsDataError, did_you_mean, listing, setting
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
# The columns shared without being asked (besides image_id and image_sha256): labels and predictions (predict,
# label_corpus, coded sheets, image_table), faces, OCR words and text, tagger labels, video frames, screening flags.
SHARED_COLUMNS = frozenset({
    "label", "predicted", "split", "group", "error", "truth", "manual_label",
    "face_id", "left", "top", "width", "height", "score", "emotion", "face_confidence",
    "languages", "word_id", "line", "word", "text", "words", "confidence",
    "tagger", "label_rank", "parents", "aliases", "categories", "instances", "bounding_boxes", "label_model_version",
    "celebrity", "celebrity_id", "match_confidence", "celebrity_rank", "known_gender", "face_box", "unrecognized_faces",
    "video_id", "frame_id", "timestamp", "frame_number", "duration",
    "flagged", "reasons", "max_confidence", "taxonomy_level",
})
SHARED_PREFIXES = ("prob_",)
# Never shared, even when named in columns=: where the files are on this machine, and pixels.
NEVER_SHARED = frozenset({"path", "thumbnail", "overlay"})
# The run's options named in the datasheet (TrainConfig's, but those about this machine: device, cache, threads …).
RUN_OPTIONS = ("architecture", "weights", "image_size", "resize", "resize_size", "recipe", "normalize",
               "augment_crop", "augment_flip", "val_fraction", "test_fraction", "balance", "group", "seed", "epochs",
               "batch_size", "optimizer", "learning_rate", "schedule", "warmup_fraction", "momentum", "weight_decay",
               "step_size", "gamma", "lr_decay_per_block", "progressive_resize", "full_size_epochs", "dropout",
               "head_epochs", "head_learning_rate", "freeze", "patience", "select_on", "positive_class", "class_order")
RUN_VERSIONS = ("imagesasdata", "python", "torch", "torchvision", "timm", "numpy", "pillow", "pyarrow")

# An absolute path in text: POSIX (/a/b.jpg, ~/a.jpg), Windows (C:\a\b.jpg), a file:// URL, or quoted ('…', "…",
# which may hold spaces). Not a URL's path (preceded by a host name), not a fraction (1/2).
_QUOTED_PATH = re.compile(r"""(['"])((?:~|[A-Za-z]:)?[/\\](?!/)[^'"\n]*)\1""")
_FILE_URL = re.compile(r"""file://[^\s'"<>)\]]+""")
_WINDOWS_PATH = re.compile(r"""(?<![\w])[A-Za-z]:\\[^\s'"<>|]*""")
_POSIX_PATH = re.compile(r"""(?<![\w.:/~\\-])~?/(?!/)[^\s/'"()\[\]{}<>,;|]+(?:/[^\s/'"()\[\]{}<>,;|]*)*""")


def _file_name(path: str) -> str:
    """The last named component of a path ('' for a root)."""
    parts = [p for p in re.split(r"[/\\]", path) if p and p != "~"]
    return parts[-1] if parts else ""


_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s'"<>]+""", re.IGNORECASE)


class LocalPaths:
    """Replaces the local paths in text by their file names.

    known: a few paths that may appear anywhere as they are, spaces included (the run folder, its starting
    weights); each row's own paths are passed to text() with that row's values. images: the images' paths,
    whose folders are cut out. Besides those and anything shaped like an absolute path, this machine's folders —
    the home directory, the working and temporary folders, the images' folders — are removed wherever they appear
    outside a URL, even glued to other text: a path under one of them becomes relative to it.
    """

    def __init__(self, known=(), images=()):
        known = {str(k) for k in known if k}
        self.known = sorted(known | {os.path.realpath(k) for k in known}, key=len, reverse=True)
        folders = {os.path.expanduser("~"), str(Path.home()), os.getcwd(), tempfile.gettempdir()}
        folders |= {os.path.dirname(k) for k in known}
        parents: dict = {}
        for path in images:
            parent = os.path.dirname(str(path))
            parents[parent] = parents.get(parent, 0) + 1
        folders |= set(sorted(parents, key=parents.get, reverse=True)[:50])   # a bounded search: the commonest
        folders |= {os.path.realpath(f) for f in folders if f}
        folders = sorted({f.rstrip("/") for f in folders if f and f.rstrip("/")}, key=len, reverse=True)
        self._folders = self._pattern(folders)
        # Folders with spaces go first: the path patterns below would stop at the space.
        self._spaced = self._pattern([f for f in folders if re.search(r"\s", f)])

    @staticmethod
    def _pattern(folders):
        return re.compile("(?:" + "|".join(re.escape(f) for f in folders) + r")(?:(/)|(?![\w.-]))") \
            if folders else None

    def text(self, value: str, own=()) -> str:
        """`value` with each local path replaced by its file name (a path under a folder of this machine that does
        not look like a path, by its part below that folder). own: the paths of the row `value` belongs to."""
        for path in list(own) + self.known:
            if path and path in value:
                value = value.replace(path, _file_name(path))
        if self._spaced is not None:
            value = self._outside_urls(value, self._spaced)
        value = _FILE_URL.sub(lambda m: _file_name(m.group(0)[len("file://"):]), value)
        value = _QUOTED_PATH.sub(lambda m: m.group(1) + _file_name(m.group(2)) + m.group(1), value)
        value = _WINDOWS_PATH.sub(lambda m: _file_name(m.group(0)), value)
        value = _POSIX_PATH.sub(lambda m: _file_name(m.group(0)), value)
        if self._folders is None or not self._folders.search(value):
            return value
        # What is left names a folder of ours where no path could be told from the text around it ("x/root/raw"):
        # cut it out, outside URLs.
        return self._outside_urls(value, self._folders)

    @staticmethod
    def _outside_urls(value: str, folders) -> str:
        """`value` with the folders matched by `folders` cut out (a path below one keeps its part below it; the
        folder alone becomes its name), except inside URLs."""
        def cut(text):
            return folders.sub(lambda m: "" if m.group(1) else _file_name(m.group(0)), text)

        pieces, start = [], 0
        for url in _URL.finditer(value):
            pieces += [cut(value[start:url.start()]), url.group(0)]
            start = url.end()
        return "".join(pieces + [cut(value[start:])])

    def value(self, value, own=()):
        """Any JSON-like value (str, list, dict) with text() applied to every string in it, keys included."""
        if isinstance(value, str):
            return self.text(value, own)
        if isinstance(value, list):
            return [self.value(v, own) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v, own) for v in value)
        if isinstance(value, dict):
            return {self.value(k, own) if isinstance(k, str) else k: self.value(v, own) for k, v in value.items()}
        return value


@dataclass
class SharedCorpus:
    """What share_corpus() wrote: the shared table, the datasheet (a dict) and the folder."""

    labels: pa.Table
    datasheet: dict
    folder: Path

    def __repr__(self) -> str:
        return (f"imagesasdata shared corpus in {self.folder}: {self.labels.num_rows} images, no pixels "
                f"({', '.join(sorted(p.name for p in self.folder.iterdir() if not p.name.startswith('.')))})")


def _never_shared(field: pa.Field) -> bool:
    """Paths, pixels and binary data: never written, whatever the caller asks."""
    kind = field.type
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or \
        (pa.types.is_list(kind) and (pa.types.is_binary(kind.value_type) or pa.types.is_large_binary(kind.value_type)))
    return binary or field.name in NEVER_SHARED or field.name.endswith("_path")


def _shared_columns(table: pa.Table, ids: bool, drop: set, columns) -> tuple[list[str], list[str]]:
    """(columns to write, columns left out because neither SHARED_COLUMNS nor `columns` lists them). Raises
    ImagesAsDataError for a requested column that is missing or that is never shared."""
    requested = [] if columns is None else ([columns] if isinstance(columns, str) else [str(c) for c in columns])
    for name in requested:
        if name not in table.column_names:
            raise ImagesAsDataError(f"columns: the table has no column {name!r}.{did_you_mean(name, table.column_names)} "
                                    f"Its columns: {listing(table.column_names)}")
        if _never_shared(table.schema.field(name)):
            raise ImagesAsDataError(f"columns: {name!r} holds local paths or pixels and is never shared; the "
                                    "image_sha256 column lets readers find their own copy of each image")
    keep, left_out = [], []
    for field in table.schema:
        name = field.name
        if name in drop or name in ("image_sha256", "sha256") or _never_shared(field):
            continue
        if name == "image_id":
            if ids:
                keep.append(name)
        elif name in SHARED_COLUMNS or name.startswith(SHARED_PREFIXES) or name in requested:
            keep.append(name)
        else:
            left_out.append(name)
    return keep, left_out


def _shareable_ids(ids: list, local: LocalPaths) -> list:
    """image_ids without local paths: an id that is an absolute path (a table's ids are its paths as written)
    becomes its file name, or as many trailing folders as make the ids distinct again; other ids are kept."""
    def is_local(value):
        return isinstance(value, str) and bool(re.match(r"^(~|[A-Za-z]:)?[/\\]", value))

    if not any(is_local(i) for i in ids):
        return [local.text(i) if isinstance(i, str) else i for i in ids]
    distinct = len(set(ids))
    parts = {i: [p for p in re.split(r"[/\\]", i) if p and p != "~"] for i in ids if is_local(i)}
    depth = max((len(p) for p in parts.values()), default=1)
    for keep in range(1, depth + 1):
        shortened = [("/".join(parts[i][-keep:]) if i in parts else i) for i in ids]
        if len(set(shortened)) == distinct:
            return [local.text(i) if isinstance(i, str) else i for i in shortened]
    return [local.text(i) if isinstance(i, str) else i for i in ids]


def _scrubbed(table: pa.Table, local: LocalPaths, paths: list) -> pa.Table:
    """`table` with local paths replaced by file names in every text value (nested lists and structs too); `paths`:
    each row's own path (the one its error message names)."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if field.name == "image_id":
            columns.append(pa.array(_shareable_ids(column.to_pylist(), local), field.type))
        elif _holds_text(field.type):
            values = column.to_pylist()
            own = [(p, os.path.realpath(p)) if isinstance(p, str) else () for p in paths] if paths else [()] * len(values)
            columns.append(pa.array([local.value(v, mine) for v, mine in zip(values, own)], field.type))
        else:
            columns.append(column)
    names = [local.text(name) for name in table.column_names]
    if len(set(names)) < len(names):
        raise ImagesAsDataError(f"columns {listing(table.column_names)}: without their local paths two names are the "
                                "same; rename the columns")
    return pa.table(columns, names=names)


def _holds_text(kind: pa.DataType) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _holds_text(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_holds_text(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _holds_text(kind.key_type) or _holds_text(kind.item_type)
    return False


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
                 answers: dict | None = None, ids: bool = True, drop=(), columns=None,
                 overwrite: bool = False) -> SharedCorpus:
    """Write a labelled corpus as identifiers, hashes and labels only (no pixels, no local paths), with a datasheet.

    labels: any table of images with a path column (or image_sha256): predict() or label_corpus() output, a
      coded sheet, an image_table() with labels, face or OCR tables…
    out: the folder to write (locked while written; an existing one is replaced only with overwrite=True):
      labels.parquet and labels.csv — image_id, image_sha256, the engine's own columns (SHARED_COLUMNS: label,
      predicted, prob_<class>, split, error, face, OCR, tagger and video columns) and those named in `columns` —
      datasheet.json and datasheet.md.
    run: the fitted run whose labels these are: its architecture, options, split sizes and metrics with 95%
      intervals (Wilson for proportions, bootstrap for F1) go into the datasheet.
    title, sources (where the images came from, when, how they were selected), answers: {question: answer} for
      the section-8 questions (keys: copyright, privacy, annotators, representation, access, intended_use);
      unanswered ones are listed as such.
    ids: keep image_id (file names can identify people: ids=False shares hashes only). An image_id that is a local
      path becomes the file name (with as many folders as keep the ids distinct).
    columns: more columns to share, e.g. your own codes (["protest", "violence"]); others are left out, with a
      warning naming them. Columns of paths (path, *_path) and of pixels are never shared. drop: columns to leave
      out although shared by default.
    Every text value written (cells, errors, the run's options, title, sources, answers) has its local paths
      replaced by file names.
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
    if ids not in (True, False):
        raise ImagesAsDataError(f"{setting('ids', ids)} must be True (share image_id) or False (hashes only)",
                                what="option", option="ids", value=ids)
    drop = {drop} if isinstance(drop, str) else set(drop or ())
    hashes = _hashes(table)
    keep, left_out = _shared_columns(table, ids, drop, columns)
    paths = table["path"].to_pylist() if "path" in table.column_names else []
    known = []
    run_directory = None
    if run is not None:
        from ..runs import as_run_directory

        run_directory = as_run_directory(run)
        weights = run_directory.description.get("weights")
        known += [str(run_directory.path)] + ([str(weights)] if weights not in (None, "imagenet", "none") else [])
    local = LocalPaths(known, images=[p for p in paths if isinstance(p, str)])
    digests = pa.array(hashes, pa.string())
    if keep:
        shared = _scrubbed(table.select(keep), local, paths)
        shared = shared.add_column(1 if "image_id" in keep else 0, "image_sha256", digests)
    else:   # no column but the hashes (a table with no row count of its own to add them to)
        shared = pa.table({"image_sha256": digests})
    if left_out:
        warnings.warn(f"share_corpus left out {len(left_out)} column(s) that are not among the columns it shares by "
                      f"default: {listing(left_out)}. Name those to share in columns= (CLI: --columns); they may "
                      "hold local paths or notes", stacklevel=2)
    known_hashes = [h for h in hashes if h is not None]
    datasheet = local.value({
        "format": "imagesasdata.datasheet/1",
        "title": title or "Untitled labelled image corpus",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "imagesasdata_version": __version__,
        "contents": "identifiers, SHA-256 hashes and labels only: no image, thumbnail or pixel, and no local path",
        "provenance": {"sources": sources or "not stated", "rows": table.num_rows, "hashed": len(known_hashes),
                       "distinct_images": len(set(known_hashes)), "unreadable": table.num_rows - len(known_hashes),
                       "corpus_sha256": _corpus_hash(known_hashes)},
        "files": {},
        "columns": [{"name": f.name, "type": str(f.type)} for f in shared.schema],
        "columns_left_out": left_out,
        "labels": _label_counts(shared),
        "splits": _split_counts(shared),
        "run": _run_section(run_directory) if run_directory is not None else None,
        "questions": {key: {"question": text, "answer": answers.get(key) or "not answered"}
                      for key, text in QUESTIONS.items()},
        "rejoin": "imagesasdata.rejoin_shared(<this folder>, <your copy of the images>) (R: rejoin_shared()); "
                  "images are matched by the SHA-256 of their file bytes, so re-encoded or resized copies do "
                  "not match",
    })
    if datasheet["splits"] is None and datasheet["run"] is not None:
        datasheet["splits"] = datasheet["run"].get("splits")
    with claimed_directory(out, what="shared corpus", marker=DATASHEET, resume=False, overwrite=overwrite,
                           option_hint="overwrite=True (CLI: --overwrite)") as folder:
        write_table(shared, folder / SHARED_LABELS)
        nested = [f.name for f in shared.schema if pa.types.is_nested(f.type)]
        if not nested:
            write_table(shared, folder / "labels.csv")
        datasheet["files"] = {name: _file_hash(folder / name) for name in (SHARED_LABELS, "labels.csv")
                              if (folder / name).exists()}
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
    """The datasheet's account of the run: named fields only (its options by RUN_OPTIONS, versions by
    RUN_VERSIONS); a starting-weights file is named by its file name."""
    from ..measure.metrics import metrics_from_confusion

    description = run.description
    splits = run.splits["split"].to_pylist()
    metrics = []
    confusion = run.confusion
    for split in sorted(set(confusion["split"].to_pylist())):
        part = confusion.filter(pc.equal(confusion["split"], split))
        for row in metrics_from_confusion(part, run.classes, run.positive_class).to_pylist():
            metrics.append({"split": split, **row})
    options = description.get("hyperparameters") or {}
    versions = description.get("versions") or {}
    return {
        "run_id": description.get("run_id"), "created": description.get("created"), "status": run.status,
        "architecture": description.get("architecture"), "weights": _starting_weights(description.get("weights")),
        "classes": run.classes, "positive_class": run.positive_class,
        "hyperparameters": {name: (_starting_weights(options[name]) if name == "weights" else options[name])
                            for name in RUN_OPTIONS if name in options},
        "seed": description.get("seed"),
        "best_epoch": run.best_epoch, "versions": {name: versions[name] for name in RUN_VERSIONS if name in versions},
        "weights_sha256": (description.get("files") or {}).get("model.safetensors"),
        # The hash of every training image, so a reader can check they hold the very images the model saw.
        "training_images": (description.get("training_images") or {}).get("count"),
        "training_image_sha256": sorted(set(((description.get("training_images") or {}).get("sha256") or {}).values())),
        "splits": {s: splits.count(s) for s in sorted(set(splits))},
        "metrics": metrics,
    }


def _starting_weights(weights):
    """'imagenet' or None as they are; a weights file by its file name."""
    if weights in (None, "imagenet", "none"):
        return weights
    return _file_name(str(weights)) or str(weights)


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
