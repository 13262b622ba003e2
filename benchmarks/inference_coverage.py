"""Coverage of naive, gold-only and corrected 95% intervals when a classifier's labels enter a regression.

Each replication draws a corpus of images' true labels and metadata, lets a classifier of 80–90% accuracy err with
a probability that depends on the outcome (differential error) or on the regressors, draws a gold sample, and fits
the regression three ways with imagesasdata.analysis.estimators.corrected_glm. Training is kept out of the
simulation on purpose: predicted labels are simulated from the true ones with a known error process, so the
results do not depend on any CPU's arithmetic.

Scenarios (the coefficient of interest in brackets):
  regressor   predicted label as a regressor, gaussian outcome, simple random gold sample      (label: 0.5)
  outcome     predicted label as the outcome, logistic regression, simple random gold sample   (z: 0.8)
  stratified  predicted label as a regressor, poisson outcome, gold sample stratified by the
              predicted label with equal allocation (the rare class oversampled)               (label: 0.7)

    .venv/bin/python benchmarks/inference_coverage.py                  # 1,000 replications, corpus 10,000, gold 300
    .venv/bin/python benchmarks/inference_coverage.py --replications 50 --scenarios regressor

tests/test_analysis_estimators.py runs the same code at small size.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import pyarrow as pa

SCENARIOS = {"regressor": ("label", 0.5), "outcome": ("z", 0.8), "stratified": ("label", 0.7)}


def expit(x):
    return 1 / (1 + np.exp(-x))


def simulate(scenario: str, rng, corpus_size: int = 10_000, gold_size: int = 300):
    """(corpus table, gold table, formula, family, classifier accuracy) for one replication."""
    n = corpus_size
    z = rng.normal(size=n)
    if scenario == "regressor":
        label = rng.random(n) < expit(-1 + 0.5 * z)
        y = 1 + 0.5 * label + 0.3 * z + rng.normal(size=n)
        # differential error: the classifier misses positives more often when the outcome is high
        flip = rng.random(n) < np.where(label, np.where(y > np.median(y), 0.40, 0.05), 0.05)
        formula, family = "y ~ label + z", "gaussian"
    elif scenario == "outcome":
        label = rng.random(n) < expit(-1 + 0.8 * z)
        y = z
        # errors depend on the true label and on the regressor
        flip = rng.random(n) < 0.06 + 0.10 * label + 0.06 * (z > 0)
        formula, family = "label ~ z", "binomial"
    elif scenario == "stratified":
        label = rng.random(n) < expit(-2.2 + 0.3 * z)
        y = rng.poisson(np.exp(0.5 + 0.7 * label + 0.2 * z))
        flip = rng.random(n) < np.where(label, 0.30, 0.06) + 0.04 * (y > 3)
        formula, family = "y ~ label + z", "poisson"
    else:
        raise ValueError(scenario)
    predicted = np.where(flip, ~label, label)
    ids = np.array([f"img{k}" for k in range(n)])
    corpus = pa.table({"image_id": ids, "y": y.astype(float), "z": z, "label": predicted.astype(float)})
    if scenario == "stratified":  # equal allocation over the predicted classes
        rows, probability = [], []
        for value in (True, False):
            members = np.flatnonzero(predicted == value)
            take = min(len(members), gold_size // 2)
            rows.append(rng.choice(members, take, replace=False))
            probability += [take / len(members)] * take
        rows = np.concatenate(rows)
    else:
        rows = rng.choice(n, gold_size, replace=False)
        probability = [gold_size / n] * gold_size
    gold = pa.table({"image_id": ids[rows], "label": label[rows].astype(float),
                     "inclusion_probability": np.asarray(probability, dtype=float)})
    return corpus, gold, formula, family, float((predicted == label).mean())


def replicate(scenario: str, replications: int, *, corpus_size: int = 10_000, gold_size: int = 300, seed: int = 2023,
              method: str = "auto") -> dict:
    """Coverage, bias, mean width and standard deviation of each method's estimate of the scenario's coefficient."""
    from imagesasdata.analysis.estimators import corrected_glm

    term, truth = SCENARIOS[scenario]
    rng = np.random.default_rng([seed, list(SCENARIOS).index(scenario)])
    found = {m: {"estimate": [], "low": [], "high": []} for m in ("naive", "gold_only", "corrected")}
    accuracy = []
    corrected_by = None
    for _ in range(replications):
        corpus, gold, formula, family, acc = simulate(scenario, rng, corpus_size, gold_size)
        accuracy.append(acc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = corrected_glm(formula, corpus, gold, predicted="label", family=family, method=method)
        corrected_by = fit.corrected_method
        for row in fit.coefficients.to_pylist():
            if row["term"] == term:
                found[row["method"]]["estimate"].append(row["estimate"])
                found[row["method"]]["low"].append(row["conf_low"])
                found[row["method"]]["high"].append(row["conf_high"])
    summary = {"scenario": scenario, "truth": truth, "replications": replications, "accuracy": float(np.mean(accuracy)),
               "corrected_by": corrected_by}
    for name, values in found.items():
        estimate, low, high = (np.asarray(values[k]) for k in ("estimate", "low", "high"))
        summary[name] = {"coverage": float(np.mean((low <= truth) & (truth <= high))),
                         "bias": float(estimate.mean() - truth), "width": float(np.mean(high - low)),
                         "sd": float(estimate.std(ddof=1))}
    return summary


def markdown(results) -> str:
    lines = ["| scenario | corrected by | classifier accuracy | method | coverage | bias | mean width | sd |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        for method in ("naive", "gold_only", "corrected"):
            m = r[method]
            lines.append(f"| {r['scenario']} (truth {r['truth']}) | {r['corrected_by']} | {r['accuracy']:.3f} | {method} | "
                         f"{m['coverage']:.3f} | {m['bias']:+.3f} | {m['width']:.3f} | {m['sd']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--corpus-size", type=int, default=10_000)
    parser.add_argument("--gold-size", type=int, default=300)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    results = []
    started = time.perf_counter()
    for scenario in args.scenarios.split(","):
        began = time.perf_counter()
        results.append(replicate(scenario, args.replications, corpus_size=args.corpus_size, gold_size=args.gold_size))
        print(f"{scenario}: {time.perf_counter() - began:.0f} s", flush=True)
    print(f"\n{args.replications} replications, corpus {args.corpus_size:,}, gold sample {args.gold_size}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"{time.perf_counter() - started:.0f} s in all\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
