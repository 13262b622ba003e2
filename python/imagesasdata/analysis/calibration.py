"""Calibrated probabilities: temperature scaling (Guo, Pleiss, Sun & Weinberger 2017), ECE and the Brier score.

A fine-tuned network's softmax is usually overconfident: of the images it calls 90% likely, fewer than 90% are
right. Temperature scaling divides the logits by one number T > 0, fitted by maximum likelihood on the validation
split at the end of training; it changes no predicted class (the order of the logits is kept), only how sure the
probabilities are. The run stores T in model.json ("calibration", with the validation ECE and Brier score before and
after) and those measures with intervals, for every evaluated split, in calibration.parquet; predict(), evaluate()
and label_corpus() apply T when asked (calibrate=True).

ECE (expected calibration error, Naeini et al. 2015; Guo et al. 2017) uses equal-width bins: Σ_b (n_b / n)
|observed_b − predicted_b|. In a multiclass task it is the top-label version (predicted = the highest probability,
observed = the share classified correctly); in a binary task it is the positive class's probability against the
share of positives — the probability users read as a continuous measure. Both as netcal's ECE computes them
(checked in the tests). The Brier score (Brier 1950) is the mean of (p − y)² for the positive class in a binary task
(scikit-learn's brier_score_loss) and the mean over images of Σ_k (p_k − 1[y = k])² in a multiclass one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, setting

DEFAULT_BINS = 10
TEMPERATURE_RANGE = (0.05, 20.0)
CALIBRATION_METRICS = ("ece", "brier")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities from logits divided by the temperature (float64)."""
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / float(temperature)))


def logits_from_probabilities(probabilities) -> np.ndarray:
    """Logits up to a per-image constant (log p), which is all temperature scaling needs: softmax(log p / T) equals
    softmax(z / T). Probabilities that underflowed to 0 are floored at float32's smallest positive number."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), np.finfo(np.float32).tiny))


def negative_log_likelihood(logits, labels, temperature: float = 1.0, weights=None) -> float:
    """Mean cross-entropy of temperature-scaled logits; labels are class indices; weights (e.g. 1/π of a gold
    sample) make it the weighted mean."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    losses = -_log_softmax(logits / temperature)[np.arange(len(labels)), labels]
    if weights is None:
        return float(losses.mean())
    weights = np.asarray(weights, dtype=np.float64)
    return float((weights * losses).sum() / weights.sum())


