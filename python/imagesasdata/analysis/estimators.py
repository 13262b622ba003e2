"""Estimates from predicted labels that a researcher can defend: prevalence and generalised linear models that
combine the model's predictions on the whole corpus with true labels on a gold sample.

Every estimate comes three ways, side by side:

- naive: the predicted values used as if they were true, on the whole corpus — what is usually done, and biased
  whenever the classifier errs (more so when its errors depend on the outcome);
- gold_only: the gold sample alone, design-weighted (each image N_h/n_h times) — unbiased, but only as precise as
  the few hundred coded images allow;
- corrected: both together, unbiased like the gold sample and usually much narrower.

The gold sample is a stratified simple random sample without replacement from the corpus (draw_gold_sample()
records each image's stratum and inclusion probability π = n_h/N_h; a simple random sample is one stratum). A gold
table without inclusion probabilities is refused unless the caller says design="srs".

Regressions (corrected_glm). The corrected estimator is the design-based M-estimator of DSL (design-based
supervised learning; Egami, Hinck, Stewart & Wei 2023) with PPI++'s power tuning (Angelopoulos, Duchi & Zrnic
2023). For every corpus image i, with ŝ_i = s(D̂_i; β) the GLM score x(y − μ(x'β)) on its data with predicted
values and s_i the same with the true values (known on the gold sample, R_i = 1), the estimating equation is

    Σ_U λ ŝ_i + Σ_gold w_i (s_i − λ ŝ_i) = 0,     w_i = N_h / n_h,

whose expectation over the sampling is Σ_U s_i whatever the predictions are: β̂ is consistent for the
coefficients one would get with the true values everywhere; the predictions only buy precision.

Its covariance treats the data as a two-phase sample — the corpus drawn from the process that produced it, the
gold sample drawn from the corpus — so it has two parts: what β would vary by with every image coded (Σ_U s s',
estimated from the gold sample, with the predictions' help where they are right), and the design variance of the
gold correction e = s − λŝ, stratum by stratum with the finite-population correction,
Σ_h N_h² (1 − n_h/N_h)/n_h · Cov_h(e); both pass through J⁻¹ (Huber 1967). The earlier version treated the gold
sample as independent Bernoulli draws, which, on a sample stratified by predicted class, mixes the strata's
different mean corrections into the variance (too wide in one stratum, and blind in another where a rare class
shows no misclassified image).

λ ∈ [0, 1] (0: gold only; 1: trust the predictions fully) is tuned for each coefficient: the λ_j that minimises
the design variance of its correction, Σ_h c_h Cov_h(a_j, â_j) / Σ_h c_h Var_h(â_j), with a, â the images'
influences through the true and the predicted scores at λ = 1 (PPI++'s rule, coordinate by coordinate, on the
stratified variance). lambda_rule="cross-fit" tunes it on one half of the gold sample for the other half and vice
versa. Each coefficient is read from the fit at its λ; their joint covariance comes from the images' influences
under each coefficient's λ, so a Wald test of several terms is possible (CorrectedGLM.cov, wald_test()).

naive: the same GLM on the predictions, HC0 sandwich (equal to statsmodels'). gold_only: λ = 0 of the corrected
estimator (weights N_h/n_h), with the same two-phase covariance. Intervals are Wald intervals; one whose standard
error is zero, not finite or absurd, or a corrected one resting on fewer than 5 misclassified gold images in a
stratum holding a fifth of the corpus or more, is flagged (and warned about) instead of reported.

method="ppi" calls ppi-python itself (ppi_ols_ci, ppi_logistic_ci, ppi_poisson_ci; PPI++ with λ tuned on the trace
of the covariance), for a predicted outcome and a simple random gold sample: equal to it to 1e-6, but without a
joint covariance.

Prevalence (corrected_prevalence) with use="class": the gold images' share of the class within each cell of
sampling stratum × predicted class, weighted by the corpus's counts of the cells (post-stratification: with a
predicted class, it uses the predictions as fully as any λ could), with a Jeffreys interval (measure/intervals.py:
weighted_proportion_interval) — each cell's share from its Beta(y + ½, n − y + ½) posterior, the cells' corpus
shares from a Dirichlet. A Wald interval fails where a rare class meets a heavily weighted stratum: a handful of
positives (often none) decide both the estimate and its standard error. benchmarks/inference_coverage.py measures
both across the designs the README recommends.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, literal, setting
from ..io.tables import to_arrow
from .calibration import CALIBRATION_METADATA, calibration_note, calibration_record
from .formulas import Formula, parse_formula
from .gold import MIN_GOLD, check_design, check_gold_size, inclusion_probabilities, no_design_error, sample_design
from ..measure.intervals import check_confidence, z_value

FAMILIES = ("gaussian", "binomial", "poisson")
METHODS = ("auto", "ppi", "dsl")
LAMBDA_RULES = ("in-sample", "cross-fit")
ESTIMATE_SCHEMA = pa.schema([
    ("term", pa.string()), ("method", pa.string()), ("estimate", pa.float64()), ("std_error", pa.float64()),
    ("statistic", pa.float64()), ("p_value", pa.float64()), ("conf_low", pa.float64()), ("conf_high", pa.float64()),
    ("lambda", pa.float64()), ("df", pa.float64()), ("flag", pa.string()),
])
# A key of the data handed to patsy that is no column: each row's image id, for errors that name rows.
ROW_LABELS = "\x00row labels"


# ------------------------------------------------------------------------------------------ GLM pieces

def _mean(family: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, dμ/dη) for the family's canonical link."""
    if family == "gaussian":
        return eta, np.ones_like(eta)
    if family == "binomial":
        mu = 0.5 * (1 + np.tanh(0.5 * eta))  # the logistic function, stable for any η
        return mu, mu * (1 - mu)
    mu = np.exp(np.clip(eta, -700, 700))
    return mu, mu


