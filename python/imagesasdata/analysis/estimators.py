"""Estimates from predicted labels that a researcher can defend: prevalence and generalised linear models that
combine the model's predictions on the whole corpus with true labels on a gold sample.

Every estimate comes three ways, side by side:

- naive: the predicted values used as if they were true, on the whole corpus — what is usually done, and biased
  whenever the classifier errs (more so when its errors depend on the outcome);
- gold_only: the gold sample alone, design-weighted (each image 1/π times) — unbiased, but only as precise as the
  few hundred coded images allow;
- corrected: both together, unbiased like the gold sample and usually much narrower.

The corrected estimator is chosen by case (method="auto"):

- a predicted outcome (and only the outcome), a simple random gold sample (equal inclusion probabilities), and a
  gaussian, binomial or poisson family: prediction-powered inference with power tuning, PPI++ (Angelopoulos,
  Bates, Fannjiang, Jordan & Zrnic 2023; Angelopoulos, Duchi & Zrnic 2023), computed by ppi-python itself
  (ppi_ols_ci, ppi_logistic_ci, ppi_poisson_ci, ppi_mean_ci). The gold images are its labelled set and the other
  corpus images its unlabelled set.
- anything else — a predicted regressor, several predicted variables, unequal inclusion probabilities (a
  stratified gold sample): the design-based M-estimator of DSL (design-based supervised learning; Egami, Hinck,
  Stewart & Wei 2023), written here. For every corpus image i, with D̂_i its data with predicted values, D_i the
  same with the true values (known when it is in the gold sample, R_i = 1) and π_i its inclusion probability,
  the estimating equation is

      Σ_i ψ_i(β) = 0,   ψ_i(β) = λ s(D̂_i; β) + (R_i / π_i) [s(D_i; β) − λ s(D̂_i; β)],

  where s(D; β) = x (y − μ(x'β)) is the GLM score with the canonical link. Its expectation over the sampling
  design is E[s(D_i; β)] whatever the predictions are, so β̂ is consistent for the coefficients one would get with
  the true values everywhere; the predictions only buy precision. The variance is the sandwich
  J⁻¹ (Σ_i ψ_i ψ_i') J⁻ᵀ with J = Σ_i ∂ψ_i/∂β (Huber 1967; Stefanski & Boos 2002), treating the corpus images as
  independent draws and the sampling as independent Bernoulli draws with probabilities π_i (slightly
  conservative for sampling without replacement). λ ∈ [0, 1] is chosen, as in PPI++, to minimise that variance —
  for each coefficient separately (λ = 0 is the gold-only estimator with HT weights, λ = 1 trusts the
  predictions fully); it is estimated once at λ = 1 and then held fixed.

naive and gold_only use the same sandwich (HC0) variance, so the three intervals are comparable; all intervals are
Wald intervals at the chosen confidence.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, missing_extra
from ..io.tables import to_arrow
from .gold import MIN_GOLD, check_gold_size, inclusion_probabilities
from ..measure.intervals import check_confidence, z_value

FAMILIES = ("gaussian", "binomial", "poisson")
METHODS = ("auto", "ppi", "dsl")
ESTIMATE_SCHEMA = pa.schema([
    ("term", pa.string()), ("method", pa.string()), ("estimate", pa.float64()), ("std_error", pa.float64()),
    ("statistic", pa.float64()), ("p_value", pa.float64()), ("conf_low", pa.float64()), ("conf_high", pa.float64()),
    ("lambda", pa.float64()),
])
# Names a formula may use that are functions, not columns (patsy's built-ins and numpy's usual transforms).
FORMULA_FUNCTIONS = {"log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "exp": np.exp,
                     "sqrt": np.sqrt, "abs": np.abs, "np": np}
PATSY_NAMES = {"I", "C", "Q", "center", "standardize", "scale", "bs", "cr", "cc", "te", "Treatment", "Sum", "Poly",
               "Diff", "Helmert", "True", "False", "None"}


# ------------------------------------------------------------------------------------------ GLM pieces

def _mean(family: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, dμ/dη) for the family's canonical link."""
    if family == "gaussian":
        return eta, np.ones_like(eta)
    if family == "binomial":
        mu = np.where(eta >= 0, 1 / (1 + np.exp(-np.abs(eta))), np.exp(-np.abs(eta)) / (1 + np.exp(-np.abs(eta))))
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