def fit_temperature(logits, labels, weights=None, fitted_on: str = "validation") -> dict:
    """Fit T by maximum likelihood: Newton's method on b = 1/T, where the mean negative log-likelihood is convex.

    weights: one per image (None: equal) — a gold sample's 1/π, so that T is fitted to the corpus rather than to the
    sample (a design-weighted, pseudo-likelihood fit). fitted_on: how the images are named in the status.
    Returns {"temperature", "status", "nll_before", "nll_after"}. status "fitted"; or "not fitted" (T = 1) when the
    likelihood has no finite optimum — every image classified correctly, so sharpening without end always helps —
    or when there are no images; the optimum is kept within TEMPERATURE_RANGE.
    Raises ImagesAsDataError for mismatched shapes or weights that are not positive and finite.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ImagesAsDataError("fit_temperature() needs a logits matrix (images × classes) and one label per image")
    if weights is None:
        weights = np.ones(len(labels))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != labels.shape or not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ImagesAsDataError("fit_temperature(): give one positive, finite weight per image (1 / inclusion "
                                "probability for a gold sample)")
    if len(labels) == 0:
        return {"temperature": 1.0, "status": f"not fitted: no {fitted_on} images", "nll_before": None,
                "nll_after": None}
    share = weights / weights.sum()
    before = negative_log_likelihood(logits, labels, weights=weights)
    if (logits.argmax(1) == labels).all():
        return {"temperature": 1.0, "status": f"not fitted: every {fitted_on} image is classified correctly, so the "
                "likelihood keeps improving as the probabilities sharpen (no finite optimum)",
                "nll_before": before, "nll_after": before}
    rows = np.arange(len(labels))
    low, high = 1 / TEMPERATURE_RANGE[1], 1 / TEMPERATURE_RANGE[0]
    b = 1.0
    for _ in range(100):
        scaled = b * logits
        p = np.exp(_log_softmax(scaled))
        expected = (p * logits).sum(1)                       # E_p[z]
        gradient = float((share * (expected - logits[rows, labels])).sum())
        curvature = float((share * ((p * logits ** 2).sum(1) - expected ** 2)).sum())  # Var_p[z] ≥ 0
        step = gradient / curvature if curvature > 1e-12 else np.sign(gradient)
        new_b = float(np.clip(b - step, low, high))
        if abs(new_b - b) < 1e-12:
            break
        b = new_b
    temperature = 1 / b
    return {"temperature": temperature, "status": "fitted", "nll_before": before,
            "nll_after": negative_log_likelihood(logits, labels, temperature, weights)}


def _predicted_observed(probabilities: np.ndarray, labels: np.ndarray, positive: int):
    """(predicted probability, observed 0/1) per image: the positive class's probability and whether the image is
    positive in a binary task; the top-label probability and whether it is right otherwise."""
    if probabilities.shape[1] == 2:
        return probabilities[:, positive], (labels == positive).astype(float)
    return probabilities.max(1), (probabilities.argmax(1) == labels).astype(float)


def expected_calibration_error(probabilities, labels, bins: int = DEFAULT_BINS, positive: int = 1) -> float:
    """ECE with `bins` equal-width bins on [0, 1] (top-label; the `positive` column's probability in a binary task)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    counts, predicted, observed = _bins(probabilities, labels, bins, positive)
    filled = counts > 0
    return float((counts[filled] / counts.sum() * np.abs(observed[filled] - predicted[filled])).sum())


def brier_score(probabilities, labels, positive: int = 1) -> float:
    """Brier score: mean (p − y)² of the positive class in a binary task; mean Σ_k (p_k − 1[y = k])² otherwise."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(((probabilities[:, positive] - (labels == positive)) ** 2).mean())
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(labels)), labels] = 1
    return float(((probabilities - onehot) ** 2).sum(1).mean())


def _bins(probabilities, labels, bins: int, positive: int = 1):
    """(images, mean predicted probability, observed share) per equal-width bin."""
    if int(bins) < 1:
        raise ImagesAsDataError(f"bins={bins}: use at least 1 bin", what="option", option="bins", value=bins)
    bins = int(bins)
    predicted, observed = _predicted_observed(probabilities, labels, positive)
    # bin b holds probabilities in (b/B, (b+1)/B]; a probability of exactly 0 goes to the first bin
    index = np.clip(np.ceil(predicted * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=predicted, minlength=bins) / counts
        share = np.bincount(index, weights=observed, minlength=bins) / counts
    return counts, mean_predicted, share


def reliability_table(probabilities, labels, bins: int = DEFAULT_BINS, positive: int = 1) -> pa.Table:
    """The reliability diagram's data, one row per equal-width bin: bin, lower, upper, images, predicted (mean
    probability: top-label, or the positive class's in a binary task) and observed (the share of those images
    classified correctly, or that are positive). Empty bins have null means."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    counts, predicted, observed = _bins(probabilities, labels, bins, positive)
    edges = np.linspace(0, 1, int(bins) + 1)
    return pa.table({
        "bin": pa.array(np.arange(1, int(bins) + 1), pa.int32()),
        "lower": pa.array(edges[:-1], pa.float64()), "upper": pa.array(edges[1:], pa.float64()),
        "images": pa.array(counts.astype(np.int64), pa.int64()),
        "predicted": pa.array(predicted, pa.float64(), from_pandas=True),
        "observed": pa.array(observed, pa.float64(), from_pandas=True),
    })


