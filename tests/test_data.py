"""image_table() reads every input shape the book's users have, and check_labeled() stops bad label sets with
messages that name the rows at fault."""

import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagesasdata.data.table import check_labeled, choose_positive_class, class_names, image_table
from imagesasdata.errors import ImagesAsDataError


def test_book_layout(book_layout):
    table = image_table(book_layout)
    assert table.column_names == ["image_id", "path", "label", "split"]
    assert table.num_rows == 30
    counts = table.group_by(["split", "label"]).aggregate([("path", "count")]).to_pylist()
    assert {(r["split"], r["label"]): r["path_count"] for r in counts} == {
        ("train", "positive"): 8, ("train", "negative"): 16, ("val", "positive"): 2, ("val", "negative"): 4}
    assert "train/positive/s1_1.pgm" in table["image_id"].to_pylist()
    assert all(p.startswith("/") for p in table["path"].to_pylist())


def test_class_folders_are_unsplit(small_faces):
    table = image_table(small_faces)
    assert table.num_rows == 30
    assert set(table["label"].to_pylist()) == {"s1", "s2", "s3"}
    assert set(table["split"].to_pylist()) == {None}
    assert class_names(table) == ["s1", "s2", "s3"]


@pytest.mark.parametrize("kind", ["csv", "parquet", "pandas", "arrow"])
def test_tables_with_relative_paths(tmp_path, small_faces, kind):
    rows = {"file": [f"faces/s{p}/{k}.pgm" for p in (1, 2) for k in (1, 2)], "protest": [1, 1, 0, 0],
            "retweets": [3, 5, 8, 13]}
    if kind == "csv":
        pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
        source, root = tmp_path / "labels.csv", None
    elif kind == "parquet":
        pq.write_table(pa.table(rows), tmp_path / "labels.parquet")
        source, root = tmp_path / "labels.parquet", None
    else:
        source = pd.DataFrame(rows) if kind == "pandas" else pa.table(rows)
        root = tmp_path
    table = image_table(source, label="protest", root=root)
    assert table["label"].to_pylist() == ["1", "1", "0", "0"]
    assert table["path"][0].as_py() == str(small_faces / "s1" / "1.pgm")
    assert table["retweets"].to_pylist() == [3, 5, 8, 13]  # the user's other columns come along
    assert choose_positive_class(class_names(table)) == "1"


def test_unknown_label_column_suggests_the_right_one(tmp_path):
    with pytest.raises(ImagesAsDataError, match=r"no label column 'protst'.*Did you mean 'protest'"):
        image_table(pa.table({"path": ["a.jpg"], "protest": [1]}), label="protst")


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImagesAsDataError, match=r"no images found.*1 other files \(notes\.txt\)"):
        image_table(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(ImagesAsDataError, match="no such folder"):
        image_table(tmp_path / "nope")


def test_one_class_only(tmp_path, orl_faces):
    shutil.copytree(orl_faces / "s1", tmp_path / "positive")
    with pytest.raises(ImagesAsDataError, match=r"only one class \('positive'\).*at least two"):
        check_labeled(image_table(tmp_path))


def test_class_with_fewer_than_two_images(tmp_path, orl_faces):
    shutil.copytree(orl_faces / "s1", tmp_path / "positive")
    (tmp_path / "negative").mkdir()
    shutil.copy(orl_faces / "s2" / "1.pgm", tmp_path / "negative")
    with pytest.raises(ImagesAsDataError, match=r"fewer than 2 images: 'negative' \(1\)"):
        check_labeled(image_table(tmp_path))


def test_missing_labels_name_the_rows(orl_faces):
    table = image_table(pd.DataFrame({  # a spreadsheet with an empty cell (None) and a pandas NaN
        "path": [str(orl_faces / "s1" / f"{k}.pgm") for k in range(1, 5)],
        "label": ["positive", None, "negative", float("nan")],
    }))
    with pytest.raises(ImagesAsDataError, match=r"2 images have no label: row 2 \(.*/s1/2\.pgm\), row 4 \(.*/s1/4\.pgm\)"):
        check_labeled(table)


def test_duplicated_paths(orl_faces):
    path = str(orl_faces / "s1" / "1.pgm")
    table = image_table(pa.table({"path": [path, path, str(orl_faces / "s2" / "1.pgm")], "label": ["a", "a", "b"]}))
    with pytest.raises(ImagesAsDataError, match=r"1 paths appear more than once: .*s1/1\.pgm"):
        check_labeled(table)


def test_book_layout_without_train(tmp_path, orl_faces):
    (tmp_path / "val" / "positive").mkdir(parents=True)
    with pytest.raises(ImagesAsDataError, match="no train/ folder"):
        image_table(tmp_path)


def test_positive_class_choice():
    assert choose_positive_class(["negative", "positive"]) == "positive"
    assert choose_positive_class(["no", "yes"]) == "yes"
    assert choose_positive_class(["legend", "other"], "legend") == "legend"
    with pytest.raises(ImagesAsDataError, match="Did you mean 'legend'"):
        choose_positive_class(["legend", "other"], "legnd")


def test_an_image_keeps_its_id_whatever_it_is_read_with(orl_faces, tmp_path):
    """image_id does not depend on which other files come in the same call (batches of one corpus join)."""
    three = [str(orl_faces / "s1" / f"{k}.pgm") for k in (1, 2, 3)]
    everyone = sorted(str(p) for p in orl_faces.glob("s*/*.pgm"))
    ids_three = dict(zip(three, image_table(three)["image_id"].to_pylist()))
    ids_all = dict(zip(everyone, image_table(everyone)["image_id"].to_pylist()))
    assert all(ids_three[p] == ids_all[p] == p for p in three)        # a list: the path as written
    relative = ["s1/1.pgm", "s1/2.pgm"]
    (tmp_path / "few.csv").write_text("path\n" + "\n".join(relative) + "\n")
    (tmp_path / "many.csv").write_text("path\n" + "\n".join(relative + ["s2/1.pgm", "s3/7.pgm"]) + "\n")
    for name in ("few.csv", "many.csv"):
        table = image_table(tmp_path / name, root=orl_faces)
        assert table["image_id"].to_pylist()[:2] == relative            # a table: the path as the table writes it
    folder = image_table(orl_faces)
    assert "s1/1.pgm" in folder["image_id"].to_pylist()                 # a folder: the path below it
