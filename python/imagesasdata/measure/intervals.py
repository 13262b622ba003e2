"""Confidence intervals for classification metrics: how far a number measured on a few dozen images can be trusted.

Two kinds, chosen per metric (metrics.py attaches them to every metrics table):

- proportions with a plain count behind them (accuracy; precision and recall of a class; micro averages, which
  equal accuracy) get a score interval: Wilson (1927) by default, or the exact Clopper–Pearson (1934) interval;
- F1 and the macro and weighted averages, which are not proportions, get a seeded percentile bootstrap: the images
  are resampled with replacement, which for a confusion matrix is a multinomial draw of its cells.

On a stratified gold sample (gold.py) the same metrics are design-weighted, so they estimate performance on the
corpus; their intervals are a Wilson interval on the design's effective sample size (Korn & Graubard 1998) and a
bootstrap that resamples within strata.

Nothing here imports torch, scipy or pandas (the exact interval imports scipy when asked for).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from ..errors import ImagesAsDataError, setting

INTERVAL_METHODS = ("wilson", "exact")
DEFAULT_RESAMPLES = 1000


def check_confidence(confidence) -> float:
    """The confidence level as a float strictly between 0 and 1, or a clear error."""
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < 1:
        raise ImagesAsDataError(f"{setting('confidence', confidence)}: give a level between 0 and 1, e.g. 0.95 for 95% intervals",
                                what="option", option="confidence", value=confidence)
    return value


def z_value(confidence: float = 0.95) -> float:
    """The standard normal quantile of a two-sided interval (1.959964 for 95%)."""
    return NormalDist().inv_cdf(0.5 + check_confidence(confidence) / 2)


def wilson_interval(rate, n, confidence: float = 0.95):
    """Wilson's score interval for a proportion `rate` observed on `n` trials (arrays broadcast; n may be an
    effective, non-integer size). Returns (lower, upper); NaN where n is 0."""
    z = z_value(confidence)
    rate = np.asarray(rate, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = 1 + z * z / n
        centre = (rate + z * z / (2 * n)) / denominator
        half = z / denominator * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
        lower, upper = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    empty = ~(n > 0)
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def exact_interval(successes, trials, confidence: float = 0.95):
    """The Clopper–Pearson ("exact") interval from beta quantiles. Returns (lower, upper); NaN where trials is 0."""
    try:
        from scipy.stats import beta
    except ImportError:  # pragma: no cover - scipy ships with the stats extra
        raise ImagesAsDataError("exact intervals need scipy: pip install 'imagesasdata[stats]', or use "
                                "interval_method='wilson'", what="missing_extra", extra="stats") from None
    alpha = 1 - check_confidence(confidence)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        upper = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    empty = ~(n > 0)
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def proportion_interval(successes, trials, confidence: float = 0.95, method: str = "wilson"):
    """Return a proportion's interval from its counts as (lower, upper) (arrays broadcast; NaN where trials is 0):
    method "wilson" (default) or "exact" (Clopper–Pearson). Raises ImagesAsDataError for another method."""
    if method not in INTERVAL_METHODS:
        raise ImagesAsDataError(f"{setting('interval_method', method)}: choose {' or '.join(INTERVAL_METHODS)}",
                                what="option", option="interval_method", value=method)
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    if method == "exact":
        return exact_interval(successes, trials, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(trials > 0, successes / np.where(trials > 0, trials, 1), np.nan)
    return wilson_interval(rate, trials, confidence)


def percentile_interval(values, confidence: float = 0.95):
    """The percentile interval of bootstrap replicates along the first axis (NaN replicates ignored)."""
    alpha = 1 - check_confidence(confidence)
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        if np.isnan(values).all():
            shape = values.shape[1:]
            return np.full(shape, np.nan), np.full(shape, np.nan)
        return (np.nanquantile(values, alpha / 2, axis=0), np.nanquantile(values, 1 - alpha / 2, axis=0))


def bootstrap_confusions(counts: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """`resamples` bootstrap replicates of a confusion matrix (resampling its images with replacement is a
    multinomial draw of its cells): an array (resamples, k, k)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    k = counts.shape[0]
    resamples = int(resamples)
    rng = np.random.default_rng(seed)
    if total == 0:
        return np.zeros((resamples, k, k))
    if total * resamples > 20_000_000:
        draws = rng.multinomial(total, counts.ravel() / total, size=resamples)
        return draws.reshape(resamples, k, k).astype(float)
    # Resampling the images themselves is the same distribution, and faster for the usual few hundred images.
    cells = np.repeat(np.arange(k * k), counts.ravel())
    picks = cells[rng.integers(0, total, size=(resamples, total))] + (np.arange(resamples) * k * k)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * k * k).reshape(resamples, k, k).astype(float)