def temperature_of(description: dict) -> float:
    """The run's fitted temperature (1.0 for runs written before calibration existed, or not fitted)."""
    calibration = (description or {}).get("calibration") or {}
    return float(calibration.get("temperature") or 1.0)


def prediction_description(description: dict, calibrate: bool) -> dict:
    """The run description a Predictor works from, saying which temperature to apply ("apply_temperature": the
    fitted one with calibrate=True, else 1)."""
    return {**description, "apply_temperature": temperature_of(description) if calibrate else 1.0}


def applied_temperature(description: dict) -> float:
    """The temperature a Predictor divides logits by (1 unless prediction_description() said otherwise)."""
    return float(description.get("apply_temperature") or 1.0)


def calibration_metrics(logits, labels, temperature: float, split: str, *, positive: int = 1,
                        bins: int = DEFAULT_BINS, confidence: float = 0.95, resamples: int = 1000,
                        seed: int = 0) -> pa.Table:
    """ECE and Brier score before ("uncalibrated") and after ("temperature") scaling, as metrics rows with
    percentile-bootstrap intervals (images resampled with replacement, seeded)."""
    from ..measure.metrics import METRIC_SCHEMA
    from ..measure.intervals import percentile_interval

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    rows = []
    draws = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n)) if n else None
    for estimator, t in (("uncalibrated", 1.0), ("temperature", temperature)):
        probabilities = softmax(logits, t)
        for metric, function in (("ece", lambda p, y: expected_calibration_error(p, y, bins, positive)),
                                 ("brier", lambda p, y: brier_score(p, y, positive))):
            estimate = function(probabilities, labels)
            lower = upper = method = None
            if n:
                replicates = np.array([function(probabilities[d], labels[d]) for d in draws])
                low, high = percentile_interval(replicates, confidence)
                lower, upper, method = float(low), float(high), "percentile_bootstrap"
            rows.append({"split": split, "metric": metric, "estimator": estimator, "class": None,
                         "estimate": estimate, "n": n, "lower": lower, "upper": upper, "interval": method})
    schema = pa.schema([("split", pa.string())] + list(METRIC_SCHEMA))
    return pa.Table.from_pylist(rows, schema=schema)


def calibrate_run(results: dict, targets, split: str = "val", positive: int = 1) -> tuple[dict, pa.Table]:
    """At the end of training: fit T on `split`'s logits; ECE and Brier before and after on every split.

    results: {split: (rows, logits)} as the trainer holds them (logits may be a torch tensor: read as an array).
    targets: class index of every row of the run's table. positive: the positive class's index (binary tasks).
    Returns (model.json's "calibration" entry, metrics rows). Without that split, T stays 1 (not fitted).
    """
    targets = np.asarray(targets)
    arrays = {name: (np.asarray(logits, dtype=np.float64), targets[np.asarray(rows, dtype=np.int64)])
              for name, (rows, logits) in results.items()}
    if split in arrays:
        fit = fit_temperature(*arrays[split])
    else:
        fit = {"temperature": 1.0, "status": f"not fitted: no {split} split", "nll_before": None, "nll_after": None}
    entry = {"method": "temperature scaling", "fitted_on": split, "images": int(len(arrays.get(split, ((), ()))[1])),
             **fit, "bins": DEFAULT_BINS}
    tables = [calibration_metrics(logits, labels, fit["temperature"], name, positive=positive)
              for name, (logits, labels) in arrays.items()]
    if not tables:
        from ..measure.metrics import METRIC_SCHEMA

        return entry, pa.Table.from_pylist([], schema=pa.schema([("split", pa.string())] + list(METRIC_SCHEMA)))
    table = pa.concat_tables(tables)
    for row in table.to_pylist():
        if row["split"] == split:
            when = "before" if row["estimator"] == "uncalibrated" else "after"
            entry[f"{row['metric']}_{when}"] = row["estimate"]
    return entry, table


