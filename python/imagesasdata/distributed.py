"""Running on a Ray cluster: labelling a corpus with Ray Data, and grids of configurations as Ray Tune trials.

We use an existing distributed engine rather than a scheduler of our own: Ray streams the manifest through
decoding tasks and a pool of model replicas (one per GPU, or several per CPU node), retries failed tasks,
and runs the same code on a laptop, a Slurm allocation or an AWS cluster. `connect()` joins the cluster named by
RAY_ADDRESS, or starts one on this machine. Nothing here changes an answer: the shards and the grid directory are
exactly those of the local backend (labelling.py, tune.py).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import pyarrow as pa

from .errors import ImagesAsDataError


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None):
    """The `ray` module, connected: to an already running session, else to `address` or RAY_ADDRESS, else to a
    new local cluster of num_cpus CPUs (default: all). Raises ImagesAsDataError when Ray is missing or the
    cluster cannot be reached."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the network
    try:
        import ray
    except ImportError:
        raise ImagesAsDataError("backend='ray' needs Ray: pip install 'imagesasdata[ray]' (or use backend='local')") from None
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            _children_use_this_libpython()
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise ImagesAsDataError(
            f"cannot join the Ray cluster at {address!r} (RAY_ADDRESS): {error}. Start it with `ray start --head`, "
            "or unset RAY_ADDRESS to start a cluster on this machine"
        ) from None
    return ray


def disconnect() -> None:
    """Shut down this process's Ray session, if it has one (R calls this as it exits: Ray's threads must stop
    before an embedding R finalises Python, or the process crashes on its way out)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _children_use_this_libpython() -> None:
    """Make the Ray processes started here load this interpreter's libpython.

    Embedded in R, the process carries R's LD_LIBRARY_PATH (/usr/lib/R/lib:/usr/lib/x86_64-linux-gnu:…), which
    outranks the interpreter's RUNPATH: a child Python then loads the system's libpython of the same minor version
    but another patch release, and fails on its first C extension (measured: `_ssl … undefined symbol`).
    """
    import sysconfig

    library_path = os.environ.get("LD_LIBRARY_PATH")
    libdir = sysconfig.get_config_var("LIBDIR")
    if library_path and libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        if library_path.split(os.pathsep)[0] != libdir:
            os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, library_path])


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at a host:port address."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as error:
        raise ImagesAsDataError(
            f"cannot join the Ray cluster at {address!r} (RAY_ADDRESS or --ray-address): nothing answers there "
            f"({error.strerror or error}). Start the head with `ray start --head`, check the address, or unset "
            "RAY_ADDRESS to start a cluster on this machine"
        ) from None


def _user_error(error: BaseException):
    """The ImagesAsDataError a Ray task raised, found through Ray's wrappers (None if there is none)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        cause = getattr(error, "cause", None)
        if isinstance(cause, ImagesAsDataError):
            return ImagesAsDataError(str(cause))
        if type(error) is ImagesAsDataError:
            return error
        error = cause if isinstance(cause, BaseException) else (error.__cause__ or error.__context__)
    return None


# ------------------------------------------------------------------------------------------ labelling

