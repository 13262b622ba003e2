"""The engine side of the R bridge: Arrow tables travel to and from R as plain Python lists plus a type word.

Why not numpy or pandas: Debian 12's reticulate (1.28) hands numpy 2 arrays and pandas 3 data frames back to R
unconverted, and every reticulate turns a Python list holding None into an R list. A homogeneous list of bool,
int, float or str, on the other hand, becomes an R vector in every reticulate. So each column is sent as

    {"type": "integer", "values": [...no None...], "missing": [0-based rows that are null], ...}

and rpkg/R/bridge.R rebuilds the exact R type (integer, double, character, logical, factor, Date, POSIXct,
list and data-frame columns), with NA at the missing rows. Zero-row tables keep their columns and types.

    to_r(table, factors, kind)  Arrow table → {"nrow", "names", "columns"} for R's as_tibble_engine(), the columns
                          in R's names for that kind of table (schema.r_names: .pred_class, .metric, conf.low, ...)
    from_r(encoded, kind) the same shape built by R's engine_table() → Arrow table (None where R had NA), R's names
                          back in the engine's
    schema()              the engine/R contract (schema.describe()) for R's tests
    rank(results, metric) a grid's configurations best first by the engine's one selection rule
    grid_metrics(...)     a grid's metrics in long form: tune's collect_metrics() and show_best() shapes
    r_record(d, kind)     a dict's keys in R's names (a learning curve's last step)
    engine_formula(text), r_terms(terms, used)
                          R's formula in the engine's spelling, the engine's term names in R's
    prediction_classes(t) the classes of a predictions table (its prob_<class> columns)
    engine_column(name), engine_metric(name)
                          R's name of a column or a metric in the engine's
    call(fn, ...)         run an engine function; an exception comes back as data R turns into a condition, and
                          the engine's warnings as messages R turns into warnings
    printed(fn, ...)      run fn and keep what it prints, for R to show as a message
    thumbnails(paths)     small RGB thumbnails as a long pixel table, for galleries drawn with ggplot2
    headline(metrics)     the metrics a person reads first, on one line (R's print methods)
    integer_options()     the fine-tuning options that take whole numbers (R converts them with as.integer)
    positive_class(c)     the engine's default positive class of two classes (R lists it first in a factor)
    labelled_table(path)  a labelling's finished rows (a folder, or an s3:// prefix)
    cluster_work(result)  where a labelling's or a grid's last call on Ray ran, as plain lists (R's print, glance)
    shutdown()            end this process's Ray session (R calls it as it exits)

R calls only the engine's public functions (imagesasdata.<name>) and the functions of this module.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import traceback
import warnings as _warnings

import pyarrow as pa
import pyarrow.compute as pc

from .. import schema as _schema
from ..errors import ImagesAsDataError, ImagesAsDataWarning

# Warnings raised from files in the engine's package are its own, written for people.
_PACKAGE_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# R's integer is 32-bit with its smallest value reserved for NA; wider integers travel as doubles.
R_INT_MAX = 2**31 - 1
# Filler for null slots, so every values list is homogeneous (R restores NA from "missing").
FILLERS = {"logical": False, "integer": 0, "double": 0.0, "character": "", "factor": 1, "date": 0, "datetime": 0.0}


# ------------------------------------------------------------------------------------------ engine → R

def to_r(data, factors=None, kind=None) -> dict:
    """Encode a table (Arrow, pandas, dict of columns, or anything `tables.to_arrow` reads) for R.

    factors: {column: levels or None} — columns to send as R factors, levels in the given order (the run's class
      order); None means the values present in natural sort order (s2 before s10). Values missing from the given
      levels are added after them, so no value is ever lost to NA. Columns are named by the engine's names.
    kind: which kind of table (schema.KINDS: "predictions", "metrics", "confusion", "coefficients", "prevalence",
      "grid"): its columns travel in R's names (schema.r_names), metric names in yardstick's (f1 → f_meas).
      Every kind renames the prediction columns (predicted → .pred_class, prob_<class> → .pred_<class>); None
      (a table outside the contract, e.g. calibration bins) renames nothing.
    Returns {"nrow", "names", "columns"} (encode_column()'s dicts). Raises ImagesAsDataError for a table it cannot
    read or a column type R cannot receive.
    """
    from ..io.tables import to_arrow

    table = to_arrow(data)
    if kind in ("metrics", "grid", "grid_metrics") and "metric" in table.column_names:
        position = table.column_names.index("metric")
        metric = table["metric"]
        if pa.types.is_string(metric.type) or pa.types.is_large_string(metric.type):
            renamed = pa.array([_schema.r_metric(v) for v in metric.to_pylist()], pa.string())
            table = table.set_column(position, "metric", renamed)
    # Naming a factor column the table lacks is harmless (e.g. 'label' in unlabelled predictions).
    factors = {_schema.engine_column(str(k), kind): v for k, v in dict(factors or {}).items()}
    columns = []
    for name in table.column_names:
        if name in factors:
            columns.append(encode_factor(table[name], factors[name]))
        else:
            columns.append(encode_column(table[name], name))
    return {"nrow": table.num_rows, "names": _schema.r_names(table.column_names, kind), "columns": columns}


def encode_column(column, name: str = "") -> dict:
    """Return one Arrow column (Array or ChunkedArray) as {"type", "values", "missing", ...} for R.
    Raises ImagesAsDataError for an Arrow type the bridge cannot convert (name it by `name`)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if pa.types.is_dictionary(kind):  # Arrow's own factor: keep its level order
        return encode_factor(column, [str(v) for v in column.dictionary.to_pylist()])
    if pa.types.is_null(kind):
        return _plain("logical", [None] * len(column))
    if pa.types.is_boolean(kind):
        return _plain("logical", column.to_pylist())
    if pa.types.is_integer(kind):
        values = column.to_pylist()
        wide = any(v is not None and not -R_INT_MAX <= v <= R_INT_MAX for v in values)
        return _plain("double", [None if v is None else float(v) for v in values]) if wide else _plain("integer", values)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _plain("double", [None if v is None else float(v) for v in column.to_pylist()])
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _plain("character", column.to_pylist())
    if pa.types.is_date(kind):
        days = column.cast(pa.date32()).cast(pa.int32()).to_pylist()
        return _plain("date", days)
    if pa.types.is_timestamp(kind):
        seconds = pc.divide(column.cast(pa.timestamp("us", kind.tz)).cast(pa.int64()).cast(pa.float64()), 1e6)
        encoded = _plain("datetime", seconds.to_pylist())
        encoded["tz"] = kind.tz or ""
        return encoded
    if pa.types.is_duration(kind):
        seconds = pc.divide(column.cast(pa.duration("us")).cast(pa.int64()).cast(pa.float64()), 1e6)
        return _plain("double", seconds.to_pylist())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        # Arrow's layout: one flat child column plus each row's length (a null row has length 0 and is missing).
        # flatten() honours slicing and skips the values behind null lists.
        encoded = _plain("list", pc.list_value_length(column).to_pylist())
        encoded["lengths"] = encoded.pop("values")
        encoded["child"] = encode_column(column.flatten(), name)
        return encoded
    if pa.types.is_struct(kind):
        fields = [kind.field(i).name for i in range(kind.num_fields)]
        children = [encode_column(pc.struct_field(column, [i]), f) for i, f in enumerate(fields)]
        missing = [i for i, valid in enumerate(column.is_valid().to_pylist()) if not valid]
        for child in children:  # a null struct has null fields, whatever Arrow holds behind them
            child["missing"] = sorted(set(child["missing"]) | set(missing))
        return {"type": "struct", "names": fields, "children": children, "missing": missing}
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _plain("character", [None if v is None else v.hex() for v in column.to_pylist()])
    raise ImagesAsDataError(f"column {name!r} has Arrow type {kind}, which the R bridge cannot convert yet; "
                            "cast it to a string, number or list column first")


def encode_factor(column, levels=None) -> dict:
    """Return a string-like column as an R factor: {"type": "factor", "values" (1-based codes into `levels`),
    "missing", "levels"} (levels None: the values present, naturally sorted; values not in `levels` are added
    after them)."""
    from ..data.table import natural_key

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    values = [None if v is None else str(v) for v in column.to_pylist()]
    present = sorted({v for v in values if v is not None}, key=natural_key)
    levels = [str(level) for level in levels] if levels is not None else present
    levels += [v for v in present if v not in set(levels)]
    index = {level: i + 1 for i, level in enumerate(levels)}
    encoded = _plain("factor", [None if v is None else index[v] for v in values])
    encoded["levels"] = levels
    return encoded


def _plain(kind: str, values: list) -> dict:
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        filler = FILLERS.get(kind, 0)
        values = [filler if v is None else v for v in values]
    return {"type": kind, "values": values, "missing": missing}


# ------------------------------------------------------------------------------------------ R → engine

ARROW_TYPES = {"logical": pa.bool_(), "integer": pa.int32(), "double": pa.float64(), "character": pa.string(),
               "factor": pa.string(), "date": pa.date32()}


def from_r(encoded: dict, kind=None) -> pa.Table:
    """Return the Arrow table R's engine_table() described; rows listed in "missing" become nulls. R's column
    names (.pred_class, .pred_<class>, and those of `kind`) come back in the engine's (schema.engine_names).
    Raises ImagesAsDataError for a column of the wrong length or an R type the engine cannot receive."""
    names = _schema.engine_names(list(encoded["names"]), kind)
    nrow = int(encoded["nrow"])
    arrays = []
    for name, column in zip(names, encoded["columns"]):
        arrays.append(decode_column(column, nrow, name))
    table = pa.table(dict(zip(names, arrays))) if names else pa.table({})
    if kind in ("metrics", "grid", "grid_metrics") and "metric" in table.column_names:
        metric = [_schema.engine_metric(v) for v in table["metric"].to_pylist()]
        table = table.set_column(table.column_names.index("metric"), "metric", pa.array(metric, pa.string()))
    return table


def decode_column(column: dict, nrow: int, name: str = "") -> pa.Array:
    """Return the Arrow array of one column R encoded ({"type", "values", "missing", "levels", "tz"}).
    Raises ImagesAsDataError when it does not hold `nrow` values or its R type cannot be sent to the engine."""
    kind = column["type"]
    values = _as_list(column.get("values"))
    if len(values) != nrow:
        raise ImagesAsDataError(f"column {name!r} has {len(values)} values for {nrow} rows")
    for row in _as_list(column.get("missing")):
        values[int(row)] = None
    if kind == "factor":
        levels = [str(v) for v in _as_list(column.get("levels"))]
        return pa.array([None if v is None else levels[int(v) - 1] for v in values], pa.string())
    if kind == "datetime":
        tz = column.get("tz") or None
        stamps = [None if v is None else _dt.datetime.fromtimestamp(float(v), _dt.timezone.utc) for v in values]
        return pa.array(stamps, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz or "UTC"))
    if kind == "date":
        epoch = _dt.date(1970, 1, 1)
        return pa.array([None if v is None else epoch + _dt.timedelta(days=int(v)) for v in values], pa.date32())
    if kind not in ARROW_TYPES:
        raise ImagesAsDataError(f"column {name!r}: R type {kind!r} cannot be sent to the engine; convert it to "
                                "character, numeric, logical, factor or Date first")
    if kind == "integer":
        values = [None if v is None else int(v) for v in values]
    elif kind == "double":
        values = [None if v is None else float(v) for v in values]
    elif kind == "logical":
        values = [None if v is None else bool(v) for v in values]
    else:
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, ARROW_TYPES[kind])