CALIBRATION_FILE = "calibration.parquet"


def run_calibration_metrics(run) -> pa.Table:
    """A run's ECE and Brier score before and after temperature scaling, with intervals (calibration.parquet)."""
    path = run.path / CALIBRATION_FILE
    if not path.exists():
        raise ImagesAsDataError(f"{run.path} has no {CALIBRATION_FILE}: it was trained before calibration existed "
                                "(or did not finish); train it again to fit a temperature",
                                what="file", path=run.path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def calibration_table(run, split: str = "val", bins: int = DEFAULT_BINS) -> pa.Table:
    """Return a run's reliability diagram as a table: reliability_table() of `split`'s predictions before
    (probabilities "uncalibrated") and after ("temperature") scaling, with each one's ece and temperature."""
    description = run.description
    predictions = run.predictions
    names = predictions["split"].to_pylist()
    keep = [i for i, s in enumerate(names) if s == split]
    if not keep:
        available = sorted(set(names))
        raise ImagesAsDataError(f"{setting('split', split)}: the run's predictions hold {', '.join(available)}; choose one of them",
                                what="option", option="split", value=split)
    classes = list(description["classes"])
    positive = classes.index(description["positive_class"]) if description.get("positive_class") in classes else 1
    table = predictions.take(keep)
    probabilities = np.column_stack([np.asarray(table[f"prob_{c}"].to_pylist(), dtype=np.float64) for c in classes])
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[v] for v in table["label"].to_pylist()], dtype=np.int64)
    logits = logits_from_probabilities(probabilities)
    parts = []
    for name, t in (("uncalibrated", 1.0), ("temperature", temperature_of(description))):
        scaled = softmax(logits, t)
        part = reliability_table(scaled, labels, bins, positive)
        ece = expected_calibration_error(scaled, labels, bins, positive)
        part = part.add_column(0, "probabilities", pa.array([name] * part.num_rows, pa.string()))
        part = part.add_column(1, "split", pa.array([split] * part.num_rows, pa.string()))
        part = part.append_column("ece", pa.array([ece] * part.num_rows, pa.float64()))
        part = part.append_column("temperature", pa.array([t] * part.num_rows, pa.float64()))
        parts.append(part)
    return pa.concat_tables(parts)


# ------------------------------------------------------------------------------------------ calibration to the corpus
#
# Temperature scaling fitted on the validation split calibrates the probabilities to that split — and with balance=
# True (or a validation set built with equal classes) to its class shares, not the corpus's. Two corrections:
#
# - a temperature fitted on the gold sample, design-weighted (each coded image counts 1/π times): the gold sample is
#   a probability sample of the corpus, so the weighted likelihood is the corpus's (fit_temperature(weights=));
# - a prior-shift correction (label shift: P(image | class) the same, the class shares different): each image's
#   probabilities reweighted by Bayes' rule, p'_k ∝ p_k · π'_k / π_k (Saerens, Latinne & Decaestecker 2002), with
#   π the shares the network was trained on and π' the corpus's: known, estimated from the gold sample
#   (design-weighted), or estimated from the corpus's own probabilities by Saerens et al.'s EM.

PRIOR_SHIFTS = (None, "gold", "em")
TEMPERATURES = (None, "run", "gold")
CALIBRATION_METADATA = b"imagesasdata.calibration"


