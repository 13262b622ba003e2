"""Splits that keep near-duplicate groups whole, and the book's folders written from them, on real faces."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pytest
from PIL import Image

from imagesasdata import (ImagesAsDataError, find_duplicates, image_table, split_images, write_layout)
from imagesasdata.cli import main
from imagesasdata.io.tables import read_table, write_table


@pytest.fixture(scope="module")
def labelled_duplicates(tmp_path_factory, orl_faces):
    """John Legend in miniature: person s1 is positive, s2 and s3 negative; five s1 and two s2 photos also appear
    as re-encoded copies (as when the same picture is shared twice), all found by find_duplicates()."""
    root = tmp_path_factory.mktemp("faces")
    for person, label in (("s1", "positive"), ("s2", "negative"), ("s3", "negative")):
        for k in range(1, 11):
            target = root / label / f"{person}_{k}.pgm"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(orl_faces / person / f"{k}.pgm", target)
    for person, label, photos in (("s1", "positive", range(1, 6)), ("s2", "negative", (3, 7))):
        for k in photos:
            Image.open(orl_faces / person / f"{k}.pgm").save(root / label / f"{person}_{k}_shared.jpg", quality=60)
    table = find_duplicates(root, progress=False)
    assert max(table["group_size"].to_pylist()) >= 2
    return table


def _groups_in_one_split(table):
    where = {}
    for g, s in zip(table["group_id"].to_pylist(), table["split"].to_pylist()):
        where.setdefault(g, set()).add(s)
    return all(len(s) == 1 for s in where.values())


def test_groups_never_straddle_splits(labelled_duplicates):
    seen_val_copies = False
    for seed in range(8):
        table = split_images(labelled_duplicates, val_fraction=0.3, seed=seed)
        assert _groups_in_one_split(table)
        assert set(table["split"].to_pylist()) == {"train", "val"}
        seen_val_copies |= any(s == "val" and size > 1 for s, size in
                               zip(table["split"].to_pylist(), table["group_size"].to_pylist()))
    assert seen_val_copies  # groups do go to validation — whole
    # Image by image, some seed splits a shared picture from its copy: what grouping prevents.
    assert any(not _groups_in_one_split(split_images(labelled_duplicates, val_fraction=0.3, seed=s, group=None))
               for s in range(8))


def test_write_layout_symlinks_and_reads_back(labelled_duplicates, tmp_path):
    out = tmp_path / "legend"
    result = write_layout(labelled_duplicates, out, seed=1)
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*")) == [
        "train/negative", "train/positive", "val/negative", "val/positive"]
    for row in result.to_pylist():
        written = row["layout_path"]
        assert os.path.islink(written) and os.path.realpath(written) == os.path.realpath(row["path"])
        assert written.endswith(f"{row['split']}/{row['label']}/{os.path.basename(row['path'])}")
    again = image_table(out)  # the engine reads the book's layout back with the same labels and splits
    back = {(r["label"], r["split"], os.path.basename(r["path"])) for r in again.to_pylist()}
    assert back == {(r["label"], r["split"], os.path.basename(r["path"])) for r in result.to_pylist()}


def test_layout_is_idempotent_and_replaced_whole(labelled_duplicates, tmp_path):
    out = tmp_path / "layout"
    write_layout(labelled_duplicates, out, seed=1)
    manifest = out / ".imagesasdata-layout.json"
    stamp = manifest.stat().st_mtime_ns
    inode = os.stat(out).st_ino
    write_layout(labelled_duplicates, out, seed=1)
    assert manifest.stat().st_mtime_ns == stamp and os.stat(out).st_ino == inode  # nothing rewritten
    other = write_layout(labelled_duplicates, out, seed=2)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_symlink())
    assert files == sorted(os.path.relpath(p, out) for p in other["layout_path"].to_pylist())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".layout")]  # no staging folder left behind


def test_copy_mode_and_name_clashes(tmp_path, orl_faces):
    # Photo 1.pgm of two people: the same file name, told apart by image_id.
    table = pa.table({"path": [str(orl_faces / p / f"{k}.pgm") for p in ("s1", "s2") for k in (1, 2, 3)],
                      "label": ["a"] * 3 + ["b"] * 3})
    result = write_layout(table, tmp_path / "copied", mode="copy", seed=0)
    names = {os.path.basename(p) for p in result["layout_path"].to_pylist()}
    assert "s1__1.pgm" in names and "s2__1.pgm" in names
    for row in result.to_pylist():
        assert not os.path.islink(row["layout_path"])
        with open(row["layout_path"], "rb") as a, open(row["path"], "rb") as b:
            assert a.read() == b.read()


def test_refusals(labelled_duplicates, tmp_path, orl_faces):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(ImagesAsDataError, match="not written by write_layout"):
        write_layout(labelled_duplicates, foreign)
    assert (foreign / "thesis.tex").exists()
    given = split_images(labelled_duplicates, seed=0)
    splits = given["split"].to_pylist()
    rows = [i for i, g in enumerate(given["group_id"].to_pylist()) if given["group_size"][i].as_py() > 1]
    splits[rows[0]] = "val" if splits[rows[0]] == "train" else "train"
    with pytest.raises(ImagesAsDataError, match="near-duplicate groups in two splits"):
        split_images(given.set_column(given.schema.get_field_index("split"), "split", pa.array(splits)))
    unlabelled = pa.table({"path": [str(orl_faces / "s1" / "1.pgm"), str(orl_faces / "s1" / "2.pgm")], "label": ["a", None]})
    with pytest.raises(ImagesAsDataError, match=r"1 images have no label: row 2"):
        write_layout(unlabelled, tmp_path / "x")
    missing = pa.table({"path": [str(tmp_path / "gone.pgm")] * 1 + [str(orl_faces / "s1" / f"{k}.pgm") for k in (1, 2, 3)],
                        "label": ["a", "a", "b", "b"]})
    with pytest.raises(ImagesAsDataError, match="not on disk"):
        write_layout(missing, tmp_path / "y")


def test_unreadable_rows_are_left_out_with_a_warning(labelled_duplicates, tmp_path):
    errors = [None] * labelled_duplicates.num_rows
    errors[0] = "corrupt or truncated image data"
    table = labelled_duplicates.set_column(labelled_duplicates.schema.get_field_index("error"), "error", pa.array(errors, pa.string()))
    with pytest.warns(UserWarning, match="leaving out 1 images with an error"):
        result = split_images(table)
    assert result.num_rows == labelled_duplicates.num_rows - 1


def test_cli_split_with_where_and_layout(tmp_path, orl_faces):
    rows = [{"emotion": emotion, "image_id": f"{p}/{k}.pgm", "label": label, "path": str(orl_faces / p / f"{k}.pgm")}
            for emotion, p, label in (("anger", "s4", "positive"), ("anger", "s5", "negative"), ("fear", "s6", "positive"))
            for k in range(1, 6)]
    labels = tmp_path / "labels.csv"
    write_table(pa.Table.from_pylist(rows), labels)
    out = tmp_path / "split.csv"
    assert main(["split", str(labels), "--where", "emotion=anger", "--layout", str(tmp_path / "anger"),
                 "--out", str(out), "--val-fraction", "0.4"]) == 0
    table = read_table(out)
    assert set(table["emotion"].to_pylist()) == {"anger"} and table.num_rows == 10
    assert sorted(table.filter(pa.compute.equal(table["split"], "val"))["label"].to_pylist()) == ["negative"] * 2 + ["positive"] * 2
    assert len(list((tmp_path / "anger" / "val" / "positive").iterdir())) == 2
    assert main(["split", str(labels), "--where", "emotion=joy", "--out", str(out)]) == 1
