"""Coverage of naive, gold-only and corrected 95% intervals across the designs the README recommends.

Each replication draws a corpus of 10,000 images from a known process (true labels, metadata, outcomes), lets
classifiers err with probabilities that depend on the outcome and on a regressor (differential error), draws a
gold sample, and estimates the quantity of interest three ways with the engine's own estimators. Training is kept
out on purpose: predicted labels are simulated from the true ones, so the numbers are the same on any CPU.

The grid (issue 21): what is estimated × how the gold sample is drawn × how common the class is × gold size.

  estimands   prevalence, prevalence_by_group (three groups of 50/30/20% of the corpus), and GLMs with a predicted
              regressor, a predicted outcome, or both, for the gaussian, binomial and poisson families
  designs     srs (simple random), predicted_equal and predicted_proportional (stratified by the predicted class,
              equal or proportional allocation), group (stratified by a metadata group, equal allocation, so the
              smallest group is oversampled)
  prevalence  of the predicted class: 2%, 5% and 20% for prevalence; 5% and 20% for the GLMs
  gold sizes  150, 300, 1,000

The truth is the process's parameter (the superpopulation): the class share, or the coefficient a GLM on the true
values of a sample of 2,000,000 images gives. Coverage has a Monte Carlo standard error of sqrt(c(1-c)/R), 0.7
points at 1,000 replications. The estimators are called at the array level (corrected_fit, gold_only_fit, naive_fit
and the prevalence cells of analysis/estimators.py) so that a replication costs milliseconds; the first
replication of each cell is also run through the public corrected_glm()/corrected_prevalence() and must agree.

    nice .venv/bin/python benchmarks/inference_coverage.py --replications 1000 --out coverage.jsonl
    .venv/bin/python benchmarks/inference_coverage.py --replications 50 --estimands gaussian_regressor \\
        --designs srs,predicted_equal --prevalences 0.05 --gold-sizes 300 --variants in-sample,cross-fit
    .venv/bin/python benchmarks/inference_coverage.py --table coverage.jsonl     # the markdown tables again

tests/test_analysis_estimators.py runs the same code at small size.
"""

from __future__ import annotations

import os

# One BLAS thread: the estimators multiply tall, thin matrices, which a threaded BLAS on a busy machine makes a
# thousand times slower (threads spinning for cores), not faster.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from imagesasdata.analysis import estimators as E  # noqa: E402

CORPUS = 10_000
GROUP_SHARES = np.array([0.5, 0.3, 0.2])
GROUP_MEANS = np.array([-0.3, 0.0, 0.6])      # the regressor z's mean by group
GROUP_EFFECTS = np.array([-0.4, 0.0, 0.5])    # the class's log-odds by group
ESTIMANDS = ("prevalence", "prevalence_by_group", "gaussian_regressor", "binomial_regressor", "poisson_regressor",
             "gaussian_outcome", "binomial_outcome", "poisson_outcome", "gaussian_both", "binomial_both",
             "poisson_both")
DESIGNS = ("srs", "predicted_equal", "predicted_proportional", "group")
GOLD_SIZES = (150, 300, 1000)
PREVALENCE_LEVELS = (0.02, 0.05, 0.2)
GLM_LEVELS = (0.05, 0.2)


def expit(x):
    return 1 / (1 + np.exp(-x))


# ------------------------------------------------------------------------------------------ the process

@dataclass
class Spec:
    """A GLM scenario: formula (for the check through corrected_glm), family, predicted variables, the coefficient
    of interest (its column in the design) and what the classifier's errors depend on."""

    formula: str
    family: str
    predicted: tuple
    term: int


