"""Does the model (or the autotagger) work equally well for everyone? Metrics by subgroup — the book's sections 6
and 8.4 (Gender Shades): join any metadata column (gender, skin tone, account type, period) to predictions with
true labels, and get each group's accuracy, precision, recall and F1 with confidence intervals, the largest gap
between groups, and a permutation test of whether that gap exceeds what chance alone produces.

Per-group metrics and their intervals are measure.metrics' own (checked against scikit-learn in the tests), with
the engine's interval rules (measure.intervals): Wilson score intervals (or exact ones) for the metrics that are
proportions of images (accuracy, and one class's precision and recall); a seeded percentile bootstrap (the group's
images resampled) for F1 and the averages over classes.

On a sample that carries a design (a gold sample: inclusion_probability, and stratum when stratified) with unequal
inclusion probabilities, every group's metrics are design-weighted (each image counts 1/π times), so they estimate
the group's metrics on the corpus, not on the sample; their intervals are Wilson intervals on the design's effective
sample size (Korn & Graubard 1998) and a bootstrap within strata (design_weighted_metrics(), which gold_metrics()
uses too), and the gap's permutation test shuffles groups with each image keeping its weight.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..data.table import choose_positive_class, natural_key
from ..errors import ImagesAsDataError, did_you_mean, listing, setting
from ..io.tables import to_arrow
from .intervals import check_confidence
from .metrics import HEADLINE_ESTIMATORS, METRIC_SCHEMA, _metric_arrays, _row_sizes, confusion_counts, metrics_from_counts

GROUP = "group"



@dataclass
class SubgroupAudit:
    """Metrics by subgroup: `metrics` (the group column(s), group, metric, estimator, class, estimate, n,
    lower, upper, interval), `gaps` (for each headline metric: the best and worst group, the gap, and its
    permutation p-value) and `excluded` (image_id, reason: no group, no label, no prediction)."""

    metrics: pa.Table
    gaps: pa.Table
    excluded: pa.Table
    groups: list = field(default_factory=list)
    confidence: float = 0.95

    def summary(self) -> str:
        """Return the audit as text: the groups, the images left out, and each metric's largest gap with its
        p-value."""
        lines = [f"subgroup audit by {' × '.join(self.groups)}: {self.metrics.num_rows and len(set(self.metrics[GROUP].to_pylist()))} "
                 f"groups" + (f", {self.excluded.num_rows} images left out (see .excluded)" if self.excluded.num_rows else "")]
        for row in self.gaps.to_pylist():
            name = row["metric"] + (f" ({row['class']})" if row["class"] else "") + \
                (" macro" if row["estimator"] == "macro" else "")
            lines.append(f"  {name:<24} {row['largest_group']} {row['largest']:.3f} vs {row['smallest_group']} "
                         f"{row['smallest']:.3f}: gap {row['gap']:.3f}, p = {row['p_value']:.3f}")
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        return f"<SubgroupAudit\n{self.summary()}\n>"


def subgroup_metrics(predictions, metadata=None, group=None, *, by: str = "image_id", truth: str = "label",
                     predicted: str = "predicted", classes=None, positive_class=None, confidence: float = 0.95,
                     interval_method: str = "wilson", bootstrap: int = 1000, permutations: int = 2000,
                     seed: int = 0, min_size: int = 5,
                     inclusion_probability: str = "inclusion_probability") -> SubgroupAudit:
    """Return a SubgroupAudit: metrics for each group of images, with intervals, and the largest gap between
    groups.

    predictions: a table with true and predicted labels per image — a run's validation/test predictions, an
      evaluation's, a coded gold sample's, or a tag comparison's per-image table (truth="truth").
    metadata: a table with the `by` column and the group column(s), joined to the predictions; None when the
      predictions already hold the group column(s).
    group: a column name, or several (intersectional groups such as gender × skin tone).
    classes, positive_class: the model's classes (default: those in the labels) and, in a binary task, the class
      whose precision, recall and F1 are reported.
    confidence: the confidence level of the intervals. interval_method: "wilson" (default) or "exact"
      (Clopper–Pearson) for the proportions. bootstrap: resamples for the bootstrap intervals.
    permutations: for the gap test, times the group labels are shuffled across images (groups keep their sizes):
      p_value is the share of shuffles whose largest gap is at least the observed one.
    min_size: groups with fewer images are reported but left out of the gap and its test.
    inclusion_probability: the column holding a gold sample's inclusion probabilities; when the predictions have it
      and they differ (a stratified sample), every metric is design-weighted (the module's docstring), with
      `stratum` (if present) for the bootstrap and the effective sample size.
    Raises ImagesAsDataError for missing columns, a metadata table naming an image twice, no image in any group, or
    inclusion probabilities outside (0, 1].
    """
    confidence = check_confidence(confidence)
    table = to_arrow(predictions)
    groups = [group] if isinstance(group, str) else list(group or [])
    if not groups:
        raise ImagesAsDataError("group= names no column; give the metadata column(s) to compare groups by, "
                                "e.g. group='gender'")
    for name, role in ((truth, "truth"), (predicted, "predicted")):
        _require(table, name, role, "predictions")
    if metadata is not None:
        table = _join(table, to_arrow(metadata), by, groups)
    for name in groups:
        _require(table, name, "group", "predictions" if metadata is None else "metadata")
    ids = _text(table[by]) if by in table.column_names else [str(i + 1) for i in range(table.num_rows)]
    truths, predictions_ = _text(table[truth]), _text(table[predicted])
    group_values = [_text(table[name]) for name in groups]
    keep, excluded = [], []
    for i in range(table.num_rows):
        reason = None
        if truths[i] is None:
            reason = f"no {truth}"
        elif predictions_[i] is None:
            reason = "no prediction (unreadable image?)"
        elif any(values[i] is None for values in group_values):
            reason = f"no {' or '.join(groups)}"
        if reason:
            excluded.append({"image_id": ids[i], "reason": reason})
        else:
            keep.append(i)
    if not keep:
        raise ImagesAsDataError(f"no image has a label, a prediction and a {' and '.join(groups)}; check that the "
                                f"metadata's {by} values match the predictions'")
    if excluded:
        warnings.warn(f"{len(excluded)} image(s) left out of the subgroup metrics (no group, label or prediction); "
                      "see .excluded", stacklevel=2)
    weights, strata = _design_of(table, inclusion_probability, keep)
    truths = [truths[i] for i in keep]
    predictions_ = [predictions_[i] for i in keep]
    labels = [" / ".join(values[i] for values in group_values) for i in keep]
    parts = {name: [values[i] for i in keep] for name, values in zip(groups, group_values)}
    classes = _classes(classes, truths, predictions_)
    positive = choose_positive_class(classes, positive_class) if len(classes) == 2 else None
    index = {c: k for k, c in enumerate(classes)}
    t = np.array([index[v] for v in truths])
    p = np.array([index[v] for v in predictions_])
    names = sorted(set(labels), key=natural_key)
    member = {name: np.flatnonzero(np.array(labels) == name) for name in names}
    rng = np.random.default_rng(int(seed))
    metric_tables = []
    for g, name in enumerate(names):
        rows = member[name]
        if weights is None:
            counts = confusion_counts([classes[k] for k in t[rows]], [classes[k] for k in p[rows]], classes)
            # The engine's intervals (measure.intervals); each group's bootstrap gets its own seed, from `seed`.
            metrics = metrics_from_counts(counts, classes, positive, confidence=confidence,
                                          interval_method=interval_method, resamples=int(bootstrap),
                                          seed=int(seed) * 1000 + g)
        else:
            metrics = design_weighted_metrics([classes[k] for k in t[rows]], [classes[k] for k in p[rows]], classes,
                                              positive, weights[rows], strata[rows], confidence=confidence,
                                              resamples=int(bootstrap), seed=int(seed) * 1000 + g)
        first = {g_: pa.array([parts[g_][rows[0]]] * metrics.num_rows, pa.string()) for g_ in groups}
        first[GROUP] = pa.array([name] * metrics.num_rows, pa.string())
        columns = dict(first)
        columns.update({c: metrics[c] for c in metrics.column_names})
        metric_tables.append(pa.table(columns))
    metrics = pa.concat_tables(metric_tables)
    gaps = _gaps(metrics, t, p, labels, names, member, classes, positive, int(min_size), int(permutations), rng,
                 weights)
    excluded_table = pa.Table.from_pylist(excluded, schema=pa.schema([("image_id", pa.string()), ("reason", pa.string())]))
    return SubgroupAudit(metrics, gaps, excluded_table, groups, confidence)


# ------------------------------------------------------------------------------------------ pieces

def _design_of(table: pa.Table, column: str, keep: list):
    """(weights 1/π, strata) of the kept rows when the table carries unequal inclusion probabilities, else (None,
    None)."""
    if column not in table.column_names:
        return None, None
    values = table[column].to_pylist()
    bad = []
    for row in keep:
        v = values[row]
        try:
            ok = v is not None and not isinstance(v, bool) and 0 < float(v) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bad.append(f"row {row + 1} ({v!r})")
    if bad:
        raise ImagesAsDataError(f"{column} must lie in (0, 1] (a gold sample's inclusion probabilities): "
                                f"{listing(bad)}")
    probability = np.array([float(values[row]) for row in keep])
    if np.allclose(probability, probability[0]):
        return None, None
    strata = _text(table["stratum"]) if "stratum" in table.column_names else ["all"] * table.num_rows
    return 1 / probability, np.array([strata[row] or "all" for row in keep], dtype=object)


def design_weighted_metrics(truth, predicted, classes, positive, weights, strata, *, confidence: float = 0.95,
                            resamples: int = 1000, seed: int = 0) -> pa.Table:
    """Design-weighted metrics of a sample with unequal inclusion probabilities (weights 1/π): each is the
    Horvitz–Thompson ratio of weighted counts; proportions get a Wilson interval on the design's effective sample
    size (Korn & Graubard 1998), F1 and the averages a bootstrap that resamples images within strata. Returns
    METRIC_SCHEMA's columns (n: the images behind each estimate, unweighted)."""
    from .intervals import design_effective_size, percentile_interval, stratified_bootstrap_confusions, wilson_interval

    index = {c: i for i, c in enumerate(classes)}
    t = np.array([index[v] for v in truth], dtype=np.int64)
    p = np.array([index[v] for v in predicted], dtype=np.int64)
    weights = np.asarray(weights, dtype=float)
    k = len(classes)
    weighted = np.zeros((k, k))
    np.add.at(weighted, (t, p), weights)
    rows = _metric_arrays(weighted, classes, positive)
    sizes = _row_sizes(confusion_counts(truth, predicted, classes), classes, positive)
    replicates = _metric_arrays(stratified_bootstrap_confusions(t, p, k, weights, strata, resamples, seed), classes,
                                positive)
    records = []
    for (name, estimator, cls, value, ratio), n, (_, _, _, boot, _) in zip(rows, sizes, replicates):
        lower = upper = method = None
        if ratio is not None:
            kind, j = ratio
            hit = (t == p).astype(float) if j is None else ((t == j) & (p == j)).astype(float)
            domain = np.ones(len(t)) if kind == "correct" else ((p == j) if kind == "predicted" else (t == j)).astype(float)
            rate, effective = design_effective_size(hit, domain, weights, strata)
            if effective > 0:
                low, high = wilson_interval(rate, effective, confidence)
                lower, upper, method = float(low), float(high), "wilson_design_effect"
        else:
            low, high = percentile_interval(boot, confidence)
            if not np.isnan(low):
                lower, upper, method = float(low), float(high), "stratified_bootstrap"
        records.append({"metric": name, "estimator": estimator, "class": cls, "estimate": float(value), "n": n,
                        "lower": lower, "upper": upper, "interval": method})
    return pa.Table.from_pylist(records, schema=METRIC_SCHEMA)


def _require(table: pa.Table, name: str, role: str, what: str) -> None:
    if name not in table.column_names:
        raise ImagesAsDataError(f"{setting(role, name)}: no such column in the {what} (columns: "
                                f"{listing(table.column_names, 10)}).{did_you_mean(name, table.column_names)}",
                                what="column", option=role, value=name, choices=table.column_names)


def _text(column) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())
            else str(v) for v in column.to_pylist()]


