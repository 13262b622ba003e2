"""The autotag verbs of the command line, run in-process on real images (the Rekognition verbs run against a
local moto server in test_autotag_server.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from imagesasdata.cli import main
from imagesasdata.io.tables import read_table


def test_local_then_compare_then_frequencies(rekognition_examples, tmp_path, capsys):
    tags = tmp_path / "local.parquet"
    assert main(["autotag-local", str(rekognition_examples), "--out", str(tags), "--top-k", "3", "--device", "cpu",
                 "--no-progress"]) == 0
    assert "15 rows for 5 images" in capsys.readouterr().out
    table = read_table(tags)
    assert table.num_rows == 15 and table.column("label").to_pylist()[0] == "coffee mug"

    manual = tmp_path / "manual.csv"
    pa_csv.write_csv(pa.table({"image_id": ["ex_1.jpg", "ex_2.jpg", "ex_3.jpg", "ex_4.jpg", "ex_5.jpg"],
                               "mug": ["yes", "no", "no", "no", "no"]}), manual)
    metrics = tmp_path / "metrics.csv"
    per_image = tmp_path / "per_image.parquet"
    assert main(["compare-tags", str(tags), str(manual), "--positive", "coffee mug", "--positive", "cup",
                 "--manual-label", "mug", "--out", str(metrics), "--per-image", str(per_image)]) == 0
    out = capsys.readouterr().out
    assert "proxy for manual label 'yes'" in out and "true positive" in out and "recall 100.0%" in out
    accuracy = [r for r in read_table(metrics).to_pylist() if r["metric"] == "accuracy"]
    assert accuracy[0]["estimate"] == 1.0
    assert read_table(per_image).num_rows == 5

    frequencies = tmp_path / "frequencies.csv"
    assert main(["label-frequencies", str(tags), "--top-n", "2", "--out", str(frequencies)]) == 0
    assert read_table(frequencies).num_rows == 2


def test_bad_options_are_reported_not_raised(rekognition_examples, tmp_path, capsys):
    assert main(["autotag-local", str(rekognition_examples)]) == 1
    assert "--out" in capsys.readouterr().err
    assert main(["autotag-local", str(rekognition_examples), "--out", str(tmp_path / "t.parquet"), "--top-k", "0"]) == 1
    assert "top_k=0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare-tags", "tags.parquet", "manual.csv"])                     # --positive is required
