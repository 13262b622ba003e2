"""Running on a Ray cluster: batches through a pool of replicas (Ray Data), and trials (Ray Tune).

We use an existing distributed engine rather than a scheduler of our own: Ray streams work through tasks and
actor pools (one per GPU, or several per CPU node), retries failed tasks, and runs the same code on a laptop, a
Slurm allocation or an AWS cluster. `connect()` joins the cluster named by RAY_ADDRESS, or starts one here.

This module knows no pipeline stage: the stages hand it functions and ids (labelling passes its decoder and
Predictor to map_with_replicas; grids pass a function that fine-tunes one configuration to run_trials), so
nothing here changes an answer — the shards and grid directories are exactly those of the local backends.
"""

from __future__ import annotations

import logging
import math
import os

import pyarrow as pa

from ..errors import ImagesAsDataError


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None):
    """The `ray` module, connected: to an already running session, else to `address` or RAY_ADDRESS, else to a
    new local cluster of num_cpus CPUs (default: all). Raises ImagesAsDataError when Ray is missing or the
    cluster cannot be reached."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the network
    try:
        import ray
    except ImportError:
        raise ImagesAsDataError("backend='ray' needs Ray: pip install 'imagesasdata[ray]' (or use backend='local')", what="missing_extra", extra="ray") from None
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


# ------------------------------------------------------------------------------------------ batches through replicas

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


def map_with_replicas(blocks: list[pa.Table], on_batch, *, prepare, prepare_kwargs: dict, replica,
                      replica_kwargs: dict, batch_size: int, device: str = "auto", replicas=None,
                      gpus_per_replica=None, cpus_per_replica: float = 1) -> None:
    """Stream `blocks` (Arrow tables) through prepare(batch, **prepare_kwargs) as Ray tasks and a pool of actors
    replica(**replica_kwargs, device=, threads=), calling on_batch(batch) here for every result, in any order.

    Stage-agnostic: the caller supplies the functions (labelling passes image decoding and its Predictor). Replicas
    are one per GPU by default; without GPUs one per cpus_per_replica cores, and then `prepare` is fused into
    them (Ray Data fuses steps that ask for the same resources: no copies between processes, faster on CPUs —
    benchmarks/README.md). With GPUs, preparation runs on the CPUs as separate tasks while the GPUs compute.
    """
    ray = connect()
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timing lines would break the caller's bar
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_auto_log_stats = False
    count, gpus, cpus = replica_plan(ray.cluster_resources(), replicas, gpus_per_replica, cpus_per_replica)
    prepare_cpus = 1 if gpus else cpus
    # Without a GPU of its own, a replica must not pick up one it was not given.
    replica_device = "cpu" if not gpus and str(device) == "auto" else device
    dataset = ray.data.from_arrow(blocks).map_batches(
        prepare, fn_kwargs=prepare_kwargs, batch_size=batch_size, batch_format="numpy", num_cpus=prepare_cpus,
    ).map_batches(
        replica, fn_constructor_kwargs={**replica_kwargs, "device": replica_device, "threads": max(1, math.floor(cpus))},
        compute=ray.data.ActorPoolStrategy(size=count), num_cpus=cpus, num_gpus=gpus or None,
        batch_size=batch_size, batch_format="numpy",
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            on_batch(batch)
    except Exception as error:
        user_error = _user_error(error)
        if user_error is not None:
            raise user_error from None
        raise


# ------------------------------------------------------------------------------------------ trials

def run_trials(trial, ids: list[str], *, parameters: dict, storage, cpus_per_trial: float = 1,
               gpus_per_trial: float | None = None, verbose: bool = True) -> list[str]:
    """Run trial(config, **parameters, threads=, gpus=) as one Ray Tune trial per id (config = {"config_id": id}),
    each reserving cpus_per_trial CPUs (threads: as many whole ones) and gpus_per_trial GPUs (default 1 on a cluster
    with GPUs). Results stay wherever the trial writes them (Ray Tune's own records go to `storage`). Returns
    "id: reason" for each failed trial. Stage-agnostic: grids pass a function that fine-tunes one configuration.
    """
    ray = connect()
    from ray import tune as ray_tune

    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus_per_trial is None:
        gpus_per_trial = 1 if gpus else 0
    parameters = dict(parameters, threads=max(1, math.floor(cpus_per_trial)), gpus=gpus_per_trial)
    trainable = ray_tune.with_parameters(trial, **parameters)
    trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = ray_tune.Tuner(
        trainable, param_space={"config_id": ray_tune.grid_search(list(ids))},
        run_config=ray_tune.RunConfig(name="grid", storage_path=str(storage), verbose=1 if verbose else 0),
    )
    failed = []
    for result in tuner.fit():
        if result.error is not None:
            cause = _user_error(result.error) or result.error
            failed.append(f"{result.config.get('config_id')}: {str(cause).strip().splitlines()[-1]}")
    return failed


def report_trial(metrics: dict) -> None:
    """Report a finished trial's metrics to Ray Tune, with the resources Ray gave it."""
    import ray
    from ray import tune as ray_tune

    assigned = ray.get_runtime_context().get_assigned_resources()
    ray_tune.report({**metrics, "cpus": assigned.get("CPU", 0.0), "gpus": assigned.get("GPU", 0.0)})
