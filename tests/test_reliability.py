"""Hostile use: two jobs on one folder, runs that diverge, absurd options, odd file names and bytes, damaged or
swapped run files, unfinished runs. Each case was broken (a traceback, a mixed directory, a run marked complete
with NaN weights, a silent wrong answer) before the engine learned to refuse it clearly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.io.locks import LOCK_FILE, DirectoryLock

import forked

TINY = dict(image_size=32, epochs=2, learning_rate=0.01, seed=0, progress=False)
REPOSITORY = Path(__file__).resolve().parents[1]
LATIN1_NAME = b"caf\xe9.png"   # a name written on an old Windows machine: not valid UTF-8


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "imagesasdata.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPOSITORY, timeout=600, **kwargs)


# ------------------------------------------------------------------------------------------ two jobs, one folder

def _finetune_paused(data, out, gate):
    forked.pause_at_epoch(2, gate)
    iad.finetune(data, out=out, **TINY)


def _tune_paused(data, out, gate):
    forked.pause_at_epoch(2, gate)
    iad.tune(data, {"learning_rate": [0.01]}, out=out, **TINY)


def _label_paused(run, manifest, out, gate):
    import time

    from imagesasdata.infer import labelling

    original = labelling.ShardWriter._write

    def write(self, shard):
        while shard == 1 and not gate.exists():
            time.sleep(0.05)
        return original(self, shard)

    labelling.ShardWriter._write = write
    iad.label_corpus(run, manifest, out=out, shard_size=4, batch_size=4, progress=False)


def _hold_lock_and_die(folder):
    DirectoryLock(folder, "run").acquire()
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.trains
def test_a_second_finetune_into_a_run_in_progress_is_refused(tiny_faces, sample_data, tmp_path):
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = forked.start(_finetune_paused, tiny_faces, out, gate)
    forked.wait_for(lambda: (out / "checkpoint" / "current.json").exists(), first, what="epoch 1 to be committed")
    # another dataset (6 classes, not 3), with or without resume: refused, naming the process in the way
    for resume in (False, True):
        with pytest.raises(ImagesAsDataError, match=rf"{out} is in use: another job is writing this run \(process "
                                                     rf"{first.pid} on "):
            iad.finetune(sample_data / "faces", out=out, resume=resume, **TINY)
    gate.touch()
    first.join(300)
    assert first.exitcode == 0
    run = iad.load_run(out)   # the first job's run, whole: its classes, weights and metrics agree
    assert run.status == "complete" and run.classes == ["s1", "s2", "s3"]
    assert run.predict(tiny_faces, progress=False)["predicted"].null_count == 0


@pytest.mark.trains
def test_a_second_grid_or_labelling_on_a_folder_in_use_is_refused(tiny_faces, tmp_path):
    grid_out, gate = tmp_path / "grid", tmp_path / "gate"
    first = forked.start(_tune_paused, tiny_faces, grid_out, gate)
    forked.wait_for(lambda: (grid_out / "configs" / "config_001" / "checkpoint" / "current.json").exists(), first,
                    what="the grid's first epoch")
    with pytest.raises(ImagesAsDataError, match=r"is in use: another job is writing this grid"):
        iad.tune(tiny_faces, {"learning_rate": [0.01]}, out=grid_out, **TINY)
    gate.touch()
    first.join(300)
    assert first.exitcode == 0 and iad.load_grid(grid_out).results["status"].to_pylist() == ["complete"]

    run = iad.load_run(grid_out / "configs" / "config_001")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n" + "\n".join(sorted(str(p) for p in tiny_faces.rglob("*.pgm"))) + "\n")
    label_out, gate = tmp_path / "labels", tmp_path / "gate2"
    first = forked.start(_label_paused, run.path, manifest, label_out, gate)
    forked.wait_for(lambda: (label_out / "shards" / "shard-000000.parquet").exists(), first, what="the first shard")
    with pytest.raises(ImagesAsDataError, match=r"is in use: another job is writing this labelling"):
        iad.label_corpus(run, manifest, out=label_out, shard_size=4, progress=False)
    gate.touch()
    first.join(300)
    assert first.exitcode == 0
    assert iad.load_labelling(label_out).table.num_rows == 15


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    assert forked.run(_hold_lock_and_die, folder) == -signal.SIGKILL
    assert (folder / LOCK_FILE).read_text()          # the dead process's name is still in the file ...
    with DirectoryLock(folder, "run") as lock:       # ... but the kernel released its lock
        assert lock.previous_owner.startswith("process ")
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


# ------------------------------------------------------------------------------------------ existing runs

@pytest.mark.trains
def test_an_existing_run_is_never_replaced_without_being_asked(tiny_faces, sample_data, tmp_path):
    out = tmp_path / "run"
    first = iad.finetune(tiny_faces, out=out, **TINY)
    with pytest.raises(ImagesAsDataError, match=r"already holds a run; pass resume=True .* overwrite=True"):
        iad.finetune(sample_data / "faces", out=out, **TINY)
    assert iad.load_run(out).description["run_id"] == first.description["run_id"]
    replaced = iad.finetune(sample_data / "faces", out=out, overwrite=True, **TINY)
    assert replaced.description["run_id"] != first.description["run_id"] and len(replaced.classes) == 6
    # the CLI says the same in one line
    result = cli("finetune", tiny_faces, "--out", out, "--epochs", 1, "--image-size", 32, "--no-progress")
    assert result.returncode == 1 and "already holds a run" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_of_other_files_is_never_written_into(tiny_faces, tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.docx").write_text("years of work")
    for options in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ImagesAsDataError, match=r"is not empty and holds no run .*chapter1.docx"):
            iad.finetune(tiny_faces, out=out, **options, **TINY)
    assert [p.name for p in out.iterdir()] == ["chapter1.docx"]


def test_a_failed_run_leaves_no_empty_folder(tmp_path, tiny_faces):
    one_class = pa.table({"path": [str(p) for p in sorted((tiny_faces / "s1").iterdir())], "label": ["a"] * 5})
    with pytest.raises(ImagesAsDataError, match="only one class"):
        iad.finetune(one_class, out=tmp_path / "new" / "run", **TINY)
    assert not (tmp_path / "new" / "run").exists()


# ------------------------------------------------------------------------------------------ divergence, options

@pytest.mark.trains
def test_a_diverging_run_stops_and_is_marked_failed(tiny_faces, tmp_path):
    out = tmp_path / "run"
    # 1e30 is a number, so it passes the option checks; any CPU overflows with it in the first steps (of the head's
    # epochs, which train first and pass the same divergence check, or of fine-tuning's first)
    with pytest.raises(ImagesAsDataError, match=r"training diverged in (head )?epoch 1: .*became (nan|inf).*try 1e\+29"):
        iad.finetune(tiny_faces, out=out, **{**TINY, "learning_rate": 1e30})
    run = iad.load_run(out)
    assert run.status == "failed" and "diverged" in run.description["error"]
    with pytest.raises(ImagesAsDataError, match=r"did not finish: training failed: .*overwrite=True"):
        run.predict(tiny_faces, progress=False)
    # what it kept are the last good weights (here the starting ones): finite, and usable on request
    predictions = run.predict(tiny_faces, progress=False, allow_unfinished=True)
    assert np.isfinite(predictions["prob_s1"].to_numpy()).all()


@pytest.mark.parametrize("option, value, message", [
    ("--learning-rate", "nan", "learning_rate=nan must be a finite number"),
    ("--learning-rate", "-1", "learning_rate=-1.0 must be above 0"),
    ("--gamma", "-1", "gamma=-1.0 must be above 0 and at most 1"),
    ("--seed", "-1", "seed=-1 must be a whole number from 0 to"),
    ("--weight-decay", "-1", "weight_decay=-1.0 must be at least 0"),
    ("--momentum", "inf", "momentum='inf'|momentum=inf must be a finite number"),
    ("--image-size", "8", "image_size=8 is too small; use at least 32"),
])
def test_absurd_options_are_one_clear_line(tiny_faces, tmp_path, option, value, message):
    result = cli("finetune", tiny_faces, "--out", tmp_path / "run", option, value, "--no-progress")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert any(m in result.stderr for m in message.split("|")), result.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ names and bytes

@pytest.fixture()
def odd_names(tmp_path, tiny_faces) -> Path:
    """tiny_faces plus a real photo whose name is not UTF-8, a link in a loop, a broken link and a folder whose
    name ends in .png."""
    root = tmp_path / "faces"
    shutil.copytree(tiny_faces, root)
    data = (tiny_faces / "s1" / "1.pgm").read_bytes()
    with open(os.path.join(os.fsencode(root / "s2"), LATIN1_NAME), "wb") as handle:
        handle.write(data)
    os.symlink(root / "s3" / "loop.png", root / "s3" / "loop.png")
    os.symlink(root / "s3" / "gone.png", root / "s3" / "broken.png")
    (root / "s3" / "album.png").mkdir()
    return root


@pytest.mark.trains
def test_odd_names_are_rows_with_a_reason_and_the_job_goes_on(odd_names, tmp_path):
    table = iad.image_table(odd_names)
    ids = table["image_id"].to_pylist()
    assert "s2/caf\\xe9.png" in ids and {"s3/loop.png", "s3/broken.png", "s3/album.png"} <= set(ids)
    run = iad.finetune(odd_names, out=tmp_path / "run", **TINY)
    reasons = {r["image_id"]: r["error"] for r in run.skipped.to_pylist()}
    assert set(reasons) == {"s2/caf\\xe9.png", "s3/loop.png", "s3/broken.png", "s3/album.png"}
    assert "name is not valid UTF-8 (bytes b'caf\\xe9.png'); rename the file" in reasons["s2/caf\\xe9.png"]
    assert "symbolic link in a loop" in reasons["s3/loop.png"] and "broken symbolic link" in reasons["s3/broken.png"]
    assert "a folder, not an image file" in reasons["s3/album.png"]
    assert run.description["training_images"]["count"] == 15

    predicted = {r["image_id"]: r for r in run.predict(odd_names, progress=False).to_pylist()}
    assert predicted["s2/caf\\xe9.png"]["predicted"] is None and "not valid UTF-8" in predicted["s2/caf\\xe9.png"]["error"]
    assert predicted["s1/1.pgm"]["error"] is None
    inventory = {r["image_id"]: r for r in iad.image_inventory(odd_names, progress=False).to_pylist()}
    assert "not valid UTF-8" in inventory["s2/caf\\xe9.png"]["error"]
    hashes = iad.image_hashes(odd_names, progress=False)
    assert hashes.num_rows == 19
    labelled = iad.label_corpus(run, odd_names, out=tmp_path / "labels", progress=False)
    assert labelled.unreadable == 4 and labelled.table.num_rows == 19
    # the CLI's predict writes the escaped name, and says how many could not be read
    result = cli("predict", run.path, odd_names, "--out", tmp_path / "p.csv", "--no-progress")
    assert result.returncode == 0 and "4 unreadable" in result.stdout


@pytest.mark.trains
def test_a_table_that_is_not_utf8_is_an_error_naming_the_line(tiny_faces, tmp_path):
    paths = sorted(str(p) for p in tiny_faces.rglob("*.pgm"))
    lines = [b"path,label,note"] + [f"{p},{Path(p).parent.name},ok".encode() for p in paths]
    lines[4] = lines[4][:-2] + b"caf\xe9"   # one note written in Latin-1
    (tmp_path / "labels.csv").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ImagesAsDataError, match=r"labels.csv: line 5 \(column 'note'\) is not valid utf-8 text .*"
                                                r"encoding='latin-1'"):
        iad.image_table(tmp_path / "labels.csv")
    table = iad.image_table(tmp_path / "labels.csv", encoding="latin-1")
    assert table["note"].to_pylist()[3] == "café" and table["path"].to_pylist() == paths
    result = cli("finetune", tmp_path / "labels.csv", "--out", tmp_path / "run", "--epochs", 1, "--no-progress")
    assert result.returncode == 1 and "line 5 (column 'note')" in result.stderr
    result = cli("finetune", tmp_path / "labels.csv", "--encoding", "latin-1", "--out", tmp_path / "run",
                 "--epochs", 1, "--image-size", 32, "--no-progress")
    assert result.returncode == 0, result.stderr


@pytest.mark.trains
def test_a_link_loop_listed_in_a_table_is_a_row_not_a_traceback(tiny_faces, tmp_path):
    os.symlink(tmp_path / "loop.jpg", tmp_path / "loop.jpg")
    table = pa.table({"path": [str(tmp_path / "loop.jpg"), str(tiny_faces / "s1" / "1.pgm")]})
    run = iad.finetune(tiny_faces, out=tmp_path / "run", **TINY)
    rows = run.predict(table, progress=False).to_pylist()
    assert "symbolic link in a loop" in rows[0]["error"] and rows[1]["error"] is None


# ------------------------------------------------------------------------------------------ damaged and swapped runs

@pytest.fixture(scope="module")
def two_runs(tiny_faces, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    return (iad.finetune(tiny_faces, out=folder / "a", **TINY),
            iad.finetune(tiny_faces, out=folder / "b", **{**TINY, "seed": 1}))


@pytest.mark.trains
def test_weights_from_another_run_are_refused(two_runs, tiny_faces, tmp_path):
    a, b = two_runs
    swapped = a.save(tmp_path / "swapped")
    shutil.copy(b.path / "model.safetensors", swapped.path / "model.safetensors")
    with pytest.raises(ImagesAsDataError, match=r"is not the file this run wrote \(its SHA-256 differs"):
        iad.load_run(swapped.path).predict(tiny_faces, progress=False)
    # even with the checksum in model.json made to match, the weights name their own run
    description = json.loads((swapped.path / "model.json").read_text())
    description["files"]["model.safetensors"] = iad.io.images.sha256_file(b.path / "model.safetensors")
    (swapped.path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=r"belongs to another run \(run id "):
        iad.load_run(swapped.path).predict(tiny_faces, progress=False)


@pytest.mark.trains
def test_reordered_classes_in_model_json_are_refused(two_runs, tiny_faces, tmp_path):
    edited = two_runs[0].save(tmp_path / "edited")
    description = json.loads((edited.path / "model.json").read_text())
    description["classes"] = description["classes"][::-1]
    (edited.path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=r"lists the classes \['s3', 's2', 's1'\], but the weights were "
                                                r"trained for \['s1', 's2', 's3'\]"):
        iad.load_run(edited.path).predict(tiny_faces, progress=False)


@pytest.mark.parametrize("content, message", [
    ("{not json", r"model.json is damaged: not valid JSON"),
    ("[1, 2, 3]", r"model.json does not hold a run description.*\(found list instead of a JSON object\)"),
    ('{"format": "imagesasdata-run"}', r"model.json is damaged: it lacks classes"),
])
@pytest.mark.trains
def test_a_damaged_model_json_is_a_clear_error(two_runs, tmp_path, content, message):
    copy = two_runs[0].save(tmp_path / "damaged")
    (copy.path / "model.json").write_text(content)
    with pytest.raises(ImagesAsDataError, match=message):
        iad.load_run(copy.path)
    result = cli("predict", copy.path, two_runs[0].path / "splits.parquet", "--out", tmp_path / "p.csv")
    assert result.returncode == 1 and "Traceback" not in result.stderr


@pytest.mark.trains
def test_a_run_killed_while_training_is_refused_unless_asked(tiny_faces, tmp_path):
    out = tmp_path / "run"
    assert forked.run(_finetune_killed_after_epoch_1, tiny_faces, out) == -signal.SIGKILL
    run = iad.load_run(out)
    assert run.status == "training" and not (out / "model.safetensors").exists()
    with pytest.raises(ImagesAsDataError, match=r"did not finish: it was stopped while training.*resume=True"):
        run.predict(tiny_faces, progress=False)
    result = cli("evaluate", out, tiny_faces)
    assert result.returncode == 1 and "did not finish" in result.stderr and "--allow-unfinished" in result.stderr
    # opted in, it predicts with its best checkpointed epoch
    assert run.predict(tiny_faces, progress=False, allow_unfinished=True)["error"].null_count == 15


def _finetune_killed_after_epoch_1(data, out):
    from imagesasdata.train import trainer as train

    original = train.Trainer._checkpoint

    def checkpoint_then_die(self, state):
        original(self, state)
        os.kill(os.getpid(), signal.SIGKILL)

    train.Trainer._checkpoint = checkpoint_then_die
    iad.finetune(data, out=out, **TINY)


# ------------------------------------------------------------------------------------------ labelling

@pytest.mark.trains
def test_labelling_refuses_duplicate_images_and_a_stopped_job_blocks_nothing(two_runs, tiny_faces, tmp_path):
    run = two_runs[0]
    paths = sorted(str(p) for p in tiny_faces.rglob("*.pgm"))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n" + "\n".join(paths + [paths[3]]) + "\n")
    with pytest.raises(ImagesAsDataError, match=r"lists 1 image\(s\) more than once: '[^']*/s1/4.pgm' \(rows 4, 16\)"):
        iad.label_corpus(run, manifest, out=tmp_path / "labels", progress=False)
    assert not (tmp_path / "labels").exists()
    manifest.write_text("path\n" + "\n".join(paths) + "\n")
    started = iad.label_corpus(run, manifest, out=tmp_path / "labels", shard_size=5, max_shards=0, progress=False)
    assert started.shards_done == 0
    # nothing was labelled yet: another shard size (or model) is not "another labelling"
    done = iad.label_corpus(run, manifest, out=tmp_path / "labels", shard_size=4, progress=False)
    assert done.complete and done.table.num_rows == 15


@pytest.mark.trains
def test_output_files_can_be_read_by_colleagues(two_runs):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.json", "model.safetensors", "metrics.parquet"):
        assert (two_runs[0].path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_unknown_architecture_hint_names_each_candidate_once():
    with pytest.raises(ImagesAsDataError) as caught:
        iad.create_backbone("resnet18x")
    hint = str(caught.value).split("Did you mean ")[1].split("?")[0]
    candidates = hint.split(" or ")
    assert "'resnet18'" in candidates and len(candidates) == len(set(candidates))


def test_a_file_that_cannot_be_opened_is_not_called_corrupt(tiny_faces, monkeypatch):
    """A permission problem is worded as one (the tests run as root, who may read anything, so the refusal is
    played by Pillow's open raising what it raises for an unreadable file)."""
    from PIL import Image

    from imagesasdata.errors import BadImageError
    from imagesasdata.prepare.inventory import read_header

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(BadImageError, match=r"cannot be read \(Permission denied\); check the file's permissions"):
        iad.open_rgb(tiny_faces / "s1" / "1.pgm")
    assert read_header(tiny_faces / "s1" / "1.pgm")["error"].startswith("cannot be read (Permission denied)")


# ------------------------------------------------------------------------------------------ resume validates first

def _files(folder: Path) -> dict:
    """Every file in a run folder but the lock, with its bytes: what a refused call must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != LOCK_FILE}


@pytest.mark.trains
def test_a_refused_resume_of_a_killed_run_writes_nothing(tiny_faces, tmp_path):
    """Resuming a killed run with other options or other data is refused before anything is written: model.json
    still describes the checkpoint, and the run can still be used on request (it used to record the refused
    options, and then predict() failed with "weights do not match the architecture")."""
    from cli_runner import run as run_cli

    out = tmp_path / "run"
    assert forked.run(_finetune_killed_after_epoch_1, tiny_faces, out) == -signal.SIGKILL
    before = _files(out)
    for changed, named in (({"image_size": 64}, r"image_size \(CLI: --image-size\): the run has 32, this call 64"),
                           ({"seed": 1}, r"seed \(CLI: --seed\): the run has 0, this call 1"),
                           ({"architecture": "resnet18", "weights": "none"}, r"architecture .*'resnet18'.*weights"),
                           ({"learning_rate": 0.001}, r"learning_rate \(CLI: --learning-rate\): the run has 0.01")):
        with pytest.raises(ImagesAsDataError, match=rf"holds a run started with other options \({named}.*nothing "
                                                    r"was changed. Resume it with the same options"):
            iad.finetune(tiny_faces, out=out, resume=True, **{**TINY, **changed})
        assert _files(out) == before, changed
    # other images (one photo fewer, and one photo relabelled): refused too, naming them
    fewer = tmp_path / "fewer"
    shutil.copytree(tiny_faces, fewer)
    (fewer / "s2" / "5.pgm").unlink()
    with pytest.raises(ImagesAsDataError, match=r"started on other data \(1 image\(s\) missing now: s2/5.pgm\)"):
        iad.finetune(fewer, out=out, resume=True, **TINY)
    (fewer / "s1" / "5.pgm").rename(fewer / "s2" / "5.pgm")
    with pytest.raises(ImagesAsDataError, match=r"started on other data \(.*s1/5.pgm"):
        iad.finetune(fewer, out=out, resume=True, **TINY)
    assert _files(out) == before
    result = run_cli("finetune", tiny_faces, "--out", out, "--resume", "--image-size", 64, "--epochs", 2,
                     "--learning-rate", 0.01, "--no-progress", check=False)
    assert result.returncode == 1 and "image_size (CLI: --image-size): the run has 32, this call 64" in result.stderr
    assert "Traceback" not in result.stderr and _files(out) == before
    predictions = iad.load_run(out).predict(tiny_faces, progress=False, allow_unfinished=True)
    assert predictions["error"].null_count == 15
    # resumed with its own options (from a copy of its images elsewhere: paths may move), it completes
    moved = tmp_path / "moved"
    shutil.copytree(tiny_faces, moved)
    assert iad.finetune(moved, out=out, resume=True, **TINY).status == "complete"


@pytest.mark.trains
def test_resuming_a_complete_run_with_other_options_is_an_error(tiny_faces, tmp_path, capsys):
    """It used to exit 0 and ignore the options silently. With the same options it says the run is complete."""
    from imagesasdata.cli import main

    out = tmp_path / "run"
    iad.finetune(tiny_faces, out=out, **TINY)
    before = _files(out)
    with pytest.raises(ImagesAsDataError, match=r"holds a complete run trained with other options \(epochs "
                                                r"\(CLI: --epochs\): the run has 2, this call 5; learning_rate "
                                                r"\(CLI: --learning-rate\): the run has 0.01, this call 0.1\).*never "
                                                r"retrains a finished one"):
        iad.finetune(tiny_faces, out=out, resume=True, **{**TINY, "epochs": 5, "learning_rate": 0.1})
    assert _files(out) == before
    common = [str(tiny_faces), "--out", str(out), "--resume", "--image-size", "32", "--learning-rate", "0.01",
              "--no-progress"]
    assert main(["finetune", *common, "--epochs", "3"]) == 1
    assert "epochs (CLI: --epochs): the run has 2, this call 3" in capsys.readouterr().err
    assert main(["finetune", *common, "--epochs", "2"]) == 0
    assert "already holds a complete run with these options: nothing to train" in capsys.readouterr().out
    assert _files(out) == before


@pytest.mark.trains
def test_resume_and_overwrite_together_are_refused_before_anything_is_touched(two_runs, tiny_faces, tmp_path):
    """Both at once used to delete the run and start again (overwrite won, silently); a string such as "no" for
    resume used to count as yes."""
    copy = two_runs[0].save(tmp_path / "run")
    before = _files(copy.path)
    with pytest.raises(ImagesAsDataError, match=r"resume=True and overwrite=True contradict each other"):
        iad.finetune(tiny_faces, out=copy.path, resume=True, overwrite=True, **TINY)
    with pytest.raises(ImagesAsDataError, match=r"resume='no' must be True or False"):
        iad.finetune(tiny_faces, out=copy.path, resume="no", **TINY)
    assert _files(copy.path) == before


# ------------------------------------------------------------------------------------------ model.json's checksums

@pytest.mark.parametrize("field, edit, named", [
    ("preprocessing", lambda d: d["preprocessing"].update(mean=[0.1, 0.1, 0.1]),
     r"preprocessing no longer matches .*\(preprocessing.mean: model.json has \[0.1, 0.1, 0.1\], the run was "
     r"written with \[0.485, 0.456, 0.406\]\)"),
    ("resize", lambda d: d["preprocessing"].update(resize="squish"), r"preprocessing.resize: model.json has "
                                                                     r"\"squish\", the run was written with"),
    ("interpolation", lambda d: d["preprocessing"].update(interpolation="bicubic"),
     r"preprocessing no longer matches .*\(preprocessing.interpolation: model.json has \"bicubic\", the run was "
     r"written with \"bilinear\"\)"),
    ("temperature", lambda d: d["calibration"].update(temperature=9.0), r"calibration.temperature no longer"),
    ("positive class", lambda d: d.update(positive_class="s3"), r"positive_class: model.json has \"s3\""),
    ("head", lambda d: d.update(head=["conv_head"]), r"head no longer matches"),
])
@pytest.mark.trains
def test_an_edited_model_json_is_refused_naming_the_field(two_runs, tiny_faces, tmp_path, field, edit, named):
    """Edited preprocessing used to change every prediction silently (accuracy 0.94 → 0.44, no warning)."""
    from imagesasdata.runs import prediction_checksums

    edited = two_runs[0].save(tmp_path / "edited")
    description = json.loads((edited.path / "model.json").read_text())
    edit(description)
    (edited.path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=rf"model.json was edited after the run was written: .*{named}.*"
                                                r"refused, as swapped weights are. To recover, restore the run's own "
                                                r"model.json"):
        iad.load_run(edited.path).predict(tiny_faces, progress=False)
    # an edit that also rewrites the checksums is still caught: the weights record the values they were written with
    description["prediction_sha256"] = prediction_checksums(description)
    (edited.path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=r"was edited after the run was written"):
        iad.load_run(edited.path).weights()


def test_every_preprocessing_setting_is_covered_by_the_checksums_interpolation_too():
    """How a file becomes a tensor is all of Preprocessing, the resampling filter (interpolation) included: each
    of its settings is written into model.json's preprocessing, whose checksum a changed value changes."""
    import dataclasses

    from imagesasdata.data.transforms import INTERPOLATIONS, Preprocessing
    from imagesasdata.runs import PREDICTION_FIELDS, prediction_checksums

    prep = Preprocessing(image_size=64)
    assert len(INTERPOLATIONS) > 1
    description = {"architecture": "efficientnet_lite0", "library": "timm", "head": ["classifier"],
                   "classes": ["s1", "s2"], "positive_class": "s2", "preprocessing": prep.to_dict(),
                   "hyperparameters": {"dropout": 0.2}, "calibration": {"temperature": 1.0}}
    assert "preprocessing" in PREDICTION_FIELDS
    assert {f.name for f in dataclasses.fields(Preprocessing)} <= set(description["preprocessing"])
    before = prediction_checksums(description)
    for interpolation in sorted(set(INTERPOLATIONS) - {prep.interpolation}):
        edited = json.loads(json.dumps(description))
        edited["preprocessing"]["interpolation"] = interpolation
        after = prediction_checksums(edited)
        assert after["preprocessing"] != before["preprocessing"], interpolation
        assert {k for k in after if after[k] != before[k]} == {"preprocessing"}
    # the decoded images a grid's runs share are told apart by it as well
    from imagesasdata.train.trainer import decode_key

    assert decode_key(prep, "memory", ["a.png"], ()) != decode_key(
        Preprocessing(image_size=64, interpolation="bicubic"), "memory", ["a.png"], ())


@pytest.mark.trains
def test_edits_that_do_not_change_predictions_are_accepted(two_runs, tiny_faces, tmp_path):
    copy = two_runs[0].save(tmp_path / "annotated")
    description = json.loads((copy.path / "model.json").read_text())
    description["notes"] = "shared with the replication package"
    description["hyperparameters"]["epochs"] = 99
    description["hyperparameters"]["dropout"] = 0      # re-saved by a tool that writes 0.0 as 0: the same number
    (copy.path / "model.json").write_text(json.dumps(description))
    expected = two_runs[0].predict(tiny_faces, progress=False)
    assert iad.load_run(copy.path).predict(tiny_faces, progress=False).drop_columns(["path"]).equals(
        expected.drop_columns(["path"]))
    del description["prediction_sha256"]
    (copy.path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=r"model.json is damaged: it has no prediction_sha256"):
        iad.load_run(copy.path).weights()


@pytest.mark.trains
def test_an_edited_model_json_of_a_killed_run_is_refused(tiny_faces, tmp_path):
    out = tmp_path / "run"
    assert forked.run(_finetune_killed_after_epoch_1, tiny_faces, out) == -signal.SIGKILL
    description = json.loads((out / "model.json").read_text())
    description["preprocessing"]["std"] = [1.0, 1.0, 1.0]
    (out / "model.json").write_text(json.dumps(description))
    with pytest.raises(ImagesAsDataError, match=r"model.json was edited after the run was written: preprocessing"):
        iad.load_run(out).predict(tiny_faces, progress=False, allow_unfinished=True)