def stratified_bootstrap_confusions(truth_index, predicted_index, k: int, weights, strata,
                                    resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Replicates of a design-weighted confusion matrix: within each stratum, its images are resampled with
    replacement (the design's sample size per stratum is kept) and each keeps its weight. (resamples, k, k)."""
    truth_index = np.asarray(truth_index, dtype=np.int64)
    predicted_index = np.asarray(predicted_index, dtype=np.int64)
    weights = np.asarray(weights, dtype=float)
    strata = np.asarray(strata, dtype=object)
    rng = np.random.default_rng(seed)
    cells = truth_index * k + predicted_index
    out = np.zeros((int(resamples), k * k))
    offsets = (np.arange(int(resamples)) * k * k)[:, None]
    for stratum in sorted(set(strata.tolist()), key=str):
        members = np.flatnonzero(strata == stratum)
        picks = members[rng.integers(0, len(members), size=(int(resamples), len(members)))]
        out += np.bincount((offsets + cells[picks]).ravel(), weights=weights[picks].ravel(),
                           minlength=int(resamples) * k * k).reshape(int(resamples), k * k)
    return out.reshape(int(resamples), k, k)


def design_effective_size(numerator, denominator, weights, strata):
    """Korn & Graubard's (1998) effective sample size of a design-weighted ratio R = Σ w·y / Σ w·x (y, x 0/1 per
    image): R(1−R) / v, where v is R's stratified linearisation variance (with-replacement within strata). Where
    the ratio is 0 or 1 (v = 0) the number of images in its denominator is used. Returns (R, n_effective)."""
    y = np.asarray(numerator, dtype=float)
    x = np.asarray(denominator, dtype=float)
    w = np.asarray(weights, dtype=float)
    strata = np.asarray(strata, dtype=object)
    total = float((w * x).sum())
    domain = int((x > 0).sum())
    if total <= 0:
        return float("nan"), 0.0
    ratio = float((w * y).sum() / total)
    u = w * (y - ratio * x) / total
    variance = 0.0
    for stratum in set(strata.tolist()):
        members = strata == stratum
        size = int(members.sum())
        if size > 1:
            values = u[members]
            variance += size / (size - 1) * float(((values - values.mean()) ** 2).sum())
    if variance <= 0 or not 0 < ratio < 1:
        return ratio, float(domain)
    return ratio, min(float(domain), ratio * (1 - ratio) / variance)


# ------------------------------------------------------------------------------------------ stratified samples

def stratified_covariance(values, stratum, sizes, counts) -> np.ndarray:
    """The design covariance of a Horvitz–Thompson total under stratified simple random sampling without
    replacement: Σ_h N_h² (1 − n_h/N_h) / n_h · S_h, with S_h the within-stratum sample covariance of `values`.

    values: (n, p) (or (n,)) per sampled image; stratum: (n,) its stratum index; sizes, counts: (H,) N_h and n_h.
    A stratum with one sampled image adds nothing (its variance cannot be estimated). Returns (p, p)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    stratum = np.asarray(stratum, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=float)
    counts = np.asarray(counts, dtype=float)
    means = np.zeros((len(sizes), values.shape[1]))
    np.add.at(means, stratum, values)
    means /= np.maximum(counts, 1)[:, None]
    centred = values - means[stratum]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(counts > 1, sizes * (sizes - counts) / (counts * (counts - 1)), 0.0)
    scaled = centred * np.sqrt(np.maximum(factor[stratum], 0))[:, None]
    return scaled.T @ scaled


def stratified_variance(sizes, sample_sizes, within_variances) -> float:
    """Σ_h N_h² (1 − n_h/N_h) S²_h / n_h: the variance of an estimated total under stratified simple random sampling,
    from the strata's sizes, sample sizes and (guessed or estimated) within-stratum variances — what a planner
    needs to compare designs before any image is coded. Divide by N² for a mean."""
    sizes = np.asarray(sizes, dtype=float)
    n = np.asarray(sample_sizes, dtype=float)
    s2 = np.asarray(within_variances, dtype=float)
    if np.any(n <= 0) or np.any(n > sizes):
        raise ImagesAsDataError("every stratum needs between 1 and N_h sampled images")
    return float((sizes ** 2 * (1 - n / sizes) * s2 / n).sum())


def weighted_proportion_interval(successes, trials, cell_sizes, confidence: float = 0.95, draws: int = 10_000,
                                 seed: int = 0, corpus: str = "superpopulation"):
    """An interval for a share that is a weighted sum of cell proportions, θ = Σ_c (N_c / N) p_c, where each cell c
    (a stratum of the design, or a predicted class within one) has a simple random sample of `trials` images of
    which `successes` are of the class.

    The interval is the central `confidence` part of the distribution of Σ_c W_c p_c with each p_c drawn from its
    Jeffreys posterior Beta(y_c + ½, n_c − y_c + ½) and, for corpus="superpopulation" (the process that produced the
    corpus), the cell shares W drawn from Dirichlet(N_c); corpus="finite" (the corpus itself) keeps W fixed and
    adds each cell's unsampled images, Binomial(N_c − n_c, p_c). Unlike a Wald interval it keeps a sensible width
    when a heavily weighted cell shows no image of the class (y_c = 0): that is where Wald intervals on
    rare classes fail. Monte Carlo with `draws` seeded draws.

    Returns (estimate Σ W_c y_c/n_c, standard deviation of the draws, lower, upper). Cells with n_c = 0 must be
    merged before (ImagesAsDataError otherwise)."""
    y = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    size = np.asarray(cell_sizes, dtype=float)
    if np.any(n <= 0) or np.any(y < 0) or np.any(y > n):
        raise ImagesAsDataError("every cell needs at least one sampled image, and 0 ≤ successes ≤ trials")
    if corpus not in ("superpopulation", "finite"):
        raise ImagesAsDataError(f"{setting('corpus', corpus)}: choose 'superpopulation' or 'finite'",
                                what="option", option="corpus", value=corpus)
    alpha = 1 - check_confidence(confidence)
    rng = np.random.default_rng(seed)
    total = size.sum()
    estimate = float((size / total * y / n).sum())
    p = rng.beta(y[:, None] + 0.5, n[:, None] - y[:, None] + 0.5, size=(len(y), int(draws)))
    if corpus == "finite":
        unsampled = np.maximum(size - n, 0)
        shares = (y[:, None] + rng.binomial(unsampled.astype(np.int64)[:, None], p)) / total
        values = shares.sum(axis=0)
    else:
        weights = rng.dirichlet(np.maximum(size, 1e-9), size=int(draws)).T if len(size) > 1 else np.ones((1, int(draws)))
        values = (weights * p).sum(axis=0)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return estimate, float(values.std(ddof=1)), float(min(low, estimate)), float(max(high, estimate))
