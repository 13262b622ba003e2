"""Past one machine: labelling and grids on a real two-node Ray cluster (tests/ray_nodes.py: a head and a second
node started with `ray start`, on loopback addresses, each with its own temporary directory, and a folder that only
the head sees). Work runs on both nodes and gives the local backend's answers; a node killed mid-job costs only
time (every manifest row and every trial exactly once, and the output says what was re-run); a killed driver's
job resumes when resubmitted (from its shards in S3); a folder a node cannot read — images, or an output folder — is
refused before any image is decoded; s3:// manifests, images and outputs (a moto server) work from every node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray")
pytest.importorskip("moto")

import imagesasdata as iad  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402
from imagesasdata.io.tables import read_json, write_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_nodes import ENVIRONMENT, HEAD_IP, WORKER_IP, TwoNodeCluster  # noqa: E402

# Every assertion here compares two computations made on this CPU (DEVELOPERS.md, Tests): not rerun under
# other instruction sets by `make test-other-cpus`.
pytestmark = pytest.mark.same_cpu

PYTHON = sys.executable
GRID_OPTIONS = dict(image_size=64, epochs=2, freeze="backbone", augment_crop=False, progress=False, seed=0)


@pytest.fixture(scope="module")
def nodes(fake_aws, tmp_path_factory):
    """The two-node cluster, joined by this process through RAY_ADDRESS (as a user's command would); always
    stopped at the end, with nothing of it left running."""
    import ray

    from imagesasdata.scale.cluster import connect

    if ray.is_initialized():
        ray.shutdown()
    cluster = TwoNodeCluster(tmp_path_factory.mktemp("ray", numbered=True))
    try:
        cluster.start()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {**ENVIRONMENT, "RAY_ADDRESS": cluster.address}.items():
                patch.setenv(name, value)
            connect()
            cluster.wait_for_nodes(ray)
            yield cluster
            ray.shutdown()
    finally:
        cluster.stop()
        assert not cluster.leftovers()


@pytest.fixture()
def two_nodes(nodes):
    """Both nodes up (a test before may have killed the second)."""
    import ray

    nodes.ensure_worker(ray)
    return nodes


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return iad.finetune(iad.sample_data() / "faces", image_size=64, epochs=1, progress=False,
                        out=tmp_path_factory.mktemp("run") / "faces")


@pytest.fixture(scope="module")
def faces(orl_faces) -> list[str]:
    """60 ORL faces (6 people) and a path that does not exist, as on a shared file system."""
    return [str(orl_faces / f"s{person}" / f"{k}.pgm") for person in range(1, 7) for k in range(1, 11)] + \
        [str(orl_faces / "s1" / "missing.pgm")]


@pytest.fixture(scope="module")
def reference(fitted, faces):
    return iad.label_corpus(fitted, faces, out=Path(fitted.path).parent / "local_labels", shard_size=8,
                            progress=False).table


def probabilities(table):
    return np.array([table[c].to_pylist() for c in table.column_names if c.startswith("prob_")], float).T


def assert_same_answers(table, reference):
    assert table.schema == reference.schema
    for column in ("image_id", "path", "predicted", "error"):
        assert table[column].to_pylist() == reference[column].to_pylist(), column
    # Batches of other sizes take other float32 kernel paths: logits differ in the 5th decimal (seen: 1.2e-5 on a
    # probability of 0.506 with the default recipe's model), never the predicted class.
    np.testing.assert_allclose(probabilities(table), probabilities(reference), rtol=0, atol=1e-4)


class HeadCpuHeld:
    """A placeholder actor on the head that holds one of its two CPUs: with one free CPU on each node, two
    replicas (or two trials) must run one on each. Released with release(), or at the end of the block."""

    def __init__(self, ray):
        self.ray = ray
        self.actor = None

    def __enter__(self):
        @self.ray.remote(num_cpus=1, resources={"node_head": 0.01})
        class Placeholder:
            def where(self):
                import ray

                return ray.util.get_node_ip_address()

        self.actor = Placeholder.remote()
        assert self.ray.get(self.actor.where.remote(), timeout=120) == HEAD_IP
        return self

    def release(self):
        if self.actor is not None:
            self.ray.kill(self.actor)
            self.actor = None

    def __exit__(self, *exc):
        self.release()


@pytest.fixture()
def replicas_start_together():
    """Ray Data streams batches as soon as one replica is up; here it waits for all of them, so that the work is
    spread over both nodes from the first batch (a few dozen images would otherwise all go to the first replica
    that starts)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    previous = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 300
    yield
    context.wait_for_min_actors_s = previous


def s3_objects(endpoint, bucket: str, prefix: str) -> dict:
    """{key: (ETag, LastModified)} of the objects under a prefix, read with boto3 independently of the engine."""
    import boto3

    pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                                              Prefix=prefix)
    return {item["Key"]: (item["ETag"], item["LastModified"]) for page in pages for item in page.get("Contents", [])}