def _as_list(values) -> list:
    """R hands over a length-one vector as a scalar and an empty one as an empty list; make both lists."""
    if values is None:
        return []
    if isinstance(values, (list, tuple)):
        return list(values)
    return [values]


# ------------------------------------------------------------------------------------------ calls and errors

class Outcome:
    """What an engine call produced: `value`, or `error` = {"type", "message" (as Python shows it), "r_message" (the
    same message spelt for R: schema.render), "engine", "traceback", "fields" (for R)}; `warnings`: the texts of the
    engine's own warnings (for people: rows left out, unbalanced classes, ...), spelt for R."""

    def __init__(self, value=None, error=None, warnings=()):
        self.value = value
        self.error = error
        self.warnings = list(warnings)


def call(function, *args, **kwargs) -> Outcome:
    """Run `function`; any Exception is caught and described, so R can raise its own condition with the message
    the engine wrote for people (ImagesAsDataError) instead of a wall of traceback. Ctrl-C is not caught.

    Warnings raised by the engine's own code travel with the outcome, so that R shows them as R warnings (a
    Python warning printed to stderr is lost in R Markdown and cannot be caught); warnings from other libraries
    are shown as Python would have shown them.
    Returns an Outcome (value, or error; warnings). Raises nothing but what is not an Exception (KeyboardInterrupt).
    """
    with _warnings.catch_warnings(record=True) as caught:
        try:
            outcome = Outcome(value=function(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 — every engine failure must reach R as a condition
            outcome = Outcome(error={
                "type": type(error).__name__,
                "message": str(error) or type(error).__name__,
                "r_message": (error.message_for("r") if isinstance(error, ImagesAsDataError) else str(error))
                or type(error).__name__,
                "engine": isinstance(error, ImagesAsDataError),
                "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
                # what R builds its condition from (ImagesAsDataError.FIELDS), rather than the message's wording
                "fields": error.fields("r") if isinstance(error, ImagesAsDataError) else {},
            })
    for warning in caught:
        if str(warning.filename).startswith(_PACKAGE_FOLDER):
            message = warning.message
            outcome.warnings.append(message.message_for("r") if isinstance(message, ImagesAsDataWarning)
                                    else str(message))
        else:
            _warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return outcome


def printed(function, *args, **kwargs) -> dict:
    """Return {"value": function(...), "output": what it printed}: R shows the text as a message (which R Markdown
    and suppressMessages() handle) instead of Python writing to the console behind R's back. Raises what
    `function` raises."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        value = function(*args, **kwargs)
    return {"value": value, "output": buffer.getvalue()}


def run_tables(run, names=("history", "metrics", "calibration", "confusion", "predictions", "splits", "skipped")) -> dict:
    """Return {name: to_r() encoding} of those of a run's tables (`names`) that it has, labels as factors in the
    run's class order, in one call."""
    classes = run.classes
    labels = {"label": classes, "predicted": classes, "truth": classes}
    out = {}
    for name in names:
        path = run.path / f"{name}.parquet"
        if path.exists():
            table = getattr(run, name)
            kind = {"metrics": "metrics", "calibration": "metrics", "confusion": "confusion",
                    "predictions": "predictions", "history": "grid"}.get(name)
            out[name] = to_r(table, {k: v for k, v in labels.items() if k in table.column_names}, kind)
    return out


def headline(metrics: pa.Table, split: str | None = None) -> str:
    """Return measure.metrics.headline() of a metrics table (R sends it with engine_table(kind = "metrics")): the
    estimator that heads it."""
    from ..measure.metrics import headline as engine_headline

    return engine_headline(metrics, split)


def schema() -> dict:
    """Return the engine/R contract as plain data: tables, kinds, R's names (schema.describe())."""
    return _schema.describe()


def rank(results: pa.Table, metric: str) -> list[int]:
    """Return the 1-based positions of a grid's configurations, best first on `metric` ("accuracy", "f1", "loss";
    R's f_meas and mn_log_loss too) by the engine's one selection rule (schema.selection_score)."""
    return [i + 1 for i in _schema.rank(results.to_pylist(), _schema.engine_metric(str(metric)))]


def grid_metrics(results: pa.Table, parameters, n_classes: int, metric: str | None = None) -> pa.Table:
    """Return a grid's validation metrics in long form, in the engine's names (to_r(kind="grid_metrics") gives R
    tune's): without `metric`, one row per configuration and metric (schema.GRID_LONG, the options after config_id:
    collect_metrics()'s shape); with `metric` (the engine's or yardstick's name), the finished configurations best
    first by the one selection rule (schema.GRID_BEST after the options: show_best()'s shape, the estimate as
    `mean`). The estimator is schema.headline_estimator's for `n_classes`. Raises nothing for a metric the results
    lack (its values are null)."""
    rows = results.to_pylist()
    parameters = [str(p) for p in (parameters or [])]

    def values(row, name):
        column = f"val_{name}"
        return row.get(column), row.get(f"{column}_lower"), row.get(f"{column}_upper")

    if metric is None:
        out = []
        for row in rows:
            for name in _schema.GRID_METRICS:
                estimate, lower, upper = values(row, name)
                out.append({"config_id": row.get("config_id"), **{p: row.get(p) for p in parameters}, "metric": name,
                            "estimator": _schema.headline_estimator(n_classes, name), "estimate": estimate,
                            "lower": lower, "upper": upper, "best_epoch": row.get("best_epoch"),
                            "status": row.get("status")})
        names = ["config_id", *parameters, *_schema.GRID_LONG[1:]]
    else:
        name = _schema.engine_metric(str(metric))
        finished = [r for r in rows if r.get("status") == "complete"]
        out = []
        for position in _schema.rank(finished, name):
            row = finished[position]
            estimate, lower, upper = values(row, name)
            out.append({**{p: row.get(p) for p in parameters}, "metric": name,
                        "estimator": _schema.headline_estimator(n_classes, name), "mean": estimate, "lower": lower,
                        "upper": upper, "config_id": row.get("config_id")})
        names = [*parameters, *_schema.GRID_BEST]
    columns = {n: [r[n] for r in out] for n in names}
    types = {n: results.schema.field(n).type for n in names if n in results.column_names}
    for n in ("estimate", "mean", "lower", "upper"):
        types[n] = pa.float64()
    return pa.table({n: pa.array(columns[n], types.get(n)) for n in names})


def r_record(record: dict, kind: str) -> dict:
    """Return a record the engine returns as a dict (a learning curve's last step, ...) with its keys in R's names
    for `kind` (schema.r_column: conf_low -> conf.low)."""
    return {_schema.r_column(str(k), kind): v for k, v in dict(record).items()}


def engine_formula(text: str) -> str:
    """Return an R formula's text in the engine's spelling (schema.engine_formula)."""
    return _schema.engine_formula(str(text))


def r_terms(terms, used) -> list[str]:
    """Return the engine's term names in R's spelling for a formula that names the variables `used`
    (schema.r_terms)."""
    return _schema.r_terms([str(t) for t in terms], [str(u) for u in used])


def gold_design_json(sample: pa.Table) -> str:
    """Return a gold sample's design (strata, inclusion probabilities) as JSON text, which R keeps as an attribute
    of its tibble."""
    from ..analysis.gold import design_json

    return design_json(sample)


def with_gold_design(table: pa.Table, design: str) -> pa.Table:
    """Return a gold sample R sends back with its design (from gold_design_json()) in the table's metadata again."""
    from ..analysis.gold import with_design

    return with_design(table, design)


def calibration_json(table) -> str:
    """Return what calibrate_to_corpus() did to a table as JSON text ("" when nothing), which R keeps as an
    attribute of its tibble."""
    from ..analysis.calibration import calibration_json as record_json

    return record_json(table)


def calibration_note(table) -> str | None:
    """Return the one-line note saying how a table's probabilities were calibrated to the corpus (None: not)."""
    from ..analysis.calibration import calibration_note as note, calibration_record

    return note(calibration_record(table))


def with_calibration(table: pa.Table, text: str) -> pa.Table:
    """Return a corpus R sends back with its calibration record (from calibration_json()) in its metadata again."""
    from ..analysis.calibration import with_calibration as restore

    return restore(table, text)


def integer_options() -> list[str]:
    """Return the names of the fine-tuning options (TrainConfig fields) whose values are whole numbers."""
    import dataclasses

    from ..train.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig) if "int" in str(f.type)]


