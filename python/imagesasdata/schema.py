"""The contract between the engine and its interfaces: the columns of every table that crosses the engine/R
boundary, the rules both sides share (which estimator is the headline, which configuration is best), and R's name
for each column. Beside `errors`, at the bottom of the layers: it imports nothing of the engine.

The engine's tables use the book's vocabulary (`predicted`, `prob_<class>`, `f1`, `std_error`); R receives them in
tidymodels' names (parsnip's `.pred_class`/`.pred_<class>`, yardstick's `.metric`/`.estimator`/`.estimate` and
`f_meas`, broom's `std.error`/`p.value`/`conf.low`/`conf.high`). The bridge (`interop/bridge.py`) renames through
`r_names()` on the way out and `engine_names()` on the way in, so R renames nothing.

Intervals are broom's `conf.low`/`conf.high` in R everywhere: on metrics (the engine's `lower`/`upper`), on
coefficients and on prevalence estimates (the engine's `conf_low`/`conf_high`); the method of a metric's interval
stays in `interval`.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------------ the engine's columns

PREDICTED = "predicted"
PROBABILITY_PREFIX = "prob_"

#: A predictions table (model/inference.predictions_table and everything that extends it); `prob_<class>` per class.
PREDICTIONS = ("image_id", "path", "label", "split", PREDICTED, "error")
#: A metrics table (measure/metrics.py): one row per metric, estimator and class, with its interval.
METRICS = ("metric", "estimator", "estimate", "split", "class", "n", "lower", "upper", "interval")
#: A confusion table, long form.
CONFUSION = ("split", "truth", PREDICTED, "count")
#: Coefficients of a corrected regression, one row per term and method (analysis/estimators.py).
COEFFICIENTS = ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "method", "lambda",
                "df", "flag")
#: Corrected prevalence, one row per class and method.
PREVALENCE = ("class", "method", "estimate", "std_error", "conf_low", "conf_high", "n_corpus", "n_gold", "interval")
#: A gold-sample plan (analysis/planner.py), one row per design.
GOLD_PLAN = ("design", "strata", "gold_size", "expected_width", "gold_only_width", "target_width", "reaches_target",
             "allocation", "note")
#: A learning curve (train/learning_curve.py), one row per fraction of the training images.
LEARNING_CURVE = ("fraction", "train_images", "split", "accuracy", "conf_low", "conf_high", "n", "run")
#: Where a grid's and a run's metrics live in a results row: val_<metric>, val_<metric>_lower, ...
GRID_METRICS = ("accuracy", "precision", "recall", "f1", "loss")
#: A grid's validation metrics in long form (interop/bridge.grid_metrics), one row per configuration and metric;
#: the grid's options stand between config_id and metric.
GRID_LONG = ("config_id", "metric", "estimator", "estimate", "lower", "upper", "best_epoch", "status")
#: The best configurations on one metric, best first (tune's show_best()): the options, then these.
GRID_BEST = ("metric", "estimator", "mean", "lower", "upper", "config_id")

TABLES = {"predictions": PREDICTIONS, "metrics": METRICS, "confusion": CONFUSION, "coefficients": COEFFICIENTS,
          "prevalence": PREVALENCE, "gold_plan": GOLD_PLAN, "learning_curve": LEARNING_CURVE,
          "grid_metrics": GRID_LONG, "grid_best": GRID_BEST}

# ------------------------------------------------------------------------------------------ R's names

#: Metric names in yardstick's spelling (the validation loss is the mean log loss, yardstick's mn_log_loss).
R_METRICS = {"f1": "f_meas", "loss": "mn_log_loss"}
#: Columns renamed in every table (parsnip's prediction names).
R_PREDICTION_COLUMNS = {PREDICTED: ".pred_class"}
#: Further renames by kind of table.
R_COLUMNS = {
    "predictions": {},
    "confusion": {},
    "metrics": {"metric": ".metric", "estimator": ".estimator", "estimate": ".estimate", "lower": "conf.low",
                "upper": "conf.high"},
    "coefficients": {"std_error": "std.error", "p_value": "p.value", "conf_low": "conf.low", "conf_high": "conf.high"},
    "prevalence": {"std_error": "std.error", "conf_low": "conf.low", "conf_high": "conf.high"},
    "gold_plan": {},
    # also the last step of a learning curve (its {from_images, to_images, change, conf_low, conf_high, per_200})
    "learning_curve": {"conf_low": "conf.low", "conf_high": "conf.high"},
    # tune's collect_metrics() and show_best() shapes
    "grid_metrics": {"config_id": ".config", "metric": ".metric", "estimator": ".estimator", "estimate": ".estimate",
                     "lower": "conf.low", "upper": "conf.high"},
    # grids: val_f1 -> val_f_meas, val_f1_lower -> val_f_meas_lower, f1 -> f_meas (grid summaries)
    "grid": {},
}
KINDS = tuple(R_COLUMNS)


def probability_column(cls) -> str:
    """The engine's column for the probability of class `cls`."""
    return f"{PROBABILITY_PREFIX}{cls}"


