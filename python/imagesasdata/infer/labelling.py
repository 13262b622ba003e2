"""Labelling a whole corpus with a fitted run: a manifest of images in, Parquet shards out.

The manifest (CSV or Parquet; local paths or s3:// URIs) is cut into chunks of `shard_size` rows; chunk k becomes
`shards/shard-<k>.parquet`, written atomically as soon as its last image is labelled, in a local folder or under an
s3:// prefix (io/outputs.py: a file or an object is whole or absent; one job at a time). An interrupted job is
simply run again: finished shards are skipped. Every shard has the columns of predict() — image_id, path,
predicted, prob_<class>…, error — and an unreadable image is a row with its error, never a stopped job.

Two backends write the same shards from the same two pieces of model.inference, decode_images() and Predictor:
"local" runs here (no Ray needed), "ray" on a Ray cluster with a pool of model replicas (scale.cluster).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ImagesAsDataError, listing, setting
from ..io.images import sha256_file
from ..io.locks import tidy_if_idle
from ..io.outputs import LocalOutput, claimed_output, open_output
from ..io.s3 import is_uri, read_s3_bytes
from ..io.tables import check_text, is_table_file, to_arrow
from ..model.inference import Predictor, batch_ranges, decode_batch, predict_paths, predictions_table
from ..runs import WEIGHTS, as_run_directory

SHARDS = "shards"
LABELLING_MANIFEST = "manifest.parquet"
LABELLING_DESCRIPTION = "labelling.json"
BACKENDS = ("local", "ray")
BATCHES_PER_BLOCK = 4   # Ray backend: batches per Ray Data block (one task)


# ------------------------------------------------------------------------------------------ the manifest

def read_manifest(manifest, *, path: str | None = None, image_id: str | None = None,
                  endpoint_url: str | None = None) -> pa.Table:
    """Return the images to label as a table image_id, path.

    manifest: a CSV/Parquet file (on disk or at an s3:// URI), a pandas DataFrame or Arrow table with a path
      column, a folder, or a list of paths. Paths may be local (relative ones are resolved against the
      manifest's folder, as in image_table()) or s3:// URIs (relative ones against an s3:// manifest's prefix).
    Raises ImagesAsDataError for an empty manifest, a missing path column, or a scheme other than s3://.
    """
    from ..data.table import PATH_COLUMN_GUESSES, image_table

    root = None
    if isinstance(manifest, (str, os.PathLike)) and is_uri(manifest):
        table, root = _read_remote_table(str(manifest), endpoint_url), str(manifest).rsplit("/", 1)[0]
    elif isinstance(manifest, (str, os.PathLike)) and is_table_file(manifest):
        table, root = to_arrow(manifest), Path(manifest).expanduser().resolve().parent
    elif isinstance(manifest, (list, tuple)) and any(is_uri(p) for p in manifest):
        table = pa.table({"path": pa.array([str(p) for p in manifest], pa.string())})
    elif isinstance(manifest, (str, os.PathLike, list, tuple)):
        return image_table(manifest).select(["image_id", "path"])  # a folder, a file, a list of local paths
    else:
        table = to_arrow(manifest)
    if table.num_rows == 0:
        raise ImagesAsDataError("the manifest has no rows; it needs one row per image with a path column")
    column = path or next((c for c in PATH_COLUMN_GUESSES if c in table.column_names), None)
    if column is None or column not in table.column_names:
        raise ImagesAsDataError(f"no path column{f' {path!r}' if path else ''} in the manifest (columns: "
                                f"{', '.join(table.column_names)}); name it with path=… (--path)")
    if image_id is not None and image_id not in table.column_names:
        raise ImagesAsDataError(f"no image_id column {image_id!r} in the manifest (columns: {', '.join(table.column_names)})")
    raw = [None if v is None else str(v) for v in table[column].to_pylist()]
    if not any(is_uri(p) for p in raw if p) and not is_uri(root or ""):
        return image_table(table, path=column, image_id=image_id, root=root).select(["image_id", "path"])
    missing = [i + 1 for i, p in enumerate(raw) if not p]
    if missing:
        raise ImagesAsDataError(f"column {column!r} of the manifest is empty in rows {listing(missing)}; every row "
                                "needs a path or s3:// URI", what="rows", row=missing)
    schemes = sorted({p.split("://", 1)[0] for p in raw if is_uri(p) and not p.startswith("s3://")})
    if schemes:
        raise ImagesAsDataError(f"the manifest holds {', '.join(s + '://' for s in schemes)} addresses; images can be "
                                "local paths or s3:// URIs (copy other sources to S3 or disk first)")
    paths = [p if is_uri(p) else (f"{root}/{p}" if is_uri(root or "") else str((Path(root or Path.cwd()) /
             Path(p).expanduser()).resolve())) for p in raw]
    if image_id or "image_id" in table.column_names:
        ids = [None if v is None else str(v) for v in table[image_id or "image_id"].to_pylist()]
    else:   # as for local tables: the address as the manifest writes it
        ids = raw
    return pa.table({"image_id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string())})


def _read_remote_table(uri: str, endpoint_url=None) -> pa.Table:
    import io

    import pyarrow.csv as pa_csv

    data = read_s3_bytes(uri, endpoint_url)
    suffix = PurePosixPath(uri).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.read_table(io.BytesIO(data))
    if suffix in (".csv", ".tsv"):
        table = pa_csv.read_csv(io.BytesIO(data), parse_options=pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
        check_text(table, uri, "utf-8")
        return table
    raise ImagesAsDataError(f"{uri}: a manifest must end in .csv, .tsv or .parquet")


# ------------------------------------------------------------------------------------------ reading images

def model_bytes(run) -> bytes:
    """The run's weights as safetensors bytes, checked by Run.weights() (checksum, classes; pickles refused)."""
    from safetensors.torch import save

    return save(run.weights())


# ------------------------------------------------------------------------------------------ shards

def shard_name(shard: int) -> str:
    """A shard's name inside the labelling's folder or prefix."""
    return f"{SHARDS}/shard-{shard:06d}.parquet"


def shard_rows(shard: int, shard_size: int, total: int) -> range:
    return range(shard * shard_size, min(total, (shard + 1) * shard_size))


def shard_names(output) -> list[str]:
    """The shard files of a labelling's output (LocalOutput or S3Output), in shard order."""
    return [f"{SHARDS}/{name}" for name in output.names(SHARDS, "shard-*.parquet")]


def finished_shards(output, shard_size: int, total: int) -> set:
    """Shards already written with the expected number of rows (writes are atomic: a file or an S3 object is whole or
    absent). output: a LocalOutput or S3Output (io/outputs.py), or a local folder."""
    if not hasattr(output, "names"):
        output = LocalOutput(Path(output))
    numbered = {}
    for name in shard_names(output):
        try:
            numbered[name] = int(PurePosixPath(name).stem.split("-", 1)[1])
        except ValueError:
            continue
    rows = output.rows(list(numbered))
    return {shard for name, shard in numbered.items() if rows.get(name) == len(shard_rows(shard, shard_size, total))}


class ShardWriter:
    """Collects labelled rows in any order and writes each shard the moment its last row arrives."""

    def __init__(self, output, manifest: pa.Table, shard_size: int, classes, pending, progress=None, threshold=None,
                 positive_class=None):
        self.output, self.manifest, self.shard_size, self.classes = output, manifest, shard_size, list(classes)
        self.remaining = {s: len(shard_rows(s, shard_size, manifest.num_rows)) for s in pending}
        self.parts: dict = {s: [] for s in pending}
        self.progress = progress
        self.threshold, self.positive_class = threshold, positive_class
        self.written = self.labelled = self.unreadable = 0

    def add(self, rows, probabilities, errors) -> None:
        rows = np.asarray(rows, np.int64)
        shards = rows // self.shard_size
        for shard in np.unique(shards):
            mine = shards == shard
            self.parts[int(shard)].append((rows[mine], probabilities[mine], [e for e, m in zip(errors, mine) if m]))
            self.remaining[int(shard)] -= int(mine.sum())
            if self.remaining[int(shard)] == 0:
                self._write(int(shard))
        self.labelled += len(rows)
        self.unreadable += sum(1 for e in errors if e)
        if self.progress is not None:
            self.progress.update(len(rows))

    def _write(self, shard: int) -> None:
        parts = self.parts.pop(shard)
        rows = np.concatenate([p[0] for p in parts])
        order = np.argsort(rows, kind="stable")
        probabilities = np.concatenate([p[1] for p in parts])[order]
        errors = [e for p in parts for e in p[2]]
        errors = [errors[i] for i in order]
        span = shard_rows(shard, self.shard_size, self.manifest.num_rows)
        if not np.array_equal(rows[order], np.arange(span.start, span.stop)):
            raise RuntimeError(f"shard {shard}: rows arrived twice or not at all")  # a bug, not a user error
        table = predictions_table(self.manifest.slice(span.start, len(span)), probabilities, errors, self.classes,
                                  self.threshold, self.positive_class)
        self.output.write_table(table, shard_name(shard))   # one atomic write: a shard is whole or absent
        self.written += 1

    @property
    def complete(self) -> bool:
        return not self.parts


# ------------------------------------------------------------------------------------------ the job

@dataclass
class Labelling:
    """A labelled corpus (shards/ of Parquet, in a folder or under an s3:// prefix) and what the last call did."""

    path: Path | str         # the folder, or the s3://bucket/prefix
    images: int              # rows in the manifest
    shards: int              # shards in all
    shards_done: int         # shards on disk now
    shards_written: int      # by this call
    labelled: int            # images labelled by this call
    unreadable: int          # of those, images with an error
    seconds: float           # wall time of this call, from reading the manifest to the last shard
    backend: str
    note: str | None = None  # when the run's validation metrics may not transfer to this corpus (analysis/transfer.py)
    temperature: float | None = None  # the temperature applied to the probabilities (None: uncalibrated)
    threshold: float | None = None    # binary tasks: the threshold applied (None: the most probable class)
    cluster: dict | None = None       # backend "ray": the nodes, model replicas, images per node, nodes lost
    endpoint_url: str | None = None   # the S3 endpoint of an s3:// labelling
    positive_class: str | None = None

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards

    @property
    def images_per_second(self) -> float:
        return self.labelled / self.seconds if self.seconds > 0 else float("nan")

    @property
    def table(self) -> pa.Table:
        """Every finished shard, in manifest order, in memory. For tens of millions of rows, read the shards folder
        lazily instead (pyarrow.dataset.dataset(path / "shards"), arrow::open_dataset() in R)."""
        output = open_output(self.path, self.endpoint_url)
        names = shard_names(output)
        if not names:
            raise ImagesAsDataError(f"{output.address(SHARDS)} holds no shards yet; run label_corpus() first",
                                    what="file", path=output.address(SHARDS))
        return pa.concat_tables(output.read_tables(names))

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"{self.shards_done} of {self.shards} shards done; run again to resume"
        lines = [f"imagesasdata labelling  {self.path}", f"  {self.images:,} images in {self.shards} shards ({state})"]
        if self.labelled:
            lines.append(f"  this call ({self.backend}): {self.labelled:,} images labelled ({self.unreadable:,} unreadable) "
                         f"in {self.seconds:.1f} s — {self.images_per_second:,.1f} images/s")
        settings = ([f"probabilities calibrated (temperature {self.temperature:.3g})"] if self.temperature else []) \
            + ([f"threshold {self.threshold:g}"] if self.threshold is not None else [])
        if settings:
            lines.append("  " + "; ".join(settings))
        lines += _cluster_lines(self.cluster)
        if self.note:
            lines.append(f"  note: {self.note}")
        earlier = self.shards_done - self.shards_written
        if earlier:
            lines.append(f"  {earlier} shards were done earlier{' and skipped' if self.seconds else ''}")
        return "\n".join(lines)


def label_corpus(run, manifest, *, out, backend: str = "local", shard_size: int = 1000, batch_size: int = 32,
                 device: str = "auto", precision: str = "auto", num_workers: int | None = None,
                 replicas: int | None = None, gpus_per_replica: float | None = None,
                 cpus_per_replica: float | None = None,
                 max_shards: int | None = None, path: str | None = None, image_id: str | None = None,
                 endpoint_url: str | None = None, allow_unfinished: bool = False, progress: bool = True,
                 calibrate: bool = False, threshold: float | None = None) -> Labelling:
    """Label every image of a manifest with a fitted run into Parquet shards under `out`; resumable. Returns the
    Labelling (its folder, counts and table).

    run: a Run or run directory. manifest: see read_manifest() (CSV/Parquet of local paths or s3:// URIs).
    out: the labelling's folder, or an s3://bucket/prefix: manifest.parquet, labelling.json and
      shards/shard-NNNNNN.parquet (image_id, path, predicted, prob_<class>…, error — as predict()). Run again with
      the same out to resume: finished shards are skipped. Every file (every S3 object) is written in one atomic
      step, labelling.json's final status last.
    backend: "local" (this machine) or "ray" (joins RAY_ADDRESS, or starts a Ray cluster here): decoding runs as
      Ray tasks and the model as `replicas` actors — one per GPU by default (gpus_per_replica=1); on a cluster
      without GPUs one per cpus_per_replica cores (default 1), each decoding its own images. On a cluster of
      several machines a local `out` must be a folder every node sees (so that a job resubmitted on another node
      finds its shards), or else an s3:// prefix; this is checked on every node before anything is written.
    cpus_per_replica: also the threads of the local backend's one model (default: torch's choice, all cores; on a
      machine shared with other work, 1 can be much faster — see benchmarks/README.md).
    max_shards: label at most this many unfinished shards, e.g. to time a trial run before the whole corpus.
    endpoint_url: an S3-compatible endpoint (MinIO, Ceph at a university) for s3:// images and outputs; default:
      AWS (or AWS_ENDPOINT_URL_S3). Credentials come from the standard AWS chain only.
    allow_unfinished: label with a run that did not finish training (refused by default).
    calibrate, threshold: as in predict() (the run's temperature; a binary task's threshold); recorded in
      labelling.json, and a resumed labelling must use the same.
    The output is claimed while the job runs (a folder's lock, or a renewed claim object under an s3:// prefix): a
    second job on the same out is refused.
    Raises ImagesAsDataError for a bad manifest or options, when `out` holds a labelling by another model or
    of another manifest, or when a node of the Ray cluster cannot read the images or a local `out`.
    """
    return _label_corpus(**locals(), out_on_every_node=True)


def _label_corpus(run, manifest, *, out, backend: str = "local", shard_size: int = 1000, batch_size: int = 32,
                  device: str = "auto", precision: str = "auto", num_workers: int | None = None,
                  replicas: int | None = None, gpus_per_replica: float | None = None,
                  cpus_per_replica: float | None = None, max_shards: int | None = None, path: str | None = None,
                  image_id: str | None = None, endpoint_url: str | None = None, allow_unfinished: bool = False,
                  progress: bool = True, calibrate: bool = False, threshold: float | None = None,
                  out_on_every_node: bool = True) -> Labelling:
    """label_corpus(). out_on_every_node=False skips the check that every node sees a local `out`: predict()'s
    scratch folder, which only this process reads, and is gone when it returns."""
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise ImagesAsDataError(f"{setting('backend', backend)}: choose 'local' (this machine) or 'ray' (a Ray cluster)",
                                what="option", option="backend", value=backend)
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ImagesAsDataError(f"{name}={value}: use a positive number of images",
                                    what="option", option=name, value=value)
    started = time.perf_counter()
    from ..analysis.calibration import prediction_description
    from ..analysis.thresholds import check_threshold
    from ..analysis.transfer import selection_note

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    threshold = check_threshold(threshold, run.classes)
    description = prediction_description(run.description, calibrate)
    temperature = description["apply_temperature"] if calibrate else None
    table = read_manifest(manifest, path=path, image_id=image_id, endpoint_url=endpoint_url)
    check_unique_ids(table, "the manifest")
    weights = model_bytes(run)   # checked (checksum, pickles refused) before anything is written
    total = table.num_rows
    spec = {"format": "imagesasdata-labelling", "run": str(run.path), "model_sha256": run.description.get(
            "files", {}).get(WEIGHTS) or sha256_file(run.path / WEIGHTS),
            "classes": run.classes, "images": total, "shard_size": int(shard_size), "temperature": temperature,
            "threshold": threshold, "note": selection_note(run.description), "positive_class": run.positive_class}
    with claimed_output(out, what="labelling", marker=LABELLING_DESCRIPTION, endpoint_url=endpoint_url) as output:
        if backend == "ray":   # before anything is written or decoded
            check_storage_on_every_node(table, output if output.kind == "local" and out_on_every_node else None)
        _check_same_labelling(output, spec, table)
        # labelling.json before the manifest and the first shard: it marks the folder, and a killed job is
        # recognised on its rerun
        if not output.exists(LABELLING_DESCRIPTION) or not shard_names(output):
            output.write_json({**spec, "status": "started"}, LABELLING_DESCRIPTION)
        output.write_table(table, LABELLING_MANIFEST)
        shards = -(-total // shard_size)
        done = finished_shards(output, shard_size, total)
        pending = [s for s in range(shards) if s not in done]
        if max_shards is not None:
            pending = pending[:max(0, int(max_shards))]
        rows = sum(len(shard_rows(s, shard_size, total)) for s in pending)
        with tqdm(total=rows, desc=f"labelling ({backend})", unit="img", disable=not progress, smoothing=0.1) as bar:
            writer = ShardWriter(output, table, shard_size, run.classes, pending, progress=bar, threshold=threshold,
                                 positive_class=run.positive_class)
            cluster = None
            if pending and backend == "local":
                label_locally(table, pending, shard_size, writer, description, weights, batch_size=batch_size,
                              device=device, precision=precision, workers=num_workers, endpoint_url=endpoint_url,
                              threads=cpus_per_replica)
            elif pending:
                cluster = label_on_ray(table, pending, shard_size, writer, description, weights,
                                       batch_size=batch_size, device=device, precision=precision, workers=num_workers,
                                       replicas=replicas, gpus_per_replica=gpus_per_replica,
                                       cpus_per_replica=cpus_per_replica or 1, endpoint_url=endpoint_url)
        result = Labelling(output.location, total, shards, len(done) + writer.written, writer.written, writer.labelled,
                           writer.unreadable, time.perf_counter() - started, backend, spec["note"], temperature,
                           threshold, cluster, endpoint_url if output.kind == "s3" else None, run.positive_class)
        spec.update(status="complete" if result.complete else "partial", shards=shards, shards_done=result.shards_done,
                    last_call={"backend": backend, "images": result.labelled, "seconds": round(result.seconds, 3),
                               "images_per_second": round(result.images_per_second, 2) if result.labelled else None,
                               **({"cluster": cluster} if cluster else {})})
        output.write_json(spec, LABELLING_DESCRIPTION)   # the final status last: every shard it counts is written
        return result


def check_unique_ids(table: pa.Table, what: str) -> None:
    """Every image_id once: two rows with one id (the same path listed twice) would give two answers for one image."""
    seen: dict = {}
    for row, image_id in enumerate(table["image_id"].to_pylist(), start=1):
        seen.setdefault(image_id, []).append(row)
    repeated = [f"{image_id!r} (rows {', '.join(map(str, rows[:3]))}{' …' if len(rows) > 3 else ''})"
                for image_id, rows in seen.items() if len(rows) > 1]
    if repeated:
        raise ImagesAsDataError(f"{what} lists {len(repeated)} image(s) more than once: {listing(repeated, 5)}. "
                                "List each image once (drop the duplicate rows), or give them distinct image_id values")


def load_labelling(path, *, endpoint_url: str | None = None) -> Labelling:
    """Re-open a labelling (finished or not): its folder, or its s3://bucket/prefix (endpoint_url: as in
    label_corpus()). Returns its Labelling, with where its last call on Ray ran; raises ImagesAsDataError when
    `path` is not one."""
    output = open_output(path, endpoint_url)
    if not output.exists(LABELLING_DESCRIPTION):
        raise ImagesAsDataError(f"{output.location} is not a labelling (no {LABELLING_DESCRIPTION}); pass the --out "
                                "of label", what="file", path=output.location)
    spec = output.read_json(LABELLING_DESCRIPTION, "a labelling description")
    if output.kind == "local":
        tidy_if_idle(output.path, "labelling")   # temporary files a killed job left, unless a job is writing now
    shards = -(-spec["images"] // spec["shard_size"])
    done = len(finished_shards(output, spec["shard_size"], spec["images"]))
    last_call = spec.get("last_call") or {}
    return Labelling(output.location, spec["images"], shards, done, 0, 0, 0, 0.0, last_call.get("backend", "local"),
                     spec.get("note"), spec.get("temperature"), spec.get("threshold"), last_call.get("cluster"),
                     endpoint_url if output.kind == "s3" else None, spec.get("positive_class"))


def _check_same_labelling(output, spec: dict, table: pa.Table) -> None:
    """Shards of two models or two manifests must never mix in one folder (or prefix). Before the first shard is
    written nothing can mix: a job that stopped early (or was refused) does not block the folder."""
    shards_written = bool(shard_names(output))
    if not output.exists(LABELLING_DESCRIPTION):
        if shards_written:
            raise ImagesAsDataError(f"{output.address(SHARDS)} holds shards but no {LABELLING_DESCRIPTION}; choose an "
                                    "empty --out folder", what="file", path=output.address(SHARDS))
        return
    if not shards_written:
        return
    previous = output.read_json(LABELLING_DESCRIPTION, "a labelling description")
    changed = [k for k in ("model_sha256", "classes", "images", "shard_size", "temperature", "threshold")
               if previous.get(k) != spec.get(k)]
    if not changed and output.exists(LABELLING_MANIFEST) and not output.read_table(LABELLING_MANIFEST).equals(table):
        changed.append("manifest")
    if changed:
        what = ", ".join("the model's weights" if k == "model_sha256" else k for k in changed)
        raise ImagesAsDataError(f"{output.location} holds a labelling with another {what}; rerun with the same run, "
                                "manifest and shard_size to resume, or choose a new --out folder", what="file",
                                path=output.location)


def label_locally(manifest: pa.Table, pending, shard_size: int, writer: ShardWriter, description: dict,
                  weights: bytes, *, batch_size: int, device: str, precision: str, workers: int | None,
                  endpoint_url: str | None, threads: float | None = None) -> None:
    """The local backend: one model here (model.inference.predict_paths: the next batch decodes while this one
    computes). threads: torch's threads for the model, restored afterwards (default: leave torch's setting alone)."""
    import torch

    previous = torch.get_num_threads()
    try:
        predictor = Predictor(description, weights, device, precision, threads=max(1, int(threads)) if threads else None)
        batches = [b for s in pending for b in batch_ranges(*_span(s, shard_size, manifest.num_rows), batch_size)]
        predict_paths(predictor, manifest["path"].to_pylist(), batches, writer.add, workers=workers,
                      endpoint_url=endpoint_url)
    finally:
        torch.set_num_threads(previous)


def _span(shard: int, shard_size: int, total: int) -> tuple[int, int]:
    rows = shard_rows(shard, shard_size, total)
    return rows.start, rows.stop


def label_on_ray(manifest: pa.Table, pending, shard_size: int, writer: ShardWriter, description: dict,
                 weights: bytes, *, batch_size: int, device: str, precision: str, workers, replicas, gpus_per_replica,
                 cpus_per_replica: float, endpoint_url) -> dict:
    """The Ray backend: the pending shards' rows → decoding → a pool of Predictor replicas (scale.cluster) → the
    writer on this machine, which writes each shard when its last row comes back. Returns the record kept in
    labelling.json: the nodes, the replicas, images per node, the nodes lost on the way and what Ray ran again."""
    from ..scale.cluster import map_with_replicas

    # Ray Data gives each block to one task: blocks of a few batches (not whole shards) let every replica work even
    # when few shards are left (measured: with one block per shard, 4 replicas on a 400-image job used one).
    block_rows = batch_size * BATCHES_PER_BLOCK
    blocks = []
    for shard in pending:
        span = shard_rows(shard, shard_size, manifest.num_rows)
        for start in range(span.start, span.stop, block_rows):
            stop = min(span.stop, start + block_rows)
            blocks.append(pa.table({"row": pa.array(range(start, stop), pa.int64()),
                                    "path": manifest["path"].slice(start, stop - start)}))
    work = map_with_replicas(
        blocks, lambda batch: writer.add(batch["row"], batch["probabilities"], list(batch["error"])),
        prepare=decode_batch, prepare_kwargs={"prep": description["preprocessing"], "endpoint_url": endpoint_url,
                                              "workers": workers or 4},
        replica=Predictor, replica_kwargs={"description": description, "weights": weights, "precision": precision},
        batch_size=batch_size, device=device, replicas=replicas, gpus_per_replica=gpus_per_replica,
        cpus_per_replica=cpus_per_replica)
    # What Ray Data ran again: the batches each lost node had in flight (it does not say which; the writer saw
    # every row once, which ShardWriter checks shard by shard).
    retried = [f"the batches in flight on {node}, labelled again on the other nodes" for node in work.nodes_lost]
    return {"nodes": work.nodes, "replicas": work.workers, "images_by_node": work.by_node,
            "nodes_lost": work.nodes_lost, "retried": retried}


def check_storage_on_every_node(table: pa.Table, output=None) -> None:
    """Before anything is written or decoded: every node of the Ray cluster must read the manifest's local images
    (a folder on one machine's own disk is invisible to the others; s3:// images are read from anywhere) and, when
    `output` (a LocalOutput) is given, see a file written in the labelling's folder now. The shards are written by
    this process, but a job resubmitted after its driver was lost may run on another node, which must find them."""
    from ..scale.cluster import storage_error, unreadable_by_node, unreadable_with_folder

    paths = table["path"].to_pylist()
    if output is None:
        unseen, unreadable = {}, unreadable_by_node(paths)
    else:
        unseen, unreadable = unreadable_with_folder(output.path, paths)
    if unreadable:
        raise storage_error(unreadable, "the manifest's images",
                            "On a cluster, put the images on storage every node shares (NFS, Lustre, a cluster file "
                            "system, mounted at the same path everywhere) or in S3, and list them as s3:// URIs")
    if unseen:
        raise storage_error(unseen, f"the labelling's folder {output.path} (out)",
                            "A job resubmitted after its driver was lost (Slurm's requeue, a new head node) may run on "
                            "another node and must find the finished shards: write to S3 (out='s3://bucket/prefix', "
                            "CLI: --out s3://bucket/prefix), or to a file system every node shares (NFS, Lustre), "
                            "mounted at the same path")


def _cluster_lines(cluster: dict | None) -> list[str]:
    """What a Ray labelling's repr says about the cluster: nodes, replicas and images per node; lost nodes and what
    Ray re-ran."""
    if not cluster:
        return []
    by_node = cluster.get("images_by_node") or {}
    nodes, replicas = cluster.get("nodes") or [], cluster.get("replicas")
    size = ", ".join(part for part in (f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}" if nodes else "",
                                       f"{replicas} model replica{'s' if replicas != 1 else ''}" if replicas else "")
                     if part)
    lines = ["  on Ray: " + (size + ": " if size else "") + ", ".join(f"{n:,} images on {node}"
                                                                       for node, n in by_node.items())]
    for node in cluster.get("nodes_lost", []):
        lines.append(f"  node {node} left the cluster during the job: Ray labelled the batches it had in flight again "
                     "on the other nodes; each image is in the shards once")
    return lines


def cluster_summary(cluster: dict | None) -> dict | None:
    """A labelling's record of its last call on Ray (labelling.json's last_call.cluster) in the shape grids share
    (scale.cluster.ClusterWork.as_dict), or None when it did not run on Ray."""
    if not cluster:
        return None
    return {"nodes": list(cluster.get("nodes") or []), "workers": cluster.get("replicas"),
            "by_node": dict(cluster.get("images_by_node") or {}), "nodes_lost": list(cluster.get("nodes_lost") or []),
            "retried": list(cluster.get("retried") or [])}