def _solve(parts: _Parts, family: str, start=None, what: str = "the model") -> np.ndarray:
    """β with Σ c x (y − μ(x'β)) = 0, by Newton's method with step halving."""
    beta = _start(parts, family) if start is None else np.array(start, dtype=float)
    score, information, _ = _score(parts, family, beta)
    for _ in range(100):
        try:
            step = np.linalg.solve(information, score)
        except np.linalg.LinAlgError:
            raise ImagesAsDataError(f"{what} cannot be estimated: its design is singular (a term without variation, or "
                                    "perfectly collinear terms, in the data it uses — for gold_only, the gold sample); "
                                    "drop or recode the term, or code more gold images") from None
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
    else:
        warnings.warn(f"{what}: the estimating equation did not converge in 100 Newton steps; treat it with caution")
    return beta


def _sandwich(parts: _Parts, family: str, beta: np.ndarray, images: int) -> np.ndarray:
    """J⁻¹ (Σ_i ψ_i ψ_i') J⁻ᵀ with ψ_i summed over each image's parts."""
    _, information, residual = _score(parts, family, beta)
    psi = np.zeros((images, parts.X.shape[1]))
    np.add.at(psi, parts.image, parts.X * residual[:, None])
    inverse = np.linalg.inv(information)
    return inverse @ (psi.T @ psi) @ inverse.T


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
    probability: np.ndarray  # n inclusion probabilities


def _naive_parts(d: _Data) -> _Parts:
    n = len(d.y_hat)
    return _Parts(d.X_hat, d.y_hat, np.ones(n), np.arange(n))


def _gold_parts(d: _Data) -> _Parts:
    return _Parts(d.X_true, d.y_true, 1 / d.probability, d.gold)


def _dsl_parts(d: _Data, lam: float) -> _Parts:
    n = len(d.y_hat)
    weight = 1 / d.probability
    return _Parts.stack([
        _Parts(d.X_hat, d.y_hat, np.full(n, lam), np.arange(n)),
        _Parts(d.X_true, d.y_true, weight, d.gold),
        _Parts(d.X_hat[d.gold], d.y_hat[d.gold], -lam * weight, d.gold),
    ])