def r_column(name: str, kind: str | None = None) -> str:
    """R's name of the engine's column `name` in a table of `kind` (None: a table outside the contract, unchanged).
    Every kind renames the prediction columns (predicted, prob_<class>)."""
    _check_kind(kind)
    if kind is None:
        return name
    if name in R_PREDICTION_COLUMNS:
        return R_PREDICTION_COLUMNS[name]
    if name.startswith(PROBABILITY_PREFIX) and len(name) > len(PROBABILITY_PREFIX):
        return ".pred_" + name[len(PROBABILITY_PREFIX):]
    if kind == "grid":
        return re.sub(r"(^|_)f1(_|$)", lambda m: f"{m.group(1)}f_meas{m.group(2)}", name)
    return R_COLUMNS.get(kind, {}).get(name, name)


def engine_column(name: str, kind: str | None = None) -> str:
    """The engine's name of R's column `name` (the inverse of r_column; other names unchanged)."""
    _check_kind(kind)
    if kind is None:
        return name
    if name == ".pred_class":
        return PREDICTED
    if name.startswith(".pred_") and len(name) > len(".pred_"):
        return PROBABILITY_PREFIX + name[len(".pred_"):]
    if kind == "grid":
        return re.sub(r"(^|_)f_meas(_|$)", lambda m: f"{m.group(1)}f1{m.group(2)}", name)
    inverse = {r: e for e, r in R_COLUMNS.get(kind, {}).items()}
    return inverse.get(name, name)


def r_metric(name):
    """yardstick's name of one of the engine's metrics (f1 -> f_meas); None stays None."""
    return R_METRICS.get(name, name) if name is not None else None


def engine_metric(name):
    """The engine's name of one of yardstick's metrics (f_meas -> f1)."""
    inverse = {r: e for e, r in R_METRICS.items()}
    return inverse.get(name, name) if name is not None else None


def r_names(names, kind: str | None = None) -> list[str]:
    """R's names for a table's columns; two columns that would get one name keep the engine's (never lose one)."""
    renamed = [r_column(str(n), kind) for n in names]
    if len(set(renamed)) != len(renamed):
        return [str(n) for n in names]
    return renamed


def engine_names(names, kind: str | None = None) -> list[str]:
    """The engine's names for R's columns; a table holding both spellings is left as it is."""
    renamed = [engine_column(str(n), kind) for n in names]
    if len(set(renamed)) != len(renamed):
        return [str(n) for n in names]
    return renamed


def _check_kind(kind):
    if kind is not None and kind not in R_COLUMNS:
        raise ValueError(f"unknown kind of table {kind!r}; one of {', '.join(KINDS)}")


# ------------------------------------------------------------------------------------------ shared rules

def headline_estimator(n_classes: int, metric: str = "f1") -> str:
    """Which estimator is the one a person reads first: of two classes the binary one (the positive class's);
    otherwise accuracy is multiclass and precision, recall and F1 are macro-averaged; log loss is standard."""
    if metric in ("loss", "mn_log_loss"):
        return "standard"
    if int(n_classes) == 2:
        return "binary"
    return "multiclass" if metric == "accuracy" else "macro"


#: What a run or a grid can be selected on, and whether higher is better.
SELECT_ON = {"accuracy": True, "f1": True, "loss": False}


def selection_score(select_on: str, accuracy: float, f1: float, loss: float) -> tuple:
    """The one rule that picks the kept epoch of a run and the best configuration of a grid: higher is better.
    The book's measure is validation accuracy (or f1, or loss); ties go to the lower validation loss, and among
    equals the callers keep the first (the earlier epoch, the earlier configuration)."""
    if select_on == "loss":
        return (-loss,)
    return (accuracy if select_on == "accuracy" else f1, -loss)


