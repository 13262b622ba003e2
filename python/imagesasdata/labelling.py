"""Labelling a whole corpus with a fitted run: a manifest of images in, Parquet shards out.

The manifest (CSV or Parquet; local paths or s3:// URIs) is cut into chunks of `shard_size` rows; chunk k becomes
`shards/shard-<k>.parquet`, written atomically as soon as its last image is labelled. An interrupted job is
simply run again: finished shards are skipped. Every shard has the columns of predict() — image_id, path,
predicted, prob_<class>…, error — and an unreadable image is a row with its error, never a stopped job.

Two backends write the same shards from the same two pieces, decode_images() and Predictor: "local" runs here
(no Ray needed), "ray" runs on a Ray cluster with a pool of model replicas (distributed.py).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import BadImageError, ImagesAsDataError, listing
from .tables import is_table_file, read_json, to_arrow, write_json, write_table
from .transforms import Preprocessing, eval_view, load_base, to_chw

SHARDS = "shards"
MANIFEST = "manifest.parquet"
DESCRIPTION = "labelling.json"
BACKENDS = ("local", "ray")


# ------------------------------------------------------------------------------------------ the manifest

def is_uri(path) -> bool:
    return "://" in str(path)


def read_manifest(manifest, *, path: str | None = None, image_id: str | None = None,
                  endpoint_url: str | None = None) -> pa.Table:
    """The images to label as a table image_id, path.

    manifest: a CSV/Parquet file (on disk or at an s3:// URI), a pandas DataFrame or Arrow table with a path
      column, a folder, or a list of paths. Paths may be local (relative ones are resolved against the
      manifest's folder, as in image_table()) or s3:// URIs (relative ones against an s3:// manifest's prefix).
    Raises ImagesAsDataError for an empty manifest, a missing path column, or a scheme other than s3://.
    """
    from .data import PATH_COLUMN_GUESSES, image_table, relative_ids

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
                                "needs a path or s3:// URI")
    schemes = sorted({p.split("://", 1)[0] for p in raw if is_uri(p) and not p.startswith("s3://")})
    if schemes:
        raise ImagesAsDataError(f"the manifest holds {', '.join(s + '://' for s in schemes)} addresses; images can be "
                                "local paths or s3:// URIs (copy other sources to S3 or disk first)")
    paths = [p if is_uri(p) else (f"{root}/{p}" if is_uri(root or "") else str((Path(root or Path.cwd()) /
             Path(p).expanduser()).resolve())) for p in raw]
    if image_id or "image_id" in table.column_names:
        ids = [None if v is None else str(v) for v in table[image_id or "image_id"].to_pylist()]
    else:
        try:  # as for local files: the address below the deepest common folder
            ids = relative_ids([PurePosixPath(p.split("://", 1)[-1]) for p in paths])
        except ValueError:  # local and s3:// paths mixed: no common folder
            ids = paths
    return pa.table({"image_id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string())})


def _read_remote_table(uri: str, endpoint_url=None) -> pa.Table:
    import io

    import pyarrow.csv as pa_csv

    data = read_s3_bytes(uri, endpoint_url)
    suffix = PurePosixPath(uri).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.read_table(io.BytesIO(data))
    if suffix in (".csv", ".tsv"):
        return pa_csv.read_csv(io.BytesIO(data), parse_options=pa_csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
    raise ImagesAsDataError(f"{uri}: a manifest must end in .csv, .tsv or .parquet")


# ------------------------------------------------------------------------------------------ reading images

_clients: dict = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str | None = None):
    """One boto3 S3 client per process and endpoint (clients are thread-safe). Credentials come from the standard
    chain (environment, ~/.aws, instance role); botocore's adaptive retries absorb throttling."""
    with _clients_lock:
        if endpoint_url not in _clients:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ImagesAsDataError("reading s3:// images needs boto3: pip install 'imagesasdata[aws]'") from None
            config = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=32)
            _clients[endpoint_url] = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        return _clients[endpoint_url]