def dsl_estimate(d: _Data, family: str, lam=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(β̂, standard errors, λ of each coefficient) of the design-based M-estimator.

    lam None: λ is tuned for each coefficient separately (PPI++'s coordinate-wise rule): from the fit at λ = 1,
    λ_j minimises the sandwich variance of β_j (clipped to [0, 1]); β_j and its standard error are then read from
    the fit at λ_j. Tuning the trace of the variance instead would let the intercept, on its own scale, decide
    for every coefficient. A number: that λ for all coefficients."""
    images = len(d.y_hat)
    naive = _solve(_naive_parts(d), family, what="the naive model")
    p = d.X_hat.shape[1]
    if lam is not None:
        beta = _solve(_dsl_parts(d, float(lam)), family, start=naive, what="the corrected model")
        se = np.sqrt(np.diag(_sandwich(_dsl_parts(d, float(lam)), family, beta, images)))
        return beta, se, np.full(p, float(lam))
    first = _solve(_dsl_parts(d, 1.0), family, start=naive, what="the corrected model")
    # ψ_i(λ) = a_i + λ b_i: a from the true values, b from the predictions
    a = _image_scores(_gold_parts(d), family, first, images)
    b = _image_scores(_naive_parts(d), family, first, images) - \
        _image_scores(_Parts(d.X_hat[d.gold], d.y_hat[d.gold], 1 / d.probability, d.gold), family, first, images)
    _, information, _ = _score(_dsl_parts(d, 1.0), family, first)
    try:
        inverse = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        inverse = np.linalg.pinv(information)
    a, b = a - a.mean(0), b - b.mean(0)
    cross = a.T @ b
    numerator = -np.diag(inverse @ (cross + cross.T) @ inverse.T)
    denominator = 2 * np.diag(inverse @ (b.T @ b) @ inverse.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        lams = np.where(denominator > 0, np.clip(numerator / denominator, 0, 1), 1.0)
    beta, se = np.empty(p), np.empty(p)
    fits: dict = {}
    for j, value in enumerate(np.round(lams, 12)):
        if value not in fits:
            estimate = _solve(_dsl_parts(d, float(value)), family, start=first, what="the corrected model")
            fits[value] = (estimate, np.sqrt(np.diag(_sandwich(_dsl_parts(d, float(value)), family, estimate, images))))
        beta[j], se[j] = fits[value][0][j], fits[value][1][j]
    return beta, se, lams


def _ppi_estimate(d: _Data, family: str, lam, confidence: float) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(β̂, standard errors, λ or None) from ppi-python: estimate = the interval's midpoint, SE = half-width / z."""
    try:
        import ppi_py
    except ImportError:
        raise ImagesAsDataError("the corrected estimate for a predicted outcome uses ppi-python: pip install "
                                "'imagesasdata[stats]' (or pass method='dsl')", what="missing_extra", extra="stats") from None
    alpha = 1 - confidence
    unlabelled = np.setdiff1d(np.arange(len(d.y_hat)), d.gold)
    X, Y, Yhat = d.X_true, d.y_true, d.y_hat[d.gold]
    X_u, Yhat_u = d.X_hat[unlabelled], d.y_hat[unlabelled]
    options = {"alpha": alpha, "lam": None if lam is None else float(lam)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ppi-python's optimisers and numba warn about things that do not matter here
        if family == "gaussian":
            low, high = ppi_py.ppi_ols_ci(X, Y, Yhat, X_u, Yhat_u, **options)
        elif family == "binomial":
            low, high = ppi_py.ppi_logistic_ci(X, Y, Yhat, X_u, Yhat_u, **options)
        else:
            low, high = ppi_py.ppi_poisson_ci(X, Y, Yhat, X_u, Yhat_u, **options)
    low, high = np.atleast_1d(np.asarray(low, dtype=float)), np.atleast_1d(np.asarray(high, dtype=float))
    z = z_value(confidence)
    return (low + high) / 2, (high - low) / (2 * z), None if lam is None else float(lam)


def _rows(terms, method, estimate, std_error, confidence, lams=None) -> list:
    from statistics import NormalDist

    z = z_value(confidence)
    rows = []
    lams = [None] * len(terms) if lams is None else [None if v is None else float(v) for v in lams]
    for term, value, se, lam in zip(terms, estimate, std_error, lams):
        statistic = value / se if se > 0 else float("nan")
        p_value = 2 * (1 - NormalDist().cdf(abs(statistic))) if se > 0 else float("nan")
        rows.append({"term": term, "method": method, "estimate": float(value), "std_error": float(se),
                     "statistic": float(statistic), "p_value": float(p_value),
                     "conf_low": float(value - z * se), "conf_high": float(value + z * se), "lambda": lam})
    return rows


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
    """(outcome variables, regressor variables): the names a formula reads, in order, functions left out."""
    try:
        import patsy
    except ImportError:
        raise missing_extra("formulas", "patsy", "stats") from None
    try:
        description = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as error:
        raise ImagesAsDataError(f"formula {formula!r} cannot be read: {error}") from None
    if not description.lhs_termlist:
        raise ImagesAsDataError(f"formula {formula!r} has no outcome: write it as 'outcome ~ regressors'")

    def names(termlist):
        found = []
        for term in termlist:
            for factor in term.factors:
                try:
                    tree = ast.parse(factor.code, mode="eval")
                except SyntaxError:
                    raise ImagesAsDataError(f"formula {formula!r}: cannot read {factor.code!r}") from None
                called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                          and isinstance(node.func, ast.Name)}
                for node in ast.walk(tree):
                    if isinstance(node, ast.Name) and node.id not in called and node.id not in FORMULA_FUNCTIONS \
                            and node.id not in PATSY_NAMES and node.id not in found:
                        found.append(node.id)
        return found

    return names(description.lhs_termlist), names(description.rhs_termlist)


def _design(formula: str, data: dict, design_infos=None):
    """(y, X, (lhs info, rhs info), term names) from patsy, with the functions FORMULA_FUNCTIONS offers."""
    import patsy

    environment = patsy.EvalEnvironment([FORMULA_FUNCTIONS])
    try:
        if design_infos is None:
            y, X = patsy.dmatrices(formula, data, eval_env=environment, NA_action="raise")
        else:
            y, X = patsy.build_design_matrices(design_infos, data, NA_action="raise")
    except patsy.PatsyError as error:
        raise ImagesAsDataError(f"formula {formula!r}: {str(error).splitlines()[0]}") from None
    y_matrix = np.asarray(y, dtype=float)
    if y_matrix.shape[1] == 2:  # a two-level (e.g. TRUE/FALSE) outcome: the second level is the event
        y_vector = y_matrix[:, 1]
    elif y_matrix.shape[1] == 1:
        y_vector = y_matrix[:, 0]
    else:
        raise ImagesAsDataError(f"formula {formula!r}: the outcome has {y_matrix.shape[1]} levels; a GLM needs a number "
                                "or a two-level variable (recode it, e.g. I(label == 'protest'))")
    terms = ["(Intercept)" if name == "Intercept" else name for name in X.design_info.column_names]
    return y_vector, np.asarray(X, dtype=float), (y.design_info, X.design_info), terms


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ImagesAsDataError(f"family={family!r}: choose {', '.join(FAMILIES)}.{did_you_mean(family, FAMILIES)}")
    return family


def _check_outcome(family: str, y: np.ndarray, where: str) -> None:
    if family == "binomial" and ((y < 0) | (y > 1)).any():
        raise ImagesAsDataError(f"family='binomial' needs an outcome between 0 and 1 (0/1, TRUE/FALSE or a probability); "
                                f"{where} holds values outside it")
    if family == "poisson" and (y < 0).any():
        raise ImagesAsDataError(f"family='poisson' needs counts of 0 or more; {where} holds negative values")


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
                                    f"{row + 1}); one row per image")
        position[key] = row
    rows, unknown, seen = [], [], {}
    for row, image_id in enumerate(gold[id_column].to_pylist(), start=1):
        key = None if image_id is None else str(image_id)
        if key in seen:
            raise ImagesAsDataError(f"{id_column} {key!r} appears twice in the gold sample (rows {seen[key]} and {row})")
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

@dataclass
class CorrectedGLM:
    """A GLM fitted naive, gold-only and corrected. coefficients: term, method, estimate, std_error, statistic,
    p_value, conf_low, conf_high (Wald intervals at `confidence`) and lambda (the power tuning behind a corrected
    estimate; null where ppi-python tuned it internally). lam: the one λ of every coefficient, or None."""

    coefficients: pa.Table   # term, method, estimate, std_error, statistic, p_value, conf_low, conf_high, lambda
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

    def tidy(self, method: str | None = None) -> pa.Table:
        """The coefficients (of one method: "naive", "gold_only" or "corrected"; default all)."""
        if method is None:
            return self.coefficients
        import pyarrow.compute as pc

        if method not in ("naive", "gold_only", "corrected"):
            raise ImagesAsDataError(f"method={method!r}: choose naive, gold_only or corrected")
        return self.coefficients.filter(pc.equal(self.coefficients["method"], method))

    def glance(self) -> pa.Table:
        """One row: formula, family, predicted, corrected_method, lambda (null when tuned per coefficient: see
        tidy()), n_corpus, n_gold, design, confidence."""
        return pa.table({
            "formula": [self.formula], "family": [self.family], "predicted": [", ".join(self.predicted)],
            "outcome_predicted": [self.outcome_predicted], "corrected_method": [self.corrected_method],
            "lambda": pa.array([self.lam], pa.float64()), "n_corpus": [self.n_corpus], "n_gold": [self.n_gold],
            "design": [self.design], "confidence": [self.confidence],
        })

    def __repr__(self) -> str:
        level = f"{self.confidence:.0%}"
        lines = [f"imagesasdata corrected {self.family} GLM  {self.formula}",
                 f"  predicted: {', '.join(self.predicted)}; {self.n_corpus:,} corpus images, {self.n_gold:,} gold "
                 f"({self.design})",
                 f"  corrected by {self.corrected_method}" + (f" (lambda {self.lam:.2f})" if self.lam is not None else
                                                              " (lambda tuned per coefficient)" if
                                                              self.corrected_method.startswith("DSL") else ""),
                 f"  {'term':<24} {'naive':>26} {'gold only':>26} {'corrected':>26}"]
        rows = self.coefficients.to_pylist()
        for term in dict.fromkeys(r["term"] for r in rows):
            cells = []
            for method in ("naive", "gold_only", "corrected"):
                row = next(r for r in rows if r["term"] == term and r["method"] == method)
                cells.append(f"{row['estimate']:.3f} [{row['conf_low']:.3f}, {row['conf_high']:.3f}]")
            lines.append(f"  {term[:24]:<24} " + " ".join(f"{c:>26}" for c in cells))
        lines.append(f"  estimates with {level} intervals; use .tidy() for the table")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def corrected_glm(formula: str, corpus, gold, *, predicted, family: str = "gaussian", method: str = "auto",
                  lam: float | None = None, confidence: float = 0.95, id: str = "image_id",
                  inclusion_probability: str = "inclusion_probability",
                  naive_variance: str = "sandwich") -> CorrectedGLM:
    """Fit a GLM with image-derived variables predicted on the corpus and coded on a gold sample.

    formula: "outcome ~ regressors" (patsy's syntax, close to R's: log(x), C(x), x:z, I(x > 0)).
    corpus: one row per image (id column) with every variable the formula names; the predicted variables hold the
      model's predictions (a 0/1 or TRUE/FALSE indicator, a class, or a probability).
    gold: the coded sample: the id column, the true value of each predicted variable under the same name, and
      inclusion_probability (what draw_gold_sample() gives; without it a simple random sample is assumed). Its
      other variables are taken from the corpus. read_coding_sheet()'s `label` column counts as the true value of
      the corpus's `predicted` column (its own `predicted` is the prediction), so predict() output works as is:
      "retweets ~ I(predicted == 'protest')".
    predicted: the names of the predicted variables (the outcome, regressors, or both).
    family: "gaussian" (identity link), "binomial" (logit) or "poisson" (log).
    method: "auto" (PPI++ through ppi-python where it applies, the DSL M-estimator otherwise — see the module's
      docstring), "ppi" or "dsl" to insist. lam: the power-tuning λ in [0, 1]; None tunes it.
    naive_variance: the naive row's standard errors: "sandwich" (HC0, the default: the same kind as gold_only's and
      corrected's, so the three are comparable) or "model" (glm()'s model-based ones, which broom::tidy(glm(...))
      shows; smaller when counts are overdispersed, as in a Poisson model of retweets).
    Returns a CorrectedGLM (tidy(), glance()). Raises ImagesAsDataError for a formula naming a missing column, gold
    images missing from the corpus, a gold sample too small, or inclusion probabilities outside (0, 1].
    """
    family = _check_family(family)
    if method not in METHODS:
        raise ImagesAsDataError(f"method={method!r}: choose {', '.join(METHODS)}")
    confidence = check_confidence(confidence)
    if lam is not None and not 0 <= float(lam) <= 1:
        raise ImagesAsDataError(f"lam={lam!r}: the power-tuning parameter lies between 0 (gold only) and 1; None tunes it")
    corpus, gold = to_arrow(corpus), to_arrow(gold)
    predicted = [predicted] if isinstance(predicted, str) else list(predicted or [])
    if not predicted:
        raise ImagesAsDataError("predicted= names no variable; name the image-derived variables whose corpus values are "
                                "predictions, e.g. predicted='protest'")
    outcome_names, regressor_names = formula_columns(formula)
    used = list(dict.fromkeys(outcome_names + regressor_names))
    missing = [n for n in used if n not in corpus.column_names]
    if missing:
        raise ImagesAsDataError(f"the formula names {listing(map(repr, missing))}, which the corpus does not have "
                                f"(columns: {', '.join(corpus.column_names)}).{did_you_mean(missing[0], corpus.column_names)}")
    stray = [n for n in predicted if n not in used]
    if stray:
        raise ImagesAsDataError(f"predicted= names {listing(map(repr, stray))}, which the formula does not use "
                                f"(it uses {', '.join(used)})")
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
    truth_values = {n: _column_values(gold, n) for n in predicted}
    coded = ~np.any([_missing(v) for v in truth_values.values()], axis=0)
    if not coded.all():
        warnings.warn(f"{int((~coded).sum())} gold images have no true value of {', '.join(predicted)} and are left out")
    probabilities = inclusion_probabilities(gold, inclusion_probability, corpus_size=int(complete.sum()))
    keep_gold = coded & complete[gold_rows]
    if not complete[gold_rows].all():
        warnings.warn(f"{int((~complete[gold_rows]).sum())} gold images lack corpus values of {', '.join(used)} and are "
                      "left out")
    kept = np.flatnonzero(complete)
    new_index = -np.ones(corpus.num_rows, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    gold_positions = new_index[gold_rows[keep_gold]]
    data_hat = {n: _as_patsy(v[kept]) for n, v in corpus_values.items()}
    y_hat, X_hat, infos, terms = _design(formula, data_hat)
    data_true = {n: _as_patsy(v[kept][gold_positions]) for n, v in corpus_values.items()}
    for n in predicted:
        data_true[n] = _as_patsy(truth_values[n][keep_gold])
    y_true, X_true, _, _ = _design(formula, data_true, infos)
    n_gold = len(gold_positions)
    check_gold_size(n_gold)
    if n_gold < 5 * len(terms):
        raise ImagesAsDataError(f"the gold sample has {n_gold} coded images for {len(terms)} coefficients; a corrected "
                                f"regression needs at least 5 per coefficient ({5 * len(terms)}) and a few hundred to be "
                                "useful — code more images (draw_gold_sample(previous=...))")
    _check_outcome(family, y_hat, "the corpus")
    _check_outcome(family, y_true, "the gold sample")
    d = _Data(X_hat, y_hat, gold_positions, X_true, y_true, probabilities[keep_gold])
    outcome_predicted = any(n in outcome_names for n in predicted)
    regressors_predicted = [n for n in predicted if n in regressor_names]
    equal = bool(np.allclose(d.probability, d.probability[0]))
    covered = outcome_predicted and not regressors_predicted and equal
    if method == "ppi" and not covered:
        why = "a predicted regressor" if regressors_predicted else ("unequal inclusion probabilities" if not equal
                                                                     else "no predicted outcome")
        raise ImagesAsDataError(f"method='ppi' (ppi-python) covers a predicted outcome with a simple random gold sample; "
                                f"this model has {why} — use method='dsl' or 'auto'")
    chosen = "ppi" if method == "ppi" or (method == "auto" and covered) else "dsl"
    naive = _solve(_naive_parts(d), family, what="the naive model")
    if naive_variance not in ("sandwich", "model"):
        raise ImagesAsDataError(f"naive_variance={naive_variance!r}: choose one of sandwich, model", what="option",
                                option="naive_variance", value=naive_variance, choices=["sandwich", "model"])
    # the sandwich (HC0) by default, as gold_only and corrected, so the three are comparable; "model" gives glm()'s
    naive_se = np.sqrt(np.diag(_sandwich(_naive_parts(d), family, naive, len(y_hat)) if naive_variance == "sandwich"
                               else _model_variance(_naive_parts(d), family, naive)))
    gold_beta = _solve(_gold_parts(d), family, what="the gold-only model")
    gold_se = np.sqrt(np.diag(_sandwich(_gold_parts(d), family, gold_beta, len(y_hat))))
    if chosen == "ppi":
        corrected, corrected_se, used_lam = _ppi_estimate(d, family, lam, confidence)
        lams = None if used_lam is None else [used_lam] * len(terms)
        label = "PPI++ (ppi-python)"
    else:
        corrected, corrected_se, lams = dsl_estimate(d, family, lam)
        used_lam = float(lams[0]) if np.allclose(lams, lams[0]) else None
        label = "DSL M-estimator (sandwich variance)"
    rows = (_rows(terms, "naive", naive, naive_se, confidence) + _rows(terms, "gold_only", gold_beta, gold_se, confidence)
            + _rows(terms, "corrected", corrected, corrected_se, confidence, lams))
    notes = []
    if not equal:
        notes.append("unequal inclusion probabilities: gold images are weighted 1/pi")
    design = "simple random sample" if equal else "unequal inclusion probabilities (stratified)"
    return CorrectedGLM(pa.Table.from_pylist(rows, schema=ESTIMATE_SCHEMA), formula, family, predicted,
                        outcome_predicted, regressors_predicted, label, used_lam, len(y_hat), n_gold, design,
                        confidence, notes)


# ------------------------------------------------------------------------------------------ prevalence

PREVALENCE_COLUMNS = ["class", "method", "estimate", "std_error", "conf_low", "conf_high", "n_corpus", "n_gold"]


def corrected_prevalence(corpus, gold, *, classes=None, by: str | None = None, predicted: str = "predicted",
                         label: str = "label", use: str = "class", method: str = "auto", lam: float | None = None,
                         confidence: float = 0.95, id: str = "image_id",
                         inclusion_probability: str = "inclusion_probability") -> pa.Table:
    """The share of each class in the corpus (overall, or by a group such as a day or an account): naive,
    gold-only and corrected, with intervals.

    corpus: the labelled corpus (predict()/label_corpus() output, joined to any metadata), with id, `predicted`
      and, for use="probability", prob_<class> columns. gold: read_coding_sheet() output (id, `label`,
      inclusion_probability). use: "class" (the predicted class as a 0/1 indicator) or "probability" (prob_<class>,
      best calibrated). by: a corpus column to estimate within each of its groups; groups with fewer than 10 gold
      images get no gold-only or corrected estimate (a warning says which).
    The corrected mean is ppi_mean_ci (PPI++) for a simple random gold sample and the DSL estimator otherwise.
    Returns: [by], class, method, estimate, std_error, conf_low, conf_high (Wald, clipped to [0, 1]), n_corpus,
    n_gold.
    """
    import pyarrow.compute as pc

    confidence = check_confidence(confidence)
    if method not in METHODS:
        raise ImagesAsDataError(f"method={method!r}: choose {', '.join(METHODS)}")
    if use not in ("class", "probability"):
        raise ImagesAsDataError(f"use={use!r}: choose 'class' (predicted class) or 'probability' (prob_<class>)")
    corpus, gold = to_arrow(corpus), to_arrow(gold)
    for table, column, name in ((corpus, predicted, "corpus"), (gold, label, "gold sample")):
        if column not in table.column_names:
            raise ImagesAsDataError(f"the {name} has no {column!r} column (columns: {', '.join(table.column_names)}).")
    if by is not None and by not in corpus.column_names:
        raise ImagesAsDataError(f"by={by!r}: no such column in the corpus (columns: {', '.join(corpus.column_names)})."
                                f"{did_you_mean(by, corpus.column_names)}")
    usable = np.array([p is not None for p in corpus[predicted].to_pylist()], dtype=bool)
    if "error" in corpus.column_names:
        usable &= np.array([e is None for e in corpus["error"].to_pylist()], dtype=bool)
    corpus = corpus.filter(pa.array(usable))
    gold_rows = _gold_join(corpus, gold, id)
    truth = [None if v is None else str(v) for v in gold[label].to_pylist()]
    uncoded = [i + 1 for i, v in enumerate(truth) if v is None]
    if uncoded:
        raise ImagesAsDataError(f"gold rows {listing(uncoded)} have no {label!r}; code them (read_coding_sheet() checks this)")
    predictions = [str(v) for v in corpus[predicted].to_pylist()]
    if classes is None:
        classes = sorted(set(predictions) | set(truth))
    classes = [str(c) for c in classes]
    strange = sorted({v for v in truth if v not in classes})
    if strange:
        raise ImagesAsDataError(f"gold labels {listing(map(repr, strange))} are not among the classes ({', '.join(classes)})")
    if use == "probability":
        absent = [f"prob_{c}" for c in classes if f"prob_{c}" not in corpus.column_names]
        if absent:
            raise ImagesAsDataError(f"use='probability' needs columns {', '.join(absent)} in the corpus (predict() writes them)")
    probabilities = inclusion_probabilities(gold, inclusion_probability, corpus_size=corpus.num_rows)
    check_gold_size(len(gold_rows))
    groups = [None] if by is None else sorted({str(v) for v in corpus[by].to_pylist() if v is not None}, key=str)
    group_of = None if by is None else np.array([None if v is None else str(v) for v in corpus[by].to_pylist()],
                                                dtype=object)
    rows, thin = [], []
    for group in groups:
        members = np.arange(corpus.num_rows) if group is None else np.flatnonzero(group_of == group)
        where = {row: k for k, row in enumerate(members)}
        in_group = np.array([r in where for r in gold_rows], dtype=bool)
        positions = np.array([where[r] for r in gold_rows[in_group]], dtype=np.int64)
        for c in classes:
            if use == "class":
                y_hat = np.array([p == c for p in predictions], dtype=float)[members]
            else:
                y_hat = np.nan_to_num(np.asarray(pc.fill_null(corpus[f"prob_{c}"], 0.0).to_pylist(), dtype=float))[members]
            y_true = np.array([t == c for t in truth], dtype=float)[in_group]
            d = _Data(np.ones((len(members), 1)), y_hat, positions, np.ones((len(positions), 1)), y_true,
                      probabilities[in_group])
            estimates = {"naive": _mean_estimate(d, "naive")}
            if len(positions) >= MIN_GOLD:
                estimates["gold_only"] = _mean_estimate(d, "gold_only")
                estimates["corrected"] = _mean_estimate(d, method, lam, confidence)
            elif c == classes[0]:
                thin.append(f"{group} ({len(positions)})" if group is not None else str(len(positions)))
            for name in ("naive", "gold_only", "corrected"):
                value, se = estimates.get(name, (None, None))
                row = {"class": c, "method": name, "estimate": value, "std_error": se, "conf_low": None,
                       "conf_high": None, "n_corpus": len(members), "n_gold": len(positions)}
                if value is not None:
                    z = z_value(confidence)
                    row.update(conf_low=float(max(0.0, value - z * se)), conf_high=float(min(1.0, value + z * se)))
                rows.append(({by: group} if by is not None else {}) | row)
    if thin:
        warnings.warn(f"groups with fewer than {MIN_GOLD} gold images get only the naive estimate: {listing(thin)}; "
                      "code more images of them (a gold sample stratified by the group)")
    schema = pa.schema(([(by, pa.string())] if by is not None else []) + [
        ("class", pa.string()), ("method", pa.string()), ("estimate", pa.float64()), ("std_error", pa.float64()),
        ("conf_low", pa.float64()), ("conf_high", pa.float64()), ("n_corpus", pa.int64()), ("n_gold", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def _mean_estimate(d: _Data, method: str, lam=None, confidence: float = 0.95) -> tuple[float, float]:
    """(estimate, standard error) of a mean: naive, gold_only (Hájek-weighted), or corrected (ppi_mean_ci for equal
    inclusion probabilities under method auto/ppi, the DSL estimator otherwise)."""
    images = len(d.y_hat)
    if method == "naive":
        beta = _solve(_naive_parts(d), "gaussian")
        return float(beta[0]), float(np.sqrt(_sandwich(_naive_parts(d), "gaussian", beta, images)[0, 0]))
    if method == "gold_only":
        beta = _solve(_gold_parts(d), "gaussian")
        return float(beta[0]), float(np.sqrt(_sandwich(_gold_parts(d), "gaussian", beta, images)[0, 0]))
    equal = bool(np.allclose(d.probability, d.probability[0]))
    if method == "ppi" and not equal:
        raise ImagesAsDataError("method='ppi' (ppi-python) needs a simple random gold sample; this one has unequal "
                                "inclusion probabilities — use method='dsl' or 'auto'")
    if method in ("auto", "ppi") and equal:
        try:
            import ppi_py
        except ImportError:
            raise ImagesAsDataError("corrected prevalence uses ppi-python: pip install 'imagesasdata[stats]' (or pass "
                                    "method='dsl')", what="missing_extra", extra="stats") from None
        unlabelled = np.setdiff1d(np.arange(images), d.gold)
        low, high = ppi_py.ppi_mean_ci(d.y_true, d.y_hat[d.gold], d.y_hat[unlabelled], alpha=1 - confidence, lam=lam)
        low, high = float(np.ravel(low)[0]), float(np.ravel(high)[0])
        return (low + high) / 2, (high - low) / (2 * z_value(confidence))
    beta, se, _ = dsl_estimate(d, "gaussian", lam)
    return float(beta[0]), float(se[0])