def positive_class(classes) -> str | None:
    """Return the positive class the engine chooses by default for these classes (data.table.choose_positive_class):
    "positive" if there is one, else the second; None unless there are exactly two. R puts it first among a
    labelled table's factor levels, where R's rule (the first level is the positive class) then finds it."""
    from ..data.table import choose_positive_class

    classes = [str(c) for c in _as_list(classes)]
    return choose_positive_class(classes) if len(classes) == 2 else None


def labelled_table(path, endpoint_url=None) -> pa.Table:
    """Return every finished row of the labelling at `path` (its folder, or its s3:// prefix) as a table.
    Raises ImagesAsDataError when `path` is not a labelling."""
    from ..infer.labelling import load_labelling

    return load_labelling(path, endpoint_url=endpoint_url).table


def cluster_work(result) -> dict | None:
    """Return where a Labelling's or a Grid's last call on Ray ran, as lists R converts to vectors: unit ("images"
    or "trials"), workers_are ("model replicas" or "trials"), nodes (alive when it started), workers (a count, or
    None), node and count (work finished per node), nodes_lost, retried (what Ray ran again, and why). Returns None
    for a result that did not run on Ray. Raises nothing."""
    from ..infer.labelling import cluster_summary

    cluster = getattr(result, "cluster", None)
    if cluster is None:
        return None
    labelling = isinstance(cluster, dict)
    record = cluster_summary(cluster) if labelling else cluster.as_dict()
    if record is None:
        return None
    workers = record.get("workers")
    return {"unit": "images" if labelling else "trials",
            "workers_are": "model replicas" if labelling else "trials",
            "nodes": [str(n) for n in record["nodes"]], "workers": None if workers is None else int(workers),
            "node": [str(n) for n in record["by_node"]], "count": [int(n) for n in record["by_node"].values()],
            "nodes_lost": [str(n) for n in record["nodes_lost"]], "retried": [str(r) for r in record["retried"]]}


