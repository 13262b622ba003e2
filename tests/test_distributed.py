"""Labelling a corpus and running grids on Ray — on a real local Ray cluster of 2 CPUs, started once for this
module. On real images (ORL faces, tweeted JPEGs) the Ray and local backends give predict()'s labels and
probabilities; unreadable images are rows with an error; shards survive a killed job and are not recomputed;
s3:// manifests are read from a real S3 endpoint (a moto server); a grid on Ray Tune gives the local backend's
results table, without re-running finished configurations and resuming an interrupted one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray")
pytest.importorskip("moto")

import imagesasdata as iad  # noqa: E402
from imagesasdata.io import s3 as s3_io  # noqa: E402
from imagesasdata.train import trainer as train_module  # noqa: E402
from imagesasdata.cli import main as cli_main  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402
from imagesasdata.io.tables import read_json, write_table  # noqa: E402

# Every assertion here compares two computations made on this CPU (DEVELOPERS.md, Tests): not rerun under
# other instruction sets by `make test-other-cpus`.
pytestmark = pytest.mark.same_cpu

REPOSITORY = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GRID_OPTIONS = dict(image_size=64, epochs=2, freeze="backbone", augment_crop=False, progress=False, seed=0)


@pytest.fixture(scope="module")
def ray_cluster(fake_aws):
    """A local Ray cluster of 2 CPUs (the size of a CI machine), shared by the module's tests."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.delenv("RAY_ADDRESS", raising=False)
        # Workers keep the environment Ray starts with, so it starts without the training guard of whichever test
        # asked first (conftest.py): a grid trial of a later `trains` test must not be refused.
        training_guard = os.environ.pop("IMAGESASDATA_TRAINING", None)
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        if training_guard is not None:
            os.environ["IMAGESASDATA_TRAINING"] = training_guard
        yield ray
        ray.shutdown()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return iad.finetune(iad.sample_data() / "faces", image_size=64, epochs=1, progress=False,
                        out=tmp_path_factory.mktemp("run") / "faces")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, orl_faces, rekognition_examples) -> Path:
    """36 ORL faces, two tweeted JPEGs, and three images that cannot be read (a truncated copy of a real JPEG,
    an empty file, a path that does not exist), listed with relative paths in manifest.csv."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for person in ("s1", "s2", "s3", "s7", "s8", "s9"):
        for k in range(1, 7):
            target = root / "faces" / f"{person}_{k}.pgm"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(orl_faces / person / f"{k}.pgm", target)
            rows.append(f"faces/{target.name}")
    (root / "tweets").mkdir()
    for name in ("ex_1.jpg", "ex_2.jpg"):
        shutil.copy(rekognition_examples / name, root / "tweets" / name)
        rows.append(f"tweets/{name}")
    whole = (rekognition_examples / "ex_1.jpg").read_bytes()
    (root / "tweets" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "tweets" / "empty.png").write_bytes(b"")
    rows += ["tweets/truncated.jpg", "tweets/empty.png", "tweets/missing.jpg"]
    (root / "manifest.csv").write_text("path,source\n" + "".join(f"{r},{r.split('/')[0]}\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def reference(fitted, corpus):
    """Local prediction, the answers every other route must give."""
    table = iad.predict(fitted, corpus / "manifest.csv", progress=False)
    errors = table["error"].to_pylist()
    assert [e is not None for e in errors].count(True) == 3
    assert "truncated" in errors[-3] and "empty file" in errors[-2] and "file not found" in errors[-1]
    return table


def probabilities(table):
    return np.array([table[c].to_pylist() for c in table.column_names if c.startswith("prob_")], float).T


def assert_same_answers(table, reference):
    assert table.schema == reference.schema
    for column in ("image_id", "path", "predicted", "error"):
        assert table[column].to_pylist() == reference[column].to_pylist(), column
    # Batches of other sizes take other float32 kernel paths: logits differ in the 5th decimal (seen: 1.2e-5 on a
    # probability of 0.506 with the default recipe's model), never the predicted class.
    np.testing.assert_allclose(probabilities(table), probabilities(reference), rtol=0, atol=1e-4)


def shard_files(out) -> list[Path]:
    return sorted((Path(out) / "shards").glob("shard-*.parquet"))


@pytest.mark.trains
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_labelling_gives_the_answers_of_predict(backend, ray_cluster, fitted, corpus, reference, tmp_path):
    result = iad.label_corpus(fitted, corpus / "manifest.csv", out=tmp_path / "labels", backend=backend,
                              shard_size=8, batch_size=6, progress=False)
    assert (result.images, result.shards, result.labelled, result.unreadable) == (41, 6, 41, 3)
    assert result.complete and result.images_per_second > 0
    files = shard_files(tmp_path / "labels")
    assert [f.name for f in files] == [f"shard-{k:06d}.parquet" for k in range(6)]
    assert [pq.read_metadata(f).num_rows for f in files] == [8, 8, 8, 8, 8, 1]
    assert_same_answers(result.table, reference)
    described = read_json(tmp_path / "labels" / "labelling.json")
    assert described["status"] == "complete" and described["last_call"]["backend"] == backend


@pytest.mark.trains
@pytest.mark.slow
def test_predict_has_the_same_switch(ray_cluster, fitted, corpus, reference):
    assert_same_answers(iad.predict(fitted, corpus / "manifest.csv", backend="ray", progress=False), reference)
    with pytest.raises(ImagesAsDataError, match="backend='spark'"):
        iad.predict(fitted, corpus / "manifest.csv", backend="spark")


@pytest.mark.trains
@pytest.mark.slow
def test_ray_labelling_resumes_without_recomputing_finished_shards(ray_cluster, fitted, corpus, reference, tmp_path):
    out = tmp_path / "labels"
    first = iad.label_corpus(fitted, corpus / "manifest.csv", out=out, backend="ray", shard_size=8, max_shards=2,
                             progress=False)
    assert (first.shards_written, first.labelled, first.complete) == (2, 16, False)
    assert not iad.load_labelling(out).complete
    written = {f: f.stat().st_mtime_ns for f in shard_files(out)}
    assert len(written) == 2
    second = iad.label_corpus(fitted, corpus / "manifest.csv", out=out, backend="ray", shard_size=8, progress=False)
    assert (second.shards_written, second.labelled, second.complete) == (4, 41 - 16, True)
    assert {f: f.stat().st_mtime_ns for f in written} == written
    assert_same_answers(second.table, reference)
    third = iad.label_corpus(fitted, corpus / "manifest.csv", out=out, backend="ray", shard_size=8, progress=False)
    assert (third.shards_written, third.labelled) == (0, 0)
    # shards of another manifest or another chunking never mix with these
    with pytest.raises(ImagesAsDataError, match="another shard_size"):
        iad.label_corpus(fitted, corpus / "manifest.csv", out=out, shard_size=10, progress=False)
    with pytest.raises(ImagesAsDataError, match="another images"):
        iad.label_corpus(fitted, corpus / "faces", out=out, shard_size=8, progress=False)


@pytest.mark.trains
@pytest.mark.slow
def test_a_killed_job_resumes_where_it_stopped(fitted, orl_faces, tmp_path):
    """The CLI in another process, killed (SIGKILL) after its first shards; the rerun keeps them as they are."""
    images = [orl_faces / f"s{person}" / f"{k}.pgm" for person in range(1, 21) for k in range(1, 11)]
    manifest = tmp_path / "manifest.parquet"
    write_table(iad.image_table(images).select(["path"]), manifest)
    out = tmp_path / "labels"
    command = [PYTHON, "-m", "imagesasdata.cli", "label", str(fitted.path), str(manifest), "--out", str(out),
               "--shard-size", "5", "--batch-size", "5", "--no-progress"]
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(shard_files(out)) < 2 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    kept = {f: f.stat().st_mtime_ns for f in shard_files(out)}
    assert 2 <= len(kept) < 40, f"the job was not stopped part-way ({len(kept)} shards)"
    assert cli_main(["label", str(fitted.path), str(manifest), "--out", str(out), "--shard-size", "5",
                     "--batch-size", "5", "--no-progress"]) == 0
    assert {f: f.stat().st_mtime_ns for f in kept} == kept
    result = iad.load_labelling(out)
    assert result.complete and len(shard_files(out)) == 40
    assert_same_answers(result.table, iad.predict(fitted, manifest, progress=False))


@pytest.mark.trains
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_an_s3_manifest_of_s3_images(backend, ray_cluster, fake_aws, fitted, corpus, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=fake_aws)
    bucket = f"corpus-{backend}"
    s3.create_bucket(Bucket=bucket)
    local = [corpus / "faces" / "s1_1.pgm", corpus / "faces" / "s2_3.pgm", corpus / "faces" / "s9_6.pgm",
             corpus / "tweets" / "ex_1.jpg", corpus / "tweets" / "truncated.jpg"]
    for file in local:
        s3.upload_file(str(file), bucket, f"images/{file.parent.name}/{file.name}")
    keys = [f"images/{f.parent.name}/{f.name}" for f in local] + ["images/tweets/never-uploaded.jpg"]
    s3.put_object(Bucket=bucket, Key="manifest.csv", Body=("key\n" + "\n".join(keys) + "\n").encode())

    result = iad.label_corpus(fitted, f"s3://{bucket}/manifest.csv", out=tmp_path / "labels", backend=backend,
                              path="key", endpoint_url=fake_aws, shard_size=4, batch_size=4, progress=False)
    table = result.table
    assert table["path"].to_pylist() == [f"s3://{bucket}/{k}" for k in keys]
    assert table["image_id"].to_pylist() == keys   # a table's ids are its paths as written (here: the S3 keys)
    expected = iad.predict(fitted, [str(f) for f in local], progress=False)
    assert table["predicted"].to_pylist()[:5] == expected["predicted"].to_pylist()
    np.testing.assert_allclose(probabilities(table)[:5], probabilities(expected), rtol=0, atol=1e-5)
    errors = table["error"].to_pylist()
    assert errors[:4] == [None] * 4
    assert errors[4] == expected["error"][4].as_py() and "truncated" in errors[4]
    assert "not found in S3" in errors[5] and table["predicted"][5].as_py() is None

    # a local manifest may list s3:// URIs too
    (tmp_path / "uris.csv").write_text("path\n" + "\n".join(f"s3://{bucket}/{k}" for k in keys[:2]) + "\n")
    again = iad.label_corpus(fitted, tmp_path / "uris.csv", out=tmp_path / "again", endpoint_url=fake_aws,
                             progress=False)
    np.testing.assert_allclose(probabilities(again.table), probabilities(expected)[:2], rtol=0, atol=1e-5)


@pytest.mark.trains
def test_s3_without_credentials_is_one_clear_error(fake_aws, fitted, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(s3_io, "_clients", {})  # a client made now has no credentials; keep it out of the cache
    with pytest.raises(ImagesAsDataError, match="no AWS credentials"):
        iad.label_corpus(fitted, ["s3://corpus/a.jpg", "s3://corpus/b.jpg"], out=tmp_path / "labels",
                         endpoint_url=fake_aws, progress=False)


# ------------------------------------------------------------------------------------------ s3:// outputs

def s3_objects(endpoint, bucket: str, prefix: str) -> dict:
    """{key: (ETag, LastModified)} of the objects under a prefix, read with boto3 independently of the engine."""
    import boto3

    pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                                              Prefix=prefix)
    return {item["Key"]: (item["ETag"], item["LastModified"]) for page in pages for item in page.get("Contents", [])}


def test_an_s3_claim_keeps_a_second_job_out_and_passes_on_when_its_job_is_gone(fake_aws):
    """The claim on an s3:// output (io/outputs.S3Lease), on a real S3 endpoint: a live job keeps others out; the
    claim of a job killed on this machine is taken over at once, another machine's once it stops being renewed;
    a job whose claim was taken over stops writing."""
    import boto3

    from imagesasdata.io.outputs import S3Lease

    s3 = boto3.client("s3", endpoint_url=fake_aws)
    s3.create_bucket(Bucket="claims")
    uri = "s3://claims/labels/.imagesasdata.lock"

    first = S3Lease(uri, "labelling", fake_aws, lease_s=2).acquire()
    with pytest.raises(ImagesAsDataError, match=f"is in use: another job is writing this labelling \\(process "
                                                f"{os.getpid()} on "):
        S3Lease(uri, "labelling", fake_aws, lease_s=2).acquire()
    first.release()
    with S3Lease(uri, "labelling", fake_aws, lease_s=2) as second:   # released: taken at once
        assert second.previous_owner is None

    # a job killed on this machine: its process is gone, so its claim is taken over at once
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = S3Lease(uri, "labelling", fake_aws, lease_s=3600)
    killed._record["pid"] = gone.pid
    s3.put_object(Bucket="claims", Key="labels/.imagesasdata.lock", Body=killed._body())
    started = time.monotonic()
    with S3Lease(uri, "labelling", fake_aws, lease_s=3600) as third:
        assert f"process {gone.pid} on " in third.previous_owner and time.monotonic() - started < 10

    # another machine's claim: refused while it is renewed, taken over once it is not
    elsewhere = S3Lease(uri, "labelling", fake_aws, lease_s=2)
    elsewhere._record.update(host="node-elsewhere", boot="another-boot")
    elsewhere.acquire()
    with pytest.raises(ImagesAsDataError, match="on node-elsewhere.*renewed"):
        S3Lease(uri, "labelling", fake_aws, lease_s=2).acquire()
    elsewhere._stop.set()   # its job dies: no more renewals, and no release
    elsewhere._thread.join()
    started = time.monotonic()
    with S3Lease(uri, "labelling", fake_aws, lease_s=2) as fourth:
        assert "on node-elsewhere" in fourth.previous_owner and time.monotonic() - started < 30
        # ... and the job that lost its claim learns it at its next renewal, and writes nothing more
        elsewhere._stop.clear()
        elsewhere._thread = threading.Thread(target=elsewhere._renew, daemon=True)
        elsewhere._thread.start()
        elsewhere._thread.join(timeout=10)
        with pytest.raises(ImagesAsDataError, match="lost its claim on the labelling \\(another job took the claim"):
            elsewhere.check()
        fourth.check()


@pytest.mark.trains
def test_labelling_into_s3_resumes_with_the_answers_of_a_folder(fake_aws, fitted, corpus, reference, tmp_path):
    """An s3:// output (local backend here; test_cluster.py runs it on two Ray nodes): the shards of a folder, each
    one object written once, resumed from what is in S3, and refused when it would mix two labellings."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=fake_aws)
    s3.create_bucket(Bucket="labels")
    out = "s3://labels/corpus/run-1"
    first = iad.label_corpus(fitted, corpus / "manifest.csv", out=out, endpoint_url=fake_aws, shard_size=8,
                             max_shards=2, progress=False)
    assert (first.path, first.shards_written, first.complete) == (out, 2, False)
    kept = s3_objects(fake_aws, "labels", "corpus/run-1/shards/")
    assert sorted(kept) == [f"corpus/run-1/shards/shard-{k:06d}.parquet" for k in range(2)]
    second = iad.label_corpus(fitted, corpus / "manifest.csv", out=out, endpoint_url=fake_aws, shard_size=8,
                              progress=False)
    assert (second.shards_written, second.labelled, second.complete) == (4, 41 - 16, True)
    now = s3_objects(fake_aws, "labels", "corpus/run-1/")
    assert {key: now[key] for key in kept} == kept   # finished shards are not written again
    assert sorted(now) == ["corpus/run-1/.imagesasdata.lock", "corpus/run-1/labelling.json",
                           "corpus/run-1/manifest.parquet"] + [f"corpus/run-1/shards/shard-{k:06d}.parquet"
                                                               for k in range(6)]
    assert_same_answers(second.table, reference)
    again = iad.load_labelling(out, endpoint_url=fake_aws)
    assert again.complete and again.path == out
    assert_same_answers(again.table, reference)
    folder = iad.label_corpus(fitted, corpus / "manifest.csv", out=tmp_path / "labels", shard_size=8, progress=False)
    for shard in range(6):   # shard for shard, the files a local folder holds
        key = f"corpus/run-1/shards/shard-{shard:06d}.parquet"
        body = s3.get_object(Bucket="labels", Key=key)["Body"].read()
        assert pq.read_table(pa.BufferReader(body)).equals(pq.read_table(folder.path / "shards" / key.rsplit("/", 1)[1]))
    described = json.loads(s3.get_object(Bucket="labels", Key="corpus/run-1/labelling.json")["Body"].read())
    assert described["status"] == "complete" and described["shards_done"] == 6

    with pytest.raises(ImagesAsDataError, match="another shard_size"):
        iad.label_corpus(fitted, corpus / "manifest.csv", out=out, endpoint_url=fake_aws, shard_size=10,
                         progress=False)
    s3.put_object(Bucket="labels", Key="mixed/notes.txt", Body=b"someone else's file\n")
    with pytest.raises(ImagesAsDataError, match="s3://labels/mixed is not empty and holds no labelling"):
        iad.label_corpus(fitted, corpus / "manifest.csv", out="s3://labels/mixed", endpoint_url=fake_aws,
                         progress=False)
    with pytest.raises(ImagesAsDataError, match="S3 refused the request \\(NoSuchBucket\\)"):
        iad.label_corpus(fitted, corpus / "manifest.csv", out="s3://no-such-bucket/labels", endpoint_url=fake_aws,
                         progress=False)