def read_s3_bytes(uri: str, endpoint_url: str | None = None) -> bytes:
    """The bytes of an s3:// object. A missing object or a refused one raises BadImageError (a row's error);
    missing credentials or an unreachable endpoint raise ImagesAsDataError (they would fail every image)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise BadImageError(uri, "not an s3://bucket/key address")
    try:
        return s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    except NoCredentialsError:
        raise ImagesAsDataError("no AWS credentials for reading s3:// images: set them the standard way (environment "
                                "variables, ~/.aws/credentials, AWS_PROFILE or an instance role)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise BadImageError(uri, "not found in S3 (NoSuchKey); check the bucket and key") from None
        if code in ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            raise ImagesAsDataError(f"{uri}: S3 refused the request ({code}); check the bucket name and credentials") from None
        raise BadImageError(uri, f"S3 refused the request ({code})") from None
    except BotoCoreError as error:  # endpoint unreachable after retries: stop; a rerun resumes
        raise ImagesAsDataError(f"{uri}: cannot reach S3 ({error})") from None


def read_base(path: str, prep: Preprocessing, endpoint_url: str | None = None) -> np.ndarray:
    """The deterministic preprocessing stage (load_base) of a local file or an s3:// object. Raises BadImageError.

    An S3 object is decoded from a temporary file by the very code that decodes local files, so both give the
    same pixels (and the same reasons for refusing a file)."""
    if not path.startswith("s3://"):
        return load_base(path, prep)
    data = read_s3_bytes(path, endpoint_url)
    with tempfile.NamedTemporaryFile(prefix="imagesasdata-", suffix=PurePosixPath(path).suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            return load_base(handle.name, prep)
        except BadImageError as error:
            raise BadImageError(path, error.reason) from None


def decode_images(paths, prep: Preprocessing, *, endpoint_url: str | None = None, workers: int | None = None,
                  pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, list]:
    """(uint8 N×S×S×3 base images, errors) for `paths`; an unreadable image is zeros with its reason in errors
    ("" for the readable ones), decoded on a thread pool (reads from S3 wait on the network, not the CPU)."""
    from .cache import default_workers

    def work(path):
        try:
            return read_base(path, prep, endpoint_url), ""
        except BadImageError as error:
            return None, error.reason

    size = prep.resize_size
    paths = [str(p) for p in paths]
    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(workers or default_workers(), len(paths) or 1))) as own:
            results = list(own.map(work, paths))
    else:
        results = list(pool.map(work, paths))
    images = np.zeros((len(paths), size, size, 3), np.uint8)
    errors = []
    for i, (array, error) in enumerate(results):
        if array is not None:
            images[i] = array
        errors.append(error)
    return images, errors


def decode_batch(batch: dict, prep: dict, endpoint_url: str | None = None, workers: int | None = None) -> dict:
    """decode_images on a batch of {"row", "path"} (numpy columns), as Ray Data hands it over."""
    images, errors = decode_images(list(batch["path"]), Preprocessing.from_dict(prep), endpoint_url=endpoint_url,
                                   workers=workers)
    return {"row": np.asarray(batch["row"], np.int64), "image": images, "error": np.array(errors, dtype=object)}


class Predictor:
    """One model replica: base images in, class probabilities out — the forward pass of predict() (eval view,
    normalisation on the device, autocast). Built from the run's description and safetensors bytes, so a replica
    on another machine needs no copy of the run directory."""

    def __init__(self, description: dict, weights: bytes, device: str = "auto", precision: str = "auto",
                 threads: int | None = None):
        import torch
        from safetensors.torch import load as load_safetensors

        from .devices import resolve_channels_last, resolve_device, resolve_precision
        from .runs import build_model

        if threads:
            torch.set_num_threads(int(threads))
        from .analysis.calibration import applied_temperature

        self.prep = Preprocessing.from_dict(description["preprocessing"])
        self.classes = list(description["classes"])
        self.temperature = applied_temperature(description)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = resolve_channels_last("auto", self.device)
        model = build_model(description, load_safetensors(weights)).to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model.eval()

    def __call__(self, batch: dict) -> dict:
        """{"row", "image", "error"} → {"row", "probabilities" (NaN for unreadable images), "error"}."""
        import torch

        from .inference import forward_batch, softmax

        errors = [e if isinstance(e, str) else "" for e in batch["error"]]
        readable = np.flatnonzero([e == "" for e in errors])
        probabilities = np.full((len(errors), len(self.classes)), np.nan)
        if len(readable):
            images = batch["image"]
            views = torch.stack([eval_view(to_chw(np.asarray(images[i])), self.prep) for i in readable])
            logits = forward_batch(self.model, views, self.prep, self.device, self.precision, self.channels_last)
            probabilities[readable] = softmax(logits / self.temperature)
        return {"row": np.asarray(batch["row"], np.int64), "probabilities": probabilities,
                "error": np.array(errors, dtype=object)}


def model_bytes(run) -> bytes:
    """The run's weights as safetensors bytes (read through runs.read_weights, which refuses pickles)."""
    from safetensors.torch import save

    from .runs import read_weights

    return save(read_weights(run.path))


# ------------------------------------------------------------------------------------------ shards

