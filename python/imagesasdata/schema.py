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

TABLES = {"predictions": PREDICTIONS, "metrics": METRICS, "confusion": CONFUSION, "coefficients": COEFFICIENTS,
          "prevalence": PREVALENCE, "gold_plan": GOLD_PLAN, "learning_curve": LEARNING_CURVE}

# ------------------------------------------------------------------------------------------ R's names

#: Metric names in yardstick's spelling.
R_METRICS = {"f1": "f_meas"}
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
    "learning_curve": {"conf_low": "conf.low", "conf_high": "conf.high"},
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
        "r_columns": {k: dict(v) for k, v in R_COLUMNS.items()},
        "r_prediction_columns": dict(R_PREDICTION_COLUMNS),
        "r_metrics": dict(R_METRICS),
        "probability_prefix": PROBABILITY_PREFIX,
        "select_on": list(SELECT_ON),
    }