def adjust_priors(probabilities, source_priors, target_priors) -> np.ndarray:
    """Bayes' rule for a change of class shares: p'_k = p_k π'_k / π_k, renormalised per image.

    probabilities: images × classes, calibrated to the source shares. source_priors: the shares the probabilities
    reflect (the training split's); target_priors: the corpus's. Returns the adjusted probabilities.
    Raises ImagesAsDataError for shares that are not positive or do not match the classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    source = _priors(source_priors, probabilities.shape[1], "source_priors")
    target = _priors(target_priors, probabilities.shape[1], "target_priors", allow_zero=True)
    adjusted = probabilities * (target / source)
    total = adjusted.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, adjusted / total, probabilities)


def em_priors(probabilities, source_priors, *, tolerance: float = 1e-8, max_iterations: int = 1000) -> dict:
    """The corpus's class shares estimated from its images' probabilities by EM (Saerens et al. 2002): start at the
    source shares; adjust every image's probabilities to the current shares (adjust_priors()); the new shares are
    the mean adjusted probabilities; repeat until they change by less than `tolerance`.

    It assumes label shift (each class's images look alike in training and corpus) and calibrated probabilities.
    Returns {"priors" (array), "probabilities" (adjusted), "iterations", "converged"}."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    source = _priors(source_priors, probabilities.shape[1], "source_priors")
    if not len(probabilities):
        raise ImagesAsDataError("em_priors() needs at least one image's probabilities")
    priors = source.copy()
    converged = False
    iterations = 0
    for iterations in range(1, int(max_iterations) + 1):
        adjusted = adjust_priors(probabilities, source, priors)
        new = adjusted.mean(0)
        change = float(np.abs(new - priors).max())
        priors = new
        if change < tolerance:
            converged = True
            break
    return {"priors": priors, "probabilities": adjust_priors(probabilities, source, priors),
            "iterations": iterations, "converged": converged}


def confusion_priors(conditional, predicted_shares) -> np.ndarray:
    """The corpus's class shares π implied by its predicted shares q and the classifier's error rates
    C[j, k] = P(predicted k | true j) (from a validation confusion matrix; unchanged by a shift of class shares):
    the π ≥ 0, Σ π = 1 that best solves q = Cᵀ π in least squares (the adjusted count; Lipton, Wang & Smola 2018's
    BBSE). Returns an array of shares in the classes' order."""
    from scipy.optimize import nnls

    conditional = np.asarray(conditional, dtype=np.float64)
    q = np.asarray(predicted_shares, dtype=np.float64)
    k = conditional.shape[0]
    big = 1e3
    system = np.vstack([conditional.T, big * np.ones((1, k))])
    solution, _ = nnls(system, np.concatenate([q, [big]]))
    return solution / solution.sum()


def _priors(values, k: int, name: str, allow_zero: bool = False) -> np.ndarray:
    shares = np.asarray(values, dtype=np.float64).ravel()
    if shares.shape != (k,) or not np.isfinite(shares).all() or (shares < 0).any() or \
            (not allow_zero and (shares <= 0).any()) or shares.sum() <= 0:
        raise ImagesAsDataError(f"{name}: give {k} class shares, one per class, {'0 or more' if allow_zero else 'above 0'}"
                                f" (got {values!r})", what="option", option=name)
    return shares / shares.sum()


def _class_shares(values, classes, weights=None) -> np.ndarray:
    weights = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    index = {c: i for i, c in enumerate(classes)}
    shares = np.zeros(len(classes))
    for v, w in zip(values, weights):
        if v is not None and str(v) in index:
            shares[index[str(v)]] += w
    return shares / shares.sum() if shares.sum() > 0 else shares


def run_class_shares(run, split: str = "train") -> dict:
    """{class: share} of a run's `split` (splits.parquet): the class shares its network was trained on — what its
    probabilities reflect, and the source of a prior-shift correction. Raises ImagesAsDataError without them."""
    folder = Path(run.path if hasattr(run, "path") else run)
    if not (folder / "splits.parquet").exists() or not (folder / "model.json").exists():
        raise ImagesAsDataError(f"{folder} is not a finished run directory (no splits.parquet); pass the run the "
                                "labelling was made with", what="file", path=str(folder))
    from ..io.tables import read_json, to_arrow

    classes = [str(c) for c in read_json(folder / "model.json", "a run description")["classes"]]
    table = to_arrow(folder / "splits.parquet")
    labels = [l for l, s in zip(table["label"].to_pylist(), table["split"].to_pylist()) if s == split]
    if not labels:
        raise ImagesAsDataError(f"{folder} has no {split!r} images in splits.parquet", what="file", path=folder)
    return dict(zip(classes, _class_shares(labels, classes).tolist()))


def calibrate_to_corpus(labels, *, run=None, gold=None, temperature=None, prior_shift=None, source_priors=None,
                        design=None) -> pa.Table:
    """A labelled corpus's probabilities calibrated to the corpus rather than to the run's validation split.

    labels: the labelled corpus (a Labelling or labelling directory, a predict() table or file), with prob_<class>.
    temperature: None (keep the probabilities' scale), "run" (the run's temperature, fitted on its validation split;
      not again if the labelling already applied it) or "gold" (a temperature fitted on the coded gold sample,
      design-weighted: each image counts 1/π times, so the fit is the corpus's).
    prior_shift: None; "gold" (the corpus's class shares estimated from the gold sample, design-weighted); "em"
      (estimated from the corpus's probabilities, Saerens et al.'s EM); or the shares themselves ({class: share}).
      The probabilities are reweighted from source_priors (default: the class shares of the run's training split,
      which a balanced split makes equal) to these shares by Bayes' rule, after any temperature; `predicted` is then
      the most probable class again. Use it when the classes' shares in training differ from the corpus's.
    run: the run the labels were made with (default: the labelling's); gold: the coded gold sample
      (read_coding_sheet()), for temperature="gold" or prior_shift="gold". design: as in gold_metrics().
    Returns the corpus table with new prob_<class> and predicted columns (predicted_before: the class before the
    correction, when a prior shift changed any) and, in the schema metadata "imagesasdata.calibration", what was done:
    {"temperature", "temperature_fitted_on", "prior_shift", "source_priors", "corpus_priors", "changed_predictions"};
    calibration_record() reads it back.
    Raises ImagesAsDataError for unknown options, a missing run or gold sample, or missing probability columns.
    """
    import json

    from .gold import corpus_table, inclusion_probabilities, labelling_run, sample_design

    if temperature not in TEMPERATURES:
        raise ImagesAsDataError(f"{setting('temperature', temperature)}: choose None, 'run' or 'gold'", what="option",
                                option="temperature", value=temperature, choices=["run", "gold"])
    if not (prior_shift in PRIOR_SHIFTS or isinstance(prior_shift, dict)):
        raise ImagesAsDataError(f"{setting('prior_shift', prior_shift)}: choose None, 'gold', 'em' or a dict {{class: share}}",
                                what="option", option="prior_shift", value=str(prior_shift), choices=["gold", "em"])
    corpus, classes = corpus_table(labels)
    applied_before = None
    folder = getattr(labels, "path", labels)
    if isinstance(folder, (str, os.PathLike)) and (Path(folder) / "labelling.json").exists():
        from ..io.tables import read_json

        applied_before = read_json(Path(folder) / "labelling.json").get("temperature")
    run = run if run is not None else labelling_run(labels)
    if not classes:
        raise ImagesAsDataError("the labelled corpus has no prob_<class> columns; label it with predict() or "
                                "label_corpus()")
    classes = [str(c) for c in classes]
    columns = [f"prob_{c}" for c in classes]
    missing = [c for c in columns if c not in corpus.column_names]
    if missing:
        raise ImagesAsDataError(f"the labelled corpus has no {', '.join(missing)} column(s)")
    usable = np.array([all(corpus[c][i].is_valid for c in columns) for i in range(corpus.num_rows)], dtype=bool)
    probabilities = np.column_stack([np.nan_to_num(np.asarray(corpus[c].to_pylist(), dtype=object).astype(float))
                                     for c in columns])
    record: dict = {"temperature": None, "temperature_fitted_on": None, "prior_shift": None, "source_priors": None,
                    "corpus_priors": None, "changed_predictions": 0}
    gold_table = weights = gold_labels = gold_probabilities = None
    if temperature == "gold" or prior_shift == "gold":
        if gold is None:
            raise ImagesAsDataError("temperature='gold' and prior_shift='gold' need the coded gold sample: pass gold= "
                                    "(read_coding_sheet())", what="option", option="gold")
        gold_table = to_arrow_table(gold)
        if "label" not in gold_table.column_names:
            raise ImagesAsDataError("the gold sample has no 'label' column; pass what read_coding_sheet() returned")
        position = {image_id: i for i, image_id in enumerate(corpus["image_id"].to_pylist())}
        ids = [str(v) for v in gold_table["image_id"].to_pylist()]
        absent = [i for i in ids if i not in position]
        if absent:
            from ..errors import listing

            raise ImagesAsDataError(f"gold images not in the labelled corpus: {listing(absent)}; use the gold sample "
                                    "drawn from this corpus")
        weights = 1 / inclusion_probabilities(gold_table, design=design)
        gold_labels = [str(v) for v in gold_table["label"].to_pylist()]
        strange = sorted({v for v in gold_labels if v not in classes})
        if strange:
            raise ImagesAsDataError(f"gold labels {strange} are not among the classes ({', '.join(classes)})")
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        gold_probabilities = probabilities[rows]
    if temperature == "run" and applied_before:
        record.update(temperature=float(applied_before), temperature_fitted_on="validation (applied when labelling)")
    elif temperature == "run":
        if run is None:
            raise ImagesAsDataError("temperature='run' needs the run: pass run=", what="option", option="run")
        from ..io.tables import read_json

        folder_run = Path(run.path if hasattr(run, "path") else run)
        t = temperature_of(read_json(folder_run / "model.json", "a run description"))
        probabilities = softmax(logits_from_probabilities(probabilities), t)
        record.update(temperature=t, temperature_fitted_on="validation")
    elif temperature == "gold":
        index = {c: i for i, c in enumerate(classes)}
        fit = fit_temperature(logits_from_probabilities(gold_probabilities),
                              np.array([index[v] for v in gold_labels]), weights=weights, fitted_on="gold")
        t = float(fit["temperature"])
        probabilities = softmax(logits_from_probabilities(probabilities), t)
        gold_probabilities = softmax(logits_from_probabilities(gold_probabilities), t)
        record.update(temperature=t, temperature_fitted_on="gold (design-weighted)", temperature_status=fit["status"],
                      gold_images=len(gold_labels))
    predicted_before = [None if not ok else classes[int(k)] for ok, k in zip(usable, probabilities.argmax(1))]
    if "predicted" in corpus.column_names:
        predicted_before = [None if not ok else v for ok, v in zip(usable, corpus["predicted"].to_pylist())]
    predicted = list(predicted_before)
    if prior_shift is not None:
        if source_priors is None:
            if run is None:
                raise ImagesAsDataError("a prior shift needs the class shares the run was trained on: pass run= (or "
                                        "source_priors=)", what="option", option="run")
            source_priors = run_class_shares(run)
        source = _priors([source_priors[c] for c in classes] if isinstance(source_priors, dict) else source_priors,
                         len(classes), "source_priors")
        if prior_shift == "em":
            target = em_priors(probabilities[usable], source)["priors"]
        elif prior_shift == "gold":
            target = _class_shares(gold_labels, classes, weights)
        else:
            unknown = [c for c in prior_shift if str(c) not in classes]
            if unknown:
                raise ImagesAsDataError(f"prior_shift names classes {unknown} that the run does not have "
                                        f"({', '.join(classes)})", what="option", option="prior_shift")
            target = _priors([float(prior_shift.get(c, 0.0)) for c in classes], len(classes), "prior_shift",
                             allow_zero=True)
        probabilities = adjust_priors(probabilities, source, target)
        predicted = [None if not ok else classes[int(k)] for ok, k in zip(usable, probabilities.argmax(1))]
        record.update(prior_shift=prior_shift if isinstance(prior_shift, str) else "given",
                      source_priors=dict(zip(classes, source.tolist())), corpus_priors=dict(zip(classes, target.tolist())),
                      changed_predictions=int(sum(a != b for a, b in zip(predicted, predicted_before))))
    table = corpus
    for c, column in zip(classes, columns):
        values = [float(v) if ok else None for v, ok in zip(probabilities[:, classes.index(c)], usable)]
        table = table.set_column(table.column_names.index(column), column, pa.array(values, pa.float64()))
    if "predicted" in table.column_names:
        table = table.set_column(table.column_names.index("predicted"), "predicted", pa.array(predicted, pa.string()))
    else:
        table = table.append_column("predicted", pa.array(predicted, pa.string()))
    if record["changed_predictions"]:
        table = table.append_column("predicted_before", pa.array(predicted_before, pa.string()))
    metadata = dict(table.schema.metadata or {})
    metadata[CALIBRATION_METADATA] = json.dumps(record).encode()
    return table.replace_schema_metadata(metadata)


def calibration_record(table) -> dict:
    """What calibrate_to_corpus() did to a table (its "imagesasdata.calibration" metadata; {} when nothing)."""
    import json

    raw = (to_arrow_table(table).schema.metadata or {}).get(CALIBRATION_METADATA)
    return json.loads(raw) if raw else {}


def calibration_note(record: dict) -> str | None:
    """One line saying how a corpus's probabilities were calibrated (calibrate_to_corpus()'s record), for the notes
    of the estimates made from it; None when they were not. When the calibration was fitted on a gold sample the
    line says that the intervals do not account for that fit (one temperature, or K class shares: small, but a
    reviewer should know)."""
    if not record or (record.get("temperature") is None and record.get("prior_shift") is None):
        return None
    parts = []
    if record.get("temperature") is not None:
        parts.append(f"temperature {record['temperature']:.3g} fitted on {record.get('temperature_fitted_on')}")
    if record.get("prior_shift") is not None:
        source = record.get("source_priors") or {}
        target = record.get("corpus_priors") or {}
        where = {"gold": "the gold sample's estimate (design-weighted)", "em": "an EM estimate from the corpus",
                 "given": "shares given by the user"}.get(record["prior_shift"], record["prior_shift"])
        shares = ", ".join(f"{c} {source.get(c, 0):.0%} -> {target.get(c, 0):.0%}" for c in target)
        parts.append(f"class shares moved from training's to {where} ({shares}); "
                     f"{record.get('changed_predictions', 0)} predicted classes changed")
    line = "probabilities calibrated to the corpus: " + "; ".join(parts)
    if record.get("prior_shift") == "gold" or str(record.get("temperature_fitted_on", "")).startswith("gold"):
        line += (". The calibration was fitted on the gold sample; the intervals treat it as fixed (check that the "
                 "gold sample used here is the one it was fitted on, and say so)")
    return line


def calibration_json(table) -> str:
    """What calibrate_to_corpus() did to a table, as JSON text ("" when nothing): R keeps it as an attribute of
    its tibble and hands it back with with_calibration()."""
    import json

    record = calibration_record(table)
    return json.dumps(record) if record else ""


def with_calibration(table: pa.Table, text: str) -> pa.Table:
    """Return `table` with calibrate_to_corpus()'s record (JSON text from calibration_json()) in its metadata again.
    Raises ImagesAsDataError when the text is not such a record."""
    import json

    if not text:
        return table
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise ImagesAsDataError("the table's calibration attribute is not calibrate_to_corpus()'s record; drop the "
                                "attribute or calibrate again", what="option", option="calibration")
    metadata = dict(table.schema.metadata or {})
    metadata[CALIBRATION_METADATA] = json.dumps(record).encode()
    return table.replace_schema_metadata(metadata)


def to_arrow_table(value) -> pa.Table:
    from ..io.tables import to_arrow

    return to_arrow(value)
