"""Running on a Ray cluster: batches through a pool of replicas (Ray Data), and trials (Ray Tune).

We use an existing distributed engine rather than a scheduler of our own: Ray streams work through tasks and
actor pools (one per GPU, or several per CPU node), retries failed tasks, and runs the same code on a laptop, a
Slurm allocation or an AWS cluster. `connect()` joins the cluster named by RAY_ADDRESS, or starts one here.

This module knows no pipeline stage: the stages hand it functions and ids (labelling passes its decoder and
Predictor to map_with_replicas; grids pass a function that fine-tunes one configuration to run_trials), so
nothing here changes an answer — the shards and grid directories are exactly those of the local backends.

Past one machine, three things are added here, all stage-agnostic: which node did what (every batch comes back
tagged with the node its replica ran on; trials report their node), which nodes were lost on the way (Ray re-runs
their work: their batches in flight run again elsewhere; lost trials run again and resume from what they wrote),
and whether every node can read the files a job needs before any work is sent (unreadable_by_node: a task pinned
to each node).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
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


# ------------------------------------------------------------------------------------------ nodes

def node_names(ray) -> dict:
    """{node id: a name for people} for every node the cluster has known, alive or not: its IP address, with the
    start of its id when several live nodes share an address (several Ray nodes on one machine)."""
    nodes = ray.nodes()
    shared = Counter(n["NodeManagerAddress"] for n in nodes if n["Alive"])
    return {n["NodeID"]: n["NodeManagerAddress"] + (f" ({n['NodeID'][:8]})" if shared[n["NodeManagerAddress"]] > 1 else "")
            for n in nodes}


def alive_nodes(ray) -> set:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def on_each_node(ray, function, args: tuple, nodes, *, timeout_s: float) -> dict:
    """{node id: ("answer", value) | ("lost", error) | ("silent", None)}: function(*args) run as a task pinned to each
    node (no CPU reserved, so a busy node answers too). A node that died answers "lost" once Ray knows it is gone;
    one that does not answer within timeout_s is "silent"."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(function)
    calls = {node: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(*args)
             for node in sorted(nodes)}
    ready, _ = ray.wait(list(calls.values()), num_returns=len(calls), timeout=timeout_s) if calls else ([], [])
    answers = {}
    for node, call in calls.items():
        if call not in ready:
            answers[node] = ("silent", None)
            continue
        try:
            answers[node] = ("answer", ray.get(call))
        except Exception as error:   # the node is gone (or never ran the task)
            answers[node] = ("lost", error)
    return answers


def _answer() -> bool:
    return True


@dataclass
class ClusterWork:
    """Where a job's work ran: the cluster's nodes, its workers, rows (or trials) per node, and the nodes lost while
    it ran."""

    by_node: dict = field(default_factory=dict)   # node name → rows its replicas returned (trials it finished)
    nodes_lost: list = field(default_factory=list)   # nodes alive when the job started and gone when it ended
    retried: list = field(default_factory=list)   # trials Ray Tune ran again, "id: why"
    nodes: list = field(default_factory=list)     # the nodes alive when the job started
    workers: int | None = None                    # model replicas (batches), or trials started (grids)

    def as_dict(self) -> dict:
        """The record kept with a job's output (labelling.json, a grid's cluster.json): plain JSON."""
        return {"nodes": list(self.nodes), "workers": self.workers, "by_node": dict(self.by_node),
                "nodes_lost": list(self.nodes_lost), "retried": list(self.retried)}

    @classmethod
    def from_dict(cls, record: dict) -> "ClusterWork":
        return cls(dict(record.get("by_node") or {}), list(record.get("nodes_lost") or []),
                   list(record.get("retried") or []), list(record.get("nodes") or []), record.get("workers"))


def lost_nodes(ray, before: set, names: dict, timeout_s: float = 60) -> list:
    """The nodes of `before` (alive when the job started) that are gone now. Ray's list of nodes lags a lost node by
    the seconds its health checks take, and a job can finish in between; so every node still listed (but this
    process's own) is first asked to run a task, which returns once the node answers or Ray knows it is gone."""
    import time

    others = (before & alive_nodes(ray)) - {ray.get_runtime_context().get_node_id()}
    answers = on_each_node(ray, _answer, (), others, timeout_s=timeout_s)
    failed = {node for node, (state, _) in answers.items() if state == "lost"}
    deadline = time.monotonic() + timeout_s
    while failed & alive_nodes(ray) and time.monotonic() < deadline:   # the task failed first; Ray's list follows
        time.sleep(0.5)
    for node, (state, _) in answers.items():
        if state == "silent":
            logging.getLogger(__name__).warning("node %s did not answer within %.0f s after the job", names.get(node, node),
                                                timeout_s)
    names = {**names, **node_names(ray)}
    return sorted(names.get(node, node) for node in before - alive_nodes(ray))