def predictions_table(manifest: pa.Table, probabilities: np.ndarray, errors, classes, threshold=None,
                      positive_class=None) -> pa.Table:
    """The table predict() returns: image_id, path, predicted, prob_<class>…, error (nulls for unreadable rows).
    threshold: binary tasks: positive when the positive class's probability is at least this (default: argmax)."""
    from .analysis.thresholds import decide

    ok = ~np.isnan(probabilities).any(axis=1)
    predicted = decide(probabilities, classes, threshold, positive_class)
    columns = {"image_id": manifest["image_id"], "path": manifest["path"], "predicted": pa.array(predicted, pa.string())}
    for i, c in enumerate(classes):
        columns[f"prob_{c}"] = pa.array(np.where(ok, probabilities[:, i], np.nan), pa.float64(), from_pandas=True)
    columns["error"] = pa.array([e or None for e in errors], pa.string())
    return pa.table(columns)


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
        self.threshold, self.positive_class = threshold, positive_class
        self.remaining = {s: len(shard_rows(s, shard_size, manifest.num_rows)) for s in pending}
        self.parts: dict = {s: [] for s in pending}
        self.progress = progress
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
            raise ImagesAsDataError(f"{self.path / SHARDS} holds no shards yet; run label_corpus() first")
        return pa.concat_tables([pq.read_table(f) for f in files])

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"{self.shards_done} of {self.shards} shards done; run again to resume"
        lines = [f"imagesasdata labelling  {self.path}", f"  {self.images:,} images in {self.shards} shards ({state})"]
        if self.labelled:
            lines.append(f"  this call ({self.backend}): {self.labelled:,} images labelled ({self.unreadable:,} unreadable) "
                         f"in {self.seconds:.1f} s — {self.images_per_second:,.1f} images/s")
        earlier = self.shards_done - self.shards_written
        if earlier:
            lines.append(f"  {earlier} shards were done earlier{' and skipped' if self.seconds else ''}")
        settings = ([f"probabilities calibrated (temperature {self.temperature:.3g})"] if self.temperature else []) \
            + ([f"threshold {self.threshold:g}"] if self.threshold is not None else [])
        if settings:
            lines.append("  " + "; ".join(settings))
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def label_corpus(run, manifest, *, out, backend: str = "local", shard_size: int = 1000, batch_size: int = 32,
                 device: str = "auto", precision: str = "auto", num_workers: int | None = None,
                 replicas: int | None = None, gpus_per_replica: float | None = None,
                 cpus_per_replica: float | None = None,
                 max_shards: int | None = None, path: str | None = None, image_id: str | None = None,
                 endpoint_url: str | None = None, progress: bool = True, calibrate: bool = False,
                 threshold: float | None = None) -> Labelling:
    """Label every image of a manifest with a fitted run into Parquet shards under `out`; resumable.

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
    calibrate, threshold: as in predict() (the run's temperature; a binary task's threshold); recorded in
      labelling.json, and a resumed labelling must use the same.
    Raises ImagesAsDataError for a bad manifest or options, or when `out` holds a labelling by another model or
    of another manifest.
    """
    from tqdm.auto import tqdm

    from .analysis.calibration import prediction_description
    from .analysis.thresholds import check_threshold
    from .analysis.transfer import selection_note
    from .images import sha256_file
    from .predict import _as_run
    from .runs import WEIGHTS, new_run_dir

    if backend not in BACKENDS:
        raise ImagesAsDataError(f"backend={backend!r}: choose 'local' (this machine) or 'ray' (a Ray cluster)")
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ImagesAsDataError(f"{name}={value}: use a positive number of images")
    started = time.perf_counter()
    run = _as_run(run)
    threshold = check_threshold(threshold, run.classes)
    description = prediction_description(run.description, calibrate)
    temperature = description["apply_temperature"] if calibrate else None
    table = read_manifest(manifest, path=path, image_id=image_id, endpoint_url=endpoint_url)
    out = new_run_dir(out)
    total = table.num_rows
    spec = {"format": "imagesasdata-labelling", "run": str(run.path), "model_sha256": sha256_file(run.path / WEIGHTS),
            "classes": run.classes, "images": total, "shard_size": int(shard_size), "temperature": temperature,
            "threshold": threshold, "note": selection_note(run.description)}
    _check_same_labelling(out, spec, table)
    write_table(table, out / MANIFEST)
    if not (out / DESCRIPTION).exists():  # before the first shard, so a killed job is recognised on its rerun
        write_json({**spec, "status": "started"}, out / DESCRIPTION)
    shards = -(-total // shard_size)
    done = finished_shards(out, shard_size, total)
    pending = [s for s in range(shards) if s not in done]
    if max_shards is not None:
        pending = pending[:max(0, int(max_shards))]
    rows = sum(len(shard_rows(s, shard_size, total)) for s in pending)
    with tqdm(total=rows, desc=f"labelling ({backend})", unit="img", disable=not progress, smoothing=0.1) as bar:
        writer = ShardWriter(out, table, shard_size, run.classes, pending, progress=bar, threshold=threshold,
                             positive_class=run.positive_class)
        if pending and backend == "local":
            label_locally(table, pending, shard_size, writer, description, model_bytes(run), batch_size=batch_size,
                          device=device, precision=precision, workers=num_workers, endpoint_url=endpoint_url,
                          threads=cpus_per_replica)
        elif pending:
            from .distributed import label_on_ray

            label_on_ray(table, pending, shard_size, writer, description, model_bytes(run), batch_size=batch_size,
                         device=device, precision=precision, workers=num_workers, replicas=replicas,
                         gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica or 1,
                         endpoint_url=endpoint_url)
    result = Labelling(out, total, shards, len(done) + writer.written, writer.written, writer.labelled,
                       writer.unreadable, time.perf_counter() - started, backend, spec["note"], temperature, threshold)
    spec.update(status="complete" if result.complete else "partial", shards=shards, shards_done=result.shards_done,
                last_call={"backend": backend, "images": result.labelled, "seconds": round(result.seconds, 3),
                           "images_per_second": round(result.images_per_second, 2) if result.labelled else None})
    write_json(spec, out / DESCRIPTION)
    return result


def load_labelling(path) -> Labelling:
    """Re-open a labelling directory (finished or not)."""
    path = Path(path).expanduser().resolve()
    if not (path / DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a labelling directory (no {DESCRIPTION}); pass the --out of label")
    spec = read_json(path / DESCRIPTION)
    shards = -(-spec["images"] // spec["shard_size"])
    done = len(finished_shards(path, spec["shard_size"], spec["images"]))
    return Labelling(path, spec["images"], shards, done, 0, 0, 0, 0.0, spec.get("last_call", {}).get("backend", "local"),
                     spec.get("note"), spec.get("temperature"), spec.get("threshold"))


def _check_same_labelling(out: Path, spec: dict, table: pa.Table) -> None:
    """Shards of two models or two manifests must never mix in one folder."""
    if not (out / DESCRIPTION).exists():
        if any((out / SHARDS).glob("shard-*.parquet")):
            raise ImagesAsDataError(f"{out / SHARDS} holds shards but no {DESCRIPTION}; choose an empty --out folder")
        return
    previous = read_json(out / DESCRIPTION)
    changed = [k for k in ("model_sha256", "classes", "images", "shard_size", "temperature", "threshold")
               if previous.get(k) != spec[k]]
    if not changed and (out / MANIFEST).exists() and not pq.read_table(out / MANIFEST).equals(table):
        changed.append("manifest")
    if changed:
        what = ", ".join("the model's weights" if k == "model_sha256" else k for k in changed)
        raise ImagesAsDataError(f"{out} holds a labelling with another {what}; rerun with the same run, manifest and "
                                "shard_size to resume, or choose a new --out folder")


def label_locally(manifest: pa.Table, pending, shard_size: int, writer: ShardWriter, description: dict,
                  weights: bytes, *, batch_size: int, device: str, precision: str, workers: int | None,
                  endpoint_url: str | None, threads: float | None = None) -> None:
    """The local backend: one model here; the next batch is decoded on a thread pool while this one computes.
    threads: torch's threads for the model, restored afterwards (default: leave torch's setting alone)."""
    import torch

    previous = torch.get_num_threads()
    try:
        _label_locally(manifest, pending, shard_size, writer, Predictor(description, weights, device, precision,
                       threads=max(1, int(threads)) if threads else None), batch_size, workers, endpoint_url)
    finally:
        torch.set_num_threads(previous)


def _label_locally(manifest, pending, shard_size, writer, predictor, batch_size, workers, endpoint_url) -> None:
    from .cache import default_workers

    paths = manifest["path"].to_pylist()
    batches = [range(start, min(span.stop, start + batch_size))
               for span in (shard_rows(s, shard_size, manifest.num_rows) for s in pending)
               for start in range(span.start, span.stop, batch_size)]
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool, \
            ThreadPoolExecutor(max_workers=1) as ahead:
        def decode(rows):
            return decode_images([paths[r] for r in rows], predictor.prep, endpoint_url=endpoint_url, pool=pool)

        following = ahead.submit(decode, batches[0]) if batches else None
        for number, rows in enumerate(batches):
            images, errors = following.result()
            following = ahead.submit(decode, batches[number + 1]) if number + 1 < len(batches) else None
            output = predictor({"row": np.arange(rows.start, rows.stop), "image": images, "error": errors})
            writer.add(output["row"], output["probabilities"], list(output["error"]))