SPECS = {
    "gaussian_regressor": Spec("y ~ A + z", "gaussian", ("A",), 1),
    "binomial_regressor": Spec("v ~ A + z", "binomial", ("A",), 1),
    "poisson_regressor": Spec("r ~ A + z", "poisson", ("A",), 1),
    "gaussian_outcome": Spec("A ~ z + g1 + g2", "gaussian", ("A",), 1),
    "binomial_outcome": Spec("A ~ z + g1 + g2", "binomial", ("A",), 1),
    "poisson_outcome": Spec("c ~ z", "poisson", ("c",), 1),
    "gaussian_both": Spec("A ~ B + z", "gaussian", ("A", "B"), 1),
    "binomial_both": Spec("A ~ B + z", "binomial", ("A", "B"), 1),
    "poisson_both": Spec("c ~ A + z", "poisson", ("c", "A"), 1),
}


def intercept_for(prevalence: float) -> float:
    """a0 such that E[expit(a0 + 0.8 z + γ_g)] is the prevalence (z ~ N(μ_g, 1); Gauss–Hermite quadrature)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def share(a0):
        return sum(s * np.sum(weights * expit(a0 + 0.8 * (m + nodes) + e))
                   for s, m, e in zip(GROUP_SHARES, GROUP_MEANS, GROUP_EFFECTS))

    low, high = -15.0, 5.0
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if share(mid) < prevalence else (low, mid)
    return (low + high) / 2


def population(prevalence: float, rng, size: int, a0: float) -> dict:
    """One corpus from the process: true values, predictions and metadata (arrays of length `size`)."""
    g = rng.choice(3, size=size, p=GROUP_SHARES)
    z = GROUP_MEANS[g] + rng.normal(size=size)
    A = rng.random(size) < expit(a0 + 0.8 * z + GROUP_EFFECTS[g])
    B = rng.random(size) < expit(-1.2 + 1.0 * A + 0.3 * z)
    y = 1 + 0.5 * A + 0.3 * z + rng.normal(size=size)
    v = rng.random(size) < expit(-0.5 + 0.9 * A + 0.3 * z)
    r = rng.poisson(np.exp(0.5 + 0.7 * A + 0.2 * z))
    c = rng.poisson(np.exp(0.3 + 0.5 * A + 0.4 * z))
    # differential errors: positives are missed more often when the outcome is high; false positives follow z
    high = (y > 1.5) | v | (r > 3)
    miss = np.where(high, 0.30, 0.12)
    false = np.clip(0.6 * prevalence, 0.012, 0.06) * np.where(z > 0, 1.5, 0.7)
    A_hat = np.where(A, rng.random(size) >= miss, rng.random(size) < false)
    B_hat = np.where(B, rng.random(size) >= 0.2, rng.random(size) < 0.08 + 0.04 * (z > 0))
    # a count the model gets wrong by one person now and then, more often in crowded images
    off = rng.random(size) < np.where(c >= 3, 0.35, 0.12)
    c_hat = np.maximum(c + np.where(off, np.where(rng.random(size) < 0.6, -1, 1), 0), 0)
    return {"g": g, "z": z, "A": A.astype(float), "B": B.astype(float), "y": y, "v": v.astype(float),
            "r": r.astype(float), "c": c.astype(float), "A_hat": A_hat.astype(float), "B_hat": B_hat.astype(float),
            "c_hat": c_hat.astype(float)}


def matrices(estimand: str, data: dict, predicted: bool) -> tuple[np.ndarray, np.ndarray]:
    """(y, X) of the scenario's formula, with the predicted variables' predictions (predicted=True) or truth."""
    def value(name):
        return data[name + "_hat"] if predicted and name in SPECS[estimand].predicted else data[name]

    one = np.ones(len(data["z"]))
    g1, g2 = (data["g"] == 1).astype(float), (data["g"] == 2).astype(float)
    columns = {"gaussian_regressor": ("y", ["A", "z"]), "binomial_regressor": ("v", ["A", "z"]),
               "poisson_regressor": ("r", ["A", "z"]), "gaussian_outcome": ("A", ["z", "g1", "g2"]),
               "binomial_outcome": ("A", ["z", "g1", "g2"]), "poisson_outcome": ("c", ["z"]),
               "gaussian_both": ("A", ["B", "z"]), "binomial_both": ("A", ["B", "z"]),
               "poisson_both": ("c", ["A", "z"])}[estimand]
    extra = {"g1": g1, "g2": g2}
    X = np.column_stack([one] + [extra[n] if n in extra else value(n) for n in columns[1]])
    return value(columns[0]), X


@functools.lru_cache(maxsize=None)
def truth(estimand: str, prevalence: float, a0: float, seed: int = 99, size: int = 2_000_000) -> float | np.ndarray:
    """The process's parameter: the class share (by group: one per group), or the GLM coefficient on `size`
    images' true values."""
    if estimand == "prevalence":
        return prevalence
    rng = np.random.default_rng([seed, int(prevalence * 1000)])
    data = population(prevalence, rng, size, a0)
    if estimand == "prevalence_by_group":
        return np.array([data["A"][data["g"] == k].mean() for k in range(3)])
    y, X = matrices(estimand, data, predicted=False)
    parts = E._Parts(X, y, np.ones(len(y)), np.arange(len(y)))
    return float(E._solve(parts, SPECS[estimand].family)[SPECS[estimand].term])