def _link(family: str, mu: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        return mu
    if family == "binomial":
        return np.log(mu / (1 - mu))
    return np.log(mu)


@dataclass
class _Parts:
    """The rows of an estimating equation: Σ_parts c · x (y − μ(x'β)), each part belonging to a corpus image."""

    X: np.ndarray
    y: np.ndarray
    c: np.ndarray
    image: np.ndarray

    @staticmethod
    def stack(parts) -> "_Parts":
        parts = [p for p in parts if len(p.y)]
        return _Parts(np.vstack([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                      np.concatenate([p.c for p in parts]), np.concatenate([p.image for p in parts]))


def _score(parts: _Parts, family: str, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score Σ c x (y − μ), information Σ c μ' x x', per-part residual weights)."""
    mu, derivative = _mean(family, parts.X @ beta)
    residual = parts.c * (parts.y - mu)
    return parts.X.T @ residual, (parts.X * (parts.c * derivative)[:, None]).T @ parts.X, residual


def _start(parts: _Parts, family: str) -> np.ndarray:
    """Starting values as R's glm() makes them: a least-squares fit of the link of a nudged outcome."""
    positive = parts.c > 0
    X, y = parts.X[positive], parts.y[positive]
    if family == "binomial":
        mu = (np.clip(y, 0, 1) + 0.5) / 2
    elif family == "poisson":
        mu = np.maximum(y, 0) + 0.1
    else:
        mu = y
    weights = np.sqrt(parts.c[positive])
    beta, *_ = np.linalg.lstsq(X * weights[:, None], _link(family, mu) * weights, rcond=None)
    return beta


class _Diverged(Exception):
    """The estimating equation has no finite root: its estimates run off to infinity (complete separation)."""

    def __init__(self, beta, what):
        super().__init__(what)
        self.beta = beta


DIVERGED = ("degenerate: the fit diverges — a regressor separates the outcome perfectly in the data it uses, so no "
            "finite estimate exists; code more gold images or simplify the model")


def _solve(parts: _Parts, family: str, start=None, what: str = "the model") -> np.ndarray:
    """β with Σ c x (y − μ(x'β)) = 0, by Newton's method with step halving. Raises ImagesAsDataError for a singular
    design, _Diverged when the estimates run off to infinity (separation in a binomial or poisson fit)."""
    beta = _start(parts, family) if start is None else np.array(start, dtype=float)
    score, information, _ = _score(parts, family, beta)
    for iteration in range(100):
        try:
            step = np.linalg.solve(information, score)
        except np.linalg.LinAlgError:
            if iteration > 0 and family != "gaussian":
                raise _Diverged(beta, what) from None
            raise ImagesAsDataError(f"{what} cannot be estimated: its design is singular (a term without variation, or "
                                    "perfectly collinear terms, in the data it uses — for gold_only, the gold sample); "
                                    "drop or recode the term, or code more gold images") from None
        if float(np.abs(step).max()) < 1e-10 * (1 + float(np.abs(beta).max())):
            beta = beta + step  # converged: no line search at the level of rounding noise
            break
        size = float(np.abs(score).sum())
        for _ in range(30):
            candidate = beta + step
            new_score, new_information, _ = _score(parts, family, candidate)
            if np.isfinite(new_score).all() and float(np.abs(new_score).sum()) <= size * (1 + 1e-9) + 1e-12:
                break
            step = step / 2
        beta, score, information = candidate, new_score, new_information
        if float(np.abs(step).max()) < 1e-10 * (1 + float(np.abs(beta).max())):
            break
        if family != "gaussian" and float(np.abs(parts.X @ beta).max(initial=0)) > 50:
            raise _Diverged(beta, what)  # running off to infinity: no need to follow it for 100 steps
    else:
        if family == "gaussian":
            warnings.warn(f"{what}: the estimating equation did not converge in 100 Newton steps; treat it with caution")
    if family != "gaussian":
        eta = parts.X[parts.c != 0] @ beta
        if not np.isfinite(beta).all() or float(np.abs(eta).max(initial=0)) > 30:
            raise _Diverged(beta, what)
    return beta


def _sandwich(parts: _Parts, family: str, beta: np.ndarray, images: int) -> np.ndarray:
    """J⁻¹ (Σ_i ψ_i ψ_i') J⁻ᵀ with ψ_i summed over each image's parts."""
    _, information, residual = _score(parts, family, beta)
    psi = np.zeros((images, parts.X.shape[1]))
    np.add.at(psi, parts.image, parts.X * residual[:, None])
    inverse = np.linalg.inv(information)
    return inverse @ (psi.T @ psi) @ inverse.T



@dataclass
class _Design:
    """How the gold images were drawn: stratified simple random sampling without replacement from the corpus (a
    simple random sample is one stratum). stratum: each gold image's stratum index; sizes: N_h, the corpus images
    of each stratum; counts: n_h, its gold images. Each gold image weighs N_h / n_h (= 1/π)."""

    stratum: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray
    names: list = field(default_factory=list)

    @property
    def weight(self) -> np.ndarray:
        return (self.sizes / self.counts)[self.stratum]

    @property
    def equal(self) -> bool:
        w = self.sizes / self.counts
        return bool(np.allclose(w, w[0]))

    def subset(self, keep: np.ndarray) -> "_Design":
        """The design of the gold images in `keep` (a boolean mask): strata keep their sizes, counts shrink (images
        dropped at random within their stratum, e.g. uncoded ones)."""
        stratum = self.stratum[keep]
        counts = np.bincount(stratum, minlength=len(self.sizes)).astype(float)
        present = counts > 0
        index = -np.ones(len(self.sizes), dtype=np.int64)
        index[present] = np.arange(int(present.sum()))
        return _Design(index[stratum], self.sizes[present], counts[present],
                       [n for n, p in zip(self.names, present) if p] if self.names else [])


def simple_design(n: int, corpus_size: int) -> _Design:
    """A simple random sample of n images from a corpus of corpus_size."""
    return _Design(np.zeros(n, dtype=np.int64), np.array([float(corpus_size)]), np.array([float(n)]), ["all"])
def _model_variance(parts: _Parts, family: str, beta: np.ndarray) -> np.ndarray:
    """The model-based variance R's glm() and broom::tidy() report: J⁻¹ times the dispersion (1 for binomial and
    Poisson; the residual variance, Σ r² / (n − p), for gaussian). It assumes the model's variance is right;
    the sandwich does not, so the two differ when it is not (e.g. overdispersed counts)."""
    _, information, residual = _score(parts, family, beta)
    dispersion = 1.0
    if family == "gaussian":
        dispersion = float(residual @ residual) / max(1, len(residual) - parts.X.shape[1])
    return np.linalg.inv(information) * dispersion


def _image_scores(parts: _Parts, family: str, beta: np.ndarray, images: int) -> np.ndarray:
    _, _, residual = _score(parts, family, beta)
    psi = np.zeros((images, parts.X.shape[1]))
    np.add.at(psi, parts.image, parts.X * residual[:, None])
    return psi


@dataclass
class _Data:
    """One analysis: predicted-value design (all corpus images) and true-value design (gold images)."""

    X_hat: np.ndarray        # N × p, every corpus image, predicted values
    y_hat: np.ndarray        # N
    gold: np.ndarray         # indices into the corpus of the gold images
    X_true: np.ndarray       # n × p, gold images, true values
    y_true: np.ndarray       # n
    design: _Design

    @property
    def weight(self) -> np.ndarray:
        return self.design.weight


def _naive_parts(d: _Data) -> _Parts:
    n = len(d.y_hat)
    return _Parts(d.X_hat, d.y_hat, np.ones(n), np.arange(n))


def _dsl_parts(d: _Data, lam) -> _Parts:
    """Σ_U λ ŝ_i + Σ_gold w_i (s_i − λ_i ŝ_i): λ a number, or one per gold image (cross-fitting); the corpus term
    then carries the gold images' weighted mean λ."""
    n = len(d.y_hat)
    weight = d.weight
    lam_gold = np.broadcast_to(np.asarray(lam, dtype=float), (len(d.gold),))
    lam_corpus = float(np.sum(weight * lam_gold) / np.sum(weight)) if len(d.gold) else float(np.mean(lam))
    return _Parts.stack([
        _Parts(d.X_hat, d.y_hat, np.full(n, lam_corpus), np.arange(n)),
        _Parts(d.X_true, d.y_true, weight, d.gold),
        _Parts(d.X_hat[d.gold], d.y_hat[d.gold], -lam_gold * weight, d.gold),
    ])


def _unit_scores(X: np.ndarray, y: np.ndarray, family: str, beta: np.ndarray) -> np.ndarray:
    """Each image's score x (y − μ(x'β)) (rows × p)."""
    mu, _ = _mean(family, X @ beta)
    return X * (y - mu)[:, None]


@dataclass
class _Fit:
    """One method's estimate: β̂, its covariance, the λ behind each coefficient (None: not power-tuned)."""

    beta: np.ndarray
    cov: np.ndarray | None
    lams: np.ndarray | None = None
    se: np.ndarray | None = None   # only when there is no covariance (ppi-python's intervals)
    df: np.ndarray | None = None   # effective degrees of freedom of each coefficient's variance (None: normal)
    problem: str | None = None     # why no estimate or covariance can be trusted at all (a diverging fit)
    parts: dict | None = None      # the covariance's corpus part and per-stratum spreads (expected_covariance())


def _influences(d: _Data, family: str, beta: np.ndarray, lam, rows) -> tuple:
    """For the coefficients `rows` of a fit at β, λ: each gold image's influence through its true-data score (a),
    and each corpus image's (a_hat) and gold image's (a_hat_gold) through the predicted-data score — the scores
    premultiplied by the rows of J⁻¹ — and each gold image's leverage in the fit, w_i (μ'_i x_i'J⁻¹x_i −
    λ_i μ̂'_i x̂_i'J⁻¹x̂_i) (its own pull on the fitted values its residual is measured from)."""
    parts = _dsl_parts(d, lam)
    _, information, _ = _score(parts, family, beta)
    try:
        inverse = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        inverse = np.linalg.pinv(information)
    G = inverse[rows]
    s_gold = _unit_scores(d.X_true, d.y_true, family, beta)
    s_hat = _unit_scores(d.X_hat, d.y_hat, family, beta)
    lam_gold = np.broadcast_to(np.asarray(lam, dtype=float), (len(d.gold),))
    _, slope_true = _mean(family, d.X_true @ beta)
    X_hat_gold = d.X_hat[d.gold]
    _, slope_hat = _mean(family, X_hat_gold @ beta)
    leverage = d.weight * (slope_true * np.einsum("ij,jk,ik->i", d.X_true, inverse, d.X_true)
                           - lam_gold * slope_hat * np.einsum("ij,jk,ik->i", X_hat_gold, inverse, X_hat_gold))
    return s_gold @ G.T, s_hat @ G.T, s_hat[d.gold] @ G.T, leverage


def _covariance(d: _Data, a: np.ndarray, a_hat: np.ndarray, a_hat_gold: np.ndarray, lam_gold: np.ndarray,
                lam_corpus: np.ndarray, estimand: str, leverage: np.ndarray | None = None,
                small_sample: str = "hc3-df") -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The covariance of the coefficients from their influences (columns), under the gold design.

    Two parts (a two-phase sample: the corpus from the process that produced it, the gold sample from the corpus):
    what the coefficients would vary by with every image coded — Σ_U s s', estimated as Σ_gold w a a' +
    Λ(Σ_U â â' − Σ_gold w â â')Λ (equal to the naive sandwich when the predictions are all right; left out for
    estimand="finite") — plus the design variance of the gold correction e = a − λ â, stratified with the
    finite-population correction: Σ_h N_h² (1 − n_h/N_h) / n_h · Cov_h(e).

    small_sample: "none"; "df" — also each coefficient's effective degrees of freedom, 2 V² / Σ_h n_h Var_h(u) with
    u_i each gold image's contribution to the variance V (Satterthwaite 1946): few when a handful of heavily
    weighted images carry the variance, so that the interval uses a t quantile there; "hc3-df" (the default) —
    besides, each gold image's correction e_i is divided by 1 − h_i, h_i its leverage (MacKinnon & White 1985's HC3;
    "hc2-df": by √(1 − h_i)), which undoes the shrinkage of residuals measured from a fit they pulled.
    Returns (covariance, df or None, the design parts of _design_parts())."""
    from ..measure.intervals import stratified_covariance

    weight = d.weight
    e = a - lam_gold * a_hat_gold
    if small_sample in ("hc2-df", "hc3-df") and leverage is not None:
        shrink = 1 - np.clip(leverage if leverage.ndim == 2 else leverage[:, None], 0, 0.99)
        e = e / (np.sqrt(shrink) if small_sample == "hc2-df" else shrink)
    design = stratified_covariance(e, d.design.stratum, d.design.sizes, d.design.counts)
    if estimand == "finite":
        total = design
        plain_units = np.zeros_like(e)
    else:
        plain = (a * weight[:, None]).T @ a
        L = np.diag(lam_corpus)
        corpus = plain + L @ (a_hat.T @ a_hat - (a_hat_gold * weight[:, None]).T @ a_hat_gold) @ L
        total = corpus + design
        # the difference form is an estimate and can, on a small gold sample, lose definiteness: use the plain one
        if np.linalg.eigvalsh((total + total.T) / 2).min() < -1e-10 * max(1.0, float(np.abs(total).max())):
            total = plain + design
        plain_units = weight[:, None] * a ** 2
    parts = _design_parts(d, e, total - design)
    if small_sample == "none":
        return total, None, parts
    # each image's share of each coefficient's variance: its design term and its part of Σ w a²
    counts, sizes, stratum = d.design.counts, d.design.sizes, d.design.stratum
    means = np.zeros((len(sizes), e.shape[1]))
    np.add.at(means, stratum, e)
    means /= np.maximum(counts, 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(counts > 1, sizes * (sizes - counts) / (counts * (counts - 1)), 0.0)
    units = factor[stratum][:, None] * (e - means[stratum]) ** 2 + plain_units
    # Satterthwaite: df = 2 V² / Var(V̂), Var(V̂) = Σ_h n_h Var_h(u) from the spread of the contributions within each
    # stratum — n for normal-like corrections, about twice the number of misclassified images for rare ones
    spread = np.zeros(e.shape[1])
    for h in range(len(sizes)):
        members = stratum == h
        if members.sum() > 1:
            spread += members.sum() * units[members].var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2 * np.diag(total) ** 2 / spread
    return total, np.where(np.isfinite(df), np.maximum(df, 1.0), np.inf), parts


def _design_parts(d: _Data, e: np.ndarray, corpus: np.ndarray) -> dict:
    """What a planner needs to foresee the covariance under other gold sample sizes: the corpus part, and each
    stratum's within-stratum covariance S_h of the corrections e (so that the design part is
    Σ_h N_h² (1 − n_h/N_h)/n_h · S_h for any n_h)."""
    within = []
    for h in range(len(d.design.sizes)):
        block = e[d.design.stratum == h]
        within.append(np.cov(block.T, ddof=1).reshape(e.shape[1], e.shape[1]) if len(block) > 1
                      else np.zeros((e.shape[1], e.shape[1])))
    return {"corpus": corpus, "within": within, "sizes": d.design.sizes.copy(), "counts": d.design.counts.copy(),
            "names": list(d.design.names)}


def expected_covariance(parts: dict, sample_sizes) -> np.ndarray:
    """The covariance a fit's design parts (CorrectedGLM.design_parts) foresee for other gold sample sizes per
    stratum (a dict {stratum: n} or a list in the strata's order): corpus part + Σ_h N_h² (1 − n_h/N_h)/n_h · S_h.
    An approximation (λ and the within-stratum spread held at their estimates); for planning, not for inference.
    Raises ImagesAsDataError for unknown strata or sizes outside 1..N_h."""
    names, sizes = parts["names"], parts["sizes"]
    if isinstance(sample_sizes, dict):
        unknown = [k for k in sample_sizes if str(k) not in names]
        if unknown:
            raise ImagesAsDataError(f"sample_sizes names strata {listing(map(repr, unknown))}; the fit's strata are "
                                    f"{listing(map(repr, names))}")
        n = np.array([float(sample_sizes.get(name, parts["counts"][k])) for k, name in enumerate(names)])
    else:
        n = np.asarray(sample_sizes, dtype=float)
    if len(n) != len(sizes) or np.any(n < 1) or np.any(n > sizes):
        raise ImagesAsDataError(f"sample_sizes: give one size per stratum ({len(sizes)}), each between 1 and the "
                                "stratum's corpus images")
    total = parts["corpus"].copy()
    for N_h, n_h, S_h in zip(sizes, n, parts["within"]):
        total = total + N_h ** 2 * (1 - n_h / N_h) / n_h * S_h
    return total


def _tuned_lams(d: _Data, family: str, first: np.ndarray, folds: np.ndarray | None) -> np.ndarray:
    """PPI++'s power tuning, coefficient by coefficient: λ_j = Σ_h c_h Cov_h(a_j, â_j) / Σ_h c_h Var_h(â_j) from the
    fit at λ = 1 (the λ that minimises the design variance of the gold correction, clipped to [0, 1]). With
    folds (cross-fitting), one row per fold: each fold's λ is estimated on the other images, so that λ never
    shrinks the variance of the images it is applied to. Returns (p,) or (folds, p)."""
    from ..measure.intervals import stratified_covariance

    p = d.X_hat.shape[1]
    a, _, a_hat_gold, _ = _influences(d, family, first, 1.0, np.arange(p))

    def rule(mask):
        sub = d.design.subset(mask)
        # a fold is a stratified sample of half the size: its own weights, same strata
        cross = np.empty(p)
        spread = np.empty(p)
        for j in range(p):
            both = np.column_stack([a[mask, j], a_hat_gold[mask, j]])
            c = stratified_covariance(both, sub.stratum, sub.sizes, sub.counts)
            cross[j], spread[j] = c[0, 1], c[1, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(spread > 0, np.clip(cross / spread, 0, 1), 1.0)

    if folds is None:
        return rule(np.ones(len(d.gold), dtype=bool))
    return np.array([rule(folds != k) for k in range(int(folds.max()) + 1)])


def _folds(d: _Data, seed: int = 0) -> np.ndarray:
    """Two folds of the gold sample, balanced within each stratum (seeded)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(d.gold), dtype=np.int64)
    for h in range(len(d.design.sizes)):
        members = np.flatnonzero(d.design.stratum == h)
        order = rng.permutation(len(members))
        folds[members[order]] = np.arange(len(members)) % 2
    return folds


def corrected_fit(d: _Data, family: str, lam=None, **options) -> _Fit:
    """_corrected_fit(), with a fit that diverges (separation) returned as such rather than raised."""
    try:
        return _corrected_fit(d, family, lam, **options)
    except _Diverged as diverged:
        return _diverged(diverged.beta, d.X_hat.shape[1])


def _corrected_fit(d: _Data, family: str, lam=None, *, estimand: str = "superpopulation",
                   lam_rule: str = "in-sample", seed: int = 0, naive: np.ndarray | None = None,
                   small_sample: str = "hc3-df") -> _Fit:
    """The DSL M-estimator (module docstring) with its joint covariance.

    lam: None tunes λ per coefficient (lam_rule "in-sample", PPI++'s rule on all gold images, or "cross-fit", each
    half of the gold sample corrected with the λ tuned on the other half); a number fixes it for every coefficient.
    Each coefficient is read from the fit at its own λ; the covariance of all of them comes from their influences
    (so a Wald test of several terms is possible whatever the λs)."""
    p = d.X_hat.shape[1]
    if naive is None:
        naive = _solve(_naive_parts(d), family, what="the naive model")
    if lam is not None:
        lam_matrix = np.full((1, p), float(lam))
        folds = np.zeros(len(d.gold), dtype=np.int64)
    else:
        first = _solve(_dsl_parts(d, 1.0), family, start=naive, what="the corrected model")
        if lam_rule == "cross-fit" and len(d.gold) >= 4:
            folds = _folds(d, seed)
            tuned = _tuned_lams(d, family, first, folds)   # row k: λ tuned without fold k
            lam_matrix = tuned
        else:
            folds = np.zeros(len(d.gold), dtype=np.int64)
            lam_matrix = _tuned_lams(d, family, first, None)[None, :]
    beta = np.empty(p)
    a = np.empty((len(d.gold), p))
    a_hat = np.empty((len(d.y_hat), p))
    a_hat_gold = np.empty((len(d.gold), p))
    lam_gold = np.empty((len(d.gold), p))
    leverage = np.empty((len(d.gold), p))
    lam_corpus = np.empty(p)
    fits: dict = {}
    weight = d.weight
    for j in range(p):
        per_image = lam_matrix[folds, j]
        key = tuple(np.round(lam_matrix[:, j], 12))
        if key not in fits:
            try:
                estimate = _solve(_dsl_parts(d, per_image), family, start=first if lam is None else naive,
                                  what="the corrected model")
            except _Diverged:
                if lam is not None:
                    raise
                # the gold sample alone cannot pin this coefficient down (a group without a positive, say): at a
                # small λ its fit runs off to infinity; λ = 1, where the corpus's predictions carry it, is as valid
                per_image = np.ones(len(d.gold))
                lam_matrix[:, j] = 1.0
                key = tuple(np.round(lam_matrix[:, j], 12))
                estimate = first
            if key not in fits:
                fits[key] = (estimate, *_influences(d, family, estimate, per_image, np.arange(p)))
        estimate, a_all, a_hat_all, a_hat_gold_all, leverage_all = fits[key]
        beta[j] = estimate[j]
        a[:, j], a_hat[:, j], a_hat_gold[:, j] = a_all[:, j], a_hat_all[:, j], a_hat_gold_all[:, j]
        leverage[:, j] = leverage_all
        lam_gold[:, j] = per_image
        lam_corpus[j] = float(np.sum(weight * per_image) / np.sum(weight))
    cov, df, parts = _covariance(d, a, a_hat, a_hat_gold, lam_gold, lam_corpus, estimand, leverage, small_sample)
    return _Fit(beta, cov, lam_corpus, df=df, parts=parts)


def _diverged(beta, p) -> _Fit:
    return _Fit(np.asarray(beta, dtype=float), np.full((p, p), np.nan), problem=DIVERGED)


def gold_only_fit(d: _Data, family: str, estimand: str = "superpopulation", small_sample: str = "hc3-df") -> _Fit:
    """The gold sample alone, each image weighted N_h/n_h, with the same two-phase covariance (λ = 0)."""
    p = d.X_hat.shape[1]
    parts = _Parts(d.X_true, d.y_true, d.weight, d.gold)
    try:
        beta = _solve(parts, family, what="the gold-only model")
    except _Diverged as diverged:
        return _diverged(diverged.beta, p)
    zeros = np.zeros((len(d.gold), p))
    a, a_hat, a_hat_gold, leverage = _influences(d, family, beta, 0.0, np.arange(p))
    cov, df, parts = _covariance(d, a, a_hat, a_hat_gold, zeros, np.zeros(p), estimand, leverage[:, None],
                                 small_sample)
    return _Fit(beta, cov, df=df, parts=parts)


def naive_fit(d: _Data, family: str) -> _Fit:
    """The predictions as if true, on the whole corpus, with the HC0 sandwich (statsmodels' cov_type="HC0")."""
    parts = _naive_parts(d)
    try:
        beta = _solve(parts, family, what="the naive model")
    except _Diverged as diverged:
        return _diverged(diverged.beta, d.X_hat.shape[1])
    return _Fit(beta, _sandwich(parts, family, beta, len(d.y_hat)))


def _ppi_estimate(d: _Data, family: str, lam, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(β̂, standard errors) from ppi-python: estimate = the interval's midpoint, SE = half-width / z."""
    try:
        import ppi_py
    except ImportError:
        raise ImagesAsDataError("method='ppi' uses ppi-python: pip install 'imagesasdata[stats]' (or use method='auto')",
                                what="missing_extra", extra="stats") from None
    alpha = 1 - confidence
    unlabelled = np.setdiff1d(np.arange(len(d.y_hat)), d.gold)
    X, Y, Yhat = d.X_true, d.y_true, d.y_hat[d.gold]
    X_u, Yhat_u = d.X_hat[unlabelled], d.y_hat[unlabelled]
    options = {"alpha": alpha, "lam": None if lam is None else float(lam)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ppi-python's optimisers and numba warn about things that do not matter here
        try:
            if family == "gaussian":
                low, high = ppi_py.ppi_ols_ci(X, Y, Yhat, X_u, Yhat_u, **options)
            elif family == "binomial":
                low, high = ppi_py.ppi_logistic_ci(X, Y, Yhat, X_u, Yhat_u, **options)
            else:
                low, high = ppi_py.ppi_poisson_ci(X, Y, Yhat, X_u, Yhat_u, **options)
        except np.linalg.LinAlgError as error:
            # e.g. a logistic fit on a gold sample that the regressors separate: ppi-python inverts a singular Hessian
            raise ImagesAsDataError(f"ppi-python could not fit this {family} model on the gold sample ({error}); "
                                    "use method='auto' (the DSL estimator, which flags such fits instead), or code "
                                    "more gold images", what="option", option="method", value="ppi") from None
    low, high = np.atleast_1d(np.asarray(low, dtype=float)), np.atleast_1d(np.asarray(high, dtype=float))
    return (low + high) / 2, (high - low) / (2 * z_value(confidence))


# ------------------------------------------------------------------------------------------ tables in

def _column_values(table: pa.Table, name: str) -> np.ndarray:
    """A column as a numpy array patsy can read: floats (NaN for nulls), bools, or strings (None for nulls)."""
    column = table[name]
    kind = column.type
    values = column.to_pylist()
    if pa.types.is_boolean(kind):
        return np.array(values, dtype=object)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if pa.types.is_dictionary(kind):
        values = [None if v is None else str(v) for v in values]
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is None for v in values], dtype=bool)
    return np.isnan(values)


def _as_patsy(values: np.ndarray) -> np.ndarray:
    if values.dtype == object and all(isinstance(v, (bool, np.bool_)) for v in values if v is not None):
        return np.array([bool(v) for v in values], dtype=bool)
    return values


def formula_columns(formula: str) -> tuple[list, list]:
    """(outcome variables, regressor variables): the columns a formula reads, in order, after checking it against
    the allow-list of analysis/formulas.py (a formula never runs code)."""
    checked = parse_formula(formula)
    return checked.outcome_columns, checked.regressor_columns


def _design(formula, data: dict, design_infos=None):
    """(y, X, (lhs info, rhs info), term names) from patsy, its terms evaluated by formulas.py's interpreter.

    formula: a Formula from parse_formula() (or its text). Raises ImagesAsDataError for a term that cannot be
    evaluated, an outcome of more than two levels, and values that are not finite (naming the term and rows)."""
    import patsy

    checked = formula if isinstance(formula, Formula) else parse_formula(formula)
    keep_nan = patsy.NAAction(NA_types=[])  # missing rows are dropped before; NaN from a transform is named below
    try:
        if design_infos is None:
            y, X = patsy.dmatrices(checked.description, data, eval_env=patsy.EvalEnvironment([{}]), NA_action=keep_nan)
        else:
            y, X = patsy.build_design_matrices(design_infos, data, NA_action=keep_nan)
    except patsy.PatsyError as error:
        raise ImagesAsDataError(f"formula {checked.text!r}: {str(error).splitlines()[0]}") from None
    y_matrix = np.asarray(y, dtype=float)
    if y_matrix.shape[1] == 2:  # a two-level (e.g. TRUE/FALSE) outcome: the second level is the event
        y_vector = y_matrix[:, 1]
    elif y_matrix.shape[1] == 1:
        y_vector = y_matrix[:, 0]
    else:
        raise ImagesAsDataError(f"formula {checked.text!r}: the outcome has {y_matrix.shape[1]} levels; a GLM needs a "
                                "number or a two-level variable (recode it, e.g. I(label == 'protest'))")
    terms = ["(Intercept)" if name == "Intercept" else name for name in X.design_info.column_names]
    X_matrix = np.asarray(X, dtype=float)
    _check_finite(checked.text, y.design_info.column_names[-1:], y_vector[:, None], data.get(ROW_LABELS))
    _check_finite(checked.text, terms, X_matrix, data.get(ROW_LABELS))
    return y_vector, X_matrix, (y.design_info, X.design_info), terms


def _check_finite(formula: str, names, matrix: np.ndarray, labels) -> None:
    """Refuse infinite or undefined values in a design (log(0), 1/0, inf in the data), naming term and rows."""
    bad = ~np.isfinite(matrix)
    if not bad.any():
        return
    column = int(np.flatnonzero(bad.any(axis=0))[0])
    rows = np.flatnonzero(bad[:, column])
    where = [str(labels[r]) if labels is not None else f"row {r + 1}" for r in rows]
    raise ImagesAsDataError(f"formula {formula!r}: the term {names[column]!r} is infinite or undefined for "
                            f"{len(rows)} image(s): {listing(where, 5)}; fix those values, or transform the column "
                            "differently (log1p(x) for counts with zeros)")


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ImagesAsDataError(f"{setting('family', family)}: choose {', '.join(FAMILIES)}.{did_you_mean(family, FAMILIES)}",
                                what="option", option="family", value=family)
    return family


def _check_outcome(family: str, y: np.ndarray, where: str) -> None:
    if family == "binomial" and ((y < 0) | (y > 1)).any():
        raise ImagesAsDataError(f"family='binomial' needs an outcome between 0 and 1 (0/1, TRUE/FALSE or a probability); "
                                f"{where} holds values outside it", what="option", option="family", value="binomial")
    if family == "poisson" and (y < 0).any():
        raise ImagesAsDataError(f"family='poisson' needs counts of 0 or more; {where} holds negative values",
                                what="option", option="family", value="poisson")


def _gold_join(corpus: pa.Table, gold: pa.Table, id_column: str) -> np.ndarray:
    """Each gold image's row in the corpus; errors for unknown or repeated ids."""
    for table, name in ((corpus, "corpus"), (gold, "gold sample")):
        if id_column not in table.column_names:
            raise ImagesAsDataError(f"the {name} has no {id_column!r} column (columns: {', '.join(table.column_names)}); "
                                    f"name the images' id column with id=")
    position = {}
    for row, image_id in enumerate(corpus[id_column].to_pylist()):
        key = None if image_id is None else str(image_id)
        if key in position:
            raise ImagesAsDataError(f"{id_column} {key!r} appears twice in the corpus (rows {position[key] + 1} and "
                                    f"{row + 1}); one row per image", what="rows", row=[position[key] + 1, row + 1])
        position[key] = row
    rows, unknown, seen = [], [], {}
    for row, image_id in enumerate(gold[id_column].to_pylist(), start=1):
        key = None if image_id is None else str(image_id)
        if key in seen:
            raise ImagesAsDataError(f"{id_column} {key!r} appears twice in the gold sample (rows {seen[key]} and {row})",
                                    what="rows", row=[seen[key], row])
        seen[key] = row
        if key not in position:
            unknown.append(f"{key} (row {row})")
        else:
            rows.append(position[key])
    if unknown:
        raise ImagesAsDataError(f"gold images not in the corpus: {listing(unknown)}; the gold sample must be drawn from "
                                "the corpus being analysed (join the predictions to the metadata first)")
    return np.array(rows, dtype=np.int64)



# ------------------------------------------------------------------------------------------ results

# An interval is flagged, not reported as usual, when its standard error is not a positive finite number or is
# absurd: more than this many times the naive fit's, scaled by sqrt(corpus / gold) (what a gold sample of n rather
# than N images costs).
ABSURD_SE_RATIO = 100.0
# When a corrected or gold-only interval is flagged (chosen from the coverage benchmark's per-replication records,
# benchmarks/README.md; each rule alone left some cells below 93.5% among the unflagged intervals):
FEW_CLASS = 15        # gold images of each class of a predicted variable, in a regression
FEW_SHARE_CLASS = 10  # gold images of the class (and of the others) behind a Wald interval for a share
HEAVY_STRATUM = 0.2   # share of the corpus that makes a stratum heavy (recorded by event_counts())
FEW_MISCLASSIFIED = 5  # misclassified gold images in a heavy stratum, when the outcome is predicted (or a share)
EVENTS_PER_COEFFICIENT = 5   # gold images of the rarer class per coefficient, for a predicted binary outcome in a
                             # logistic regression (events per variable: Vittinghoff & McCulloch 2007)


def critical_values(fit: _Fit, confidence: float) -> np.ndarray:
    """Each coefficient's two-sided quantile: Student's t on its effective degrees of freedom, or the normal one."""
    from scipy.stats import t as student

    p = len(fit.beta)
    if fit.df is None:
        return np.full(p, z_value(confidence))
    return np.where(np.isfinite(fit.df), student.ppf(0.5 + confidence / 2, np.minimum(fit.df, 1e9)), z_value(confidence))


def _rows(terms, method, fit: _Fit, confidence, flags) -> list:
    from scipy.stats import norm, t as student

    quantiles = critical_values(fit, confidence)
    rows = []
    se_all = np.sqrt(np.clip(np.diag(fit.cov), 0, None)) if fit.cov is not None else fit.se
    for j, term in enumerate(terms):
        value, se, z = float(fit.beta[j]), float(se_all[j]), float(quantiles[j])
        ok = np.isfinite(se) and se > 0
        bounded = ok and not (flags.get(j) or "").startswith("degenerate")
        statistic = value / se if ok else float("nan")
        df = None if fit.df is None or not np.isfinite(fit.df[j]) else float(fit.df[j])
        p_value = (2 * (student.sf(abs(statistic), df) if df else norm.sf(abs(statistic)))) if ok else float("nan")
        rows.append({"term": term, "method": method, "estimate": value, "std_error": se,
                     "statistic": float(statistic), "p_value": float(p_value),
                     "conf_low": float(value - z * se) if bounded else None,
                     "conf_high": float(value + z * se) if bounded else None,
                     "lambda": None if fit.lams is None else float(fit.lams[j]), "df": df, "flag": flags.get(j)})
    return rows


def _degenerate(fit: _Fit, naive: _Fit, n_corpus: int, n_gold: int) -> dict:
    """{coefficient index: why its interval cannot be reported as usual} (non-finite, zero or absurd SE)."""
    if fit.problem:
        return {j: fit.problem for j in range(len(fit.beta))}
    se = np.sqrt(np.clip(np.diag(fit.cov), 0, None)) if fit.cov is not None else fit.se
    naive_se = np.sqrt(np.clip(np.diag(naive.cov), 0, None))
    if not np.isfinite(naive_se).all():
        naive_se = np.full(len(se), np.inf)
    scale = np.sqrt(max(n_corpus, 1) / max(n_gold, 1))
    flags = {}
    for j, (value, s, reference) in enumerate(zip(fit.beta, se, naive_se)):
        if not (np.isfinite(value) and np.isfinite(s)):
            flags[j] = "degenerate: the estimate or its standard error is not finite"
        elif s <= 0:
            flags[j] = "degenerate: zero standard error (no variation where it is estimated)"
        elif s > ABSURD_SE_RATIO * scale * max(reference, 1e-12) and s > 1e-6:
            flags[j] = (f"degenerate: a standard error of {s:.3g}, absurdly large (separation, or gold values coded "
                        "differently from the predictions?)")
    return flags


@dataclass
class CorrectedGLM:
    """A GLM fitted naive, gold-only and corrected.

    coefficients: term, method, estimate, std_error, statistic, p_value, conf_low, conf_high (Wald intervals at
      `confidence`), lambda (the power tuning behind each corrected estimate) and flag (why an interval is not
      reported: null when it is). cov: the corrected estimates' joint covariance matrix (terms × terms, in the
      order of `terms`), covariances: every method's (None for method "ppi", whose intervals come from ppi-python).
    lam: the one λ of every coefficient, or None when they differ. lambda_rule: how λ was chosen."""

    coefficients: pa.Table
    formula: str
    family: str
    predicted: list
    outcome_predicted: bool
    regressors_predicted: list
    corrected_method: str
    lam: float | None
    n_corpus: int
    n_gold: int
    design: str
    confidence: float
    notes: list = field(default_factory=list)
    terms: list = field(default_factory=list)
    covariances: dict = field(default_factory=dict)
    lambda_rule: str = ""
    waves: int = 1
    design_parts: dict = field(default_factory=dict)
    calibration: str | None = None

    @property
    def cov(self) -> np.ndarray | None:
        """Returns the joint covariance of the corrected coefficients (rows and columns in the order of `terms`), or
        None where ppi-python gave no joint covariance."""
        return self.covariances.get("corrected")

    def tidy(self, method: str | None = None) -> pa.Table:
        """Returns the coefficients table (of one method: "naive", "gold_only" or "corrected"; default all)."""
        if method is None:
            return self.coefficients
        import pyarrow.compute as pc

        if method not in ("naive", "gold_only", "corrected"):
            raise ImagesAsDataError(f"{setting('method', method)}: choose naive, gold_only or corrected",
                                    what="option", option="method", value=method)
        return self.coefficients.filter(pc.equal(self.coefficients["method"], method))

    def vcov(self, method: str = "corrected") -> pa.Table:
        """Returns a method's covariance matrix as a table: term, then one column per term. Raises
        ImagesAsDataError for an unknown method or one without a covariance (ppi-python's corrected fit)."""
        if method not in ("naive", "gold_only", "corrected"):
            raise ImagesAsDataError(f"{setting('method', method)}: choose naive, gold_only or corrected",
                                    what="option", option="method", value=method)
        matrix = self.covariances.get(method)
        if matrix is None:
            raise ImagesAsDataError("method='ppi' takes its intervals from ppi-python, which gives no joint covariance; "
                                    "fit with method='auto' (or 'dsl') for vcov() and Wald tests of several terms",
                                    what="option", option="method", value="ppi")
        return pa.table({"term": self.terms} | {t: matrix[:, k].tolist() for k, t in enumerate(self.terms)})

    def wald_test(self, terms, method: str = "corrected") -> dict:
        """A Wald test that the named coefficients are all zero, from the joint covariance:
        W = β_S' Σ_S⁻¹ β_S, χ² with len(terms) degrees of freedom. Returns {terms, statistic, df, p_value, method}.
        Raises ImagesAsDataError for unknown terms, a method without covariance, or a singular covariance."""
        from scipy.stats import chi2

        terms = [terms] if isinstance(terms, str) else list(terms)
        unknown = [t for t in terms if t not in self.terms]
        if not terms or unknown:
            raise ImagesAsDataError(f"terms {listing(map(repr, unknown))} are not among the model's terms "
                                    f"({', '.join(self.terms)})" if unknown else "name at least one term to test")
        self.vcov(method)  # the clear error for ppi
        matrix = self.covariances[method]
        index = [self.terms.index(t) for t in terms]
        estimates = self.tidy(method)["estimate"].to_numpy()[index]
        sub = matrix[np.ix_(index, index)]
        try:
            statistic = float(estimates @ np.linalg.solve(sub, estimates))
        except np.linalg.LinAlgError:
            raise ImagesAsDataError(f"the covariance of {', '.join(terms)} is singular; test fewer terms") from None
        return {"terms": terms, "statistic": statistic, "df": len(terms),
                "p_value": float(chi2.sf(statistic, len(terms))), "method": method}

    def expected_std_errors(self, sample_sizes, method: str = "corrected") -> pa.Table:
        """Returns the standard errors this fit's covariance foresees with other gold sample sizes per stratum
        ({stratum: n} or a list): term, std_error now, expected std_error. For planning a further wave (decided before looking at
        new codes), not for inference; see expected_covariance()."""
        parts = self.design_parts.get(method)
        if parts is None:
            raise ImagesAsDataError(f"no design parts for method={method!r} (ppi-python's fits have none)")
        expected = np.sqrt(np.clip(np.diag(expected_covariance(parts, sample_sizes)), 0, None))
        now = self.tidy(method)["std_error"].to_pylist()
        return pa.table({"term": self.terms, "std_error": now, "expected_std_error": expected.tolist()})

    def glance(self) -> pa.Table:
        """Returns one row: formula, family, predicted, corrected_method, lambda (null when it differs by coefficient: see
        tidy()), lambda_rule, n_corpus, n_gold, design, waves, confidence, calibration (how the corpus's
        probabilities were calibrated to it, calibration_note(); null when they were not)."""
        return pa.table({
            "formula": [self.formula], "family": [self.family], "predicted": [", ".join(self.predicted)],
            "outcome_predicted": [self.outcome_predicted], "corrected_method": [self.corrected_method],
            "lambda": pa.array([self.lam], pa.float64()), "lambda_rule": [self.lambda_rule],
            "n_corpus": [self.n_corpus], "n_gold": [self.n_gold], "design": [self.design],
            "waves": [self.waves], "confidence": [self.confidence],
            "calibration": pa.array([self.calibration], pa.string()),
        })

    def __repr__(self) -> str:
        level = f"{self.confidence:.0%}"
        lines = [f"imagesasdata corrected {self.family} GLM  {self.formula}",
                 f"  predicted: {', '.join(self.predicted)}; {self.n_corpus:,} corpus images, {self.n_gold:,} gold "
                 f"({self.design})",
                 f"  corrected by {self.corrected_method}" + (f"; lambda {self.lam:.2f}" if self.lam is not None else
                                                              f"; lambda {self.lambda_rule}" if self.lambda_rule else ""),
                 f"  {'term':<24} {'naive':>26} {'gold only':>26} {'corrected':>26}"]
        rows = self.coefficients.to_pylist()
        for term in dict.fromkeys(r["term"] for r in rows):
            cells = []
            for method in ("naive", "gold_only", "corrected"):
                row = next(r for r in rows if r["term"] == term and r["method"] == method)
                if row["conf_low"] is None:
                    cells.append(f"{row['estimate']:.3f} [unreliable]")
                else:
                    mark = "*" if row["flag"] else ""
                    cells.append(f"{row['estimate']:.3f} [{row['conf_low']:.3f}, {row['conf_high']:.3f}]{mark}")
            lines.append(f"  {term[:24]:<24} " + " ".join(f"{c:>26}" for c in cells))
        lines.append(f"  estimates with {level} intervals; use .tidy() for the table, .cov and .wald_test() for "
                     "several terms")
        flagged = {(r["term"], r["method"]): r["flag"] for r in rows if r["flag"]}
        lines += [f"  {'unreliable' if f.startswith('degenerate') else '*'}: {m} {t}: {f}"
                  for (t, m), f in flagged.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def event_counts(d: _Data, predicted_columns: dict) -> dict:
    """What a corrected interval rests on, for the discrete predicted variables {name: (truth, prediction)} on the
    gold images: `rarest` — the fewest gold images of any class (their true value); `misclassified` — the fewest
    misclassified gold images in a stratum holding HEAVY_STRATUM of the corpus or more (None without such strata);
    and where each minimum was found."""
    corpus_size = float(d.design.sizes.sum())
    rarest, misclassified = None, None
    where_rare = where_wrong = None
    for name, (truth, prediction) in predicted_columns.items():
        truth, prediction = np.asarray(truth).astype(str), np.asarray(prediction).astype(str)
        for value in np.unique(np.concatenate([truth, prediction])):
            count = int((truth == value).sum())
            if rarest is None or count < rarest:
                rarest, where_rare = count, f"{name} = {value}"
        wrong = truth != prediction
        for h, size in enumerate(d.design.sizes):
            if size / corpus_size >= HEAVY_STRATUM:
                count = int(wrong[d.design.stratum == h].sum())
                if misclassified is None or count < misclassified:
                    label = d.design.names[h] if d.design.names else str(h)
                    where = "the gold sample" if len(d.design.sizes) == 1 else f"stratum {label!r}"
                    misclassified, where_wrong = count, f"{where} ({size / corpus_size:.0%} of the corpus; {name})"
    return {"rarest": rarest, "where_rarest": where_rare, "misclassified": misclassified,
            "where_misclassified": where_wrong}


def _few_events(counts: dict, outcome_predicted: bool = False, family: str = "gaussian",
                coefficients: int = 1) -> list:
    """Why a gold-only or corrected interval may not be trusted (each rule measured in benchmarks/README.md):
    a class of a predicted variable with fewer than FEW_CLASS gold images (the coefficients that compare it with
    the others rest on them); with a predicted outcome, fewer than FEW_MISCLASSIFIED misclassified gold images in
    a stratum holding HEAVY_STRATUM of the corpus (the correction there rests on a handful of heavily weighted
    images, and its variance is estimated from them: 46% coverage with none); with a predicted binary outcome in
    a logistic regression, fewer than EVENTS_PER_COEFFICIENT gold images of the rarer class per coefficient.
    Returns the reasons (empty when none applies)."""
    reasons = []
    rarest = counts["rarest"]
    if rarest is not None and rarest < FEW_CLASS:
        reasons.append(f"only {rarest} gold image(s) of {counts['where_rarest']}")
    if outcome_predicted and counts["misclassified"] is not None and counts["misclassified"] < FEW_MISCLASSIFIED:
        reasons.append(f"only {counts['misclassified']} misclassified gold image(s) in "
                       f"{counts['where_misclassified']}")
    if outcome_predicted and family == "binomial" and rarest is not None and FEW_CLASS <= rarest < \
            EVENTS_PER_COEFFICIENT * coefficients:
        reasons.append(f"{rarest} gold image(s) of {counts['where_rarest']} for {coefficients} coefficients (fewer "
                       f"than {EVENTS_PER_COEFFICIENT} per coefficient)")
    return reasons


def _gold_design(gold: pa.Table, keep: np.ndarray, corpus_size: int, column: str, design: str | None) -> _Design:
    """The gold sample's design, read from its columns (stratum and stratum_size from draw_gold_sample(), else
    the inclusion probabilities: images with equal π form a stratum of Σ 1/π images), for the rows in `keep`.

    design: None requires the inclusion probabilities; "srs" declares a simple random sample of the corpus (and
    refuses unequal probabilities). Raises ImagesAsDataError otherwise."""
    check_design(design)
    n = gold.num_rows
    if column not in gold.column_names:
        if design != "srs":
            raise no_design_error(column)
        return simple_design(n, corpus_size).subset(keep) if n else simple_design(0, corpus_size)
    probabilities = inclusion_probabilities(gold, column)
    if design == "srs":
        if not np.allclose(probabilities, probabilities[0]):
            raise ImagesAsDataError(f"design='srs' declares a simple random sample, but the gold sample's {column!r} "
                                    "values differ (a stratified sample); leave design= out",
                                    what="option", option="design", value="srs")
        return _Design(np.zeros(n, dtype=np.int64), np.array([float(corpus_size)]), np.array([float(n)]),
                       ["all"]).subset(keep)
    if "stratum" in gold.column_names and "stratum_size" in gold.column_names:
        names = [str(v) for v in gold["stratum"].to_pylist()]
        sizes_column = gold["stratum_size"].to_pylist()
    else:
        names = [repr(round(float(p), 12)) for p in probabilities]
        sizes_column = [None] * n
    order = list(dict.fromkeys(names))
    index = {name: k for k, name in enumerate(order)}
    stratum = np.array([index[s] for s in names], dtype=np.int64)
    counts = np.bincount(stratum, minlength=len(order)).astype(float)
    sizes = np.zeros(len(order))
    for k in range(len(order)):
        members = stratum == k
        recorded = {v for v, m in zip(sizes_column, members) if m and v is not None}
        estimated = float((1 / probabilities[members]).sum())
        sizes[k] = float(recorded.pop()) if len(recorded) == 1 else round(estimated)
        if sizes[k] < counts[k]:
            raise ImagesAsDataError(f"stratum {order[k]!r} holds {int(counts[k])} gold images but only {int(sizes[k])} "
                                    "corpus images; check the stratum_size and inclusion_probability columns")
    if len(order) == 1 and "stratum" not in gold.column_names:
        order = ["all"]
    return _Design(stratum, sizes, counts, order).subset(keep)


def _domain(values: np.ndarray, classes) -> tuple[str, object]:
    """(description, test) of the values a predicted variable takes in the corpus: its truth must take them too."""
    present = values[~_missing(values)]
    if values.dtype == object:
        if all(isinstance(v, (bool, np.bool_)) for v in present):
            return "TRUE/FALSE", lambda v: isinstance(v, (bool, np.bool_))
        allowed = set(map(str, present)) | set(map(str, classes or []))
        shown = ", ".join(sorted(allowed)[:8]) + (", …" if len(allowed) > 8 else "")
        return f"the classes {shown}", lambda v: isinstance(v, str) and v in allowed
    finite = present[np.isfinite(present)]
    if len(finite) and np.isin(finite, (0.0, 1.0)).all():
        return "0/1", lambda v: isinstance(v, float) and v in (0.0, 1.0)
    if len(finite) and ((finite >= 0) & (finite <= 1)).all():
        return "a share between 0 and 1", lambda v: isinstance(v, float) and 0 <= v <= 1
    return "finite numbers", lambda v: isinstance(v, float) and np.isfinite(v)


def _check_truth(name: str, corpus_values: np.ndarray, truth: np.ndarray, ids: list, classes) -> np.ndarray:
    """The gold values of a predicted variable, checked against (and coded as) the corpus's predictions: 0/1,
    TRUE/FALSE, the classes, shares or finite numbers. Raises ImagesAsDataError naming the rows outside it."""
    description, allowed = _domain(corpus_values, classes)
    numeric = description in ("0/1", "a share between 0 and 1", "finite numbers")
    if truth.dtype == object and (numeric or description == "TRUE/FALSE"):
        truth = np.array([_as_number(v) for v in truth], dtype=object)
    if description == "TRUE/FALSE":  # 0/1 codes of a TRUE/FALSE prediction
        truth = np.array([bool(v) if isinstance(v, float) and v in (0.0, 1.0) else v for v in truth], dtype=object)
    elif numeric and truth.dtype == object:
        truth = np.array([float(v) if isinstance(v, (bool, np.bool_)) else v for v in truth], dtype=object)
    bad = [f"row {i + 1} ({ids[i]}: {(v.item() if isinstance(v, np.generic) else v)!r})" for i, v in enumerate(truth)
           if not (v is None or (isinstance(v, float) and np.isnan(v))) and not allowed(
               float(v) if isinstance(v, (int, float, np.floating)) and not isinstance(v, (bool, np.bool_)) else v)]
    if bad:
        raise ImagesAsDataError(f"gold values of {name!r} outside what the predictions take ({description}): "
                                f"{listing(bad)}; code the truth as the predictions are coded")
    if description in ("0/1", "a share between 0 and 1", "finite numbers"):
        return np.array([np.nan if v is None else float(v) for v in truth], dtype=float)
    return truth


def _as_number(value):
    """Text that reads as a number (a coding sheet's '1'), as that number; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else None
        except ValueError:
            return value
    return value


def corrected_glm(formula: str, corpus, gold, *, predicted, family: str = "gaussian", method: str = "auto",
                  lam: float | None = None, confidence: float = 0.95, id: str = "image_id",
                  inclusion_probability: str = "inclusion_probability", design: str | None = None,
                  lambda_rule: str = "in-sample", naive_variance: str = "sandwich") -> CorrectedGLM:
    """Fit a GLM with image-derived variables predicted on the corpus and coded on a gold sample.

    formula: "outcome ~ regressors" (patsy's syntax, close to R's: log(x), C(x), x:z, I(x > 0)). It never runs code:
      terms may use columns, numbers, arithmetic, comparisons, log/log1p/log2/log10/exp/sqrt/abs, I(), C() and Q()
      and nothing else (analysis/formulas.py); anything else is an ImagesAsDataError before any data is read.
    corpus: one row per image (id column) with every variable the formula names; the predicted variables hold the
      model's predictions (a 0/1 or TRUE/FALSE indicator, a class, or a probability).
    gold: the coded sample: the id column, the true value of each predicted variable under the same name (coded as
      the predictions are: 0/1, TRUE/FALSE, the classes), and inclusion_probability (draw_gold_sample() records it,
      with each image's stratum). Its other variables are taken from the corpus. read_coding_sheet()'s `label` counts
      as the true value of the corpus's `predicted` column, so predict() output works as is:
      "retweets ~ I(predicted == 'protest')".
    predicted: the names of the predicted variables (the outcome, regressors, or both).
    family: "gaussian" (identity link), "binomial" (logit) or "poisson" (log).
    method: "auto"/"dsl": the DSL M-estimator with its stratified two-phase covariance (module docstring); "ppi":
      ppi-python's PPI++ (a predicted outcome and a simple random sample only; no joint covariance).
    lam: the power-tuning λ in [0, 1] for every coefficient; None tunes it per coefficient (lambda_rule
      "in-sample": PPI++'s rule on all gold images; "cross-fit": each half of the gold sample with the λ tuned on
      the other half).
    design: None reads the design from the gold table; "srs" declares a simple random sample of the corpus (needed
      when the gold table has no inclusion probabilities).
    naive_variance: the naive row's standard errors: "sandwich" (HC0, the default: the same kind as gold_only's and
      corrected's, so the three are comparable) or "model" (glm()'s model-based ones, which broom::tidy(glm(...))
      shows; smaller when counts are overdispersed, as in a Poisson model of retweets).
    Returns a CorrectedGLM (tidy(), glance(), cov, vcov(), wald_test()). An interval whose standard error is zero,
    not finite or absurd is flagged (column `flag`, a warning) rather than reported; so is a Wald interval resting on
    fewer than 5 misclassified gold images in a stratum holding a fifth of the corpus or more.
    Raises ImagesAsDataError for a formula naming a missing column, gold values outside the predictions' coding
    (naming the rows), gold images missing from the corpus, a gold sample too small, a gold table without
    inclusion probabilities (unless design='srs'), or probabilities outside (0, 1].
    """
    family = _check_family(family)
    if method not in METHODS:
        raise ImagesAsDataError(f"{setting('method', method)}: choose {', '.join(METHODS)}",
                                what="option", option="method", value=method)
    if lambda_rule not in LAMBDA_RULES:
        raise ImagesAsDataError(f"{setting('lambda_rule', lambda_rule)}: choose {', '.join(LAMBDA_RULES)}",
                                what="option", option="lambda_rule", value=lambda_rule)
    confidence = check_confidence(confidence)
    if lam is not None and not 0 <= float(lam) <= 1:
        raise ImagesAsDataError(f"{setting('lam', lam)}: the power-tuning parameter lies between 0 (gold only) and 1; None tunes it",
                                what="option", option="lam", value=lam)
    corpus, gold = to_arrow(corpus), to_arrow(gold)
    calibration = calibration_note(calibration_record(corpus))
    predicted = [predicted] if isinstance(predicted, str) else list(predicted or [])
    if not predicted:
        raise ImagesAsDataError("predicted= names no variable; name the image-derived variables whose corpus values are "
                                "predictions, e.g. predicted='protest'")
    checked = parse_formula(formula)
    outcome_names, regressor_names = checked.outcome_columns, checked.regressor_columns
    used = list(dict.fromkeys(outcome_names + regressor_names))
    missing = [n for n in used if n not in corpus.column_names]
    if missing:
        raise ImagesAsDataError(f"the formula names {listing(map(literal, missing))}, which the corpus does not have "
                                f"(columns: {', '.join(corpus.column_names)}).{did_you_mean(missing[0], corpus.column_names)}",
                                what="column", option="formula", value=missing[0] if len(missing) == 1 else missing,
                                choices=corpus.column_names)
    stray = [n for n in predicted if n not in used]
    if stray:
        raise ImagesAsDataError(f"predicted= names {listing(map(literal, stray))}, which the formula does not use "
                                f"(it uses {', '.join(used)})", what="option", option="predicted",
                                value=stray[0] if len(stray) == 1 else stray, choices=used)
    # read_coding_sheet()'s `label` is the truth of the corpus's `predicted` (predict()'s column); its own
    # `predicted` column is the model's prediction, carried over from the corpus
    if "predicted" in predicted and "label" in gold.column_names:
        if "predicted" in gold.column_names:
            gold = gold.drop_columns(["predicted"])
        gold = gold.append_column("predicted", gold["label"])
    lacking = [n for n in predicted if n not in gold.column_names]
    if lacking:
        raise ImagesAsDataError(f"the gold sample has no column {listing(map(repr, lacking))} with the true values of the "
                                f"predicted variables (columns: {', '.join(gold.column_names)}); add it under the same "
                                "name as in the corpus")
    # rows with missing values in the variables used are left out (as R's glm() does), with a warning
    corpus_values = {n: _column_values(corpus, n) for n in used}
    complete = ~np.any([_missing(v) for v in corpus_values.values()], axis=0)
    if not complete.all():
        warnings.warn(f"{int((~complete).sum())} corpus rows have missing values in {', '.join(used)} and are left out")
    gold_rows = _gold_join(corpus, gold, id)
    gold_ids = [str(v) for v in gold[id].to_pylist()]
    classes = sample_design(gold).get("classes")
    truth_values = {n: _check_truth(n, corpus_values[n][complete], _column_values(gold, n), gold_ids, classes)
                    for n in predicted}
    coded = ~np.any([_missing(v) for v in truth_values.values()], axis=0)
    if not coded.all():
        warnings.warn(f"{int((~coded).sum())} gold images have no true value of {', '.join(predicted)} and are left out")
    keep_gold = coded & complete[gold_rows]
    if not complete[gold_rows].all():
        warnings.warn(f"{int((~complete[gold_rows]).sum())} gold images lack corpus values of {', '.join(used)} and are "
                      "left out")
    sample = _gold_design(gold, keep_gold, int(complete.sum()), inclusion_probability, design)
    kept = np.flatnonzero(complete)
    new_index = -np.ones(corpus.num_rows, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    gold_positions = new_index[gold_rows[keep_gold]]
    ids = np.array([str(v) for v in corpus[id].to_pylist()], dtype=object)[kept]
    data_hat = {n: _as_patsy(v[kept]) for n, v in corpus_values.items()} | {ROW_LABELS: ids}
    y_hat, X_hat, infos, terms = _design(checked, data_hat)
    data_true = {n: _as_patsy(v[kept][gold_positions]) for n, v in corpus_values.items()}
    for n in predicted:
        data_true[n] = _as_patsy(truth_values[n][keep_gold])
    data_true[ROW_LABELS] = np.array([f"{i} (gold sample)" for i in ids[gold_positions]], dtype=object)
    y_true, X_true, _, _ = _design(checked, data_true, infos)
    n_gold = len(gold_positions)
    check_gold_size(n_gold)
    if n_gold < 5 * len(terms):
        raise ImagesAsDataError(f"the gold sample has {n_gold} coded images for {len(terms)} coefficients; a corrected "
                                f"regression needs at least 5 per coefficient ({5 * len(terms)}) and a few hundred to be "
                                "useful — code more images (draw_gold_sample(previous=...))")
    _check_outcome(family, y_hat, "the corpus")
    _check_outcome(family, y_true, "the gold sample")
    d = _Data(X_hat, y_hat, gold_positions, X_true, y_true, sample)
    outcome_predicted = any(n in outcome_names for n in predicted)
    regressors_predicted = [n for n in predicted if n in regressor_names]
    if method == "ppi":
        if regressors_predicted or not outcome_predicted or not sample.equal:
            why = "a predicted regressor" if regressors_predicted else ("unequal inclusion probabilities" if not
                                                                         sample.equal else "no predicted outcome")
            raise ImagesAsDataError(f"method='ppi' (ppi-python) covers a predicted outcome with a simple random gold "
                                    f"sample; this model has {why} — use method='auto'",
                                    what="option", option="method", value="ppi")
    if naive_variance not in ("sandwich", "model"):
        raise ImagesAsDataError(f"{setting('naive_variance', naive_variance)}: choose one of sandwich, model", what="option",
                                option="naive_variance", value=naive_variance, choices=["sandwich", "model"])
    fits = {"naive": naive_fit(d, family), "gold_only": gold_only_fit(d, family)}
    if naive_variance == "model" and not fits["naive"].problem:   # glm()'s model-based variance, as broom shows it
        fits["naive"] = _Fit(fits["naive"].beta, _model_variance(_naive_parts(d), family, fits["naive"].beta))
    if method == "ppi":
        beta, se = _ppi_estimate(d, family, lam, confidence)
        fits["corrected"] = _Fit(beta, None, None if lam is None else np.full(len(terms), float(lam)), se)
        label, rule = "PPI++ (ppi-python)", "fixed" if lam is not None else "ppi-python (trace of the covariance)"
    else:
        fits["corrected"] = corrected_fit(d, family, lam, lam_rule=lambda_rule,
                                          naive=None if fits["naive"].problem else fits["naive"].beta)
        label = "DSL M-estimator (stratified sandwich)"
        rule = "fixed" if lam is not None else f"per coefficient, {lambda_rule}"
    lams = fits["corrected"].lams
    used_lam = float(lams[0]) if lams is not None and np.allclose(lams, lams[0]) else None
    rows, degenerate, thin = [], [], []
    events = _few_events(event_counts(d, _discrete_truths(predicted, truth_values, corpus_values, keep_gold, kept,
                                                          gold_positions)),
                         outcome_predicted, family, len(terms))
    for name in ("naive", "gold_only", "corrected"):
        flags = _degenerate(fits[name], fits["naive"], len(y_hat), n_gold) if name != "naive" else \
            {j: fits[name].problem for j in range(len(terms)) if fits[name].problem}
        degenerate += [f"{name} {terms[j]}: {why}" for j, why in flags.items()]
        if name != "naive" and events:
            for j in range(len(terms)):
                flags.setdefault(j, "few events: " + "; ".join(events))
        rows += _rows(terms, name, fits[name], confidence, flags)
    if degenerate:
        warnings.warn("intervals that cannot be trusted, reported without bounds: " + listing(degenerate, 6) +
                      ". Code more gold images, or check the gold values' coding")
    if events:
        warnings.warn("the gold-only and corrected intervals rest on few gold images (" + "; ".join(events) + "): "
                      "below nominal coverage in benchmarks/README.md; code more gold images of the rare class "
                      "(a sample stratified by predicted class finds them faster)")
    notes = []
    if not sample.equal:
        notes.append("unequal inclusion probabilities: gold images are weighted 1/pi within their strata")
    if calibration:
        notes.append(calibration)
    waves = _waves(gold, keep_gold)
    if waves > 1:
        notes.append(f"the gold sample was drawn in {waves} waves: valid if the decision to add a wave did not depend on "
                     "these estimates (see the README)")
    design_text = "simple random sample" if len(sample.sizes) == 1 else \
        f"stratified, {len(sample.sizes)} strata" + ("" if not sample.equal else " (equal inclusion probabilities)")
    covariances = {name: fit.cov for name, fit in fits.items()}
    parts = {name: fit.parts for name, fit in fits.items() if fit.parts is not None and name != "naive"}
    return CorrectedGLM(pa.Table.from_pylist(rows, schema=ESTIMATE_SCHEMA), checked.text, family, predicted,
                        outcome_predicted, regressors_predicted, label, used_lam, len(y_hat), n_gold, design_text,
                        confidence, notes, list(terms), covariances, rule, waves, parts, calibration)


def _waves(gold: pa.Table, keep: np.ndarray) -> int:
    if "wave" not in gold.column_names:
        return 1
    return len({w for w, k in zip(gold["wave"].to_pylist(), keep) if k})


def _discrete_truths(predicted, truth_values, corpus_values, keep_gold, kept, gold_positions) -> dict:
    """{name: (truth, prediction)} on the kept gold images, for the predicted variables that are classes (text or
    logical values, or two numbers such as 0/1); a count is not a class."""
    out = {}
    for name in predicted:
        truth = truth_values[name][keep_gold]
        prediction = corpus_values[name][kept][gold_positions]
        values = prediction[~_missing(prediction)] if prediction.dtype != object else prediction
        if prediction.dtype == object or len(np.unique(values)) <= 2:  # classes, not counts
            out[name] = (np.asarray(truth, dtype=object).astype(str), np.asarray(prediction, dtype=object).astype(str))
    return out


# ------------------------------------------------------------------------------------------ prevalence

PREVALENCE_INTERVALS = {
    "naive": "wilson (the corpus as a sample)",
    "gold_only": "jeffreys, stratified",
    "poststratified": "jeffreys, post-stratified by prediction",
    "dsl": "t (DSL sandwich, effective df)",
    "ppi": "wald (ppi-python)",
}


def corrected_prevalence(corpus, gold, *, classes=None, by: str | None = None, predicted: str = "predicted",
                         label: str = "label", use: str = "class", method: str = "auto", lam: float | None = None,
                         confidence: float = 0.95, id: str = "image_id",
                         inclusion_probability: str = "inclusion_probability", design: str | None = None,
                         strata: str | None = None, seed: int = 0) -> pa.Table:
    """The share of each class in the corpus (overall, or by a group such as a day or an account): naive,
    gold-only and corrected, with intervals.

    corpus: the labelled corpus (predict()/label_corpus() output, joined to any metadata), with id, `predicted`
      and, for use="probability", prob_<class> columns. gold: read_coding_sheet() output (id, `label`,
      inclusion_probability, stratum). use: "class" (the predicted class) or "probability" (prob_<class>).
    by: a corpus column to estimate within each of its groups; groups with fewer than 10 gold images get no
      gold-only or corrected estimate (a warning says which).
    design: None reads the design from the gold table (inclusion_probability is then required); "srs" declares a
      simple random sample of the corpus. strata: the corpus column the gold sample was stratified by (default: the
      one recorded with the sample; "predicted" for strata by predicted class).
    method: "auto" — use="class": the gold images' shares within each stratum and predicted class, weighted by the
      corpus's counts (post-stratification: it uses the predictions as fully as any λ could) with a Jeffreys
      interval (each cell's share drawn from Beta(y + ½, n − y + ½), the corpus's cell shares from a Dirichlet;
      seeded Monte Carlo) — it keeps its coverage when a heavily weighted stratum shows few or no images of a rare
      class, where Wald intervals fail; use="probability": the DSL estimator with its stratified sandwich.
      "dsl": the DSL estimator (Wald). "ppi": ppi-python's ppi_mean_ci (simple random samples only).
    Returns: [by], class, method, estimate, std_error, conf_low, conf_high, n_corpus, n_gold, interval (how the
    interval was made); a corpus calibrated by calibrate_to_corpus() passes its record on in the metadata. The target is the share in the process that produced the corpus; the intervals also
    cover the corpus's own share (slightly conservatively).
    Raises ImagesAsDataError for unknown classes (naming the gold rows), gold images not in the corpus, a design
    that cannot be read, and bad options.
    """
    import pyarrow.compute as pc

    confidence = check_confidence(confidence)
    if method not in METHODS:
        raise ImagesAsDataError(f"{setting('method', method)}: choose {', '.join(METHODS)}",
                                what="option", option="method", value=method)
    if use not in ("class", "probability"):
        raise ImagesAsDataError(f"{setting('use', use)}: choose 'class' (predicted class) or 'probability' (prob_<class>)",
                                what="option", option="use", value=use)
    if lam is not None and not 0 <= float(lam) <= 1:
        raise ImagesAsDataError(f"{setting('lam', lam)}: the power-tuning parameter lies between 0 (gold only) and 1; None tunes it",
                                what="option", option="lam", value=lam)
    corpus, gold = to_arrow(corpus), to_arrow(gold)
    calibration = (corpus.schema.metadata or {}).get(CALIBRATION_METADATA)
    for table, column, name in ((corpus, predicted, "corpus"), (gold, label, "gold sample")):
        if column not in table.column_names:
            raise ImagesAsDataError(f"the {name} has no {column!r} column (columns: {', '.join(table.column_names)}).")
    if by is not None and by not in corpus.column_names:
        raise ImagesAsDataError(f"{setting('by', by)}: no such column in the corpus (columns: {', '.join(corpus.column_names)})."
                                f"{did_you_mean(by, corpus.column_names)}", what="option", option="by", value=by)
    usable = np.array([p is not None for p in corpus[predicted].to_pylist()], dtype=bool)
    if "error" in corpus.column_names:
        usable &= np.array([e is None for e in corpus["error"].to_pylist()], dtype=bool)
    corpus = corpus.filter(pa.array(usable))
    gold_rows = _gold_join(corpus, gold, id)
    truth = [None if v is None else str(v) for v in gold[label].to_pylist()]
    gold_ids = [str(v) for v in gold[id].to_pylist()]
    uncoded_rows = [i + 1 for i, v in enumerate(truth) if v is None]
    uncoded = [f"row {i} ({gold_ids[i - 1]})" for i in uncoded_rows]
    if uncoded:
        raise ImagesAsDataError(f"gold rows {listing(uncoded)} have no {label!r}; code them (read_coding_sheet() checks "
                                "this)", what="rows", row=uncoded_rows)
    predictions = [str(v) for v in corpus[predicted].to_pylist()]
    recorded = sample_design(gold).get("classes")
    if classes is None:
        classes = sorted(set(predictions) | set(truth) | set(recorded or []))
    classes = [str(c) for c in classes]
    strange = [f"row {i + 1} ({gold_ids[i]}: {v!r})" for i, v in enumerate(truth) if v not in classes]
    if strange:
        raise ImagesAsDataError(f"gold labels outside the classes ({', '.join(classes)}): {listing(strange)}; code "
                                "every image with one of the classes")
    unknown_predictions = sorted({p for p in predictions if p not in classes})
    if unknown_predictions:
        raise ImagesAsDataError(f"predicted classes {listing(map(repr, unknown_predictions))} are not among classes= "
                                f"({', '.join(classes)})")
    if use == "probability":
        absent = [f"prob_{c}" for c in classes if f"prob_{c}" not in corpus.column_names]
        if absent:
            raise ImagesAsDataError(f"use='probability' needs columns {', '.join(absent)} in the corpus (predict() writes them)",
                                    what="option", option="use", value="probability")
    if strata is not None and "stratum" not in gold.column_names:
        gold = _strata_from_corpus(corpus, gold, gold_rows, strata, predictions)
    gold_design = _gold_design(gold, np.ones(gold.num_rows, dtype=bool), corpus.num_rows, inclusion_probability, design)
    check_gold_size(len(gold_rows))
    corpus_strata = _corpus_strata(corpus, gold, gold_rows, gold_design, strata, predictions)
    groups = [None] if by is None else sorted({str(v) for v in corpus[by].to_pylist() if v is not None}, key=str)
    group_of = None if by is None else np.array([None if v is None else str(v) for v in corpus[by].to_pylist()],
                                                dtype=object)
    predicted_index = np.array([classes.index(p) for p in predictions], dtype=np.int64)
    truth_index = np.array([classes.index(t) for t in truth], dtype=np.int64)
    gold_predicted = predicted_index[gold_rows]
    rows, thin, borrowed, wald = [], [], [], []
    for g_index, group in enumerate(groups):
        member = np.ones(corpus.num_rows, dtype=bool) if group is None else group_of == group
        in_group = member[gold_rows]
        for c_index, c in enumerate(classes):
            if use == "class":
                y_hat = (predicted_index == c_index).astype(float)
            else:
                y_hat = np.nan_to_num(np.asarray(pc.fill_null(corpus[f"prob_{c}"], 0.0).to_pylist(), dtype=float))
            y_true = (truth_index == c_index).astype(float)
            results = {"naive": _naive_share(y_hat[member], confidence, use)}
            if in_group.sum() >= MIN_GOLD:
                seed_here = [int(seed), g_index, c_index]
                shares = _Shares(y_true, gold_design.stratum, corpus_strata, member, in_group, confidence)
                results["gold_only"] = shares.interval(None, None, seed_here, borrowed, group)
                if method == "ppi" or method == "dsl" or use == "probability":
                    # the group's mean as a domain of the whole design: images outside it score zero
                    d = _Data(member[:, None].astype(float), y_hat, gold_rows, in_group[:, None].astype(float),
                              y_true, gold_design)
                    results["corrected"] = _dsl_share(d, method, lam, confidence, in_group)
                    why = share_events(y_true, y_hat[gold_rows], in_group, gold_design)
                    if why:
                        wald.append(f"{c}" + (f" in {group}" if group is not None else "") + f" ({'; '.join(why)})")
                else:
                    results["corrected"] = shares.interval(gold_predicted, predicted_index, seed_here, borrowed, group)
            elif c_index == 0:
                thin.append(f"{group} ({int(in_group.sum())})" if group is not None else str(int(in_group.sum())))
            for name in ("naive", "gold_only", "corrected"):
                estimate, se, low, high, interval = results.get(name, (None, None, None, None, None))
                rows.append(({by: group} if by is not None else {}) | {
                    "class": c, "method": name, "estimate": estimate, "std_error": se, "conf_low": low,
                    "conf_high": high, "n_corpus": int(member.sum()), "n_gold": int(in_group.sum()),
                    "interval": interval})
    if thin:
        warnings.warn(f"groups with fewer than {MIN_GOLD} gold images get only the naive estimate: {listing(thin)}; "
                      "code more images of them (a gold sample stratified by the group)")
    if wald:
        warnings.warn("Wald intervals (method='dsl' or 'ppi', or use='probability') that rest on few gold images: "
                      f"{listing(wald, 6)}. In benchmarks/README.md such intervals covered 45-90% instead of 95% for "
                      "classes of 2-5%; method='auto' with use='class' (post-stratified) kept 93-97% there")
    if borrowed:
        warnings.warn("some groups have corpus images in a stratum from which the gold sample holds none of theirs: "
                      f"{listing(sorted(set(borrowed)))}; their share there is estimated from that stratum's gold images "
                      "in the other groups (code more images of these groups, or stratify by the group)")
    schema = pa.schema(([(by, pa.string())] if by is not None else []) + [
        ("class", pa.string()), ("method", pa.string()), ("estimate", pa.float64()), ("std_error", pa.float64()),
        ("conf_low", pa.float64()), ("conf_high", pa.float64()), ("n_corpus", pa.int64()), ("n_gold", pa.int64()),
        ("interval", pa.string())])
    if calibration:  # the corpus's calibration travels with its estimates (calibration_record() reads it)
        schema = schema.with_metadata({CALIBRATION_METADATA: calibration})
    return pa.Table.from_pylist(rows, schema=schema)


def _corpus_strata(corpus: pa.Table, gold: pa.Table, gold_rows: np.ndarray, design: _Design, strata, predictions):
    """Each corpus image's stratum index in the gold design (-1: a stratum the gold sample does not have).

    A simple random sample has one stratum. Otherwise the corpus column the sample was stratified by (strata=, or
    the one recorded with the sample) gives it; the gold images' recorded strata must agree with it."""
    n = corpus.num_rows
    if len(design.sizes) == 1:
        return np.zeros(n, dtype=np.int64)
    column = strata if strata is not None else sample_design(gold).get("strata")
    if column is None:
        raise ImagesAsDataError("the gold sample has unequal inclusion probabilities but no record of the corpus column "
                                "it was stratified by; pass strata= (e.g. strata='predicted')")
    values = _stratum_values(corpus, column, predictions)
    if values is None:
        raise ImagesAsDataError(f"the gold sample was stratified by {column!r}, which the corpus does not have; join it "
                                "to the corpus (or pass strata=)")
    index = {name: k for k, name in enumerate(design.names)}
    out = np.array([index.get(v, -1) for v in values], dtype=np.int64)
    disagree = np.flatnonzero(out[gold_rows] != design.stratum)
    if len(disagree):
        ids = [str(v) for v in gold["image_id"].to_pylist()] if "image_id" in gold.column_names else None
        named = [f"{ids[i]} (row {i + 1})" if ids else f"row {i + 1}" for i in disagree]
        raise ImagesAsDataError(f"gold images whose recorded stratum differs from the corpus's {column!r}: "
                                f"{listing(named)}; analyse the corpus the sample was drawn from (or pass strata=)")
    return out


def _stratum_values(corpus: pa.Table, column: str, predictions) -> list | None:
    """Each corpus image's stratum under `column` as text (the predictions as the prevalence reads them for
    "predicted"), or None when the corpus has no such column."""
    if column not in corpus.column_names:
        return None
    if column == "predicted":
        return predictions
    return [None if v is None else str(v) for v in corpus[column].to_pylist()]


def _naive_share(y_hat: np.ndarray, confidence: float, use: str) -> tuple:
    """The share of the predictions, with a Wilson interval treating the corpus as a sample of its source."""
    from ..measure.intervals import wilson_interval

    n = len(y_hat)
    share = float(y_hat.mean())
    se = float(y_hat.std(ddof=0) / np.sqrt(n))
    if use == "class":
        low, high = wilson_interval(share, n, confidence)
        return share, se, float(low), float(high), PREVALENCE_INTERVALS["naive"]
    z = z_value(confidence)
    return share, se, max(0.0, share - z * se), min(1.0, share + z * se), "wald"


def _strata_from_corpus(corpus: pa.Table, gold: pa.Table, gold_rows: np.ndarray, strata: str, predictions) -> pa.Table:
    """The gold table with `stratum` and `stratum_size` taken from the corpus column it was stratified by."""
    values = _stratum_values(corpus, strata, predictions)
    if values is None:
        raise ImagesAsDataError(f"{setting('strata', strata)}: no such column in the corpus (columns: "
                                f"{', '.join(corpus.column_names)}).{did_you_mean(strata, corpus.column_names)}",
                                what="option", option="strata", value=strata)
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    names = [values[int(r)] for r in gold_rows]
    return gold.append_column("stratum", pa.array(names, pa.string())).append_column(
        "stratum_size", pa.array([counts[v] for v in names], pa.int64()))


class _Shares:
    """A class's share in a group (a domain of the corpus), from the gold sample's cells: sampling strata, and
    predicted classes within them (post-stratification) when asked."""

    def __init__(self, y_true, gold_stratum, corpus_stratum, member, in_group, confidence):
        self.y_true, self.gold_stratum, self.corpus_stratum = y_true, gold_stratum, corpus_stratum
        self.member, self.in_group, self.confidence = member, in_group, confidence

    def interval(self, gold_cell, corpus_cell, seed, borrowed, group) -> tuple:
        """(estimate, sd, lower, upper, interval name) with weighted_proportion_interval()'s Jeffreys interval.

        A predicted class with corpus images in a stratum but no gold image there is merged with the stratum's
        other classes. A stratum with corpus images of the group but no gold image of the group borrows the
        stratum's gold images of every group (and is listed in `borrowed`)."""
        from ..measure.intervals import weighted_proportion_interval

        corpus_strata = self.corpus_stratum[self.member]
        gold_strata = self.gold_stratum[self.in_group]
        y = self.y_true[self.in_group]
        if gold_cell is not None:
            corpus_cells, gold_cells = corpus_cell[self.member], gold_cell[self.in_group]
        sizes, trials, successes = [], [], []
        for h in np.unique(corpus_strata):
            in_corpus, in_gold = corpus_strata == h, gold_strata == h
            if not in_gold.any():
                # nothing of this group was drawn in stratum h: use the stratum's gold images of every group
                everyone = self.gold_stratum == h
                if not everyone.any():
                    raise ImagesAsDataError(f"stratum {h} of the corpus has no gold image at all; the sample does not "
                                            "cover it")
                borrowed.append(str(group) if group is not None else "the corpus")
                sizes.append(int(in_corpus.sum()))
                trials.append(int(everyone.sum()))
                successes.append(float(self.y_true[everyone].sum()))
                continue
            split = gold_cell is not None and all(np.any(gold_cells[in_gold] == k)
                                                  for k in np.unique(corpus_cells[in_corpus]))
            if split:
                for k in np.unique(corpus_cells[in_corpus]):
                    cell = in_gold & (gold_cells == k)
                    sizes.append(int((in_corpus & (corpus_cells == k)).sum()))
                    trials.append(int(cell.sum()))
                    successes.append(float(y[cell].sum()))
            else:
                sizes.append(int(in_corpus.sum()))
                trials.append(int(in_gold.sum()))
                successes.append(float(y[in_gold].sum()))
        estimate, sd, low, high = weighted_proportion_interval(successes, trials, sizes, self.confidence, seed=seed)
        return estimate, sd, low, high, PREVALENCE_INTERVALS["gold_only" if gold_cell is None else "poststratified"]


def share_events(y_true: np.ndarray, y_hat: np.ndarray, in_group: np.ndarray, design: _Design) -> list:
    """Why a Wald interval for a class's share (DSL, PPI++) may not be trusted, for the gold images of one group:
    fewer than FEW_SHARE_CLASS gold images of the class (or of the other classes), or fewer than FEW_MISCLASSIFIED
    misclassified gold images in a stratum holding HEAVY_STRATUM of the corpus or more — the heavily weighted few
    that the variance then rests on (benchmarks/README.md: such Wald intervals covered 45-90% for 2-5% classes).
    y_true: 0/1 per gold image; y_hat: the prediction (a 0/1 class indicator or a probability) per gold image."""
    reasons = []
    inside = np.asarray(in_group, dtype=bool)
    positives = int(y_true[inside].sum())
    negatives = int(inside.sum()) - positives
    if min(positives, negatives) < FEW_SHARE_CLASS:
        reasons.append(f"{min(positives, negatives)} gold image(s) {'of' if positives <= negatives else 'outside'} "
                       "the class")
    wrong = ((np.asarray(y_hat) > 0.5) != (y_true > 0.5)) & inside
    total = float(design.sizes.sum())
    for h, size in enumerate(design.sizes):
        here = design.stratum == h
        if not (here & inside).any():  # a stratum without the group's images carries none of its variance
            continue
        count = int(wrong[here].sum())
        if size / total >= HEAVY_STRATUM and count < FEW_MISCLASSIFIED:
            where = "the gold sample" if len(design.sizes) == 1 else \
                f"stratum {design.names[h] if design.names else h!r} ({size / total:.0%} of the corpus)"
            reasons.append(f"{count} misclassified gold image(s) in {where}")
            break
    return reasons


def _dsl_share(d: _Data, method: str, lam, confidence: float, in_group: np.ndarray) -> tuple:
    """A group's mean by the DSL estimator (Wald, clipped to [0, 1]; the group as a domain of the whole design) or by
    ppi-python's ppi_mean_ci (method "ppi": the group's own images, a simple random sample only)."""
    z = z_value(confidence)
    if method == "ppi":
        if len(d.design.sizes) > 1 or not d.design.equal:
            raise ImagesAsDataError("method='ppi' (ppi-python) needs a simple random gold sample; this one has unequal "
                                    "inclusion probabilities — use method='auto' or 'dsl'",
                                    what="option", option="method", value="ppi")
        try:
            import ppi_py
        except ImportError:
            raise ImagesAsDataError("method='ppi' uses ppi-python: pip install 'imagesasdata[stats]'",
                                    what="missing_extra", extra="stats") from None
        member = d.X_hat[:, 0] > 0
        gold_member = d.gold[in_group]
        unlabelled = np.setdiff1d(np.flatnonzero(member), gold_member)
        low, high = ppi_py.ppi_mean_ci(d.y_true[in_group], d.y_hat[gold_member], d.y_hat[unlabelled],
                                       alpha=1 - confidence, lam=lam)
        low, high = float(np.ravel(low)[0]), float(np.ravel(high)[0])
        estimate, se = (low + high) / 2, (high - low) / (2 * z)
        return estimate, se, max(0.0, low), min(1.0, high), PREVALENCE_INTERVALS["ppi"]
    fit = corrected_fit(d, "gaussian", lam)
    estimate, se = float(fit.beta[0]), float(np.sqrt(fit.cov[0, 0]))
    z = float(critical_values(fit, confidence)[0])
    return estimate, se, max(0.0, estimate - z * se), min(1.0, estimate + z * se), PREVALENCE_INTERVALS["dsl"]