def test_manifest_errors_name_the_problem(tmp_path):
    (tmp_path / "no_path.csv").write_text("file_name_here\nx.jpg\n")
    with pytest.raises(ImagesAsDataError, match="no path column.*file_name_here"):
        iad.read_manifest(tmp_path / "no_path.csv")
    (tmp_path / "gs.csv").write_text("path\ngs://bucket/a.jpg\ns3://bucket/b.jpg\n")
    with pytest.raises(ImagesAsDataError, match="gs://"):
        iad.read_manifest(tmp_path / "gs.csv")
    with pytest.raises(ImagesAsDataError, match="empty in rows 2"):
        iad.read_manifest({"path": ["s3://bucket/a.jpg", None, "s3://bucket/c.jpg"]})
    with pytest.raises(ImagesAsDataError, match="no rows"):
        iad.read_manifest({"path": []})


@pytest.mark.trains
@pytest.mark.slow
def test_cli_label_on_ray(ray_cluster, fitted, corpus, reference, tmp_path, capsys):
    out = tmp_path / "labels"
    assert cli_main(["label", str(fitted.path), str(corpus / "manifest.csv"), "--out", str(out), "--backend", "ray",
                     "--shard-size", "20", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "41 images in 3 shards (complete)" in printed and "(3 unreadable)" in printed and "images/s" in printed
    assert_same_answers(iad.load_labelling(out).table, reference)


@pytest.mark.trains
def test_an_unreachable_ray_address_fails_fast(fitted, corpus, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = dict(os.environ, RAY_ADDRESS=f"127.0.0.1:{port}", RAY_USAGE_STATS_ENABLED="0")
    started = time.monotonic()
    job = subprocess.run([PYTHON, "-m", "imagesasdata.cli", "label", str(fitted.path), str(corpus / "manifest.csv"),
                          "--out", str(tmp_path / "labels"), "--backend", "ray", "--no-progress"],
                         env=environment, capture_output=True, text=True, timeout=120)
    assert job.returncode == 1
    assert f"cannot join the Ray cluster at '127.0.0.1:{port}'" in job.stderr and "ray start --head" in job.stderr
    assert time.monotonic() - started < 60


@pytest.mark.trains
@pytest.mark.slow
def test_a_grid_on_ray_tune_gives_the_local_results(ray_cluster, sample_data, tmp_path, monkeypatch):
    grid = {"learning_rate": [0.001, 0.01]}
    local = iad.tune(sample_data / "faces", grid, out=tmp_path / "local", **GRID_OPTIONS)

    # Interrupt the second configuration locally after its first epoch (Ctrl-C) ...
    original = train_module.Trainer.run_epoch

    def interrupt(self, epoch):
        if self.out.name == "config_002" and epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(train_module.Trainer, "run_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        iad.tune(sample_data / "faces", grid, out=tmp_path / "ray", **GRID_OPTIONS)
    monkeypatch.setattr(train_module.Trainer, "run_epoch", original)
    configs = tmp_path / "ray" / "configs"
    finished = (configs / "config_001" / "model.safetensors").stat().st_mtime_ns
    first_epoch = iad.load_run(configs / "config_002").history.to_pylist()
    assert [h["epoch"] for h in first_epoch] == [1, 1]

    # ... and finish the grid on Ray Tune: config_001 is not re-run, config_002 resumes at epoch 2.
    on_ray = iad.tune(sample_data / "faces", grid, out=tmp_path / "ray", backend="ray", cpus_per_trial=2,
                      **GRID_OPTIONS)
    trials = [json.loads(f.read_text().splitlines()[-1]) for f in (tmp_path / "ray" / "ray_tune").rglob("result.json")]
    assert len(trials) == 1  # it ran as a Ray Tune trial, and only the unfinished configuration did
    assert (trials[0]["cpus"], trials[0]["gpus"], trials[0]["threads"]) == (2.0, 0.0, 2)  # what it reserved, it used
    assert (configs / "config_001" / "model.safetensors").stat().st_mtime_ns == finished
    resumed = iad.load_run(configs / "config_002")
    assert resumed.status == "complete" and resumed.history.to_pylist()[:2] == first_epoch
    assert [h["epoch"] for h in resumed.history.to_pylist()] == [1, 1, 2, 2]

    assert on_ray.results.column_names == local.results.column_names
    for mine, theirs in zip(on_ray.results.to_pylist(), local.results.to_pylist()):
        for column, value in theirs.items():
            if column == "seconds":
                continue
            if isinstance(value, float):
                assert mine[column] == pytest.approx(value, rel=1e-4), column
            else:
                assert mine[column] == value, column
    assert on_ray.best_config == local.best_config
    assert on_ray.history.num_rows == local.history.num_rows


@pytest.mark.trains
def test_local_threads_for_the_model_are_restored(fitted, corpus, reference, tmp_path):
    import torch

    before = torch.get_num_threads()
    result = iad.label_corpus(fitted, corpus / "manifest.csv", out=tmp_path / "labels", cpus_per_replica=1,
                              progress=False)
    assert torch.get_num_threads() == before
    assert_same_answers(result.table, reference)
