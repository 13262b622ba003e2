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

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError

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


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy of temperature-scaled logits; labels are class indices."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return float(-_log_softmax(logits / temperature)[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels) -> dict:
    """Fit T by maximum likelihood: Newton's method on b = 1/T, where the mean negative log-likelihood is convex.

    Returns {"temperature", "status", "nll_before", "nll_after"}. status "fitted"; or "not fitted" (T = 1) when the
    likelihood has no finite optimum — every image classified correctly, so sharpening without end always helps —
    or when there are no images; the optimum is kept within TEMPERATURE_RANGE.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ImagesAsDataError("fit_temperature() needs a logits matrix (images × classes) and one label per image")
    if len(labels) == 0:
        return {"temperature": 1.0, "status": "not fitted: no validation images", "nll_before": None,
                "nll_after": None}
    before = negative_log_likelihood(logits, labels)
    if (logits.argmax(1) == labels).all():
        return {"temperature": 1.0, "status": "not fitted: every validation image is classified correctly, so the "
                "likelihood keeps improving as the probabilities sharpen (no finite optimum)",
                "nll_before": before, "nll_after": before}
    rows = np.arange(len(labels))
    low, high = 1 / TEMPERATURE_RANGE[1], 1 / TEMPERATURE_RANGE[0]
    b = 1.0
    for _ in range(100):
        scaled = b * logits
        p = np.exp(_log_softmax(scaled))
        expected = (p * logits).sum(1)                       # E_p[z]
        gradient = float((expected - logits[rows, labels]).mean())
        curvature = float(((p * logits ** 2).sum(1) - expected ** 2).mean())  # Var_p[z] ≥ 0
        step = gradient / curvature if curvature > 1e-12 else np.sign(gradient)
        new_b = float(np.clip(b - step, low, high))
        if abs(new_b - b) < 1e-12:
            break
        b = new_b
    temperature = 1 / b
    return {"temperature": temperature, "status": "fitted", "nll_before": before,
            "nll_after": negative_log_likelihood(logits, labels, temperature)}


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
        raise ImagesAsDataError(f"bins={bins}: use at least 1 bin")
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
                                "(or did not finish); train it again to fit a temperature")
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
        raise ImagesAsDataError(f"split={split!r}: the run's predictions hold {', '.join(available)}; choose one of them")
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