def shutdown() -> None:
    """End this process's Ray session, if it has one: Ray's threads must stop before an embedding R finalises
    Python, or the process crashes on its way out. Returns None."""
    import sys

    if "imagesasdata.scale.cluster" in sys.modules:
        sys.modules["imagesasdata.scale.cluster"].disconnect()


# ------------------------------------------------------------------------------------------ thumbnails

def thumbnails(paths, max_side: int = 96) -> pa.Table:
    """Return images shrunk to fit `max_side` (io.sheets.thumbnail) as a long table: image (1-based position in
    `paths`), path, x, y (1 = top row), colour ('#rrggbb'), error. ggplot2's geom_raster draws it. Raises nothing
    for a bad image: an unreadable one is one row with its error.
    """
    from ..io.sheets import thumbnail

    columns = {"image": [], "path": [], "x": [], "y": [], "colour": [], "error": []}
    for position, path in enumerate([str(p) for p in _as_list(paths)], start=1):
        try:
            image = thumbnail(path, int(max_side))
        except Exception as error:  # noqa: BLE001 — one bad image must not spoil a gallery
            for key, value in (("image", position), ("path", path), ("x", None), ("y", None), ("colour", None),
                               ("error", str(error) or type(error).__name__)):
                columns[key].append(value)
            continue
        width, height = image.size
        pixels = image.tobytes()
        colours = [f"#{pixels[i]:02x}{pixels[i + 1]:02x}{pixels[i + 2]:02x}" for i in range(0, len(pixels), 3)]
        count = width * height
        columns["image"] += [position] * count
        columns["path"] += [path] * count
        columns["x"] += [i % width + 1 for i in range(count)]
        columns["y"] += [i // width + 1 for i in range(count)]
        columns["colour"] += colours
        columns["error"] += [None] * count
    return pa.table({
        "image": pa.array(columns["image"], pa.int32()), "path": pa.array(columns["path"], pa.string()),
        "x": pa.array(columns["x"], pa.int32()), "y": pa.array(columns["y"], pa.int32()),
        "colour": pa.array(columns["colour"], pa.string()), "error": pa.array(columns["error"], pa.string()),
    })


def standin_vlm(key_file=None, **options):
    """Start the stand-in VLM server (autotag/standin_vlm.py: not a model) on 127.0.0.1, for R's examples, tests
    and vignette. Returns the server; its base URL is the attribute `url`. key_file: a CSV with path and codes
    (standin_vlm.read_key)."""
    from ..autotag.standin_vlm import StandinVLM, read_key

    server = StandinVLM(read_key(key_file) if key_file else {}, **options)
    server.url = server.start()
    return server
def engine_column(name: str, kind: str | None = None) -> str:
    """Return the engine's name of one of R's column names (schema.engine_column: .pred_class → predicted)."""
    return _schema.engine_column(str(name), kind)


def prediction_classes(predictions: pa.Table) -> list[str]:
    """Return the classes of a predictions table in its column order: those of its prob_<class> columns
    (schema.PROBABILITY_PREFIX)."""
    prefix = _schema.PROBABILITY_PREFIX
    return [n[len(prefix):] for n in predictions.column_names if n.startswith(prefix) and len(n) > len(prefix)]


def engine_metric(name: str) -> str:
    """Return the engine's name of one of yardstick's metric names (schema.engine_metric: f_meas → f1)."""
    return _schema.engine_metric(str(name))


def metrics_at(predictions: pa.Table, classes, positive_class=None, confidence: float = 0.95, splits=None,
               truth: str = "label") -> pa.Table:
    """Return the metrics of a predictions table (truth column vs `predicted`) at another confidence level, per
    split (those in `splits`, in that order; None: one table without a split column). R's tidy(conf.level =) uses
    it; the intervals are computed as the fit's own (measure.metrics.classification_metrics)."""
    from ..measure.metrics import classification_metrics

    classes = [str(c) for c in _as_list(classes)]
    truth_values = predictions[truth].to_pylist()
    predicted = predictions["predicted"].to_pylist()
    split_values = predictions["split"].to_pylist() if splits is not None else [None] * predictions.num_rows
    tables = []
    for split in (_as_list(splits) if splits is not None else [None]):
        rows = [i for i, s in enumerate(split_values) if s == split and truth_values[i] is not None
                and predicted[i] is not None]
        table = classification_metrics([str(truth_values[i]) for i in rows], [str(predicted[i]) for i in rows],
                                       classes, positive_class if len(classes) == 2 else None,
                                       confidence=float(confidence))
        if split is not None:
            table = table.add_column(0, "split", pa.array([split] * table.num_rows, pa.string()))
        tables.append(table)
    return pa.concat_tables(tables)


def roc_auc_rows(run, splits) -> pa.Table:
    """Return rows of a metrics table (schema.METRICS) with the area under the ROC curve of a binary run on each
    split: metric "roc_auc", estimator "binary", class the positive class, n the images; no interval.
    Raises ImagesAsDataError for a run that is not binary or lacks a split's predictions."""
    from ..analysis.thresholds import roc_auc, run_predictions, threshold_curves

    rows = []
    for split in _as_list(splits):
        truth, probability, _, positive = run_predictions(run, str(split), False)
        rows.append({"split": str(split), "metric": "roc_auc", "estimator": "binary", "class": positive,
                     "estimate": roc_auc(threshold_curves(truth, probability, positive)), "n": len(truth),
                     "lower": None, "upper": None, "interval": None})
    types = {"split": pa.string(), "metric": pa.string(), "estimator": pa.string(), "class": pa.string(),
             "estimate": pa.float64(), "n": pa.int64(), "lower": pa.float64(), "upper": pa.float64(),
             "interval": pa.string()}
    return pa.table({k: pa.array([r[k] for r in rows], t) for k, t in types.items()})


def curve_auc(curves: pa.Table) -> float:
    """Return the area under the ROC curve of threshold curves R holds (analysis.thresholds.roc_auc)."""
    from ..analysis.thresholds import roc_auc

    return roc_auc(curves)