def _join(table: pa.Table, metadata: pa.Table, by: str, groups) -> pa.Table:
    """The predictions with the group columns of `metadata` added (by `by`); a prediction without metadata gets
    nulls. The metadata must name each image once."""
    _require(table, by, "by", "predictions")
    _require(metadata, by, "by", "metadata")
    for name in groups:
        _require(metadata, name, "group", "metadata")
    keys = _text(metadata[by])
    seen, repeated = {}, []
    for row, key in enumerate(keys):
        if key in seen and key is not None:
            repeated.append(key)
        seen.setdefault(key, row)
    if repeated:
        raise ImagesAsDataError(f"the metadata names image(s) {listing(sorted(set(repeated)))} more than once; keep "
                                f"one row per {by}")
    matches = [seen.get(key) for key in _text(table[by])]
    if all(m is None for m in matches):
        raise ImagesAsDataError(f"no {by} of the predictions is in the metadata (predictions: "
                                f"{listing(_text(table[by]), 3)}; metadata: {listing(keys, 3)}); join them on a shared id")
    for name in groups:
        values = _text(metadata[name])
        column = pa.array([None if m is None else values[m] for m in matches], pa.string())
        table = table.drop_columns([name]).append_column(name, column) if name in table.column_names else \
            table.append_column(name, column)
    return table