# ------------------------------------------------------------------------------------------ the gold sample

def stratum_of(design: str, estimand: str, data: dict) -> np.ndarray:
    if design == "srs":
        return np.zeros(len(data["z"]), dtype=np.int64)
    if design == "group":
        return data["g"].astype(np.int64)
    variable = "c_hat" if estimand == "poisson_outcome" else "A_hat"
    return (data[variable] >= 3).astype(np.int64) if variable == "c_hat" else data[variable].astype(np.int64)


def draw_gold(design: str, strata: np.ndarray, n: int, rng) -> tuple[np.ndarray, E._Design]:
    """Gold rows and their design: per stratum, n_h images without replacement (draw_gold_sample()'s allocation:
    at least 2 per stratum, the rest proportional or equal, capped by the stratum's size)."""
    sizes = np.bincount(strata, minlength=int(strata.max()) + 1).astype(float)
    H = len(sizes)
    if design in ("srs", "predicted_proportional"):
        counts = np.maximum(2, np.floor(n * sizes / sizes.sum())).astype(int)
    else:
        counts = np.full(H, n // H)
    counts = np.minimum(counts, sizes.astype(int))
    while counts.sum() < n:  # hand out the rest where there is room
        room = np.flatnonzero(counts < sizes)
        counts[room[np.argmax(sizes[room] - counts[room])]] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    keys = rng.random(len(strata))
    rows, stratum = [], []
    for h in range(H):
        members = np.flatnonzero(strata == h)
        chosen = members[np.argpartition(keys[members], counts[h] - 1)[:counts[h]]] if counts[h] < len(members) \
            else members
        rows.append(chosen)
        stratum.append(np.full(len(chosen), h))
    rows = np.concatenate(rows)
    return rows, E._Design(np.concatenate(stratum), sizes, counts.astype(float), [str(h) for h in range(H)])


# ------------------------------------------------------------------------------------------ one replication

def _ppi_applies(spec, estimand, design) -> bool:
    """ppi-python's PPI++ applies to a predicted outcome (the only predicted variable) and a simple random sample."""
    return spec.predicted in (("A",), ("c",)) and "outcome" in estimand and len(design.sizes) == 1


def _variant_names(spec, estimand, design, variants) -> list:
    return [v for v in variants if v != "ppi" or _ppi_applies(spec, estimand, design)]


def _corrected_fits(fits, d, spec, estimand, design, variants, naive) -> None:
    """Add each variant's corrected fit to `fits` (raises ImagesAsDataError where the public function would)."""
    for variant in variants:
        small = "hc3-df"
        for suffix, kind in (("+normal", "none"), ("+df", "df"), ("+hc2", "hc2-df")):
            if variant.endswith(suffix):
                variant, small = variant[:-len(suffix)], kind
        name = variant if small == "hc3-df" else variant + {"none": "+normal", "df": "+df", "hc2-df": "+hc2"}[small]
        if variant == "gold_only":
            fits[name] = E.gold_only_fit(d, spec.family, small_sample=small)
        elif variant == "lambda-1":
            fits[name] = E.corrected_fit(d, spec.family, 1.0, naive=naive.beta, small_sample=small)
        elif variant == "ppi":
            if not _ppi_applies(spec, estimand, design):
                continue
            try:
                beta, se = E._ppi_estimate(d, spec.family, None, 0.95)
                fits[name] = E._Fit(beta, None, None, se)
            except E.ImagesAsDataError:  # ppi-python failed (a singular fit): method="ppi" gives no interval
                fits[name] = None
        else:
            fits[name] = E.corrected_fit(d, spec.family, None, lam_rule=variant, naive=naive.beta,
                                         small_sample=small)


def replicate_glm(estimand, data, gold, design, variants) -> dict:
    spec = SPECS[estimand]
    y_hat, X_hat = matrices(estimand, data, predicted=True)
    y_all, X_all = matrices(estimand, data, predicted=False)
    d = E._Data(X_hat, y_hat, gold, X_all[gold], y_all[gold], design)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = E.naive_fit(d, spec.family)
        try:
            fits = {"naive": naive, "gold_only": E.gold_only_fit(d, spec.family)}
            _corrected_fits(fits, d, spec, estimand, design, variants, naive)
        except E.ImagesAsDataError:
            # the public corrected_glm() refuses this gold sample (a term without variation in it: no positive of a
            # rare class drawn, say) and reports no interval at all: a flagged miss for every method but the naive
            out = {name: (float("nan"), float("nan"), float("nan"), True, -1, -1, float("inf"))
                   for name in ["gold_only"] + _variant_names(spec, estimand, design, variants)}
            fits = {"naive": naive}
    counts = E.event_counts(d, {n: (data[n][gold], data[n + "_hat"][gold]) for n in spec.predicted if n != "c"})
    events = E._few_events(counts, estimand.endswith(("_outcome", "_both")), spec.family, X_hat.shape[1])
    refused = (float("nan"), float("nan"), float("nan"), True, -1, -1, float("inf"))
    for name, fit in fits.items():
        if fit is None:
            out[name] = refused
            continue
        se = np.sqrt(np.diag(fit.cov)) if fit.cov is not None else fit.se
        flagged = bool(E._degenerate(fit, naive, len(y_hat), len(gold))) if name != "naive" else False
        quantile = float(E.critical_values(fit, 0.95)[spec.term])
        out[name] = (float(fit.beta[spec.term]), float(se[spec.term]), quantile,
                     flagged or (bool(events) and not name.startswith(("naive", "gold_only"))),
                     counts["rarest"] if counts["rarest"] is not None else -1,
                     counts["misclassified"] if counts["misclassified"] is not None else -1,
                     float(fit.df[spec.term]) if fit.df is not None else float("inf"))
    return out


def replicate_prevalence(estimand, data, gold, design, strata, variants, seed) -> dict:
    """{method: [(estimate, low, high) per group]} for the share of A (overall: one group)."""
    groups = [None] if estimand == "prevalence" else [0, 1, 2]
    out = {}
    for k, group in enumerate(groups):
        member = np.ones(len(data["z"]), dtype=bool) if group is None else data["g"] == group
        in_group = member[gold]
        y_true = data["A"]
        shares = E._Shares(y_true[gold], design.stratum, strata, member, in_group, 0.95)
        gold_predicted = data["A_hat"][gold].astype(np.int64)
        naive = E._naive_share(data["A_hat"][member], 0.95, "class")
        warned = {}
        results = {"naive": naive, "gold_only": shares.interval(None, None, [seed, k, 0], [], group)}
        for variant in variants:
            if variant == "poststratified":
                borrowed = []  # corrected_prevalence() warns when a group's share in a stratum is borrowed
                results[variant] = shares.interval(gold_predicted, data["A_hat"].astype(np.int64), [seed, k, 1],
                                                   borrowed, group)
                warned[variant] = bool(borrowed)
            elif variant in ("dsl", "ppi"):
                if variant == "ppi" and len(design.sizes) > 1:
                    continue
                d = E._Data(member[:, None].astype(float), data["A_hat"], gold, in_group[:, None].astype(float),
                            y_true[gold], design)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[variant] = E._dsl_share(d, variant, None, 0.95, in_group)
                # the warning corrected_prevalence() gives for a Wald interval resting on few gold images
                warned[variant] = bool(E.share_events(y_true[gold], data["A_hat"][gold], in_group, design))
        for name, (estimate, _, low, high, _) in results.items():
            out.setdefault(name, []).append((estimate, low, high, float(warned.get(name, False))))
    return out


# ------------------------------------------------------------------------------------------ one cell

def run_cell(estimand, design, prevalence, n, replications, variants, seed, check=True, corpus: int = CORPUS,
             truth_size: int = 2_000_000) -> dict:
    """Run one cell of the grid: {estimand, design, prevalence, gold, replications, seconds, truth, and per method:
    coverage, width, bias, Monte Carlo SE, ...}."""
    a0 = intercept_for(prevalence)
    target = truth(estimand, prevalence, a0, size=truth_size)
    rng = np.random.default_rng([seed, ESTIMANDS.index(estimand), DESIGNS.index(design), int(prevalence * 1000), n])
    records: dict = {}
    corpus_truths = []
    started = time.perf_counter()
    for r in range(replications):
        data = population(prevalence, rng, corpus, a0)
        strata = stratum_of(design, estimand, data)
        gold, sample = draw_gold(design, strata, n, rng)
        if estimand.startswith("prevalence"):
            found = replicate_prevalence(estimand, data, gold, sample, strata, variants, seed + r)
            if estimand == "prevalence":
                corpus_truths.append([data["A"].mean()])
            else:
                corpus_truths.append([data["A"][data["g"] == k].mean() for k in range(3)])
            for name, values in found.items():
                records.setdefault(name, []).append(values)
        else:
            found = replicate_glm(estimand, data, gold, sample, variants)
            for name, values in found.items():
                records.setdefault(name, []).append(values)
        if check and r == 0:
            try:
                check_public(estimand, data, gold, sample, strata, found)
            except E.ImagesAsDataError:  # refused there as here (recorded above as a flagged miss)
                pass
            except AssertionError as error:  # recorded, so a long run is not lost to one mismatch
                records.setdefault("_check_failed", []).append(str(error)[:500])
                print(f"  the public function disagrees: {str(error)[:300]}", flush=True)
    seconds = time.perf_counter() - started
    cell = {"estimand": estimand, "design": design, "prevalence": prevalence, "gold": n,
            "replications": replications, "seconds": round(seconds, 1), "truth": np.atleast_1d(target).tolist()}
    if "_check_failed" in records:
        cell["check_failed"] = records.pop("_check_failed")
    for name, values in records.items():
        if estimand.startswith("prevalence"):
            array = np.array(values, dtype=float)  # replications × groups × (estimate, low, high[, warned])
            warned = array[:, :, 3] > 0 if array.shape[2] > 3 else np.zeros(array.shape[:2], dtype=bool)
            truths = np.atleast_1d(target)[None, :]
            covers = (array[:, :, 1] <= truths) & (truths <= array[:, :, 2])
            corpus = np.array(corpus_truths)
            covers_corpus = (array[:, :, 1] <= corpus) & (corpus <= array[:, :, 2])
            per_group = covers.mean(axis=0)
            summary = {"coverage": float(covers.mean()), "coverage_min_group": float(per_group.min()),
                       "coverage_corpus": float(covers_corpus.mean()),
                       "width": float(np.mean(array[:, :, 2] - array[:, :, 1])),
                       "bias": float(np.mean(array[:, :, 0] - truths)), "flagged": float(warned.mean()),
                       "coverage_unflagged": float(covers[~warned].mean()) if (~warned).any() else None}
        else:
            array = np.array([v[:3] for v in values], dtype=float)
            flagged = np.array([v[3] for v in values], dtype=bool)
            low, high = array[:, 0] - array[:, 2] * array[:, 1], array[:, 0] + array[:, 2] * array[:, 1]
            covers = (low <= target) & (target <= high)
            refused = np.isnan(array[:, 0])
            low, high, array = low[~refused], high[~refused], array[~refused]
            summary = {"coverage": float(covers.mean()), "refused": float(refused.mean()),
                       # per replication, for choosing the warning's thresholds: covered, rarest class count,
                       # fewest misclassified in a heavy stratum, effective df
                       "diagnostics": [[int(c), int(v[4]), int(v[5]), round(float(v[6]), 2)]
                                       for c, v in zip(covers, values)],
                       "coverage_unflagged": float(covers[~flagged].mean()) if (~flagged).any() else None,
                       "width": float(np.mean(high - low)), "bias": float(np.mean(array[:, 0] - target)),
                       "sd": float(array[:, 0].std(ddof=1)), "flagged": float(flagged.mean())}
        summary["mc_se"] = float(np.sqrt(summary["coverage"] * (1 - summary["coverage"]) / replications))
        cell[name] = summary
    return cell


def check_public(estimand, data, gold, design, strata, found) -> None:
    """The array-level result of a replication equals the public function's on the same data, as tables."""
    import pyarrow as pa

    ids = np.array([f"img{k}" for k in range(len(data["z"]))])
    probability = (design.counts / design.sizes)[design.stratum]
    if estimand.startswith("prevalence"):
        names = np.where(data["A_hat"] > 0, "protest", "other")
        corpus = pa.table({"image_id": ids, "predicted": names, "group": data["g"].astype(str),
                           "stratum": strata.astype(str)})
        gold_table = pa.table({"image_id": ids[gold], "label": np.where(data["A"][gold] > 0, "protest", "other"),
                               "inclusion_probability": probability, "stratum": design.stratum.astype(str),
                               "stratum_size": design.sizes[design.stratum].astype(np.int64)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = E.corrected_prevalence(corpus, gold_table, by=None if estimand == "prevalence" else "group",
                                           strata="stratum", classes=["other", "protest"])
        rows = [r for r in table.to_pylist() if r["class"] == "protest" and r["method"] == "corrected"]
        mine = found["poststratified"] if "poststratified" in found else None
        if mine is not None:
            for row, (estimate, low, high, _) in zip(rows, mine):
                assert abs(row["estimate"] - estimate) < 1e-12, (row, estimate)
        return
    spec = SPECS[estimand]
    columns = {k: v for k, v in data.items() if not k.endswith("_hat")}
    columns["g1"], columns["g2"] = (data["g"] == 1).astype(float), (data["g"] == 2).astype(float)
    corpus = {"image_id": ids} | {k: v for k, v in columns.items() if k not in spec.predicted} | \
        {n: data[n + "_hat"] for n in spec.predicted}
    gold_table = {"image_id": ids[gold], "inclusion_probability": probability,
                  "stratum": design.stratum.astype(str), "stratum_size": design.sizes[design.stratum].astype(np.int64)}
    gold_table |= {n: data[n][gold] for n in spec.predicted}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = E.corrected_glm(spec.formula, pa.table(corpus), pa.table(gold_table), predicted=list(spec.predicted),
                              family=spec.family)
    row = fit.tidy("corrected").to_pylist()[spec.term]
    if "in-sample" in found:
        estimate, se, quantile = found["in-sample"][:3]
        same = np.allclose([row["estimate"], row["std_error"]], [estimate, se], rtol=1e-8, atol=1e-8, equal_nan=True)
        if row["conf_high"] is not None:
            same &= bool(np.isclose(row["conf_high"] - row["estimate"], se * quantile, rtol=1e-8, atol=1e-8))
        assert same, (row, found["in-sample"])


# ------------------------------------------------------------------------------------------ tables

def _spread(coverage: np.ndarray) -> str:
    inside = int(((coverage >= 0.935) & (coverage <= 0.97)).sum())
    return (f"within 93.5–97% in {inside} of {len(coverage)} cells, below in {int((coverage < 0.935).sum())}, "
            f"above in {int((coverage > 0.97).sum())}")


def _with_warnings(summary: dict) -> str:
    """A Wald share interval's coverage, then, where corrected_prevalence() would have warned in some replications,
    the share warned and the coverage of the others: "0.590 [41% warned; 0.93 otherwise]"."""
    text = f"{summary['coverage']:.3f}"
    share = summary.get("flagged") or 0.0
    if share > 0 and summary.get("coverage_unflagged") is not None:
        text += f" [{share:.0%} warned; {summary['coverage_unflagged']:.2f} otherwise]"
    elif share > 0:
        text += f" [{share:.0%} warned]"
    return text


def reflag(cell: dict, method: str = "in-sample") -> tuple:
    """(share flagged, coverage of the others) of a regression cell under the engine's current flag rule
    (estimators._few_events), recomputed from the per-replication records (covered, rarest class count, fewest
    misclassified in a heavy stratum): a rule changed after a run is judged on the same replications. Degenerate
    intervals (not recorded per replication) are not counted as flagged here."""
    estimand = cell["estimand"]
    parameters = {"gaussian_outcome": 4, "binomial_outcome": 4, "poisson_outcome": 2}.get(estimand, 3)
    flagged, covered = [], []
    for c, rarest, misclassified, _ in cell[method]["diagnostics"]:
        counts = {"rarest": rarest if rarest >= 0 else None, "where_rarest": "",
                  "misclassified": misclassified if misclassified >= 0 else None, "where_misclassified": ""}
        flagged.append(bool(E._few_events(counts, estimand.endswith(("_outcome", "_both")), SPECS[estimand].family,
                                          parameters)))
        covered.append(c)
    flagged, covered = np.array(flagged), np.array(covered, dtype=bool)
    return float(flagged.mean()), (float(covered[~flagged].mean()) if (~flagged).any() else None)


def markdown(cells) -> str:
    """The grid as compact tables: one row per estimand × design × prevalence, one column per gold size; each cell
    gives the corrected interval's coverage, then the gold-only one's (and, where run, the Wald/DSL and ppi-python
    ones for shares, the ppi-python one for regressions), then the corrected width relative to the gold-only width;
    a regression cell also gives the share of replications whose interval is flagged. Closing lines count the
    cells inside 93.5–97%."""
    sizes = sorted({c["gold"] for c in cells})
    lines = []
    for kind in ("prevalence", "glm"):
        group = [c for c in cells if c["estimand"].startswith("prevalence") == (kind == "prevalence")]
        if not group:
            continue
        main = "poststratified" if kind == "prevalence" else "in-sample"
        extra = ["dsl", "ppi"] if kind == "prevalence" else ["ppi"]
        legend = (f"corrected · gold-only{''.join(' · ' + e for e in extra)} (corrected width / gold-only width)"
                  + ("; [flagged]" if kind == "glm" else ""))
        lines += [f"| estimand | design | prevalence | " + " | ".join(f"gold {n}: {legend}" if n == sizes[0] else
                                                                     f"gold {n}" for n in sizes) + " |",
                  "|---|---|---:|" + "---|" * len(sizes)]
        keys = list(dict.fromkeys((c["estimand"], c["design"], c["prevalence"]) for c in group))
        for key in keys:
            row = []
            for n in sizes:
                c = next((c for c in group if (c["estimand"], c["design"], c["prevalence"]) == key and c["gold"] == n),
                         None)
                if c is None or main not in c:
                    row.append("–")
                    continue
                parts = [f"**{_with_warnings(c[main]) if kind == 'prevalence' else format(c[main]['coverage'], '.3f')}**",
                         f"{c['gold_only']['coverage']:.3f}"]
                parts += [_with_warnings(c[e]) if kind == "prevalence" else f"{c[e]['coverage']:.3f}"
                          for e in extra if e in c]
                ratio = c[main]["width"] / c["gold_only"]["width"]  # nan when some interval was left out
                text = " · ".join(parts) + (f" ({ratio:.2f})" if np.isfinite(ratio) else " (–)")
                if kind == "glm" and "diagnostics" in c[main]:
                    share, unflagged = reflag(c)
                    if share > 0:
                        text += f" [{share:.0%}" if share >= 0.01 else f" [{share:.1%}"
                        text += f"; {unflagged:.3f} otherwise]" if unflagged is not None else "]"
                elif kind == "glm" and c[main].get("flagged"):
                    share = c[main]["flagged"]
                    text += f" [{share:.0%}]" if share >= 0.01 else f" [{share:.1%}]"
                if key[0] == "prevalence_by_group":
                    text += f" min group {c[main]['coverage_min_group']:.3f}"
                row.append(text)
            lines.append(f"| {key[0]} | {key[1]} | {key[2]:.0%} | " + " | ".join(row) + " |")
        coverage = np.array([c[main]["coverage"] for c in group])
        gold = np.array([c["gold_only"]["coverage"] for c in group])
        lines += ["", f"{kind}: {len(group)} cells; corrected coverage {_spread(coverage)} (mean "
                      f"{coverage.mean():.3f}); gold-only {_spread(gold)}.", ""]
        if kind == "glm":
            found = [reflag(c) if "diagnostics" in c[main] else (c[main].get("flagged", 0),
                                                                 c[main].get("coverage_unflagged")) for c in group]
            many = np.array([u for share, u in found if u is not None and share <= 0.9])
            lines += [f"The regressions' unflagged intervals (cells where at most 90% are flagged): {_spread(many)}.",
                      ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--estimands", default=",".join(ESTIMANDS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--prevalences", help="class prevalences (default 0.02,0.05,0.2 for prevalence, 0.05,0.2 "
                                              "for GLMs)")
    parser.add_argument("--gold-sizes", default=",".join(map(str, GOLD_SIZES)))
    parser.add_argument("--variants", default="in-sample,poststratified",
                        help="corrected methods: in-sample, cross-fit, lambda-1, ppi (GLMs); poststratified, dsl, "
                             "ppi (prevalence)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", help="append one JSON line per cell to this file (cells already in it are skipped: "
                                      "an interrupted run resumes)")
    parser.add_argument("--table", help="print the markdown tables of a --out file and stop")
    args = parser.parse_args()
    if args.table:
        cells = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]
        print(markdown(cells))
        return
    variants = [v for v in args.variants.split(",") if v]
    started = time.perf_counter()
    cells = []
    done = set()
    if args.out and Path(args.out).exists():
        for line in Path(args.out).read_text().splitlines():
            if line.strip():
                c = json.loads(line)
                done.add((c["estimand"], c["design"], c["prevalence"], c["gold"], c["replications"]))
    for estimand in args.estimands.split(","):
        levels = [float(p) for p in args.prevalences.split(",")] if args.prevalences else \
            (PREVALENCE_LEVELS if estimand.startswith("prevalence") else GLM_LEVELS)
        for design in args.designs.split(","):
            for prevalence in levels:
                for n in [int(v) for v in args.gold_sizes.split(",")]:
                    mine = [v for v in variants if (v in ("poststratified", "dsl", "ppi")) ==
                            estimand.startswith("prevalence") or v == "ppi"]
                    mine = [v for v in mine if not (estimand.startswith("prevalence") and "+" in v)]
                    if (estimand, design, prevalence, n, args.replications) in done:
                        continue
                    cell = run_cell(estimand, design, prevalence, n, args.replications, mine, args.seed)
                    cells.append(cell)
                    if args.out:
                        with open(args.out, "a") as handle:
                            handle.write(json.dumps(cell) + "\n")
                    summary = ", ".join(f"{m} {cell[m]['coverage']:.3f}" for m in cell
                                        if isinstance(cell[m], dict))
                    print(f"{estimand} {design} p={prevalence} n={n}: {summary} ({cell['seconds']} s)", flush=True)
    print(f"\n{args.replications} replications per cell, corpus {CORPUS:,}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"{time.perf_counter() - started:.0f} s in all\n")
    print(markdown(cells))


if __name__ == "__main__":
    main()
