"""The R package seen from Python through rpy2: R must receive exactly what the engine produced — the same rows,
R types that match the Arrow types, NA exactly where the engine had None — and the engine must receive exactly
what R sends.

R is embedded (rpy2) in a child Python process, whose reticulate then runs the engine inside that same process:
the child builds engine tables, hands them to the R package, reads the resulting R vectors back through rpy2 and
writes both sides to a JSON report that this test compares. A child process, because embedded R cannot be
unloaded again, and because of a reticulate 1.28 limit: it releases Python objects from R's garbage collector
without taking Python's GIL, which rpy2 has released while R runs, so a collection there aborts the process
(at exit too). The child therefore starts R with a heap large enough that no collection happens in its short
life (R_NSIZE, R_VSIZE; memory is only used as needed) and leaves with os._exit().
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("R") is None, reason="R is not installed (the R package needs it)")

# Runs in the child: argv = R library, run directory, broken image, report path.
CHILD = r'''
import datetime as dt, json, math, os, sys
import pyarrow as pa
import imagesasdata
import rpy2.robjects as ro
from rpy2.rinterface import NULL

library, run_dir, broken, report_path = sys.argv[1:5]
ro.r(f'.libPaths(c("{library}", .libPaths())); suppressPackageStartupMessages(library(imagesasdata))')
main = sys.modules["__main__"]
is_missing = ro.r("function(x) if (is.list(x) && !is.data.frame(x)) vapply(x, is.null, NA) else is.na(x) & !(is.double(x) & is.nan(x))")


def r_column(vector):
    """An R vector as {class, typeof, levels, values (None where NA)} read through rpy2."""
    classes = list(ro.r["class"](vector))
    if "data.frame" in classes:
        return {"class": classes, "typeof": "data.frame",
                "fields": {name: r_column(vector.rx2(name)) for name in ro.r["names"](vector)}}
    kind = ro.r["typeof"](vector)[0]
    missing = [bool(m) for m in is_missing(vector)]
    if "factor" in classes:
        values, levels = list(ro.r["as.character"](vector)), list(ro.r["levels"](vector))
    else:
        values, levels = list(vector), None
    if kind == "list":
        values = [None if value is NULL else list(value) for value in values]
    values = [None if m else v for v, m in zip(values, missing)]
    return {"class": classes, "typeof": kind, "levels": levels, "values": values}


def r_table(expression):
    tibble = ro.r(expression)
    return {"class": list(ro.r["class"](tibble)), "nrow": int(ro.r["nrow"](tibble)[0]),
            "columns": {name: r_column(tibble.rx2(name)) for name in ro.r["names"](tibble)}}


def py_table(table):
    return {"nrow": table.num_rows, "types": {f.name: str(f.type) for f in table.schema},
            "columns": {name: table[name].to_pylist() for name in table.column_names}}


report = {}


def case(name, table, r_expression):
    main.case_table = table
    report[name] = {"python": py_table(table), "r": r_table(r_expression)}


def r_named(table, kind):
    """The engine's table under the names R gives it, from the engine's schema (the one mapping): parsnip's
    predictions (predicted -> .pred_class, prob_<class> -> .pred_<class>), yardstick's metrics (.metric,
    .estimator, .estimate; f1 -> f_meas) and broom's intervals (conf.low, conf.high)."""
    from imagesasdata import schema

    if kind == "metrics" and "metric" in table.column_names:
        metric = pa.array([schema.r_metric(m) for m in table["metric"].to_pylist()], pa.string())
        table = table.set_column(table.column_names.index("metric"), "metric", metric)
        # in yardstick's order, the schema's: .metric, .estimator, .estimate first (metric_tibble() in R)
        table = table.select([c for c in schema.METRICS if c in table.column_names])
    return table.rename_columns(schema.r_names(table.column_names, kind))