def _classes(classes, truths, predictions) -> list:
    present = sorted(set(truths) | set(predictions), key=natural_key)
    if classes is None:
        if len(present) < 2:
            raise ImagesAsDataError(f"the labels hold one class ({listing(present)}); pass classes= with the model's classes")
        return present
    classes = [str(c) for c in classes]
    unknown = [v for v in present if v not in classes]
    if unknown:
        raise ImagesAsDataError(f"labels or predictions {listing([repr(u) for u in unknown])} are not among "
                                f"classes= ({', '.join(classes)}).{did_you_mean(unknown[0], classes)}")
    return classes


def estimates(counts: np.ndarray, positive_index: int | None) -> np.ndarray:
    """metrics_from_counts()'s estimates as a plain vector for many confusion matrices at once (B × K × K):
    the bootstrap and permutation loops use it; the tests check it row for row against metrics_from_counts()."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim == 2:
        counts = counts[None]
    total = counts.sum(axis=(1, 2))
    tp = np.diagonal(counts, axis1=1, axis2=2)
    predicted = counts.sum(axis=1)
    actual = counts.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        recall = np.where(actual > 0, tp / np.where(actual > 0, actual, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.where(precision + recall > 0,
                                                                               precision + recall, 1), 0.0)
        accuracy = np.where(total > 0, tp.sum(axis=1) / np.where(total > 0, total, 1), np.nan)
    out = [accuracy]
    if positive_index is not None:
        out += [precision[:, positive_index], recall[:, positive_index], f1[:, positive_index]]
    else:
        weights = actual / np.where(actual.sum(axis=1, keepdims=True) > 0, actual.sum(axis=1, keepdims=True), 1)
        micro_p = np.where(predicted.sum(1) > 0, tp.sum(1) / np.where(predicted.sum(1) > 0, predicted.sum(1), 1), 0.0)
        micro_r = np.where(actual.sum(1) > 0, tp.sum(1) / np.where(actual.sum(1) > 0, actual.sum(1), 1), 0.0)
        micro_f = np.where(micro_p + micro_r > 0, 2 * micro_p * micro_r / np.where(micro_p + micro_r > 0,
                                                                                   micro_p + micro_r, 1), 0.0)
        for values, micro in ((precision, micro_p), (recall, micro_r), (f1, micro_f)):
            out += [values.mean(axis=1), micro, (values * weights).sum(axis=1)]
    for values in (precision, recall, f1):
        out += [values[:, k] for k in range(values.shape[1])]
    return np.stack(out, axis=1)


def _gaps(metrics: pa.Table, t, p, labels, names, member, classes, positive, min_size, permutations, rng,
          weights=None) -> pa.Table:
    """The headline metrics' largest gap between groups with at least min_size images, and its permutation test."""
    k = len(classes)
    positive_index = classes.index(positive) if positive is not None else None
    rows = metrics.to_pylist()
    eligible = [name for name in names if len(member[name]) >= min_size]
    first_group = [r for r in rows if r[GROUP] == names[0]]
    headline = [i for i, r in enumerate(first_group) if r["estimator"] in HEADLINE_ESTIMATORS]
    schema = pa.schema([("metric", pa.string()), ("estimator", pa.string()), ("class", pa.string()),
                        ("largest_group", pa.string()), ("largest", pa.float64()), ("smallest_group", pa.string()),
                        ("smallest", pa.float64()), ("gap", pa.float64()), ("p_value", pa.float64()),
                        ("groups", pa.int32()), ("permutations", pa.int32())])
    if len(eligible) < 2:
        if len(names) >= 2:
            warnings.warn(f"fewer than two groups have at least min_size={min_size} images, so no gap is tested",
                          stacklevel=3)
        return pa.Table.from_pylist([], schema=schema)

    def per_group(assignment) -> np.ndarray:
        """Headline estimates of every eligible group for one assignment of images to groups (groups × metrics)."""
        counts = np.zeros((len(eligible), k, k))
        for g, name in enumerate(eligible):
            rows_g = assignment[name]
            counts[g] = np.bincount(t[rows_g] * k + p[rows_g], minlength=k * k,
                                    weights=None if weights is None else weights[rows_g]).reshape(k, k)
        return estimates(counts, positive_index)[:, headline]

    observed = per_group(member)
    observed_gap = observed.max(axis=0) - observed.min(axis=0)
    exceed = np.zeros(len(headline))
    pool = np.concatenate([member[name] for name in eligible])
    sizes = np.cumsum([len(member[name]) for name in eligible])[:-1]
    for _ in range(permutations):
        shuffled = np.split(rng.permutation(pool), sizes)
        values = per_group(dict(zip(eligible, shuffled)))
        exceed += (values.max(axis=0) - values.min(axis=0)) >= observed_gap - 1e-12
    out = []
    for j, i in enumerate(headline):
        row = first_group[i]
        best, worst = int(np.argmax(observed[:, j])), int(np.argmin(observed[:, j]))
        out.append({"metric": row["metric"], "estimator": row["estimator"], "class": row["class"],
                    "largest_group": eligible[best], "largest": float(observed[best, j]),
                    "smallest_group": eligible[worst], "smallest": float(observed[worst, j]),
                    "gap": float(observed_gap[j]), "p_value": float((1 + exceed[j]) / (1 + permutations)),
                    "groups": len(eligible), "permutations": permutations})
    return pa.Table.from_pylist(out, schema=schema)