def s3_shards(endpoint, bucket: str, prefix: str) -> list:
    """The shards under s3://bucket/prefix, read with boto3: [(key, table)] in key order."""
    import boto3
    import pyarrow as pa

    s3 = boto3.client("s3", endpoint_url=endpoint)
    return [(key, pq.read_table(pa.BufferReader(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
            for key in sorted(s3_objects(endpoint, bucket, f"{prefix}/shards/"))]


def read_json_s3(endpoint, bucket: str, key: str) -> dict:
    import json

    import boto3

    return json.loads(boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def shard_files(out) -> list[Path]:
    return sorted((Path(out) / "shards").glob("shard-*.parquet"))


@pytest.mark.slow
@pytest.mark.trains
def test_labelling_runs_on_both_nodes_into_s3_with_the_local_answers(two_nodes, replicas_start_together, fake_aws,
                                                                      fitted, faces, reference):
    """Both nodes label; the output is an s3:// prefix (the nodes share no output folder): the local backend's rows,
    each manifest row once, every shard one object, and where the work ran recorded with them. (The node-loss test
    below writes to a shared folder.)"""
    import boto3
    import ray

    boto3.client("s3", endpoint_url=fake_aws).create_bucket(Bucket="both-nodes")
    out = "s3://both-nodes/labels"
    before = {node: two_nodes.actors_started_on(node) for node in ("head", "worker")}
    with HeadCpuHeld(ray):
        result = iad.label_corpus(fitted, faces, out=out, endpoint_url=fake_aws, backend="ray", shard_size=8,
                                  batch_size=4, replicas=2, progress=False)
    assert result.complete and (result.labelled, result.unreadable) == (61, 1)
    assert_same_answers(result.table, reference)
    shards = s3_shards(fake_aws, "both-nodes", "labels")   # read with boto3, not through the engine
    assert [key for key, _ in shards] == [f"labels/shards/shard-{k:06d}.parquet" for k in range(8)]
    assert [table.num_rows for _, table in shards] == [8] * 7 + [5]
    assert sum((table["image_id"].to_pylist() for _, table in shards), []) == reference["image_id"].to_pylist()
    # where the work ran: as the replicas saw it, and as each node's own logs record it
    by_node = result.cluster["images_by_node"]
    assert set(by_node) == {HEAD_IP, WORKER_IP} and sum(by_node.values()) == 61 and min(by_node.values()) > 0
    assert (result.cluster["nodes"], result.cluster["replicas"]) == ([HEAD_IP, WORKER_IP], 2)
    for node in ("head", "worker"):
        started = Counter(two_nodes.actors_started_on(node)) - Counter(before[node])
        assert any("ReplicaOnNode" in name for name in started), (node, started)
    described = read_json_s3(fake_aws, "both-nodes", "labels/labelling.json")
    assert described["status"] == "complete" and described["last_call"]["cluster"]["images_by_node"] == by_node
    reopened = iad.load_labelling(out, endpoint_url=fake_aws)
    assert reopened.complete and reopened.cluster == result.cluster
    assert f"on Ray: 2 nodes, 2 model replicas: {by_node[HEAD_IP]} images on {HEAD_IP}, {by_node[WORKER_IP]} " \
           f"images on {WORKER_IP}" in repr(reopened)


class KillWorkerWhen:
    """A thread that waits until `ready()` is true and kills the second node's raylet; the time it did so is in
    `.killed_at`. The head's CPU stays held: the job must finish on what the head had left."""

    def __init__(self, nodes, ready, timeout: float = 300):
        self.nodes, self.ready, self.timeout = nodes, ready, timeout
        self.killed_at = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.timeout
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.nodes.kill_worker_raylet()
        self.killed_at = time.monotonic()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=self.timeout)


@pytest.mark.slow
@pytest.mark.trains
def test_a_node_lost_mid_labelling_costs_only_time(two_nodes, replicas_start_together, fitted, faces, reference,
                                                   tmp_path):
    import ray

    out = tmp_path / "labels"
    with HeadCpuHeld(ray), KillWorkerWhen(two_nodes, lambda: len(shard_files(out)) >= 2) as killer:
        result = iad.label_corpus(fitted, faces, out=out, backend="ray", shard_size=8, batch_size=4, replicas=2,
                                  progress=False)
    assert killer.killed_at is not None and len(shard_files(out)) == 8
    # every manifest row exactly once, with the answers of an uninterrupted local run
    assert result.complete and result.labelled == 61
    rows = [pq.read_table(f)["image_id"].to_pylist() for f in shard_files(out)]
    assert [len(r) for r in rows] == [8] * 7 + [5] and sum(rows, []) == reference["image_id"].to_pylist()
    assert_same_answers(result.table, reference)
    # the second node had a replica, and the job says it was lost and what Ray re-ran
    assert any("ReplicaOnNode" in name for name in two_nodes.actors_started_on("worker"))
    assert result.cluster["nodes_lost"] == [WORKER_IP] and sum(result.cluster["images_by_node"].values()) == 61
    assert f"node {WORKER_IP} left the cluster during the job" in repr(result)
    assert read_json(out / "labelling.json")["last_call"]["cluster"]["nodes_lost"] == [WORKER_IP]


GRID = {"learning_rate": [0.001, 0.01]}


@pytest.fixture(scope="module")
def local_grid(sample_data, tmp_path_factory):
    return iad.tune(sample_data / "faces", GRID, out=tmp_path_factory.mktemp("grid") / "local", **GRID_OPTIONS)


def assert_same_results(grid, local):
    assert grid.results.column_names == local.results.column_names
    assert grid.results["config_id"].to_pylist() == local.results["config_id"].to_pylist()  # each once, in order
    for mine, theirs in zip(grid.results.to_pylist(), local.results.to_pylist()):
        for column, value in theirs.items():
            if column == "seconds":
                continue
            if isinstance(value, float):
                assert mine[column] == pytest.approx(value, rel=1e-4), column
            else:
                assert mine[column] == value, column
    assert grid.best_config == local.best_config
    assert grid.history.num_rows == local.history.num_rows


@pytest.mark.slow
@pytest.mark.trains
def test_a_grid_runs_on_both_nodes_with_the_local_results(two_nodes, sample_data, local_grid, tmp_path):
    import ray

    with HeadCpuHeld(ray):
        grid = iad.tune(sample_data / "faces", GRID, out=tmp_path / "grid", backend="ray", **GRID_OPTIONS)
    assert_same_results(grid, local_grid)
    assert grid.cluster.by_node == {HEAD_IP: 1, WORKER_IP: 1}   # one CPU free on each node: one trial on each
    assert not grid.cluster.retried and not grid.cluster.nodes_lost
    assert (grid.cluster.nodes, grid.cluster.workers) == ([HEAD_IP, WORKER_IP], 2)
    assert f"on Ray: 2 nodes, 2 trials started: 1 trials on {HEAD_IP}, 1 trials on {WORKER_IP}" in repr(grid)
    assert iad.load_grid(tmp_path / "grid").cluster == grid.cluster   # kept with the grid (cluster.json)


@pytest.mark.slow
@pytest.mark.trains
def test_a_node_lost_mid_grid_reruns_its_trial_once(two_nodes, sample_data, local_grid, tmp_path):
    import ray

    configs = tmp_path / "grid" / "configs"

    def both_training():   # both trials have begun writing their run directories
        return sum((configs / c / "model.json").exists() or (configs / c / "splits.parquet").exists()
                   for c in ("config_001", "config_002")) == 2

    with HeadCpuHeld(ray), KillWorkerWhen(two_nodes, both_training) as killer:
        grid = iad.tune(sample_data / "faces", GRID, out=tmp_path / "grid", backend="ray", **GRID_OPTIONS)
    assert killer.killed_at is not None
    # every trial once, with the results of an uninterrupted local grid
    assert_same_results(grid, local_grid)
    for config in ("config_001", "config_002"):
        epochs = [h["epoch"] for h in iad.load_run(configs / config).history.to_pylist()]
        assert epochs == [1, 1, 2, 2], (config, epochs)
    # the lost trial was run again, and the grid says so
    assert grid.cluster.nodes_lost == [WORKER_IP]
    assert len(grid.cluster.retried) == 1 and grid.cluster.by_node == {HEAD_IP: 2}
    lost = grid.cluster.retried[0].split(" ", 1)[0]
    assert lost in ("config_001", "config_002") and grid.cluster.retried[0].startswith(f"{lost} on {WORKER_IP}: ")
    assert f"retried: {lost} on {WORKER_IP}: its worker process was lost" in repr(grid)
    assert iad.load_grid(tmp_path / "grid").cluster == grid.cluster   # kept with the grid (cluster.json)


def run_until(command: list[str], ready, environment: dict, timeout: float = 300) -> subprocess.Popen:
    """Start a driver (the CLI in another process, as a user or a batch script would), and SIGKILL it as soon as
    ready() is true. Returns the killed process; fails if it ended by itself first."""
    job = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not ready() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL, f"the driver ended by itself: {job.stderr.read().decode()[-2000:]}"
    return job


def resubmit(command: list[str], environment: dict) -> str:
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture()
def cli_environment(two_nodes):
    """The environment of a driver on the head: RAY_ADDRESS names the cluster."""
    return dict(os.environ, **ENVIRONMENT, RAY_ADDRESS=two_nodes.address)


@pytest.mark.slow
@pytest.mark.trains
def test_a_killed_driver_resumes_labelling_from_its_shards_in_s3(cli_environment, fake_aws, fitted, faces, reference,
                                                                  tmp_path):
    """`imagesasdata label --out s3://…` killed part-way and submitted again: the shards already in S3 are kept as
    they are (the same objects), the rest are labelled, and every manifest row is in them once. The killed driver's
    claim on the prefix is taken over at once (its process is gone)."""
    import boto3

    boto3.client("s3", endpoint_url=fake_aws).create_bucket(Bucket="resubmitted")
    manifest = tmp_path / "manifest.parquet"
    write_table(iad.image_table(faces).select(["path"]), manifest)
    out = "s3://resubmitted/labels"
    command = [PYTHON, "-m", "imagesasdata.cli", "label", str(fitted.path), str(manifest), "--out", out,
               "--endpoint-url", fake_aws, "--backend", "ray", "--shard-size", "8", "--batch-size", "4",
               "--replicas", "1", "--no-progress"]
    run_until(command, lambda: len(s3_objects(fake_aws, "resubmitted", "labels/shards/")) >= 2, cli_environment)
    kept = s3_objects(fake_aws, "resubmitted", "labels/shards/")
    assert 2 <= len(kept) < 8, f"the driver was not stopped part-way ({len(kept)} shards)"
    started = read_json_s3(fake_aws, "resubmitted", "labels/labelling.json")
    assert started["status"] == "started"   # the finished marker comes last

    printed = resubmit(command, cli_environment)
    assert f"{len(kept)} shards were done earlier and skipped" in printed
    now = s3_objects(fake_aws, "resubmitted", "labels/shards/")
    assert {key: now[key] for key in kept} == kept   # finished shards are not labelled again
    shards = s3_shards(fake_aws, "resubmitted", "labels")
    assert len(shards) == 8
    assert sum((table["image_id"].to_pylist() for _, table in shards), []) == reference["image_id"].to_pylist()
    result = iad.load_labelling(out, endpoint_url=fake_aws)
    assert result.complete and read_json_s3(fake_aws, "resubmitted", "labels/labelling.json")["status"] == "complete"
    assert_same_answers(result.table, reference)


@pytest.mark.slow
@pytest.mark.trains
def test_a_killed_driver_resumes_a_grid_from_its_finished_trials(cli_environment, sample_data, local_grid, tmp_path):
    out = tmp_path / "grid"
    configs = out / "configs"
    # two CPUs per trial: only the head can run one, so the trials run one after the other
    command = [PYTHON, "-m", "imagesasdata.cli", "tune", str(sample_data / "faces"), "--out", str(out),
               "--backend", "ray", "--cpus-per-trial", "2", "--grid", '{"learning_rate": [0.001, 0.01]}',
               "--image-size", "64", "--epochs", "2", "--freeze", "backbone", "--no-augment-crop", "--seed", "0",
               "--no-progress"]
    from imagesasdata import runs

    run_until(command, lambda: runs.is_complete(configs / "config_001"), cli_environment)
    finished = (configs / "config_001" / "model.safetensors").stat().st_mtime_ns
    assert not runs.is_complete(configs / "config_002")

    printed = resubmit(command, cli_environment)
    assert (configs / "config_001" / "model.safetensors").stat().st_mtime_ns == finished   # not trained again
    assert "2 configurations; best on validation" in printed
    grid = iad.load_grid(out)
    assert_same_results(grid, local_grid)
    assert [h["epoch"] for h in iad.load_run(configs / "config_002").history.to_pylist()] == [1, 1, 2, 2]


def test_the_head_disk_is_invisible_to_the_second_node(two_nodes):
    """The premise of the storage tests: a file on the head's disk is there for the head, not for the second node
    (checked by tasks pinned to each node through the nodes' custom resources)."""
    import ray

    if not two_nodes.separate_disks:
        pytest.skip("no mount namespaces here (needs root or user namespaces): the nodes share every folder")
    (two_nodes.head_disk / "only-here.txt").write_text("head's disk\n")

    @ray.remote(num_cpus=0)
    def sees(path):
        return ray.util.get_node_ip_address(), os.path.exists(path)

    path = str(two_nodes.head_disk / "only-here.txt")
    assert ray.get(sees.options(resources={"node_head": 0.01}).remote(path), timeout=120) == (HEAD_IP, True)
    assert ray.get(sees.options(resources={"node_worker": 0.01}).remote(path), timeout=120) == (WORKER_IP, False)


@pytest.mark.slow
@pytest.mark.trains
def test_files_a_node_cannot_read_are_refused_before_any_image_is_decoded(two_nodes, fitted, faces, sample_data,
                                                                         tmp_path):
    import shutil

    if not two_nodes.separate_disks:
        pytest.skip("no mount namespaces here (needs root or user namespaces): the nodes share every folder")
    local = two_nodes.head_disk / "corpus"   # two people's faces in class folders, on the head's own disk
    for path in faces[:6] + faces[10:16]:
        (local / Path(path).parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, local / Path(path).parent.name / Path(path).name)
    started = {node: two_nodes.actors_started_on(node) for node in ("head", "worker")}

    # labelling: images on the head's own disk
    with pytest.raises(ImagesAsDataError) as refused:
        iad.label_corpus(fitted, local, out=tmp_path / "labels", backend="ray", progress=False)
    message = str(refused.value)
    assert f"node {WORKER_IP} cannot read {local}" in message and "storage every node shares" in message
    assert "s3:// URIs" in message and "Nothing was started" in message
    assert not (tmp_path / "labels").exists()
    # labelling: shared images, but the output folder on the head's own disk (a resubmitted job on another node
    # would not find its shards)
    out = two_nodes.head_disk / "labels"
    with pytest.raises(ImagesAsDataError) as refused:
        iad.label_corpus(fitted, faces[:12], out=out, backend="ray", progress=False)
    message = str(refused.value)
    assert f"the labelling's folder {out} (out): not every node of the Ray cluster can read them — node {WORKER_IP} " \
           f"cannot read {out}" in message
    assert "write to S3 (out='s3://bucket/prefix'" in message and "Nothing was started" in message
    assert not out.exists()

    # a grid: its out folder on the head's disk (trials write there from every node), then its images
    with pytest.raises(ImagesAsDataError, match=f"the grid's folder {two_nodes.head_disk / 'grid'} .*node {WORKER_IP} "
                                                "cannot read .*file system every node shares"):
        iad.tune(sample_data / "faces", GRID, out=two_nodes.head_disk / "grid", backend="ray", **GRID_OPTIONS)
    assert not (two_nodes.head_disk / "grid" / "configs").exists()
    with pytest.raises(ImagesAsDataError, match=f"the training images: .*node {WORKER_IP} cannot read {local}"):
        iad.tune(local, {"learning_rate": [0.01]}, out=tmp_path / "grid", backend="ray", **GRID_OPTIONS)
    assert not (tmp_path / "grid" / "configs").exists()
    # nothing started on either node: no model replica, no trial
    for node in ("head", "worker"):
        new = Counter(two_nodes.actors_started_on(node)) - Counter(started[node])
        assert not [a for a in new if "ReplicaOnNode" in a or "ImplicitFunc" in a], (node, new)


@pytest.mark.slow
@pytest.mark.trains
def test_s3_manifest_and_images_from_both_nodes_with_a_model_only_the_head_has(
        two_nodes, replicas_start_together, fake_aws, fitted, faces, tmp_path):
    """s3:// works from every node (each takes credentials from its own environment); the run directory is read
    on the driver only (replicas receive the weights through Ray), so it may sit on the head's own disk."""
    import shutil

    import boto3
    import ray

    s3 = boto3.client("s3", endpoint_url=fake_aws)
    s3.create_bucket(Bucket="corpus")
    chosen = faces[:8] + faces[30:38]
    keys = [f"faces/{Path(p).parent.name}/{Path(p).name}" for p in chosen]
    for path, key in zip(chosen, keys):
        s3.upload_file(path, "corpus", key)
    s3.put_object(Bucket="corpus", Key="manifest.csv", Body=("key\n" + "\n".join(keys + ["faces/gone.pgm"]) + "\n").encode())
    run = shutil.copytree(fitted.path, two_nodes.head_disk / "run")

    with HeadCpuHeld(ray):
        result = iad.label_corpus(run, "s3://corpus/manifest.csv", path="key", endpoint_url=fake_aws,
                                  out=tmp_path / "labels", backend="ray", shard_size=6, batch_size=2, replicas=2,
                                  progress=False)
    table = result.table
    assert table["path"].to_pylist() == [f"s3://corpus/{k}" for k in keys + ["faces/gone.pgm"]]
    expected = iad.predict(fitted, chosen, progress=False)
    assert table["predicted"].to_pylist()[:-1] == expected["predicted"].to_pylist()
    np.testing.assert_allclose(probabilities(table)[:-1], probabilities(expected), rtol=0, atol=1e-5)
    assert "not found in S3" in table["error"][-1].as_py()
    by_node = result.cluster["images_by_node"]
    assert set(by_node) == {HEAD_IP, WORKER_IP} and sum(by_node.values()) == 17


# ------------------------------------------------------------------------------------------ docs/: Slurm and KubeRay

def flags(text: str) -> set:
    import re

    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def help_flags(command: list[str]) -> set:
    done = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=120, env=dict(os.environ,
                          RAY_USAGE_STATS_ENABLED="0"))
    assert done.returncode == 0, done.stderr
    return flags(done.stdout)


def test_the_slurm_script_uses_options_that_exist():
    """docs/slurm/label-corpus.sbatch (shellcheck checks it in `make test`): its `ray start` and `imagesasdata
    label` options are those of the installed Ray and engine, and it starts the cluster as the tests above do."""
    script = (Path(__file__).resolve().parents[1] / "docs" / "slurm" / "label-corpus.sbatch").read_text()
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    starts = [line for line in script.replace("\\\n", " ").splitlines() if "ray start" in line]
    assert any("--head" in line for line in starts) and any("--address=" in line for line in starts)
    ray_flags = set().union(*(flags(line.split("ray start", 1)[1]) for line in starts))
    assert ray_flags <= help_flags([str(Path(PYTHON).with_name("ray")), "start"])
    label = [line for line in script.splitlines() if line.startswith("imagesasdata label")]
    assert len(label) == 1 and "--backend ray" in label[0]
    assert flags(label[0]) <= help_flags([PYTHON, "-m", "imagesasdata.cli", "label"])
    assert "#SBATCH --requeue" in script and 'temp_dir="/tmp/ray-$SLURM_JOB_ID"' in script


def test_the_kuberay_job_labels_on_ray_into_s3_with_the_run_on_the_heads_volume():
    import yaml

    job = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "kuberay" / "label-corpus-rayjob.yaml")
                         .read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    command = job["spec"]["entrypoint"].split()
    assert command[:2] == ["imagesasdata", "label"] and command[command.index("--backend") + 1] == "ray"
    assert flags(" ".join(command)) <= help_flags([PYTHON, "-m", "imagesasdata.cli", "label"])
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    workers = [group["template"]["spec"] for group in cluster["workerGroupSpecs"]]
    images = {c["image"] for spec in [head, *workers] for c in spec["containers"]}
    assert len(images) == 1   # the same environment on every node
    mounts = [m["mountPath"] for m in head["containers"][0]["volumeMounts"]]
    run_dir, out = command[2], command[command.index("--out") + 1]
    assert any(run_dir.startswith(m + "/") for m in mounts)   # read by the command on the head only
    assert command[3].startswith("s3://") and out.startswith("s3://")   # images every worker reads, shards that outlive
    # the cluster: no volume every pod would have to mount
