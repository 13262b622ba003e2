"""The command line of issue 15: heatmaps, heatmap-layers, subgroups, embed (the same vectors as the Python API,
from another process), embedding-map, clusters, neighbours, select and add-coded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import imagesasdata as iad
from imagesasdata.cli import main
from inside_runs import faces_run

SIZE = 128


@pytest.fixture(scope="module")
def orl_files(orl_faces):
    return [str(orl_faces / f"s{p}" / f"{k}.pgm") for p in (1, 2) for k in range(1, 6)]


def cli(*args) -> subprocess.CompletedProcess:
    """A subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "imagesasdata.cli", *[str(a) for a in args]], capture_output=True,
                          text=True)


def test_embed_gives_the_vectors_of_the_python_api(orl_files, tmp_path):
    mine = iad.image_embeddings(orl_files[:3], image_size=SIZE, progress=False)
    out = tmp_path / "cli.parquet"
    result = cli("embed", "--image-size", SIZE, "--out", out, "--no-progress", *orl_files[:3])
    assert result.returncode == 0, result.stderr
    written = pq.read_table(out)
    # Another process, the same arithmetic on the same CPU: equal to float32 rounding.
    assert np.allclose(written["embedding"].to_pylist(), mine["embedding"].to_pylist(), rtol=1e-5, atol=1e-6)
    wide = tmp_path / "wide.csv"
    result = cli("embed", "--image-size", SIZE, "--out", wide, "--wide", "--no-progress", orl_files[0])
    assert result.returncode == 0, result.stderr
    row = pa_csv.read_csv(wide)
    assert row.column_names[:3] == ["image_id", "path", "dim_0001"] and row.num_columns == 2 + 1280
    # One image alone rather than in a batch of three: the convolutions may add up in another order (measured:
    # differences of about 1e-6).
    assert np.allclose([row[f"dim_{j:04d}"][0].as_py() for j in range(1, 1281)], mine["embedding"][0].as_py(),
                       rtol=1e-4, atol=1e-5)


def test_map_clusters_and_neighbours(orl_files, tmp_path, capsys):
    embeddings = tmp_path / "embeddings.parquet"
    assert main(["embed", *orl_files, "--image-size", str(SIZE), "--out", str(embeddings), "--cache",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    assert main(["embed", *orl_files, "--image-size", str(SIZE), "--out", str(embeddings), "--cache",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    assert "10 from the cache" in capsys.readouterr().out
    assert main(["embedding-map", str(embeddings), "--out", str(tmp_path / "map.csv")]) == 0
    assert pa_csv.read_csv(tmp_path / "map.csv").column_names == ["image_id", "path", "x", "y", "method"]
    assert main(["clusters", str(embeddings), "--k", "2", "--out", str(tmp_path / "clusters.parquet"),
                 "--sheets", str(tmp_path / "sheets")]) == 0
    assert len(list((tmp_path / "sheets").glob("cluster-*.png"))) == 2
    # Files named on the command line keep their paths as written as their ids.
    assert main(["neighbours", str(embeddings), "--image", orl_files[0], "--k", "2"]) == 0
    assert "s1/1.pgm" in capsys.readouterr().out
    absent = orl_files[0].replace("/s1/", "/s9/")
    assert main(["neighbours", str(embeddings), "--image", absent]) == 1
    assert f"'{absent}' are not in the embeddings" in capsys.readouterr().err


@pytest.mark.trains
def test_heatmaps_of_the_top_losses(tmp_path, capsys):
    run = faces_run()
    assert main(["heatmaps", str(run.path), "--top-losses", "3", "--out", str(tmp_path / "top"), "--no-progress"]) == 0
    written = pq.read_table(tmp_path / "top" / "heatmaps.parquet")
    assert written.num_rows == 3 and len(list((tmp_path / "top" / "overlays").glob("*.png"))) == 3
    assert main(["heatmap-layers", str(run.path)]) == 0
    assert "bn2" in capsys.readouterr().out
    assert main(["heatmaps", str(run.path), "--out", str(tmp_path / "none")]) == 1
    assert "--top-losses" in capsys.readouterr().err


@pytest.mark.trains
def test_subgroups_of_a_run(tmp_path):
    run = faces_run()
    ids = run.predictions["image_id"].to_pylist()
    metadata = tmp_path / "metadata.csv"
    pa_csv.write_csv(pa.table({"image_id": ids, "half": ["first" if i < len(ids) // 2 else "second"
                                                         for i in range(len(ids))]}), metadata)
    out = tmp_path / "by_group.csv"
    assert main(["subgroups", str(run.path), "--metadata", str(metadata), "--group", "half", "--split", "val",
                 "--min-size", "1", "--permutations", "100", "--out", str(out)]) == 0
    table = pa_csv.read_csv(out)
    assert set(table["group"].to_pylist()) == {"first", "second"}
    assert {v for v in table["interval"].to_pylist() if v} == {"wilson", "percentile_bootstrap"}   # none: no interval
    exact = tmp_path / "exact.csv"
    assert main(["subgroups", str(run.path), "--metadata", str(metadata), "--group", "half", "--split", "val",
                 "--min-size", "1", "--permutations", "100", "--confidence", "0.9", "--interval-method", "exact",
                 "--out", str(exact)]) == 0
    accuracy = [r for r in pa_csv.read_csv(exact).to_pylist() if r["metric"] == "accuracy"]
    assert {r["interval"] for r in accuracy} == {"clopper_pearson"}


@pytest.mark.trains
def test_select_then_add_coded(sample_data, tmp_path):
    run = faces_run()
    sheet = tmp_path / "sheet.csv"
    assert main(["select", str(run.path), str(sample_data / "new_images"), "--n", "3", "--sheet", str(sheet),
                 "--no-progress"]) == 0
    table = pa_csv.read_csv(sheet)
    assert table.num_rows == 3
    coded = table.set_column(2, "code", pa.array([i.split("_")[0] for i in table["image_id"].to_pylist()]))
    pa_csv.write_csv(coded, sheet)
    out = tmp_path / "training.csv"
    assert main(["add-coded", str(sample_data / "faces"), str(sheet), "--run", str(run.path), "--out", str(out)]) == 0
    assert pa_csv.read_csv(out).num_rows == 51