# ------------------------------------------------------------------------------------------ storage every node reads

def unreadable_by_node(paths, *, sample: int = 200, timeout_s: float = 120) -> dict:
    """{node name: [paths it cannot read]} for the nodes of the cluster other than this process's own, checked by a
    task pinned to each node before any work is sent. Only local paths that this process can read are checked
    (s3:// and other URIs are skipped): up to `sample` of them, spread over the list, and every folder they lie in.
    Nodes that do not answer within timeout_s are left out, with a warning: the check must not hold up a busy
    cluster (a node that cannot read an image then gives that image's row an error)."""
    local = [str(p) for p in paths if "://" not in str(p)]
    step = max(1, len(local) // sample)
    chosen = list(dict.fromkeys(local[::step][:sample] + local[-1:]))
    folders = list(dict.fromkeys(os.path.dirname(p) for p in local))
    if len(folders) > 1000:
        folders = folders[:: len(folders) // 1000 + 1]
    # What this process cannot read either is the input's problem (a missing image is a row with an error), not
    # the storage's.
    checked = [p for p in dict.fromkeys(folders + chosen) if os.access(p, os.R_OK)]
    if not checked:
        return {}
    ray = connect()
    names = node_names(ray)
    others = alive_nodes(ray) - {ray.get_runtime_context().get_node_id()}
    unreadable = {}
    for node, (state, missing) in on_each_node(ray, _unreadable_here, (checked,), others, timeout_s=timeout_s).items():
        if state == "silent":
            logging.getLogger(__name__).warning("node %s did not answer the storage check within %.0f s; its access "
                                                "to the files is not verified", names.get(node, node), timeout_s)
        elif state == "answer" and missing:
            unreadable[names.get(node, node)] = missing
    return unreadable


def unreadable_with_folder(folder, paths, **options) -> tuple[dict, dict]:
    """({node: [folder]} for the nodes that do not see a file this process writes in `folder` now — not merely a
    folder of the same name on their own disk —, {node: [paths it cannot read]} for `paths`), by
    unreadable_by_node(). The probe file is removed again (its name is one of our temporary names: a leftover is
    removed when the folder is next claimed)."""
    import secrets

    probe = os.path.join(str(folder), f".shared-storage-check.{secrets.token_hex(4)}.part")
    with open(probe, "w", encoding="utf-8") as handle:
        handle.write("written by the job's driver; every node must see it\n")
    try:
        unreadable = unreadable_by_node([probe] + [str(p) for p in paths], **options)
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass
    unseen = {node: [str(folder)] for node, missing in unreadable.items() if probe in missing}
    # the probe's folder was checked as a folder of the paths too: it belongs to the first answer
    rest = {node: [p for p in missing if p not in (probe, str(folder))] for node, missing in unreadable.items()}
    return unseen, {node: missing for node, missing in rest.items() if missing}


def _unreadable_here(paths) -> list:
    """The paths this process cannot read (a folder: cannot list)."""
    return [p for p in paths if not os.access(p, os.R_OK)]


def storage_error(unreadable: dict, what: str, fix: str) -> ImagesAsDataError:
    """The error for unreadable_by_node's answer: which node cannot read which of `what`, and `fix`."""
    parts = [f"node {node} cannot read {paths[0]}" + (f" (nor {len(paths) - 1} more of those checked)" if len(paths) > 1
             else "") for node, paths in sorted(unreadable.items())]
    return ImagesAsDataError(f"{what}: not every node of the Ray cluster can read them — {'; '.join(parts)}. {fix}. "
                             "Nothing was started")


# ------------------------------------------------------------------------------------------ batches through replicas

def replica_plan(resources: dict, replicas=None, gpus_per_replica=None, cpus_per_replica: float = 1):
    """(replicas, gpus per replica, cpus per replica) for a cluster's resources: one replica per GPU by default;
    without GPUs, one per cpus_per_replica cores (each then decodes its own images)."""
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus_per_replica is None:
        gpus_per_replica = 1 if gpus else 0
    if cpus_per_replica <= 0:
        raise ImagesAsDataError(f"cpus_per_replica={cpus_per_replica}: give each replica at least a fraction of a CPU",
                                what="option", option="cpus_per_replica", value=cpus_per_replica)
    if gpus_per_replica and gpus < gpus_per_replica:
        raise ImagesAsDataError(f"gpus_per_replica={gpus_per_replica} but the Ray cluster has {gpus:g} GPUs; "
                                "use gpus_per_replica=0 to run the replicas on CPUs",
                                what="option", option="gpus_per_replica", value=gpus_per_replica)
    if replicas is None:
        replicas = int(gpus // gpus_per_replica) if gpus_per_replica else int(cpus // cpus_per_replica)
    if int(replicas) < 1:
        replicas = 1
    return int(replicas), float(gpus_per_replica), float(cpus_per_replica)


NODE_COLUMN = "ray_node_id"


class ReplicaOnNode:
    """A replica that tags every batch it returns with the id of the node it runs on (so the caller knows where its
    work ran, and what a lost node had done before it went)."""

    def __init__(self, replica, replica_kwargs: dict, **runtime):
        import ray

        self.replica = replica(**replica_kwargs, **runtime)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict) -> dict:
        output = self.replica(batch)
        rows = len(next(iter(output.values()))) if output else 0
        output[NODE_COLUMN] = np.array([self.node] * rows, dtype=object)
        return output


def map_with_replicas(blocks: list[pa.Table], on_batch, *, prepare, prepare_kwargs: dict, replica,
                      replica_kwargs: dict, batch_size: int, device: str = "auto", replicas=None,
                      gpus_per_replica=None, cpus_per_replica: float = 1) -> ClusterWork:
    """Stream `blocks` (Arrow tables) through prepare(batch, **prepare_kwargs) as Ray tasks and a pool of actors
    replica(**replica_kwargs, device=, threads=), calling on_batch(batch) here for every result, in any order.
    Returns where the batches ran (ClusterWork: the nodes, the replicas, rows per node, the nodes lost meanwhile).

    Stage-agnostic: the caller supplies the functions (labelling passes image decoding and its Predictor). Replicas
    are one per GPU by default; without GPUs one per cpus_per_replica cores, and then `prepare` is fused into
    them (Ray Data fuses steps that ask for the same resources: no copies between processes, faster on CPUs —
    benchmarks/README.md). With GPUs, preparation runs on the CPUs as separate tasks while the GPUs compute.
    A node lost mid-job costs only time: Ray Data runs the batches its replicas had in flight again on the other
    nodes (and restarts the replicas where there is room), and on_batch still sees every row once (batches are
    handed over only when finished).
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
    names, before = node_names(ray), alive_nodes(ray)
    started_on = sorted(names.get(node, node) for node in before)
    dataset = ray.data.from_arrow(blocks).map_batches(
        prepare, fn_kwargs=prepare_kwargs, batch_size=batch_size, batch_format="numpy", num_cpus=prepare_cpus,
    ).map_batches(
        ReplicaOnNode, fn_constructor_kwargs={"replica": replica, "replica_kwargs": replica_kwargs,
                                              "device": replica_device, "threads": max(1, math.floor(cpus))},
        compute=ray.data.ActorPoolStrategy(size=count), num_cpus=cpus, num_gpus=gpus or None,
        batch_size=batch_size, batch_format="numpy",
    )
    rows: Counter = Counter()
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            nodes, counts = np.unique(batch.pop(NODE_COLUMN), return_counts=True)
            rows.update(dict(zip(nodes.tolist(), counts.tolist())))
            on_batch(batch)
    except Exception as error:
        user_error = _user_error(error)
        if user_error is not None:
            raise user_error from None
        raise
    names.update(node_names(ray))
    return ClusterWork({names.get(node, node): int(n) for node, n in sorted(rows.items(), key=lambda kv: names.get(kv[0], kv[0]))},
                       lost_nodes(ray, before, names), nodes=started_on, workers=count)


# ------------------------------------------------------------------------------------------ trials

def run_trials(trial, ids: list[str], *, parameters: dict, storage, cpus_per_trial: float = 1,
               gpus_per_trial: float | None = None, verbose: bool = True, max_failures: int = 3):
    """Run trial(config, **parameters, threads=, gpus=) as one Ray Tune trial per id (config = {"config_id": id}),
    each reserving cpus_per_trial CPUs (threads: as many whole ones) and gpus_per_trial GPUs (default 1 on a cluster
    with GPUs). Results stay wherever the trial writes them (Ray Tune's own records go to `storage`).

    A trial lost with its node (or its process) is run again, up to max_failures times: the trial function must
    resume from what it wrote (a grid's trial resumes its run directory). An ImagesAsDataError is the user's to
    fix and would fail again: it is reported, never retried.
    Returns ("id: reason" for each failed trial, ClusterWork: the nodes, trials started, trials finished per node,
    trials retried and why, nodes lost). Stage-agnostic: grids pass a function that fine-tunes one configuration.
    """
    ray = connect()
    from ray import tune as ray_tune

    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus_per_trial is None:
        gpus_per_trial = 1 if gpus else 0
    parameters = dict(parameters, threads=max(1, math.floor(cpus_per_trial)), gpus=gpus_per_trial)
    trainable = ray_tune.with_parameters(_trial_reporting_user_errors, trial=trial, **parameters)
    trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})

    class RecordRetries(ray_tune.Callback):
        def __init__(self):
            self.retried, self.nodes = [], {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.nodes[trial.trial_id] = result.get("node_ip")   # the first report says where the trial started

        def on_trial_recover(self, iteration, trials, trial, **info):
            node = self.nodes.get(trial.trial_id)
            self.retried.append(f"{trial.config.get('config_id')}{f' on {node}' if node else ''}: "
                                f"{_failure_reason(_error_text(trial))}")

    retries = RecordRetries()
    names, before = node_names(ray), alive_nodes(ray)
    started_on = sorted(names.get(node, node) for node in before)
    tuner = ray_tune.Tuner(
        trainable, param_space={"config_id": ray_tune.grid_search(list(ids))},
        run_config=ray_tune.RunConfig(name="grid", storage_path=str(storage), verbose=1 if verbose else 0,
                                      failure_config=ray_tune.FailureConfig(max_failures=max_failures),
                                      callbacks=[retries]),
    )
    failed, finished = [], Counter()
    for result in tuner.fit():
        if result.error is not None:
            cause = _user_error(result.error) or result.error
            failed.append(f"{result.config.get('config_id')}: {str(cause).strip().splitlines()[-1]}")
        elif (result.metrics or {}).get("user_error"):
            failed.append(f"{result.config.get('config_id')}: {result.metrics['user_error']}")
        else:
            finished[(result.metrics or {}).get("node_ip", "?")] += 1
    names.update(node_names(ray))
    return failed, ClusterWork(dict(sorted(finished.items())), lost_nodes(ray, before, names), retries.retried,
                               nodes=started_on, workers=len(ids))


def _trial_reporting_user_errors(config: dict, *, trial, **parameters) -> None:
    """Run one trial; an ImagesAsDataError becomes its reported result, so that Ray Tune does not retry it. A first
    report says where the trial runs, so that a trial lost with its node can be named with it."""
    from ray import tune as ray_tune

    ray_tune.report({"started": True})
    try:
        trial(config, **parameters)
    except ImagesAsDataError as error:
        report_trial({"user_error": str(error)})


def _error_text(trial) -> str:
    """Ray Tune's record of why a trial failed (its error file), or ""."""
    try:
        text = trial.get_error()
    except Exception:
        text = None
    if not text and getattr(trial, "error_file", None) and os.path.exists(trial.error_file):
        with open(trial.error_file, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    return str(text or "")


def _failure_reason(error_text) -> str:
    """One line on why a trial failed, from Ray Tune's error text: "its worker process was lost (Ray: …)" with Ray's
    first words on it when its process (or node) went, else the exception's name and first sentence."""
    import re

    lines = [re.sub(r"\b[0-9a-f]{24,}\b ?", "", line.strip()) for line in str(error_text or "").splitlines()
             if line.strip() and not line.startswith("Failure #")]
    errors = [line for line in lines if ":" in line and line.split(":", 1)[0].rsplit(".", 1)[-1].endswith(
        ("Error", "Exception", "Interrupt"))]
    lost = [line for line in lines if re.search(r"\bactor\b.*\b(died|dead|unavailable)\b", line, re.IGNORECASE)]
    if lost:
        return f"its worker process was lost (Ray: {lost[-1].split('. ')[0].split(': ')[0].rstrip('.')})"[:200]
    if errors:
        name, message = errors[-1].split(":", 1)
        return f"{name.rsplit('.', 1)[-1]}: {message.strip().split('. ')[0]}"[:200]
    return (lines[0].split(". ")[0].rstrip(".") if lines else "its worker process was lost")[:200]


def report_trial(metrics: dict) -> None:
    """Report a finished trial's metrics to Ray Tune, with the resources Ray gave it."""
    import ray
    from ray import tune as ray_tune

    assigned = ray.get_runtime_context().get_assigned_resources()
    ray_tune.report({**metrics, "cpus": assigned.get("CPU", 0.0), "gpus": assigned.get("GPU", 0.0)})
