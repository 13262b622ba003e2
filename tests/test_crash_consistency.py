"""Nothing lost, nothing silently wrong after a kill -9.

A job is first run uninterrupted with the crash log on (faults.py) to list every crash point it passes: after
each file write, in the middle of each write (the temporary file cut to half its length), between the files of a
checkpoint, after an epoch's training, before and after its commit, while the finished run is written. Then, for
every one of those points in turn, a fresh process runs the same job and is killed with SIGKILL exactly there, and
the job is resumed. The resumed result must be exactly the uninterrupted one: the same history, the same weights
bit for bit, the same files and no leftovers. Everything runs on the same machine with the same thread count, so
"exactly" is the right standard here on any CPU (no result is compared with a number from another machine).

The killed processes are forked from one process that has already imported the engine (tests/forked.py), so each
kill costs a fine-tune, not an interpreter start.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file

import imagesasdata as iad
from imagesasdata.io import faults
from imagesasdata.io.locks import LOCK_FILE

import forked
# Every assertion here compares two computations made on this CPU (DEVELOPERS.md, Tests): not rerun under
# other instruction sets by `make test-other-cpus`.
pytestmark = pytest.mark.same_cpu

OPTIONS = dict(image_size=32, epochs=2, head_epochs=2, learning_rate=0.01, seed=0, progress=False)
RUN_FILES = {"model.json", "model.safetensors", "splits.parquet", "skipped.parquet", "history.parquet", "calibration.parquet",
             "metrics.parquet", "confusion.parquet", "predictions.parquet", LOCK_FILE}


def _finetune(data, out):
    iad.finetune(data, out=out, resume=True, **OPTIONS)


def _tune(data, out):
    iad.tune(data, {"learning_rate": [0.01, 0.001]}, out=out, **OPTIONS)


def _label(run, manifest, out):
    iad.label_corpus(run, manifest, out=out, shard_size=4, batch_size=4, progress=False)


def crash_points(job, *args, tmp_path: Path) -> list[str]:
    """The crash points an uninterrupted job passes, in order (and the job's result on disk in args' out)."""
    log = tmp_path / "crash-points.log"
    assert forked.run(job, *args, log=log) == 0
    return [line.split("\t", 1)[1] for line in log.read_text().splitlines()]


def same_run(resumed: Path, reference: Path) -> None:
    """The same outcome, bit for bit: history (but seconds), kept weights, predictions, metrics, best epoch."""
    mine, theirs = iad.load_run(resumed), iad.load_run(reference)
    assert mine.status == theirs.status == "complete"
    assert (mine.best_epoch, mine.description["epochs_run"]) == (theirs.best_epoch, theirs.description["epochs_run"])
    drop = lambda table: table.drop_columns(["seconds"])  # noqa: E731
    assert drop(mine.history).equals(drop(theirs.history))
    weights, expected = load_file(str(resumed / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert weights.keys() == expected.keys()
    assert all(np.array_equal(weights[k].numpy(), expected[k].numpy()) for k in expected)
    for name in ("metrics", "confusion", "splits", "skipped"):
        assert pq.read_table(resumed / f"{name}.parquet").equals(pq.read_table(reference / f"{name}.parquet")), name
    mine_predictions = pq.read_table(resumed / "predictions.parquet").drop_columns(["path"])
    assert mine_predictions.equals(pq.read_table(reference / "predictions.parquet").drop_columns(["path"]))


@pytest.mark.trains
def test_a_finetune_killed_at_every_crash_point_resumes_to_the_uninterrupted_result(tiny_faces, tmp_path):
    reference = tmp_path / "reference"
    points = crash_points(_finetune, tiny_faces, reference, tmp_path=tmp_path)
    # What is covered: every file write of the run (before, during and after the rename), every file of each
    # epoch's checkpoint, the commit of each epoch, the first batch of each pass of the loop (the head's epochs too)
    # and the end of each epoch's training.
    assert len(points) >= 35, points
    assert {"head epoch 1: first batch", "head epoch 2: first batch", "epoch 1: first batch", "epoch 2 trained", "checkpoint epoch-0002: folder in place",
            "writing current.json", "wrote model.json", "checkpoint removed"} <= set(points)
    tried = 0
    for number, name in enumerate(points, start=1):
        out = tmp_path / f"killed-{number}"
        assert forked.run(_finetune, tiny_faces, out, crash_at=number) == -signal.SIGKILL, name
        # whatever the instant, what is on disk is whole: a run description is valid JSON or absent
        if (out / "model.json").exists():
            iad.load_run(out)
        resumed = iad.finetune(tiny_faces, out=out, resume=True, **OPTIONS)
        same_run(resumed.path, reference)
        left = {p.name for p in out.iterdir()}
        assert left == RUN_FILES, f"after a kill at {name!r}: {sorted(left ^ RUN_FILES)}"
        tried += 1
    print(f"{tried} kill points tried")
    assert tried == len(points)


def _finetune_cut_in_final_write(data, out, offset):
    """_finetune, killed (SIGKILL) in the middle of writing the final weights, when exactly `offset` bytes of the
    file are on disk (faults.write_bytes)."""
    faults._CRASH_IN_WRITE = ("model.safetensors", offset)
    _finetune(data, out)


def _temporary_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.startswith(".tmp") or p.name.endswith(".part"))


@pytest.mark.trains
def test_a_kill_inside_the_final_write_leaves_no_temporary_file(tiny_faces, tmp_path):
    """Killed at several byte offsets of the final weights file (in its header length, in its header, halfway, one
    byte short), the run leaves a partial temporary file; resuming it (or merely opening it) removes every
    temporary file, and the resumed run is the uninterrupted one. A kill there used to leave safetensors' own
    13.7 MB ".tmpXXXXXX" in the run directory for good."""
    reference = tmp_path / "reference"
    assert forked.run(_finetune, tiny_faces, reference) == 0
    size = (reference / "model.safetensors").stat().st_size
    for number, offset in enumerate((8, 4096, size // 2, size - 1)):
        out = tmp_path / f"cut-{offset}"
        assert forked.run(_finetune_cut_in_final_write, tiny_faces, out, offset) == -signal.SIGKILL, offset
        partial = [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == offset]
        assert partial, f"no file of {offset} bytes: the kill did not land inside the weights' write"
        assert iad.load_run(out).status == "training"
        if number % 2:   # opened (no job writing it): what the kill left goes at once
            assert _temporary_files(out) == [], offset
        resumed = iad.finetune(tiny_faces, out=out, resume=True, **OPTIONS)
        same_run(resumed.path, reference)
        assert {p.name for p in out.iterdir()} == RUN_FILES and _temporary_files(out) == [], offset


@pytest.mark.trains
def test_only_temporary_files_of_our_own_shape_are_removed(tiny_faces, tmp_path):
    """Clean-up removes what the engine's writers leave (".<name>.xxxxxxxx.part", and safetensors' ".tmpXXXXXX"
    in a run directory), never a file that merely resembles one."""
    out = tmp_path / "run"
    assert forked.run(_finetune, tiny_faces, out) == 0
    ours = [".model.json.k3j2x9qa.part", ".tmpAb12Cd", "checkpoint/.tmpXy34Zw"]
    (out / "checkpoint").mkdir()
    (out / ".model.safetensors.a1b2c3d4.part").mkdir()
    (out / ".model.safetensors.a1b2c3d4.part" / ".tmpQw12Er").write_bytes(b"half a file")
    theirs = ["notes.part", ".draft.part", ".tmpnotes", ".tmp-Ab12Cd", "my.tmpAb12Cd", ".results.k3j2x9qa.partial"]
    for name in ours + theirs:
        (out / name).write_bytes(b"x")
    iad.load_run(out)
    left = {str(p.relative_to(out)) for p in out.rglob("*")}
    assert set(theirs) <= left
    assert not left & set(ours + [".model.safetensors.a1b2c3d4.part"])


@pytest.mark.trains
def test_a_killed_grid_resumes_to_the_uninterrupted_result(tiny_faces, tmp_path):
    """Kill points of a two-configuration grid, every third one (the grid's runs are fine-tunes whose every
    point the test above covers; here what matters is the grid's own files between them)."""
    reference = tmp_path / "reference"
    points = crash_points(_tune, tiny_faces, reference, tmp_path=tmp_path)
    expected = iad.load_grid(reference)
    chosen = sorted(set(range(1, len(points) + 1, 3)) | {len(points)})   # the last point once, however many
    for number in chosen:
        out = tmp_path / f"killed-{number}"
        assert forked.run(_tune, tiny_faces, out, crash_at=number) == -signal.SIGKILL, points[number - 1]
        grid = iad.tune(tiny_faces, {"learning_rate": [0.01, 0.001]}, out=out, **OPTIONS)
        assert grid.results.drop_columns(["seconds"]).equals(expected.results.drop_columns(["seconds"]))
        assert grid.best_config == expected.best_config
        for config in ("config_001", "config_002"):
            same_run(out / "configs" / config, reference / "configs" / config)
    print(f"{len(chosen)} kill points of {len(points)} tried")


@pytest.mark.trains
def test_a_killed_labelling_resumes_to_the_uninterrupted_result(tiny_faces, tmp_path, sample_data):
    run = iad.finetune(tiny_faces, out=tmp_path / "run", **OPTIONS)
    manifest = tmp_path / "manifest.csv"
    files = sorted(str(p) for p in (sample_data / "faces").rglob("*.png"))[:14]
    manifest.write_text("path\n" + "\n".join(files) + "\n")
    reference = tmp_path / "reference"
    points = crash_points(_label, run.path, manifest, reference, tmp_path=tmp_path)
    assert sum(p.startswith("wrote shard-") for p in points) == 4          # 14 images in shards of 4
    expected = iad.load_labelling(reference).table
    for number in range(1, len(points) + 1):
        out = tmp_path / f"killed-{number}"
        assert forked.run(_label, run.path, manifest, out, crash_at=number) == -signal.SIGKILL, points[number - 1]
        result = iad.label_corpus(run, manifest, out=out, shard_size=4, batch_size=4, progress=False)
        assert result.complete and result.table.equals(expected)
        assert not [p for p in out.rglob(".*.part")]
    print(f"{len(points)} kill points tried")


def test_the_crash_points_are_inert_without_the_test_environment():
    """Outside these tests the variables are unset: a crash point is a no-op (and the process survives it)."""
    if os.environ.get("IMAGESASDATA_CRASH_AT") or os.environ.get("IMAGESASDATA_CRASH_LOG"):
        pytest.skip("the crash variables are set in this environment")
    assert faults._CRASH_AT == 0 and faults._CRASH_LOG is None
    faults.crash_point("anything")
