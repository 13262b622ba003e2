"""Labelling a whole corpus with a fitted run: a manifest of images in, Parquet shards out.

The manifest (CSV or Parquet; local paths or s3:// URIs) is cut into chunks of `shard_size` rows; chunk k becomes
`shards/shard-<k>.parquet`, written atomically as soon as its last image is labelled. An interrupted job is
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
from ..io.locks import claimed_directory, tidy_if_idle
from ..io.s3 import is_uri, read_s3_bytes
from ..io.tables import check_text, is_table_file, read_json, to_arrow, write_json, write_table
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

def shard_path(out, shard: int) -> Path:
    return Path(out) / SHARDS / f"shard-{shard:06d}.parquet"


def shard_rows(shard: int, shard_size: int, total: int) -> range:
    return range(shard * shard_size, min(total, (shard + 1) * shard_size))


def finished_shards(out, shard_size: int, total: int) -> set:
    """Shards already on disk with the expected number of rows (writes are atomic: a file is whole or absent)."""
    folder = Path(out) / SHARDS
    done = set()
    if not folder.is_dir():
        return done
    for file in folder.glob("shard-*.parquet"):
        try:
            shard = int(file.stem.split("-", 1)[1])
        except ValueError:
            continue
        if pq.read_metadata(file).num_rows == len(shard_rows(shard, shard_size, total)):
            done.add(shard)
    return done


class ShardWriter:
    """Collects labelled rows in any order and writes each shard the moment its last row arrives."""

    def __init__(self, out, manifest: pa.Table, shard_size: int, classes, pending, progress=None, threshold=None,
                 positive_class=None):
        self.out, self.manifest, self.shard_size, self.classes = Path(out), manifest, shard_size, list(classes)
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
        write_table(table, shard_path(self.out, shard))
        self.written += 1

    @property
    def complete(self) -> bool:
        return not self.parts


# ------------------------------------------------------------------------------------------ the job

@dataclass
class Labelling:
    """A labelled corpus on disk (shards/ of Parquet) and what the last call did."""

    path: Path
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
    cluster: dict | None = None       # backend "ray": images per node, nodes lost (scale.cluster.ClusterWork)

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
        files = sorted((self.path / SHARDS).glob("shard-*.parquet"))
        if not files:
            raise ImagesAsDataError(f"{self.path / SHARDS} holds no shards yet; run label_corpus() first",
                                    what="file", path=self.path / SHARDS)
        return pa.concat_tables([pq.read_table(f) for f in files])

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
    out: the labelling directory: manifest.parquet, labelling.json and shards/shard-NNNNNN.parquet (image_id,
      path, predicted, prob_<class>…, error — as predict()). Run again with the same out to resume: finished
      shards are skipped.
    backend: "local" (this machine) or "ray" (joins RAY_ADDRESS, or starts a Ray cluster here): decoding runs as
      Ray tasks and the model as `replicas` actors — one per GPU by default (gpus_per_replica=1); on a cluster
      without GPUs one per cpus_per_replica cores (default 1), each decoding its own images.
    cpus_per_replica: also the threads of the local backend's one model (default: torch's choice, all cores; on a
      machine shared with other work, 1 can be much faster — see benchmarks/README.md).
    max_shards: label at most this many unfinished shards, e.g. to time a trial run before the whole corpus.
    endpoint_url: an S3-compatible endpoint (MinIO, Ceph at a university); default: AWS (or AWS_ENDPOINT_URL_S3).
    allow_unfinished: label with a run that did not finish training (refused by default).
    calibrate, threshold: as in predict() (the run's temperature; a binary task's threshold); recorded in
      labelling.json, and a resumed labelling must use the same.
    The folder is locked while the job runs: a second job on the same out is refused.
    Raises ImagesAsDataError for a bad manifest or options, or when `out` holds a labelling by another model or
    of another manifest.
    """
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
    if backend == "ray":
        check_images_on_every_node(table)
    weights = model_bytes(run)   # checked (checksum, pickles refused) before anything is written
    total = table.num_rows
    spec = {"format": "imagesasdata-labelling", "run": str(run.path), "model_sha256": run.description.get(
            "files", {}).get(WEIGHTS) or sha256_file(run.path / WEIGHTS),
            "classes": run.classes, "images": total, "shard_size": int(shard_size), "temperature": temperature,
            "threshold": threshold, "note": selection_note(run.description), "positive_class": run.positive_class}
    with claimed_directory(out, what="labelling", marker=LABELLING_DESCRIPTION, resume=True) as out:
        _check_same_labelling(out, spec, table)
        # labelling.json before the manifest and the first shard: it marks the folder, and a killed job is
        # recognised on its rerun
        if not (out / LABELLING_DESCRIPTION).exists() or not any((out / SHARDS).glob("shard-*.parquet")):
            write_json({**spec, "status": "started"}, out / LABELLING_DESCRIPTION)
        write_table(table, out / LABELLING_MANIFEST)
        shards = -(-total // shard_size)
        done = finished_shards(out, shard_size, total)
        pending = [s for s in range(shards) if s not in done]
        if max_shards is not None:
            pending = pending[:max(0, int(max_shards))]
        rows = sum(len(shard_rows(s, shard_size, total)) for s in pending)
        with tqdm(total=rows, desc=f"labelling ({backend})", unit="img", disable=not progress, smoothing=0.1) as bar:
            writer = ShardWriter(out, table, shard_size, run.classes, pending, progress=bar, threshold=threshold,
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
        result = Labelling(out, total, shards, len(done) + writer.written, writer.written, writer.labelled,
                           writer.unreadable, time.perf_counter() - started, backend, spec["note"], temperature,
                           threshold, cluster)
        spec.update(status="complete" if result.complete else "partial", shards=shards, shards_done=result.shards_done,
                    last_call={"backend": backend, "images": result.labelled, "seconds": round(result.seconds, 3),
                               "images_per_second": round(result.images_per_second, 2) if result.labelled else None,
                               **({"cluster": cluster} if cluster else {})})
        write_json(spec, out / LABELLING_DESCRIPTION)
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


def load_labelling(path) -> Labelling:
    """Re-open a labelling directory (finished or not). Returns its Labelling; raises ImagesAsDataError when
    `path` is not one."""
    path = Path(path).expanduser().resolve()
    if not (path / LABELLING_DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a labelling directory (no {LABELLING_DESCRIPTION}); pass the --out of label",
                                what="file", path=path)
    spec = read_json(path / LABELLING_DESCRIPTION)
    tidy_if_idle(path, "labelling")   # temporary files a killed job left, unless a job is writing here now
    shards = -(-spec["images"] // spec["shard_size"])
    done = len(finished_shards(path, spec["shard_size"], spec["images"]))
    return Labelling(path, spec["images"], shards, done, 0, 0, 0, 0.0, spec.get("last_call", {}).get("backend", "local"),
                     spec.get("note"), spec.get("temperature"), spec.get("threshold"))


def _check_same_labelling(out: Path, spec: dict, table: pa.Table) -> None:
    """Shards of two models or two manifests must never mix in one folder. Before the first shard is written
    nothing can mix: a job that stopped early (or was refused) does not block the folder."""
    shards_written = any((out / SHARDS).glob("shard-*.parquet"))
    if not (out / LABELLING_DESCRIPTION).exists():
        if shards_written:
            raise ImagesAsDataError(f"{out / SHARDS} holds shards but no {LABELLING_DESCRIPTION}; choose an empty --out folder",
                                    what="file", path=out / SHARDS)
        return
    if not shards_written:
        return
    previous = read_json(out / LABELLING_DESCRIPTION, "a labelling description")
    changed = [k for k in ("model_sha256", "classes", "images", "shard_size", "temperature", "threshold")
               if previous.get(k) != spec.get(k)]
    if not changed and (out / LABELLING_MANIFEST).exists() and not pq.read_table(out / LABELLING_MANIFEST).equals(table):
        changed.append("manifest")
    if changed:
        what = ", ".join("the model's weights" if k == "model_sha256" else k for k in changed)
        raise ImagesAsDataError(f"{out} holds a labelling with another {what}; rerun with the same run, manifest and "
                                "shard_size to resume, or choose a new --out folder", what="file", path=out)


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
    writer on this machine, which writes each shard when its last row comes back. Returns images per node and the
    nodes lost on the way (scale.cluster.ClusterWork as a dict)."""
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
    return {"images_by_node": work.by_node, "nodes_lost": work.nodes_lost}


def check_images_on_every_node(table: pa.Table) -> None:
    """Before anything is written or decoded: every node of the Ray cluster must read the manifest's local images
    (a folder on one machine's own disk is invisible to the others). s3:// images are read from anywhere."""
    from ..scale.cluster import storage_error, unreadable_by_node

    unreadable = unreadable_by_node(table["path"].to_pylist())
    if unreadable:
        raise storage_error(unreadable, "the manifest's images",
                            "On a cluster, put the images on storage every node shares (NFS, Lustre, a cluster file "
                            "system, mounted at the same path everywhere) or in S3, and list them as s3:// URIs")


def _cluster_lines(cluster: dict | None) -> list[str]:
    """What a Ray labelling's repr says about the cluster: images per node; lost nodes and what Ray re-ran."""
    if not cluster:
        return []
    by_node = cluster.get("images_by_node") or {}
    lines = []
    if len(by_node) > 1 or cluster.get("nodes_lost"):
        lines.append("  on Ray: " + ", ".join(f"{n:,} images on {node}" for node, n in by_node.items()))
    for node in cluster.get("nodes_lost", []):
        lines.append(f"  node {node} left the cluster during the job: Ray labelled the batches it had in flight again "
                     "on the other nodes; each image is in the shards once")
    return lines