def build_report():
    faces = imagesasdata.sample_data() / "faces"
    new_images = sorted(str(p) for p in (imagesasdata.sample_data() / "new_images").iterdir())[:3]
    run = imagesasdata.load_run(run_dir)
    main_r = "reticulate::import_main(convert = FALSE)$case_table"

    # Through the wrappers: the R function calls the engine itself; compare with the engine called from Python.
    case("image_table", imagesasdata.image_table(str(faces)), f'imagesasdata::image_table("{faces}")')
    case("image_table_unlabelled", imagesasdata.image_table(new_images), f'imagesasdata::image_table(c({", ".join(repr(p) for p in new_images)}))')
    images = new_images + [broken]
    case("predictions", r_named(run.predict(images, progress=False), "predictions"),
         f'predict(imagesasdata::load_cnn("{run_dir}"), c({", ".join(repr(p) for p in images)}), type = "prob")')
    # every table of the contract in R's names, renamed by the bridge through the schema (R renames nothing)
    for table, kind in (("history", "grid"), ("confusion", "confusion"), ("predictions", "predictions"),
                        ("splits", None), ("metrics", "metrics")):
        case(f"run_{table}", r_named(getattr(run, table), kind), f'imagesasdata::load_cnn("{run_dir}")${table}')

    # Straight through the bridge: every Arrow type, with None in every column, and zero rows.
    everything = pa.table({
        "i64": pa.array([1, None, -3], pa.int64()), "i32": pa.array([None, 2, 3], pa.int32()),
        "u8": pa.array([255, None, 0], pa.uint8()), "wide": pa.array([2**40, None, -(2**35)], pa.int64()),
        "f64": pa.array([1.5, None, float("nan")]), "f32": pa.array([0.25, None, -2.0], pa.float32()),
        "text": pa.array(["a", None, "NA"]), "large_text": pa.array(["é", "", None], pa.large_string()),
        "flag": pa.array([True, None, False]), "nothing": pa.array([None, None, None], pa.null()),
        "label": pa.array(["s10", "s2", None]), "coded": pa.array(["x", None, "y"]).dictionary_encode(),
        "day": pa.array([dt.date(2020, 1, 2), None, dt.date(1969, 12, 31)]),
        "when": pa.array([dt.datetime(2020, 1, 1, 12, 30), None, dt.datetime(1970, 1, 1)], pa.timestamp("ms", "UTC")),
        "tags": pa.array([["a", "b"], None, []], pa.list_(pa.string())),
        "box": pa.array([{"n": 1, "w": "x"}, None, {"n": None, "w": "z"}]),
    })
    case("all_types", everything, f'imagesasdata:::as_tibble_engine({main_r}, factors = "label")')
    case("all_types_zero_rows", everything.slice(0, 0), f'imagesasdata:::as_tibble_engine({main_r}, factors = "label")')
    case("image_table_zero_rows", imagesasdata.image_table(str(faces)).slice(0, 0),
         f'imagesasdata:::as_tibble_engine({main_r}, factors = "label")')

    # R to the engine: a data frame with NA in every column arrives with nulls there.
    ro.r("""main <- reticulate::import_main(convert = FALSE)
    main$received <- imagesasdata:::engine_table(data.frame(
      path = c("a.png", NA, "c.png"), n = c(1L, NA, 3L), x = c(0.5, NA, NaN), ok = c(NA, TRUE, FALSE),
      f = factor(c("u", "v", NA)), day = as.Date(c("2021-03-04", NA, "1960-01-01")), stringsAsFactors = FALSE))
    main$received_empty <- imagesasdata:::engine_table(data.frame(path = character(), n = integer()))""")
    report["from_r"] = py_table(main.received)
    report["from_r_empty"] = py_table(main.received_empty)

    return report


try:
    report = build_report()
    with open(report_path, "w") as handle:
        json.dump(report, handle, default=str)
    code = 0
except BaseException:
    import traceback

    traceback.print_exc()
    code = 1
