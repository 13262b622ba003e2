"""A gold-standard sample from a labelled corpus: drawn at random (simple or stratified, seeded), coded by people,
read back with checks, and used to measure the classifier where it matters — on the corpus itself.

    sample = draw_gold_sample(labels, 200, strata="predicted", allocation="equal", seed=1)
    write_coding_sheet(sample, "gold/")            # gold/coding_sheet_wave1.csv + .html, sample.parquet, gold.json
    ... annotators fill the `code` column ...
    gold = read_coding_sheet("gold/")              # checked: unknown ids, missing codes, codes outside the classes
    gold_metrics(gold)                             # corpus-level accuracy, precision, recall, F1 with intervals

Every sampled image carries its inclusion probability π (the chance the design gave it of being drawn) and its
weight 1/π, so that estimates from a stratified sample (e.g. the rare predicted class oversampled) are
design-weighted back to the corpus (Horvitz & Thompson 1952). A sample is topped up later by drawing more images
within the same strata from those not drawn yet (previous=): each stratum's union is then a simple random sample
of its combined size, so π is recomputed for every image and nothing already coded is redrawn.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, literal, setting
from ..io.sheets import CODE_COLUMNS, coding_table, write_sheet
from ..io.tables import read_json, to_arrow, write_json, write_table

SAMPLE_FILE = "sample.parquet"
LABELLING_FILE = "labelling.json"  # labelling.DESCRIPTION: a label_corpus() folder
DESIGN_FILE = "gold.json"
SHEET_PREFIX = "coding_sheet_wave"
ALLOCATIONS = ("proportional", "equal")
ALL = "all"  # the one stratum of a simple random sample
DESIGN_COLUMNS = ["image_id", "path", "wave", "draw", "stratum", "stratum_size", "stratum_sample_size",
                  "inclusion_probability", "weight"]
MIN_GOLD = 10  # fewer coded images than this cannot support an interval worth reporting


# ------------------------------------------------------------------------------------------ the corpus

def corpus_table(labels) -> tuple[pa.Table, list | None]:
    """(labelled corpus, classes or None): a Labelling, a labelling directory, a predict() table or its file.
    Raises ImagesAsDataError when there is no image_id column or an image_id repeats."""
    import pyarrow.parquet as pq

    classes = None
    if not isinstance(labels, (str, os.PathLike, pa.Table)) and hasattr(labels, "path") \
            and (Path(labels.path) / LABELLING_FILE).exists():  # a Labelling (read here without importing torch)
        labels = labels.path
    if isinstance(labels, (str, os.PathLike)) and Path(labels).is_dir():
        folder = Path(labels)
        if not (folder / LABELLING_FILE).exists():
            raise ImagesAsDataError(f"{folder} is not a labelling directory (no {LABELLING_FILE}); pass the --out "
                                    "folder of label_corpus, or a predictions table", what="file", path=folder)
        classes = read_json(folder / LABELLING_FILE).get("classes")
        shards = sorted((folder / "shards").glob("shard-*.parquet"))
        if not shards:
            raise ImagesAsDataError(f"{folder / 'shards'} holds no shards yet; run label_corpus() first",
                                    what="file", path=folder / 'shards')
        table = pa.concat_tables([pq.read_table(f) for f in shards])
    else:
        table = to_arrow(labels)
    if "image_id" not in table.column_names:
        raise ImagesAsDataError(f"the labelled corpus has no image_id column (columns: {', '.join(table.column_names)}); "
                                "pass the output of predict() or label_corpus()")
    ids = [None if v is None else str(v) for v in table["image_id"].to_pylist()]
    seen, repeated = set(), []
    for row, image_id in enumerate(ids, start=1):
        if image_id in seen:
            repeated.append(f"{image_id} (row {row})")
        seen.add(image_id)
    if repeated:
        raise ImagesAsDataError(f"image_id repeats in the labelled corpus: {listing(repeated)}; every image needs its "
                                "own id")
    if classes is None:
        probabilities = [c[len("prob_"):] for c in table.column_names if c.startswith("prob_")]
        classes = probabilities or None
    return table.set_column(table.column_names.index("image_id"), "image_id", pa.array(ids, pa.string())), classes


def labelling_run(labels) -> str | None:
    """The run directory a labelling was made with (labelling.json's "run"), or None for a plain predictions table."""
    if not isinstance(labels, (str, os.PathLike, pa.Table)) and hasattr(labels, "path"):
        labels = labels.path
    if isinstance(labels, (str, os.PathLike)) and (Path(labels) / LABELLING_FILE).exists():
        return read_json(Path(labels) / LABELLING_FILE).get("run")
    return None


def training_overlap(gold: pa.Table, run, splits=("train", "val")) -> pa.Table:
    """Gold images whose file content (SHA-256) is among the images a run was fitted on (its train and validation
    splits: model.json's training_images records every image's hash, splits.parquet its split). A model is right
    more often on images it has seen, so such images make it look better on the corpus than it is.

    run: a run directory (or a Run). Returns image_id, path, sha256, run_image_id, split for each such gold image
    (empty when there is none or the run records no hashes)."""
    from ..io.images import sha256_file

    folder = Path(run.path if hasattr(run, "path") else run)
    schema = pa.schema([("image_id", pa.string()), ("path", pa.string()), ("sha256", pa.string()),
                        ("run_image_id", pa.string()), ("split", pa.string())])
    description = folder / "model.json"
    if not description.exists():
        raise ImagesAsDataError(f"{folder} is not a run directory (no model.json); pass the run the labelling was made "
                                "with", what="file", path=folder)
    hashes = (read_json(description, "a run description").get("training_images") or {}).get("sha256") or {}
    split_of = {}
    if (folder / "splits.parquet").exists():
        table = to_arrow(folder / "splits.parquet")
        split_of = dict(zip(map(str, table["image_id"].to_pylist()), map(str, table["split"].to_pylist())))
    seen = {digest: image_id for image_id, digest in hashes.items() if split_of.get(image_id, "train") in splits}
    rows = []
    if seen and "path" in gold.column_names:
        for image_id, path in zip(gold["image_id"].to_pylist(), gold["path"].to_pylist()):
            if path is None or not Path(path).is_file():
                continue
            digest = sha256_file(path)
            if digest in seen:
                rows.append({"image_id": str(image_id), "path": str(path), "sha256": digest,
                             "run_image_id": seen[digest], "split": split_of.get(seen[digest], "train")})
    return pa.Table.from_pylist(rows, schema=schema)


def _usable_rows(table: pa.Table) -> np.ndarray:
    """Rows that can be coded and analysed: readable (no error) and with a prediction."""
    ok = np.ones(table.num_rows, dtype=bool)
    if "error" in table.column_names:
        ok &= np.array([e is None or e == "" for e in table["error"].to_pylist()], dtype=bool)
    if "predicted" in table.column_names:
        ok &= np.array([p is not None for p in table["predicted"].to_pylist()], dtype=bool)
    return np.flatnonzero(ok)


# ------------------------------------------------------------------------------------------ drawing

def _allocate(size: int, capacity: dict, allocation, minimum: int) -> dict:
    """Images per stratum: `size` shared by `allocation` ("proportional" to the stratum's size, "equal", or a
    dict {stratum: n}), never more than a stratum's capacity (its images not drawn yet)."""
    strata = list(capacity)
    if isinstance(allocation, dict):
        unknown = [s for s in allocation if str(s) not in capacity]
        if unknown:
            raise ImagesAsDataError(f"allocation names strata {listing(map(repr, unknown))} that the corpus does not have "
                                    f"(strata: {listing(map(repr, strata))})")
        counts = {s: int(allocation.get(s, 0)) for s in strata}
        too_many = [f"{s!r} ({counts[s]} asked, {capacity[s]} left)" for s in strata if counts[s] > capacity[s]]
        if too_many:
            raise ImagesAsDataError(f"allocation asks for more images than strata hold: {listing(too_many)}")
        if any(v < 0 for v in counts.values()):
            raise ImagesAsDataError("allocation: numbers of images must be 0 or more")
        return counts
    if allocation not in ALLOCATIONS:
        raise ImagesAsDataError(f"{setting('allocation', allocation)}: choose 'proportional', 'equal' or a dict "
                                "{stratum: number of images}", what="option", option="allocation", value=allocation)
    total_capacity = sum(capacity.values())
    if size > total_capacity:
        raise ImagesAsDataError(f"size={size}: only {total_capacity} usable images are left to draw from",
                                what="option", option="size", value=size)
    counts = {s: min(capacity[s], minimum) for s in strata}
    remaining = size - sum(counts.values())
    if remaining < 0:
        raise ImagesAsDataError(f"size={size} is too small for {len(strata)} strata with at least {minimum} images each; "
                                f"draw at least {sum(counts.values())} images, or use fewer strata",
                                what="option", option="size", value=size)
    if allocation == "proportional":
        shares = np.array([capacity[s] for s in strata], dtype=float)
    else:
        shares = np.ones(len(strata))
    # hand out the rest in proportion to the shares (largest remainder), capped by each stratum's room
    while remaining > 0:
        room = np.array([capacity[s] - counts[s] for s in strata], dtype=float)
        active = room > 0
        if not active.any():
            break
        ideal = np.where(active, remaining * shares / shares[active].sum(), 0.0)
        give = np.minimum(np.floor(ideal), room)
        fraction = np.where(active & (give < room), ideal - np.floor(ideal), -1.0)
        for i in np.argsort(-fraction, kind="stable")[:int(remaining - give.sum())]:
            if fraction[i] >= 0:
                give[i] += 1
        if give.sum() == 0:
            break
        for s, extra in zip(strata, give):
            counts[s] += int(extra)
        remaining -= int(give.sum())
    return counts


def draw_gold_sample(labels, size: int | None, *, strata=None, allocation="proportional", seed: int = 0,
                     previous=None, min_per_stratum: int = 2, positive_class=None) -> pa.Table:
    """Draw images from a labelled corpus for people to code; seeded, with each image's inclusion probability.

    labels: the labelled corpus — a Labelling or labelling directory (label_corpus()), or a predict() table or file.
      Unreadable images (an error, no prediction) cannot be coded and are left out of the corpus sampled.
    size: how many images to draw (with previous=: how many more).
    strata: None for a simple random sample; "predicted" (by predicted class, e.g. to oversample a rare class); or
      any column of the corpus table (an account, a day).
    allocation: "proportional" (each stratum in proportion to its size), "equal" (the same number per stratum) or a
      dict {stratum: number}; every stratum gets at least min_per_stratum images (2: a stratum's variance needs two).
    previous: an earlier sample (its table, or the folder write_coding_sheet() wrote) to top up: more images are
      drawn within the same strata from those not drawn yet; the earlier ones are kept as they are.
    positive_class: of two classes, the one whose precision, recall and F1 gold_metrics() reports; recorded with the
      design (default: the labelling's, i.e. the fit's, when `labels` is a labelling; else the engine's rule).
    Returns the whole sample (every wave): image_id, path, wave, draw (order within the wave, random), stratum,
    stratum_size, stratum_sample_size, inclusion_probability, weight (1 / inclusion_probability), then the
    corpus's prediction columns (predicted, prob_<class>…) and any others it has.
    """
    corpus, classes = corpus_table(labels)
    run = labelling_run(labels)
    positive_class = _positive_class(labels, classes, positive_class)
    usable = _usable_rows(corpus)
    if not len(usable):
        raise ImagesAsDataError("the labelled corpus has no readable, labelled images to draw from")
    corpus = corpus.take(pa.array(usable))
    earlier, design = _previous_sample(previous)
    if earlier is not None and strata is None:
        strata = design.get("strata")
    if earlier is not None and (design.get("strata") or None) != (strata or None):
        raise ImagesAsDataError(f"the earlier sample was stratified by {design.get('strata')!r}, not {strata!r}; a top-up "
                                "must use the same strata (leave strata= out to reuse them)")
    stratum_of = _strata_values(corpus, strata)
    ids = corpus["image_id"].to_pylist()
    sizes: dict = {}
    for s in stratum_of:
        sizes[s] = sizes.get(s, 0) + 1
    drawn_before: dict = {}
    wave = 1
    if earlier is not None:
        wave = int(max(earlier["wave"].to_pylist())) + 1
        position = {image_id: i for i, image_id in enumerate(ids)}
        lost = [i for i in earlier["image_id"].to_pylist() if i not in position]
        if lost:
            raise ImagesAsDataError(f"the earlier sample holds images that are not (or no longer) readable in this corpus: "
                                    f"{listing(lost)}; top up from the corpus the sample was drawn from")
        changed = [f"{i} ({s!r} then, {stratum_of[position[i]]!r} now)"
                   for i, s in zip(earlier["image_id"].to_pylist(), earlier["stratum"].to_pylist())
                   if stratum_of[position[i]] != s]
        if changed:
            raise ImagesAsDataError(f"images changed stratum since the earlier draw: {listing(changed)}; the corpus or its "
                                    "predictions changed — top up from the same labelling")
        for s, n in zip(earlier["stratum"].to_pylist(), earlier["stratum_size"].to_pylist()):
            if sizes.get(s) != n:
                raise ImagesAsDataError(f"stratum {s!r} had {n} images when first drawn and has {sizes.get(s, 0)} now; the "
                                        "corpus changed — top up from the same labelling")
        for s in earlier["stratum"].to_pylist():
            drawn_before[s] = drawn_before.get(s, 0) + 1
    if size is None and not isinstance(allocation, dict):
        raise ImagesAsDataError("size=None: say how many images to draw (or give allocation as {stratum: number})",
                                what="option", option="size", value=None)
    if size is not None and (isinstance(size, bool) or int(size) != size or int(size) < 1):
        raise ImagesAsDataError(f"{setting('size', size)}: give a whole number of images of at least 1",
                                what="option", option="size", value=size)
    already = set(earlier["image_id"].to_pylist()) if earlier is not None else set()
    capacity = {s: sizes[s] - drawn_before.get(s, 0) for s in sorted(sizes, key=str)}
    minimum = 0 if earlier is not None else int(min_per_stratum)
    counts = _allocate(int(size) if size is not None else 0, capacity, allocation, minimum)
    if earlier is None:
        empty = [s for s in capacity if counts[s] == 0]
        if empty:
            raise ImagesAsDataError(f"strata {listing(map(repr, empty))} would get no images, so nothing could be said about "
                                    "them (their inclusion probability would be 0); give every stratum at least one image")
    rng = np.random.default_rng([int(seed), wave])
    chosen = []
    for s in capacity:
        pool = [i for i, (image_id, t) in enumerate(zip(ids, stratum_of)) if t == s and image_id not in already]
        if counts[s]:
            chosen += rng.choice(pool, size=counts[s], replace=False).tolist()
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # the annotators' order: strata mixed
    new = corpus.take(pa.array(chosen, pa.int64())) if chosen else corpus.slice(0, 0)
    new_strata = [stratum_of[i] for i in chosen]
    new = _with_design(new, new_strata, wave)
    if earlier is not None:
        keep = [c for c in new.column_names if c in earlier.column_names]
        new = pa.concat_tables([earlier.select(keep), new.select(keep)], promote_options="default")
    sample_sizes = {s: drawn_before.get(s, 0) + counts[s] for s in capacity}
    sample = _set_probabilities(new, sizes, sample_sizes)
    metadata = {"strata": strata, "allocation": allocation if not isinstance(allocation, dict) else
                {str(k): int(v) for k, v in allocation.items()}, "seed": int(seed), "classes": classes or design.get("classes"),
                "corpus_images": int(corpus.num_rows), "run": run or design.get("run")}
    # each wave as drawn (size, allocation, seed), kept with the sample and in gold.json: the record of top-ups
    metadata["waves_drawn"] = list(design.get("waves_drawn", [])) + [
        {"wave": wave, "images": len(chosen), "allocation": metadata["allocation"], "seed": int(seed)}]
    if positive_class is None and design:
        positive_class = design.get("positive_class")
    if positive_class is not None:
        metadata["positive_class"] = positive_class
    return sample.replace_schema_metadata({b"imagesasdata.gold": _json(metadata)})


def _positive_class(labels, classes, given):
    """The positive class to record with a sample: as given (checked against the classes), else the labelling's."""
    if given is not None:
        if classes and str(given) not in [str(c) for c in classes]:
            raise ImagesAsDataError(f"positive_class {literal(given)} is not one of the classes {literal(list(classes))}."
                                    f"{did_you_mean(str(given), classes)}", what="option", option="positive_class",
                                    value=given, expected="one of the classes", choices=classes)
        return str(given)
    folder = getattr(labels, "path", labels)
    if isinstance(folder, (str, os.PathLike)) and (Path(folder) / LABELLING_FILE).exists():
        return read_json(Path(folder) / LABELLING_FILE).get("positive_class")
    return None


def _json(value) -> bytes:
    import json

    return json.dumps(value, default=str).encode()


def sample_design(sample: pa.Table) -> dict:
    """The design a sample was drawn with (strata, allocation, seed, classes, corpus_images), from its metadata."""
    import json

    raw = (sample.schema.metadata or {}).get(b"imagesasdata.gold")
    return json.loads(raw) if raw else {}


def _strata_values(corpus: pa.Table, strata) -> list:
    if strata is None:
        return [ALL] * corpus.num_rows
    if strata not in corpus.column_names:
        raise ImagesAsDataError(f"{setting('strata', strata)}: no such column in the labelled corpus (columns: "
                                f"{', '.join(corpus.column_names)}).{did_you_mean(strata, corpus.column_names)}",
                                what="option", option="strata", value=strata)
    values = corpus[strata].to_pylist()
    missing = [i + 1 for i, v in enumerate(values) if v is None]
    if missing:
        raise ImagesAsDataError(f"column {strata!r} is empty in rows {listing(missing)}; every image needs a stratum",
                                what="rows", row=missing)
    return [str(v) for v in values]


def _with_design(table: pa.Table, strata: list, wave: int) -> pa.Table:
    columns = {"image_id": table["image_id"], "path": table["path"] if "path" in table.column_names
               else pa.array([None] * table.num_rows, pa.string()),
               "wave": pa.array([wave] * table.num_rows, pa.int32()),
               "draw": pa.array(np.arange(1, table.num_rows + 1), pa.int32()),
               "stratum": pa.array(strata, pa.string())}
    out = pa.table(columns)
    for name in table.column_names:
        if name not in out.column_names and name not in DESIGN_COLUMNS:
            out = out.append_column(name, table[name])
    return out


def _set_probabilities(sample: pa.Table, sizes: dict, sample_sizes: dict) -> pa.Table:
    strata = sample["stratum"].to_pylist()
    stratum_size = [sizes[s] for s in strata]
    stratum_sample = [sample_sizes[s] for s in strata]
    probability = [n / N for n, N in zip(stratum_sample, stratum_size)]
    design = {"stratum_size": pa.array(stratum_size, pa.int64()),
              "stratum_sample_size": pa.array(stratum_sample, pa.int64()),
              "inclusion_probability": pa.array(probability, pa.float64()),
              "weight": pa.array([1 / p for p in probability], pa.float64())}
    base = sample.drop_columns([c for c in design if c in sample.column_names])
    position = base.column_names.index("stratum") + 1
    for offset, (name, values) in enumerate(design.items()):
        base = base.add_column(position + offset, name, values)
    return base


def _previous_sample(previous):
    """(table, design) of an earlier sample given as a table or as a coding-sheet folder; (None, {})."""
    if previous is None:
        return None, {}
    if isinstance(previous, (str, os.PathLike)) and Path(previous).is_dir():
        folder = Path(previous)
        if not (folder / SAMPLE_FILE).exists():
            raise ImagesAsDataError(f"{folder} holds no {SAMPLE_FILE}; pass the folder write_coding_sheet() wrote",
                                    what="file", path=folder)
        return to_arrow(folder / SAMPLE_FILE), read_json(folder / DESIGN_FILE) if (folder / DESIGN_FILE).exists() else {}
    table = to_arrow(previous)
    missing = [c for c in ("image_id", "wave", "stratum", "stratum_size") if c not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"previous= is not a gold sample (no {', '.join(missing)} column); pass what "
                                "draw_gold_sample() returned or the folder write_coding_sheet() wrote")
    return table, sample_design(table)


# ------------------------------------------------------------------------------------------ the coding sheet

def write_coding_sheet(sample: pa.Table, out, *, classes=None, thumb_size: int = 192,
                       instructions: str | None = None) -> Path:
    """Write what annotators need into the folder `out`, one coding sheet per wave not written yet:

        sample.parquet                 the whole sample with its design (predictions included: never show them)
        gold.json                      the design: strata, allocation, seed, classes, waves
        coding_sheet_wave<k>.csv       image_id, path, code (empty: one of the classes), note (empty)
        coding_sheet_wave<k>.html      the same images as a contact sheet to look at, captioned by image_id

    Sheets already written are never overwritten (they may hold codes). The sheets show no predictions, so
    annotators are not anchored by the model. Returns the folder.
    """
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ImagesAsDataError(f"{out} is a file; out= must name a folder for the coding sheets",
                                what="file", path=out)
    out.mkdir(parents=True, exist_ok=True)
    sample = to_arrow(sample)
    design = sample_design(sample)
    if (out / SAMPLE_FILE).exists():
        earlier = to_arrow(out / SAMPLE_FILE)
        lost = sorted(set(earlier["image_id"].to_pylist()) - set(sample["image_id"].to_pylist()))
        if lost:
            raise ImagesAsDataError(f"{out} holds a sample with images this one lacks ({listing(lost)}); write a topped-up "
                                    "sample (draw_gold_sample(previous=...)) or choose a new folder",
                                    what="file", path=out)
    classes = list(classes or design.get("classes") or [])
    if not classes:
        raise ImagesAsDataError("which codes may annotators use? pass classes= (e.g. the run's classes)")
    waves = sorted(set(sample["wave"].to_pylist()))
    previous = read_json(out / DESIGN_FILE) if (out / DESIGN_FILE).exists() else {}
    written = {w["wave"]: w for w in previous.get("waves", [])}
    for wave in waves:
        sheet = out / f"{SHEET_PREFIX}{wave}.csv"
        rows = [i for i, w in enumerate(sample["wave"].to_pylist()) if w == wave]
        if not sheet.exists():
            part = sample.take(pa.array(rows, pa.int64()))
            order = np.argsort(np.asarray(part["draw"].to_pylist()), kind="stable")
            part = part.take(pa.array(order))
            _write_wave_sheet(part, sheet, classes, wave, thumb_size, instructions)
        written.setdefault(wave, {"wave": wave, "images": len(rows),
                                  "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                                  "sheet": sheet.name})
    write_table(sample, out / SAMPLE_FILE)
    drawn = {w["wave"]: w for w in design.get("waves_drawn", [])}
    for wave, entry in written.items():
        entry.update({k: v for k, v in drawn.get(wave, {}).items() if k in ("allocation", "seed")})
    write_json({"format": "imagesasdata-gold", "classes": classes, "strata": design.get("strata"),
                "allocation": design.get("allocation"), "seed": design.get("seed"),
                "corpus_images": design.get("corpus_images"), "run": design.get("run"),
                "waves_drawn": design.get("waves_drawn", []), "waves": [written[w] for w in sorted(written)],
                "code_column": "code"}, out / DESIGN_FILE)
    return out


def _write_wave_sheet(part: pa.Table, sheet: Path, classes, wave: int, thumb_size: int, instructions) -> None:
    text = instructions or ("Code every image: write one of the codes below in the <code>code</code> column of "
                            f"<code>{sheet.name}</code>, in the row with the image's id. Judge the image "
                            "itself; leave a remark in <code>note</code> if a case is unclear.")
    codes = "Codes: " + ", ".join(f"<b>{html.escape(str(c))}</b>" for c in classes)
    write_sheet(coding_table(part, CODE_COLUMNS), sheet, view_title=f"Coding sheet, wave {wave}",
                       view_heading=f"Coding sheet, wave {wave}: {part.num_rows} images", paragraphs=(text, codes),
                       thumb_size=thumb_size)


# ------------------------------------------------------------------------------------------ reading codes

def _code_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def read_coding_sheet(coded, *, sample=None, classes=None, code: str = "code", missing: str = "error",
                      run=None) -> pa.Table:
    """Read coded sheets back, checked, as the gold standard.

    coded: the folder write_coding_sheet() wrote (every coding_sheet_wave<k>.csv in it is read), or one coded table
      (CSV/Parquet file or table) with image_id and `code` columns — then pass sample= (the sample or its folder).
    classes: the codes allowed (default: those recorded with the sample).
    missing: "error" (default) when a sampled image has no code; "drop" leaves uncoded images out with a warning
      — valid only if why they are uncoded has nothing to do with what they show.
    run: the run whose predictions are being checked (default: the one recorded when the sample was drawn from a
      labelling). Gold images whose content is among its training or validation images are left out with a warning
      naming them (training_overlap()): a model is right more often on images it was fitted on.
    Returns the sample's rows with `label` (the code, as text), in the sample's order: image_id, path, label, wave,
    draw, stratum, stratum_size, stratum_sample_size, inclusion_probability, weight, then the corpus's predicted
    and prob_<class> columns.
    Raises ImagesAsDataError naming the file and row for: ids not in the sample, an image coded twice differently,
    missing codes, and codes outside the classes.
    """
    import warnings

    if missing not in ("error", "drop"):
        raise ImagesAsDataError(f"{setting('missing', missing)}: choose 'error' or 'drop'",
                                what="option", option="missing", value=missing)
    design: dict = {}
    sheets: list[tuple[str, pa.Table]] = []
    if isinstance(coded, (str, os.PathLike)) and Path(coded).is_dir():
        folder = Path(coded)
        files = sorted(folder.glob(f"{SHEET_PREFIX}*.csv"), key=lambda p: _wave_number(p.name))
        if not files:
            raise ImagesAsDataError(f"{folder} holds no {SHEET_PREFIX}<k>.csv; pass the folder write_coding_sheet() wrote",
                                    what="file", path=folder)
        sheets = [(str(f), _read_sheet(f)) for f in files]
        if sample is None:
            sample = folder
    else:
        sheets = [(str(coded) if isinstance(coded, (str, os.PathLike)) else "the coded table", _read_sheet(coded))]
    # one numbering rule for every message: a CSV/TSV sheet's own line numbers (header = line 1), else table rows
    first_line = {name: 2 if str(name).lower().endswith((".csv", ".tsv")) else 1 for name, _ in sheets}
    word = {name: "line" if first_line[name] == 2 else "row" for name, _ in sheets}
    if sample is None:
        raise ImagesAsDataError("read_coding_sheet(): pass sample= (the sample, or the folder write_coding_sheet() "
                                "wrote) so the codes can be matched to the design")
    sample_table, design = _previous_sample(sample)
    design = {**sample_design(sample_table), **design}
    classes = [str(c) for c in (classes or design.get("classes") or [])]
    if not classes:
        raise ImagesAsDataError("which codes are allowed? pass classes= (the run's classes)")
    in_sample = set(sample_table["image_id"].to_pylist())
    codes: dict = {}
    where: dict = {}
    unknown, conflicts, outside = [], [], []
    first: dict = {}   # kind of problem -> (sheet, row) of its first case: the error's path and row fields
    for name, sheet in sheets:
        for column in ("image_id", code):
            if column not in sheet.column_names:
                raise ImagesAsDataError(f"{name}: no {column!r} column (columns: {', '.join(sheet.column_names)})."
                                        f"{did_you_mean(column, sheet.column_names)}", what="column", path=str(name),
                                        value=column, choices=sheet.column_names)
        for row, (image_id, value) in enumerate(zip(sheet["image_id"].to_pylist(), sheet[code].to_pylist()),
                                                start=first_line[name]):
            here = f"{Path(name).name} {word[name]} {row}"
            image_id = None if image_id is None else str(image_id).strip()
            value = _code_text(value)
            if image_id is None or image_id == "":
                if value is not None:
                    unknown.append(f"{here} (no image_id)")
                    first.setdefault("unknown", (name, row))
                continue
            if image_id not in in_sample:
                unknown.append(f"{here} ({image_id})")
                first.setdefault("unknown", (name, row))
                continue
            if value is None:
                continue
            if value not in classes:
                folded = {c.casefold(): c for c in classes}
                if value.casefold() in folded:
                    value = folded[value.casefold()]
                else:
                    outside.append(f"{here}: {literal(value)}")
                    first.setdefault("outside", (name, row, value))
                    continue
            if image_id in codes and codes[image_id] != value:
                conflicts.append(f"{image_id} ({literal(codes[image_id])} in {where[image_id]}, {literal(value)} in {here})")
                first.setdefault("conflict", (name, row))
                continue
            codes[image_id] = value
            where[image_id] = here
    if unknown:
        raise ImagesAsDataError(f"coded rows whose image_id is not in the sample: {listing(unknown)}; fix the id (copy it "
                                "from the sheet) or delete the row — only sampled images can be gold", what="file",
                                path=str(first["unknown"][0]), row=first["unknown"][1])
    if outside:
        raise ImagesAsDataError(f"codes outside the classes ({', '.join(classes)}): {listing(outside)}; use one of the "
                                f"classes exactly.{did_you_mean(first['outside'][2], classes)}",
                                what="file", path=str(first["outside"][0]), row=first["outside"][1],
                                value=first["outside"][2], choices=classes)
    if conflicts:
        raise ImagesAsDataError(f"images coded twice with different codes: {listing(conflicts)}; keep one code per image",
                                what="file", path=str(first["conflict"][0]), row=first["conflict"][1])
    uncoded = [i for i in sample_table["image_id"].to_pylist() if i not in codes]
    if uncoded and missing == "error":
        located = []
        for image_id in uncoded:
            found = next((f"{Path(n).name} {word[n]} {r}" for n, s in sheets
                          for r, v in enumerate(s["image_id"].to_pylist(), start=first_line[n])
                          if str(v).strip() == image_id), None)
            located.append(f"{image_id} ({found})" if found else f"{image_id} (not in any sheet)")
        raise ImagesAsDataError(f"{len(uncoded)} sampled images have no code: {listing(located)}; code them, or pass "
                                "missing='drop' if they are uncoded for reasons unrelated to what they show")
    if uncoded:
        warnings.warn(f"{len(uncoded)} sampled images have no code and are left out of the gold standard: "
                      f"{listing(uncoded, 5)}")
    run = run if run is not None else design.get("run")
    if run is not None and Path(run.path if hasattr(run, "path") else run).exists():
        overlap = training_overlap(sample_table.filter(pa.array([i in codes for i in sample_table["image_id"].to_pylist()]))
                                   if sample_table.num_rows else sample_table, run)
        if overlap.num_rows:
            seen = overlap["image_id"].to_pylist()
            named = [f"{i} (= {r}, {s})" for i, r, s in zip(seen, overlap["run_image_id"].to_pylist(),
                                                           overlap["split"].to_pylist())]
            warnings.warn(f"{len(seen)} gold image(s) were among the images the model was fitted on and are left out: "
                          f"{listing(named, 5)}. A model is right more often on images it has seen, so they would make "
                          "it look better on the corpus than it is")
            for image_id in seen:
                codes.pop(image_id, None)
            design = {**design, "excluded_training_images": seen}
    keep = [i for i, image_id in enumerate(sample_table["image_id"].to_pylist()) if image_id in codes]
    gold = sample_table.take(pa.array(keep, pa.int64()))
    labels = pa.array([codes[i] for i in gold["image_id"].to_pylist()], pa.string())
    if "label" in gold.column_names:
        gold = gold.drop_columns(["label"])
    gold = gold.add_column(2, "label", labels)
    metadata = dict(sample_table.schema.metadata or {})
    metadata[b"imagesasdata.gold"] = _json({**design, "classes": classes})
    return gold.replace_schema_metadata(metadata)


def _wave_number(name: str) -> int:
    digits = "".join(ch for ch in name[len(SHEET_PREFIX):] if ch.isdigit())
    return int(digits) if digits else 0


def _read_sheet(source) -> pa.Table:
    table = to_arrow(source)
    # a sheet saved by Excel may start with a byte-order mark
    names = [n.lstrip("\ufeff").strip() for n in table.column_names]
    return table.rename_columns(names)


# ------------------------------------------------------------------------------------------ metrics on gold

def gold_metrics(gold, *, classes=None, positive_class=None, confidence: float = 0.95, resamples: int = 1000,
                 seed: int = 0, design: str | None = None) -> pa.Table:
    """Return the classifier's accuracy, precision, recall and F1 on the corpus, from a coded gold sample (a metrics
    table). Raises ImagesAsDataError for a table without the truth or inclusion-probability columns it needs,
    fewer coded images than an interval needs, or labels outside the classes.

    With unequal inclusion probabilities (a stratified sample) every estimate is design-weighted (each image counts
    1/π times), so it estimates performance on the whole corpus, not on the sample; intervals are Wilson intervals
    on the design's effective sample size (Korn & Graubard 1998) and a bootstrap within strata. With equal
    probabilities this is the ordinary table (Wilson and bootstrap intervals). Columns: split ("gold"), metric,
    estimator, class, estimate, n (coded images behind the estimate), lower, upper, interval.
    design: None reads the inclusion probabilities from the gold table (an error when it has none); "srs" declares
    a simple random sample.
    """
    from ..data.table import choose_positive_class
    from ..measure.metrics import confusion_counts, metrics_from_counts

    gold = to_arrow(gold)
    recorded = sample_design(gold)
    for column in ("label", "predicted"):
        if column not in gold.column_names:
            raise ImagesAsDataError(f"the gold table has no {column!r} column; pass what read_coding_sheet() returned")
    classes = [str(c) for c in (classes or recorded.get("classes") or [])] or \
        sorted({v for v in gold["label"].to_pylist() + gold["predicted"].to_pylist() if v is not None})
    check_gold_size(gold.num_rows)
    truth = [str(v) for v in gold["label"].to_pylist()]
    predicted = [None if v is None else str(v) for v in gold["predicted"].to_pylist()]
    strange = sorted({v for v in truth + predicted if v not in classes}, key=str)
    if strange:
        raise ImagesAsDataError(f"labels {listing(map(repr, strange))} are not among the classes ({', '.join(classes)})")
    if positive_class is None and recorded.get("positive_class") in classes:
        positive_class = recorded["positive_class"]   # the fit's, recorded when the sample was drawn
    positive = choose_positive_class(classes, positive_class) if len(classes) == 2 else None
    probabilities = inclusion_probabilities(gold, design=design)
    weights = 1 / probabilities
    strata = gold["stratum"].to_pylist() if "stratum" in gold.column_names else [ALL] * gold.num_rows
    if np.allclose(probabilities, probabilities[0]):
        table = metrics_from_counts(confusion_counts(truth, predicted, classes), classes, positive,
                                    confidence=confidence, resamples=resamples, seed=seed)
        return table.add_column(0, "split", pa.array(["gold"] * table.num_rows, pa.string()))
    from ..measure.subgroups import design_weighted_metrics

    table = design_weighted_metrics(truth, predicted, classes, positive, weights, strata, confidence=confidence,
                                    resamples=resamples, seed=seed)
    return table.add_column(0, "split", pa.array(["gold"] * table.num_rows, pa.string()))


def check_gold_size(n: int, what: str = "the gold sample") -> None:
    if n < MIN_GOLD:
        raise ImagesAsDataError(
            f"{what} has {n} coded images; at least {MIN_GOLD} are needed for any estimate with an interval, and a "
            "regression needs a few hundred — draw more with draw_gold_sample(labels, size, previous=<the sample>) "
            "and code them")


DESIGNS = (None, "srs")


def no_design_error(column: str = "inclusion_probability") -> ImagesAsDataError:
    """The error for a gold table that does not say how its images were chosen."""
    return ImagesAsDataError(
        f"the gold sample has no {column!r} column, so nothing says how its images were chosen — a convenience sample "
        "or the validation split would pass for a random one. Draw it with draw_gold_sample() (which records each "
        "image's inclusion probability), or, if it is a simple random sample of this corpus, say so with design='srs'")


def check_design(design) -> str | None:
    if design not in DESIGNS:
        raise ImagesAsDataError(f"{setting('design', design)}: leave it out (the gold table's inclusion_probability says how it "
                                "was drawn) or pass 'srs' for a simple random sample of the corpus",
                                what="option", option="design", value=design)
    return design


def inclusion_probabilities(gold: pa.Table, column: str = "inclusion_probability", corpus_size: int | None = None,
                            design: str | None = None):
    """Each gold image's inclusion probability π, checked to lie in (0, 1] (errors name the rows: missing, not a
    number, 0 or less, above 1). Without the column the caller must say design="srs" (a simple random sample:
    π = n / corpus_size, or 1 when the corpus size is unknown and only equal weights matter); otherwise
    ImagesAsDataError, since a sample that does not say how it was drawn may be a convenience sample."""
    check_design(design)
    if column not in gold.column_names:
        if design != "srs":
            raise no_design_error(column)
        n = gold.num_rows
        return np.full(n, n / corpus_size if corpus_size else 1.0)
    values = gold[column].to_pylist()
    ids = gold["image_id"].to_pylist() if "image_id" in gold.column_names else [None] * len(values)
    numbers, text, low, high = [], [], [], []
    for row, (image_id, value) in enumerate(zip(ids, values), start=1):
        where = f"row {row}" + (f" ({image_id}: {value!r})" if image_id is not None else f" ({value!r})")
        try:
            number = float(value) if value is not None and not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if value is None or isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
            text.append(where)
        elif number <= 0:
            low.append(where)
        elif number > 1:
            high.append(where)
        numbers.append(number)
    problems = []
    if text:
        problems.append(f"missing or not a number: {listing(text, 5)}")
    if low:
        problems.append(f"0 or less — an image with probability 0 could never have been drawn: {listing(low, 5)}")
    if high:
        problems.append(f"above 1 — no design draws an image more surely than certainly (π = n_h / N_h ≤ 1; is it a "
                        f"weight, 1/π?): {listing(high, 5)}")
    if problems:
        raise ImagesAsDataError(f"inclusion probabilities must lie in (0, 1]; column {column!r} holds values "
                                + "; and ".join(problems) + ". Use the inclusion_probability column draw_gold_sample() "
                                "wrote")
    return np.asarray(numbers, dtype=float)


# ------------------------------------------------------------------------------------------ for the R bridge

def design_json(table: pa.Table) -> str:
    """A sample's design (its schema metadata) as JSON text, for R to keep beside a tibble ("" when none)."""
    raw = (to_arrow(table).schema.metadata or {}).get(b"imagesasdata.gold")
    return raw.decode() if raw else ""


def with_design(table: pa.Table, design: str) -> pa.Table:
    """A table with a sample's design attached again (the metadata a tibble cannot carry through the bridge)."""
    table = to_arrow(table)
    if not design:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"imagesasdata.gold": design.encode()})