def rank(rows, metric: str) -> list[int]:
    """Positions of `rows` (dicts with val_<metric> and val_loss) best first by selection_score's rule: higher is
    better (lower for loss), ties go to the lower validation loss, then to the earlier row. Any validation metric
    of a results row may be ranked on (precision and recall too). R's show_best() ranks with this."""
    def number(value, missing):
        return missing if value is None else float(value)

    def key(row):
        loss = number(row.get("val_loss"), float("inf"))
        if metric == "loss":
            return selection_score("loss", 0.0, 0.0, loss)
        value = number(row.get(f"val_{metric}"), float("-inf"))
        return selection_score("accuracy", value, value, loss)

    keyed = [(key(r), i) for i, r in enumerate(rows)]
    return [i for _, i in sorted(keyed, key=lambda pair: (tuple(-v for v in pair[0]), pair[1]))]


def describe() -> dict:
    """The whole contract as plain data (for R's tests and documentation): tables, kinds and R's names."""
    return {
        "tables": {k: list(v) for k, v in TABLES.items()},
        "grid_metrics": [r_metric(m) for m in GRID_METRICS],
        "r_arguments": dict(R_ARGUMENTS),
        "r_columns": {k: dict(v) for k, v in R_COLUMNS.items()},
        "r_prediction_columns": dict(R_PREDICTION_COLUMNS),
        "r_metrics": dict(R_METRICS),
        "probability_prefix": PROBABILITY_PREFIX,
        "select_on": list(SELECT_ON),
    }


# ------------------------------------------------------------------------------------------ code in messages

# A message is written once and read in two languages: Python and the command line read `learning_rate=0.1`, 'x',
# True, None and --out; R reads `learning_rate = 0.1`, "x", TRUE, NULL and `out` (R's argument name). A message
# therefore marks the code it holds (literal(), setting(), flag(), cli_only(), argument()), and each interface
# spells the marked spans its own way (render()): errors.py renders for Python as an error is made, the bridge
# renders the same text for R. R never parses a message. A mark is U+E000 kind U+E001 JSON U+E002 (private-use
# characters, never in a user's text; JSON escapes them inside the payload).
_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"
_MARK = re.compile("\ue000([a-z_]+)\ue001([^\ue000-\ue002]*)\ue002")
INTERFACES = ("python", "r")

#: The engine's option names that R's functions call something else (an option not listed keeps its name in R).
R_ARGUMENTS = {"confidence": "conf_level", "lam": "lambda"}


def r_argument(name: str) -> str:
    """R's name of the engine's option `name` (confidence -> conf_level); others unchanged."""
    return R_ARGUMENTS.get(str(name), str(name))


def _mark(kind: str, payload) -> str:
    import json

    return f"{_OPEN}{kind}{_SEP}{json.dumps(payload, default=str)}{_CLOSE}"