sys.stdout.flush()
sys.stderr.flush()
# Skip the interpreter's exit: embedded R's exit handlers (reticulate's finalizer) abort a process that rpy2
# embeds (see the module docstring).
os._exit(code)
'''


@pytest.fixture(scope="module")
def r_library(tmp_path_factory) -> Path:
    """The R package installed from rpkg/ into a temporary library (nothing else on the machine changes)."""
    library = tmp_path_factory.mktemp("rlib")
    result = subprocess.run(["R", "CMD", "INSTALL", "--no-docs", "--no-html", "--no-multiarch", "-l", str(library),
                             str(REPOSITORY / "rpkg")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return library


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real run directory from a tiny fine-tune on the sample faces."""
    import imagesasdata

    out = tmp_path_factory.mktemp("run")
    imagesasdata.finetune(imagesasdata.sample_data() / "faces", out=out, image_size=64, epochs=1, progress=False)
    return out


@pytest.fixture(scope="module")
def report(r_library, run_dir, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("child")
    broken = folder / "broken.png"
    broken.write_text("not an image")
    script, report_path = folder / "child.py", folder / "report.json"
    script.write_text(CHILD)
    environment = dict(os.environ, R_NSIZE="20000000", R_VSIZE="2G")  # no garbage collection: see the docstring
    result = subprocess.run([sys.executable, str(script), str(r_library), str(run_dir), str(broken), str(report_path)],
                            capture_output=True, text=True, timeout=600, cwd=folder, env=environment)
    assert result.returncode == 0 and report_path.exists(), result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(report_path.read_text())


# What R type each Arrow type must become.
def expected_r_type(arrow_type: str, values: list, factor: bool) -> tuple[str, str]:
    """(class, typeof) that R must give a column of this Arrow type."""
    if factor or arrow_type.startswith("dictionary"):
        return "factor", "integer"
    if arrow_type in ("int8", "int16", "int32", "uint8", "uint16") or arrow_type in ("int64", "uint32", "uint64") and \
            all(v is None or abs(v) < 2**31 for v in values):
        return "integer", "integer"
    if arrow_type.startswith(("int", "uint", "double", "float", "halffloat")):
        return "numeric", "double"
    if arrow_type in ("string", "large_string"):
        return "character", "character"
    if arrow_type == "bool" or arrow_type == "null":
        return "logical", "logical"
    if arrow_type.startswith("date32"):
        return "Date", "double"
    if arrow_type.startswith("timestamp"):
        return "POSIXct", "double"
    if arrow_type.startswith("list"):
        return "list", "list"
    if arrow_type.startswith("struct"):
        return "tbl_df", "data.frame"
    raise AssertionError(f"no expectation for {arrow_type}")


def as_r_value(arrow_type: str, value):
    """The value R must hold for an engine value (None stays None: R must have NA there)."""
    if value is None:
        return None
    if arrow_type.startswith("date32"):
        import datetime as dt

        return (dt.date.fromisoformat(str(value)) - dt.date(1970, 1, 1)).days
    if arrow_type.startswith("timestamp"):
        import datetime as dt

        stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return stamp.timestamp()
    return value


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_same_table(case: dict, factors=("label", "predicted", ".pred_class", "truth")):
    python, r = case["python"], case["r"]
    assert "tbl_df" in r["class"]
    assert r["nrow"] == python["nrow"]
    assert list(r["columns"]) == list(python["columns"])          # same columns, same order
    for name, values in python["columns"].items():
        arrow_type, column = python["types"][name], r["columns"][name]
        r_class, r_typeof = expected_r_type(arrow_type, values, name in factors)
        assert r_class in column["class"] and column["typeof"] == r_typeof, (name, arrow_type, column["class"])
        if r_typeof == "data.frame":
            for field, field_column in column["fields"].items():
                expected = [None if row is None else row[field] for row in values]
                assert field_column["values"] == expected, (name, field)
            continue
        expected = [as_r_value(arrow_type, v) for v in values]
        got = column["values"]
        assert len(got) == len(expected), name
        for row, (a, b) in enumerate(zip(got, expected)):
            if arrow_type.startswith("timestamp") and a is not None and b is not None:
                assert abs(a - b) < 1e-6, (name, row, a, b)
            else:
                assert same(a, b), (name, row, a, b)               # includes None exactly where None
        if r_class == "factor":
            present = [v for v in values if v is not None]
            assert set(present) <= set(column["levels"]), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["image_table", "image_table_unlabelled", "predictions", "run_metrics", "run_history",
                                  "run_confusion", "run_predictions", "run_splits", "all_types", "all_types_zero_rows",
                                  "image_table_zero_rows"])
@pytest.mark.trains
def test_r_receives_exactly_what_the_engine_produced(report, name):
    assert_same_table(report[name])


@pytest.mark.trains
@pytest.mark.slow
def test_labels_are_factors_in_the_run_class_order(report, run_dir):
    import imagesasdata

    classes = imagesasdata.load_run(run_dir).classes
    assert report["run_predictions"]["r"]["columns"]["label"]["levels"] == classes
    assert report["run_confusion"]["r"]["columns"]["truth"]["levels"] == classes
    assert report["predictions"]["r"]["columns"][".pred_class"]["levels"] == classes
    # image_table: the classes present, in natural order
    assert report["image_table"]["r"]["columns"]["label"]["levels"] == [f"s{k}" for k in range(1, 7)]
    assert report["all_types"]["r"]["columns"]["label"]["levels"] == ["s2", "s10"]


@pytest.mark.trains
@pytest.mark.slow
def test_an_unreadable_image_is_a_row_with_its_error_and_na_predictions(report):
    columns = report["predictions"]["r"]["columns"]
    assert columns[".pred_class"]["values"][-1] is None
    assert all(v is None for k, c in columns.items() if k.startswith(".pred_") for v in c["values"][-1:])
    assert "not an image" in columns["error"]["values"][-1]
    assert columns["error"]["values"][:-1] == [None, None, None]
    assert all(v is not None for v in columns[".pred_class"]["values"][:-1])


@pytest.mark.trains
@pytest.mark.slow
def test_zero_row_tables_keep_columns_and_types(report):
    r = report["image_table_zero_rows"]["r"]
    assert r["nrow"] == 0
    assert list(r["columns"]) == ["image_id", "path", "label", "split"]
    assert r["columns"]["label"]["class"] == ["factor"]
    assert r["columns"]["split"]["typeof"] == "character"


@pytest.mark.trains
@pytest.mark.slow
def test_the_engine_receives_exactly_what_r_sent(report):
    received = report["from_r"]
    assert received["types"] == {"path": "string", "n": "int32", "x": "double", "ok": "bool", "f": "string",
                                 "day": "date32[day]"}
    columns = received["columns"]
    assert columns["path"] == ["a.png", None, "c.png"]
    assert columns["n"] == [1, None, 3]
    assert columns["x"][:2] == [0.5, None] and math.isnan(columns["x"][2])
    assert columns["ok"] == [None, True, False]
    assert columns["f"] == ["u", "v", None]
    assert columns["day"] == ["2021-03-04", None, "1960-01-01"]
    assert report["from_r_empty"] == {"nrow": 0, "types": {"path": "string", "n": "int32"},
                                      "columns": {"path": [], "n": []}}


def test_positive_class_is_the_engines_default_of_two_classes():
    """R lists this class first in a labelled table's factor, so that R's rule (the first level is the positive
    class) agrees with the engine's default for the same labels."""
    from imagesasdata.interop import bridge

    assert bridge.positive_class(["negative", "positive"]) == "positive"
    assert bridge.positive_class(["legend", "other"]) == "other"
    assert bridge.positive_class("s1") is None
    assert bridge.positive_class(["s1", "s2", "s3"]) is None