def replica_plan(resources: dict, replicas=None, gpus_per_replica=None, cpus_per_replica: float = 1):
    """(replicas, gpus per replica, cpus per replica) for a cluster's resources: one replica per GPU by default;
    without GPUs, one per cpus_per_replica cores (each then decodes its own images)."""
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus_per_replica is None:
        gpus_per_replica = 1 if gpus else 0
    if cpus_per_replica <= 0:
        raise ImagesAsDataError(f"cpus_per_replica={cpus_per_replica}: give each replica at least a fraction of a CPU")
    if gpus_per_replica and gpus < gpus_per_replica:
        raise ImagesAsDataError(f"gpus_per_replica={gpus_per_replica} but the Ray cluster has {gpus:g} GPUs; "
                                "use gpus_per_replica=0 to run the replicas on CPUs")
    if replicas is None:
        replicas = int(gpus // gpus_per_replica) if gpus_per_replica else int(cpus // cpus_per_replica)
    if int(replicas) < 1:
        replicas = 1
    return int(replicas), float(gpus_per_replica), float(cpus_per_replica)


def label_on_ray(manifest: pa.Table, pending, shard_size: int, writer, description: dict, weights: bytes, *,
                 batch_size: int, device: str, precision: str, workers, replicas, gpus_per_replica,
                 cpus_per_replica: float, endpoint_url) -> None:
    """The Ray backend of label_corpus(): manifest shards → decoding → a pool of Predictor actors → the writer on
    this machine, which writes each shard when its last row comes back."""
    from .labelling import Predictor, decode_batch, shard_rows

    ray = connect()
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timing lines would break our progress bar
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # label_corpus shows one bar for the whole job
    context.enable_auto_log_stats = False
    count, gpus, cpus = replica_plan(ray.cluster_resources(), replicas, gpus_per_replica, cpus_per_replica)
    # Without GPUs, decoding asks for what a replica has, so Ray Data fuses it into the replicas: each decodes its
    # own batches, with no copies between processes (faster on CPUs than separate decoders, benchmarks/README.md).
    # With GPUs the two steps differ in resources and are not fused: decoding runs on the CPUs as Ray tasks while
    # the GPUs compute.
    decode_cpus = 1 if gpus else cpus
    # Without a GPU of its own, a replica must not pick up one it was not given.
    replica_device = "cpu" if not gpus and str(device) == "auto" else device
    blocks = []
    for shard in pending:
        span = shard_rows(shard, shard_size, manifest.num_rows)
        blocks.append(pa.table({"row": pa.array(span, pa.int64()), "path": manifest["path"].slice(span.start, len(span))}))
    dataset = ray.data.from_arrow(blocks).map_batches(
        decode_batch, fn_kwargs={"prep": description["preprocessing"], "endpoint_url": endpoint_url,
                                 "workers": workers or 4},
        batch_size=batch_size, batch_format="numpy", num_cpus=decode_cpus,
    ).map_batches(
        Predictor, fn_constructor_kwargs={"description": description, "weights": weights, "device": replica_device,
                                          "precision": precision, "threads": max(1, math.floor(cpus))},
        compute=ray.data.ActorPoolStrategy(size=count), num_cpus=cpus, num_gpus=gpus or None,
        batch_size=batch_size, batch_format="numpy",
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            writer.add(batch["row"], batch["probabilities"], list(batch["error"]))
    except Exception as error:
        user_error = _user_error(error)
        if user_error is not None:
            raise user_error from None
        raise


def predict_on_ray(run, table: pa.Table, *, batch_size: int = 32, device: str = "auto", precision: str = "auto",
                   num_workers=None, progress: bool = True, calibrate: bool = False, threshold=None) -> pa.Table:
    """predict(backend="ray"): label_corpus on Ray into a temporary folder, returned as one table."""
    from .labelling import label_corpus

    shard_size = max(batch_size, min(1000, math.ceil(table.num_rows / 16)))
    with tempfile.TemporaryDirectory(prefix="imagesasdata-predict-") as scratch:
        result = label_corpus(run, table.select(["image_id", "path"]), out=scratch, backend="ray",
                              shard_size=shard_size, batch_size=batch_size, device=device, precision=precision,
                              num_workers=num_workers, progress=progress, calibrate=calibrate, threshold=threshold)
        return result.table


# ------------------------------------------------------------------------------------------ grids

def grid_trial(config: dict, table: pa.Table, configurations: dict, options: dict, out: str, threads: int) -> None:
    """One Ray Tune trial: fine-tune one configuration into out/configs/<config_id>, as tune.run_config does
    locally (a finished configuration is not re-run; an interrupted one resumes from its checkpoint)."""
    import ray
    import torch
    from ray import tune as ray_tune

    from .tune import run_config

    torch.set_num_threads(threads)
    config_id = config["config_id"]
    run = run_config(table, config_id, configurations[config_id], options, Path(out), {})
    estimator = None if len(run.classes) == 2 else "multiclass"
    assigned = ray.get_runtime_context().get_assigned_resources()
    ray_tune.report({"val_accuracy": run.metric("accuracy", "val", estimator), "status": run.status,
                     "threads": torch.get_num_threads(), "cpus": assigned.get("CPU", 0.0),
                     "gpus": assigned.get("GPU", 0.0)})


def tune_on_ray(table: pa.Table, configurations, ids, options: dict, out, *, cpus_per_trial: float = 1,
                gpus_per_trial: float | None = None) -> None:
    """Fine-tune every unfinished configuration of a grid as a Ray Tune trial, one per CPU slot (cpus_per_trial)
    or GPU (gpus_per_trial, default 1 on a cluster with GPUs). tune() then reads the run directories, as after
    the local backend. On a cluster of several machines, `out` and the images must be on a shared filesystem.
    Raises ImagesAsDataError naming the configurations that failed (the others are kept; rerun to resume)."""
    from . import runs

    ray = connect()
    from ray import tune as ray_tune

    out = Path(out).resolve()
    pending = [i for i in ids if not runs.is_complete(out / "configs" / i)]
    if not pending:
        return
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus_per_trial is None:
        gpus_per_trial = 1 if gpus else 0
    trial_options = dict(options, progress=False)  # trials run in other processes; Ray Tune reports progress
    if not gpus_per_trial and str(trial_options.get("device", "auto")) == "auto":
        trial_options["device"] = "cpu"
    trainable = ray_tune.with_parameters(grid_trial, table=table, configurations=dict(zip(ids, configurations)),
                                         options=trial_options, out=str(out), threads=max(1, math.floor(cpus_per_trial)))
    trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = ray_tune.Tuner(
        trainable, param_space={"config_id": ray_tune.grid_search(pending)},
        run_config=ray_tune.RunConfig(name="grid", storage_path=str(out / "ray_tune"),
                                      verbose=1 if options.get("progress", True) else 0),
    )
    results = tuner.fit()
    failed = []
    for result in results:
        if result.error is not None:
            cause = _user_error(result.error) or result.error
            failed.append(f"{result.config.get('config_id')}: {str(cause).strip().splitlines()[-1]}")
    if failed:
        raise ImagesAsDataError(f"{len(failed)} configurations failed on Ray: " + "; ".join(failed) +
                                ". The others are kept; fix the cause and run the grid again to resume")
    missing = [i for i in pending if not runs.is_complete(out / "configs" / i)]
    if missing:
        raise ImagesAsDataError(
            f"configurations {', '.join(missing)} finished on Ray but {out / 'configs'} does not show them: on a "
            "cluster of several machines the grid's out folder must be on a filesystem every node shares"
        )
