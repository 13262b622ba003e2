"""Sharing a labelled corpus without the pictures: identifiers, hashes and labels, a datasheet with the run's metrics
and their intervals, and a reader's re-join by hash — on ORL faces labelled by a run fitted here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.io.images import sha256_file


@pytest.fixture(scope="module")
def labelled(tiny_faces, tmp_path_factory):
    """A run fitted from a starting-weights file of our own (its local path is recorded in model.json), and its
    labels of the 15 photos."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("run")
    start = folder / "my weights" / "start.safetensors"
    start.parent.mkdir()
    save_file(iad.create_backbone("efficientnet_lite0", num_classes=3).model.state_dict(), str(start))
    run = iad.finetune(tiny_faces, out=folder / "run", weights=str(start), epochs=3, image_size=64,
                       freeze="backbone", learning_rate=0.01, augment_crop=False, progress=False)
    return run, run.predict(tiny_faces, progress=False)


@pytest.mark.trains
def test_no_pixels_no_paths_and_every_hash(labelled, tiny_faces, tmp_path):
    run, labels = labelled
    shared = iad.share_corpus(labels, tmp_path / "shared", run=run, title="ORL, three people", sources="ORL faces",
                              answers={"copyright": "AT&T Laboratories Cambridge; research use",
                                       "privacy": "consenting volunteers photographed in 1992-94"})
    files = sorted(p.name for p in (tmp_path / "shared").iterdir() if not p.name.startswith("."))
    assert files == ["datasheet.json", "datasheet.md", "labels.csv", "labels.parquet"]
    table = pq.read_table(tmp_path / "shared" / "labels.parquet")
    assert table.column_names[:2] == ["image_id", "image_sha256"] and "path" not in table.column_names
    assert not [f for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    paths = dict(zip(labels["image_id"].to_pylist(), labels["path"].to_pylist()))
    for row in table.to_pylist():
        assert row["image_sha256"] == sha256_file(paths[row["image_id"]])
    # No pixels and no local paths anywhere: no file decodes as an image, none names the images' folder, and the
    # whole package is smaller than three of the 15 images it describes.
    for path in (tmp_path / "shared").iterdir():
        if path.name.startswith("."):
            continue
        with pytest.raises(Exception):
            Image.open(path)
        assert str(tiny_faces) not in path.read_text(errors="replace")
    image_bytes = sorted(p.stat().st_size for p in tiny_faces.rglob("*.pgm"))
    assert sum(p.stat().st_size for p in (tmp_path / "shared").glob("labels.*")) < 3 * image_bytes[0]
    assert shared.labels.num_rows == 15


@pytest.mark.trains
def test_datasheet(labelled, tmp_path):
    run, labels = labelled
    shared = iad.share_corpus(labels, tmp_path / "shared", run=run, answers={"access": "the ORL archive"})
    sheet = json.loads((tmp_path / "shared" / "datasheet.json").read_text())
    assert sheet == json.loads(json.dumps(shared.datasheet, default=str))
    for name, digest in sheet["files"].items():
        assert sha256_file(tmp_path / "shared" / name) == digest
    assert sheet["provenance"]["rows"] == 15 and sheet["provenance"]["distinct_images"] == 15
    splits = run.splits["split"].to_pylist()
    assert sheet["run"]["splits"] == {s: splits.count(s) for s in set(splits)}
    assert sheet["run"]["weights_sha256"] == sha256_file(run.path / "model.safetensors")
    assert len(sheet["run"]["training_image_sha256"]) == sheet["run"]["training_images"]
    accuracy = next(m for m in sheet["run"]["metrics"] if m["metric"] == "accuracy" and m["split"] == "val")
    assert accuracy["estimate"] == pytest.approx(run.metric("accuracy", "val"))
    assert accuracy["interval"] == "wilson" and accuracy["lower"] <= accuracy["estimate"] <= accuracy["upper"]
    assert sheet["questions"]["access"]["answer"] == "the ORL archive"
    assert sheet["questions"]["privacy"]["answer"] == "not answered"
    markdown = (tmp_path / "shared" / "datasheet.md").read_text()
    assert "## Model" in markdown and "95% interval" in markdown and "not answered" in markdown
    with pytest.raises(ImagesAsDataError, match="unknown questions"):
        iad.share_corpus(labels, tmp_path / "other", answers={"licence": "?"})
    with pytest.raises(ImagesAsDataError, match="overwrite"):
        iad.share_corpus(labels, tmp_path / "shared")


def test_wilson_and_bootstrap_intervals():
    from scipy.stats import binomtest

    for successes, n in ((9, 10), (50, 60), (0, 12), (12, 12)):
        expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert [float(v) for v in iad.proportion_interval(successes, n)] == \
            pytest.approx((expected.low, expected.high), abs=1e-9)
    confusion = pa.table({"truth": ["no", "no", "yes", "yes"], "predicted": ["no", "yes", "no", "yes"],
                          "count": [40, 10, 5, 45]})
    table = {(r["metric"], r["class"]): r for r in iad.metrics_from_confusion(confusion, ["no", "yes"], "yes").to_pylist()}
    precision = table[("precision", "yes")]
    expected = binomtest(45, 55).proportion_ci(method="wilson")
    assert (precision["lower"], precision["upper"]) == pytest.approx((expected.low, expected.high))
    f1 = table[("f1", "yes")]
    assert f1["interval"] == "percentile_bootstrap" and f1["lower"] < f1["estimate"] < f1["upper"]
    assert 0.05 < f1["upper"] - f1["lower"] < 0.3         # 100 images: several points either way


@pytest.mark.trains
def test_a_reader_rejoins_by_hash(labelled, tiny_faces, tmp_path):
    _, labels = labelled
    iad.share_corpus(labels, tmp_path / "shared", ids=False)
    assert "image_id" not in pq.read_table(tmp_path / "shared" / "labels.parquet").column_names
    # The reader's copy: other names, one image re-encoded (its bytes differ: it must not match), one missing.
    mine = tmp_path / "mine"
    mine.mkdir()
    originals = sorted(tiny_faces.rglob("*.pgm"))
    for k, path in enumerate(originals[:-1]):
        shutil.copy(path, mine / f"download_{k:02d}.pgm")
    Image.open(originals[0]).save(mine / "download_00.png")
    (mine / "download_00.pgm").unlink()
    joined = iad.rejoin_shared(tmp_path / "shared", mine)
    assert joined.num_rows == 15
    found = [p for p in joined["path"].to_pylist() if p is not None]
    assert len(found) == 13                                # 15 - the re-encoded one - the missing one
    by_hash = dict(zip(joined["image_sha256"].to_pylist(), joined["path"].to_pylist()))
    for k, path in enumerate(originals[1:-1], start=1):
        assert by_hash[sha256_file(path)].endswith(f"download_{k:02d}.pgm")
    assert by_hash[sha256_file(originals[0])] is None and by_hash[sha256_file(originals[-1])] is None


def test_any_table_with_paths_and_unreadable_rows(tmp_path, orl_faces):
    shutil.copy(orl_faces / "s1" / "1.pgm", tmp_path / "a.pgm")
    (tmp_path / "gone.pgm").write_bytes(b"")
    coded = pa.table({"path": [str(tmp_path / "a.pgm"), str(tmp_path / "gone.pgm")], "protest": ["no", "yes"]})
    with pytest.warns(UserWarning, match=r"left out 1 column\(s\) .*: protest. Name those to share in columns="):
        assert iad.share_corpus(coded, tmp_path / "default").labels.column_names == ["image_sha256"]
    shared = iad.share_corpus(coded, tmp_path / "out", columns=["protest"])
    assert shared.labels.column_names == ["image_sha256", "protest"]
    assert shared.labels["image_sha256"].to_pylist()[1] is None
    assert shared.datasheet["provenance"]["unreadable"] == 1 and shared.datasheet["run"] is None


def test_text_screening_video_frames_and_sharing_import_no_torch():
    import subprocess
    import sys

    probe = ("import sys, imagesasdata as iad; iad.ocr_text; iad.ocr_words; iad.screen_images; iad.coding_sheet; "
             "iad.screening_sheet; iad.video_frames; iad.video_summary; iad.share_corpus; iad.rejoin_shared; "
             "iad.proportion_interval; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def _local_folders(tmp_path, *more) -> set[str]:
    """The folders of this machine that no shared file may name: the test's temporary folder, the home directory
    (however it is spelt), the images' folder and the run's, each also as the operating system resolves it."""
    import os

    folders = {str(tmp_path), os.path.expanduser("~"), str(Path.home()), "/root", *map(str, more)}
    return folders | {os.path.realpath(f) for f in folders}


def _every_text(folder: Path) -> dict:
    """{file: its text} for every file written under `folder` (hidden ones too); a Parquet file's cells are read
    back as text as well as its raw bytes (compressed, they would hide a path from a plain search)."""
    texts = {}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            text += json.dumps(table.to_pylist(), default=str) + " ".join(table.column_names)
        texts[path.name] = text
    return texts


@pytest.mark.trains
@pytest.mark.parametrize("how", ["api", "cli --no-ids"])
def test_no_file_written_names_a_local_folder(labelled, tiny_faces, tmp_path, how):
    """A hostile labels table — ids that are absolute paths, a file name with spaces, a broken link whose error
    names its target, extra columns of paths and notes — and a run started from a local weights file: not one
    written file names the test's folder or the home directory. It used to write the weights' path twice into
    datasheet.json and datasheet.md, copy extra path columns verbatim and pass link targets into labels.csv."""
    import os

    from imagesasdata.cli import main

    run, labels = labelled
    home = os.path.expanduser("~")
    odd = tmp_path / "odd folder"
    odd.mkdir()
    shutil.copy(tiny_faces / "s1" / "1.pgm", odd / "a photo.pgm")
    os.symlink(tmp_path / "gone" / "target.pgm", odd / "broken.pgm")
    listed = run.predict([str(odd / "a photo.pgm"), str(odd / "broken.pgm")], progress=False)   # ids: the paths
    assert str(tmp_path) in " ".join(listed["image_id"].to_pylist() + listed["error"].to_pylist()[1:])
    table = pa.concat_tables([labels, listed])
    rows = table.num_rows
    table = table.append_column("source_file", pa.array([str(odd / "a photo.pgm")] * rows))
    table = table.append_column("frame_path", pa.array([str(tmp_path / "frames" / "f.png")] * rows))
    table = table.append_column("note", pa.array([f"copied from {tmp_path}/raw by {home}/bin/fetch"] * rows))
    table = table.append_column("protest", pa.array(["yes", "no"] * (rows // 2) + ["no"] * (rows % 2)))
    out = tmp_path / "shared"
    words = dict(title=f"Faces in {tmp_path}", sources=f"photos copied from {tmp_path / 'raw'} and ~/Pictures",
                 answers={"access": f"ask for '{home}/archive.zip'"})
    if how == "api":
        with pytest.warns(UserWarning, match=r"left out 1 column\(s\) .*: source_file"):
            shared = iad.share_corpus(table, out, run=run, columns=["protest", "note"], **words)
        shared_ids = shared.labels["image_id"].to_pylist()
        assert shared_ids[-2:] == ["a photo.pgm", "broken.pgm"] and shared_ids[:-2] == labels["image_id"].to_pylist()
    else:
        pq.write_table(table, tmp_path / "labels.parquet")
        answers = [f"--answer={k}={v}" for k, v in words["answers"].items()]
        assert main(["share", str(tmp_path / "labels.parquet"), "--run", str(run.path), "--out", str(out), "--no-ids",
                     "--columns", "protest,note", "--title", words["title"], "--sources", words["sources"],
                     *answers]) == 0
    written = pq.read_table(out / "labels.parquet")
    assert {"source_file", "frame_path", "path"}.isdisjoint(written.column_names)
    assert ("image_id" in written.column_names) == (how == "api")
    assert written["protest"].to_pylist() == table["protest"].to_pylist()
    assert written["note"][0].as_py() == "copied from raw by fetch"
    assert written["error"][rows - 1].as_py().startswith("a broken symbolic link (to 'target.pgm')")
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["run"]["weights"] == sheet["run"]["hyperparameters"]["weights"] == "start.safetensors"
    assert sheet["columns_left_out"] == ["source_file"]
    texts = _every_text(out)
    assert set(texts) >= {"labels.parquet", "labels.csv", "datasheet.json", "datasheet.md"}
    for folder in _local_folders(tmp_path, tiny_faces, run.path):
        for name, text in texts.items():
            assert folder not in text, f"{name} names {folder}"


@pytest.mark.trains
def test_a_local_folder_glued_to_other_text_is_cut_out(labelled, tmp_path):
    """Where no path can be told from the text around it ("x/root/raw", a home folder with a space), this
    machine's folders are still cut out; a URL is left as it is."""
    import os

    _, labels = labelled
    home = os.path.expanduser("~")
    notes = [f"x{home}/raw", f"{home}", f"see https://example.org{home}/x"] * 5
    shared = iad.share_corpus(labels.append_column("note", pa.array(notes)), tmp_path / "out", columns=["note"])
    assert shared.labels["note"].to_pylist()[:3] == ["xraw", os.path.basename(home), f"see https://example.org{home}/x"]


@pytest.mark.trains
def test_columns_of_paths_are_never_shared_even_when_named(labelled, tmp_path):
    _, labels = labelled
    with pytest.raises(ImagesAsDataError, match=r"'path' holds local paths or pixels and is never shared"):
        iad.share_corpus(labels, tmp_path / "out", columns=["path"])
    with pytest.raises(ImagesAsDataError, match=r"no column 'protset'"):
        iad.share_corpus(labels.append_column("protest", pa.array(["no"] * labels.num_rows)), tmp_path / "out",
                         columns=["protset"])


@pytest.mark.trains
def test_ids_must_be_a_yes_or_no(labelled, tmp_path):
    """ids="no" used to count as yes, sharing the file names it was meant to withhold."""
    _, labels = labelled
    with pytest.raises(ImagesAsDataError, match=r"ids='no' must be True \(share image_id\) or False"):
        iad.share_corpus(labels, tmp_path / "out", ids="no")
    assert not (tmp_path / "out").exists()