def _plain(value):
    """A value as JSON can carry it: tuples as lists, paths and other objects as their text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:   # pragma: no cover - numpy is a dependency
        pass
    return str(value)


def literal(value) -> str:
    """A value written into a message: Python's repr ('x', 1.5, True, None, ['a', 'b']) or R's literal ("x", 1.5,
    TRUE, NULL, c("a", "b")), by interface. Returns the marked span (render() spells it)."""
    return _mark("literal", {"python": repr(value), "value": _plain(value)})


def setting(name: str, value) -> str:
    """An option with a value, as a user would write it: learning_rate=0.1 in Python, `learning_rate = 0.1` in R.
    Returns the marked span."""
    return _mark("setting", {"name": str(name), "python": repr(value), "value": _plain(value)})


def flag(name: str) -> str:
    """An option named where the command line's flag is the natural word (pass the --out folder): --out for
    Python and the command line, `out` in R. Returns the marked span."""
    return _mark("flag", {"name": str(name)})


def argument(name: str) -> str:
    """An option named in prose: its name as it is in Python, `name` (R's name, in backticks) in R. Returns the
    marked span."""
    return _mark("argument", {"name": str(name)})


def cli_only(text: str) -> str:
    """An aside for the command line, " (CLI: --resume)", shown in Python's and the command line's messages and left
    out of R's. Returns the marked span."""
    return _mark("cli", {"text": str(text)})


def render(text, interface: str = "python") -> str:
    """`text` with its marked code spelt for `interface` ("python": the Python API and the command line; "r").
    Text without marks is returned as it is. Raises ValueError for an unknown interface."""
    if interface not in INTERFACES:
        raise ValueError(f"unknown interface {interface!r}; one of {', '.join(INTERFACES)}")
    if not isinstance(text, str) or _OPEN not in text:
        return text

    def spell(match):
        import json

        kind, payload = match.group(1), json.loads(match.group(2))
        if kind == "literal":
            return payload["python"] if interface == "python" else r_literal(payload["value"])
        if kind == "setting":
            if interface == "python":
                return f"{payload['name']}={payload['python']}"
            return f"`{r_argument(payload['name'])} = {r_literal(payload['value'])}`"
        if kind == "flag":
            return "--" + payload["name"].replace("_", "-") if interface == "python" else f"`{r_argument(payload['name'])}`"
        if kind == "argument":
            return payload["name"] if interface == "python" else f"`{r_argument(payload['name'])}`"
        if kind == "cli":
            return f" (CLI: {payload['text']})" if interface == "python" else ""
        return match.group(0)

    return _MARK.sub(spell, text)


def r_literal(value) -> str:
    """`value` (as JSON carries it) written as R code: "x", -1 (a whole number without .0), 0.001, TRUE, NULL,
    NA, c("a", "b")."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Inf" if value > 0 else "-Inf"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        shown = repr(value)
        if "e" in shown:   # R's format(scientific = FALSE): 1e-07 -> 0.0000001
            shown = f"{value:.20f}".rstrip("0").rstrip(".")
        return shown
    if isinstance(value, (list, tuple)):
        return f"c({', '.join(r_literal(v) for v in value)})"
    if isinstance(value, dict):
        return f"list({', '.join(f'{k} = {r_literal(v)}' for k, v in value.items())})"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


# ------------------------------------------------------------------------------------------ R's formulas and terms

_NOT_NAME_BEFORE = r"(?<![A-Za-z0-9_.])"


def engine_formula(text: str) -> str:
    """An R formula's text in the engine's (patsy's) spelling: R's prediction columns in the engine's names
    (.pred_class -> predicted, .pred_<class> -> prob_<class>), R's power (^, in I() and for crossing terms alike)
    as **, its logical operators as Python's `and`, `or`, `not` (Python's & binds tighter than ==, its `and` does
    not, like R's &) and TRUE/FALSE as True/False."""
    text = text.replace("^", "**")
    text = re.sub(r"\s*&&?\s*", " and ", text)
    text = re.sub(r"\s*\|\|?\s*", " or ", text)
    text = re.sub(r"!(?!=)\s*", "not ", text)
    text = re.sub(r"\bTRUE\b", "True", re.sub(r"\bFALSE\b", "False", text))
    text = re.sub(_NOT_NAME_BEFORE + r"\.pred_class(?![A-Za-z0-9_.])", PREDICTED, text)
    return re.sub(_NOT_NAME_BEFORE + r"\.pred_([A-Za-z0-9_]+)", PROBABILITY_PREFIX + r"\1", text)


def r_terms(terms, used) -> list[str]:
    """The engine's term names in R's spelling, for a formula whose variables are `used` (R's all.vars()):
    patsy's levels as R's model.matrix() writes them (protest[T.True] -> protestTRUE, group[T.b] -> groupb), **
    as ^, and/or/not as &, |, !, True/False as TRUE/FALSE, and the prediction columns in R's names where the
    formula used those (predicted -> .pred_class, prob_<class> -> .pred_<class>)."""
    used = [str(u) for u in used]
    out = []
    for term in terms:
        term = str(term).replace("[T.True]", "TRUE").replace("[T.False]", "FALSE")
        term = re.sub(r"\[T\.([^]]*)\]", r"\1", term)
        term = term.replace(" ** ", "^")
        term = re.sub(r"\bnot ", "!", term).replace(" and ", " & ").replace(" or ", " | ")
        term = re.sub(r"\bTrue\b", "TRUE", re.sub(r"\bFalse\b", "FALSE", term))
        if ".pred_class" in used:
            term = re.sub(r"^" + PREDICTED, ".pred_class", term, count=1)
        for name in used:
            if name.startswith(".pred_") and name != ".pred_class":
                term = re.sub(r"^" + re.escape(PROBABILITY_PREFIX + name[len(".pred_"):]), lambda _: name, term, count=1)
        out.append(term)
    return out
