"""How many images to code, and from which strata: a gold sample planned for a target interval width.

    plan = plan_gold_sample(labels, target_width=0.04, validation=run)        # before any image is coded
    plan = plan_gold_sample(labels, target_width=0.04, gold=first_wave)       # after a first wave
    plan = plan_gold_sample(target_width=0.2, fit=corrected_glm(...), term="protest")   # a coefficient
    plan.designs                                                               # each design side by side

Every design is a stratified simple random sample without replacement (draw_gold_sample()); its variance is
Σ_h N_h² (1/n_h − 1/N_h) S²_h (Cochran 1977, ch. 5), and the expected width of a 95% interval is 2 · 1.96 · √V.
The planner finds, for each allocation, the smallest gold sample whose expected width reaches the target:

- "srs": a simple random sample (the corrected estimate still post-stratifies by predicted class);
- "proportional": n_h ∝ N_h;
- "neyman": n_h ∝ N_h S_h, the allocation with the smallest variance for a given size (Neyman 1934);
- "equal": the same number per stratum (what draw_gold_sample(allocation="equal") does; for comparison).

Prevalence. The corrected estimate of a class's share (corrected_prevalence(), use="class") is the gold images'
share of the class within each stratum × predicted class, weighted by the corpus's counts. Its within-stratum
variance is S²_h = Σ_k (N_hk/N_h) p_k (1 − p_k), with p_k = P(true class = c | predicted k): from a first wave
(each predicted class's design-weighted share of c, with a Jeffreys ½ added), or from a run's validation confusion
matrix — its error rates P(predicted k | true j) do not depend on the classes' shares, and the corpus's shares are
estimated from its predicted shares (calibration.confusion_priors()), so a balanced validation split does no harm.
The gold-only estimate's S²_h is P_h (1 − P_h), P_h the stratum's share of c.

A coefficient. A corrected_glm() fit on a first wave carries its design parts (CorrectedGLM.design_parts): the
covariance a gold sample of other sizes would give is expected_covariance(); the corpus part does not shrink with
more gold images, so a target below it is out of reach (said so).

What the planner assumes, and the README repeats: the error rates (p_k, or the fit's spreads and λ) are those the
corpus will show — from a validation split of other images they may not be, and from a small first wave they are
noisy; P(true | predicted) is the same in every stratum of a metadata column; the Jeffreys and t intervals the
estimators report are close to 2 · z · SE, which holds less well for rare classes with few positives in a stratum
(there they are wider). A plan is a forecast: decide the size once, draw it (a top-up with draw_gold_sample(
previous=)), and report what the coded sample gives — do not keep adding images until an interval looks narrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, listing, setting
from ..io.tables import to_arrow
from ..measure.intervals import check_confidence, z_value

DESIGNS = ("srs", "proportional", "neyman", "equal")
MIN_PER_STRATUM = 2
DESIGN_SCHEMA = pa.schema([
    ("design", pa.string()), ("strata", pa.string()), ("gold_size", pa.int64()), ("expected_width", pa.float64()),
    ("gold_only_width", pa.float64()), ("target_width", pa.float64()), ("reaches_target", pa.bool_()),
    ("allocation", pa.string()), ("note", pa.string()),
])
ALLOCATION_SCHEMA = pa.schema([("design", pa.string()), ("stratum", pa.string()), ("stratum_size", pa.int64()),
                               ("gold_images", pa.int64())])
CURVE_SCHEMA = pa.schema([("design", pa.string()), ("gold_size", pa.int64()), ("expected_width", pa.float64())])


@dataclass
class GoldPlan:
    """A planned gold sample. designs: one row per design (design, strata, gold_size — the smallest size whose
    expected width reaches the target, or the whole corpus when none does —, expected_width, gold_only_width,
    target_width, reaches_target, allocation as text, note); allocations: design, stratum, stratum_size,
    gold_images; curve: design, gold_size, expected_width over a range of sizes (what autoplot draws).
    recommended: the design reaching the target with the fewest images (None when none does)."""

    designs: pa.Table
    allocations: pa.Table
    curve: pa.Table
    target: str
    target_width: float
    confidence: float
    source: str
    assumptions: list = field(default_factory=list)
    recommended: str | None = None

    def allocation(self, design: str | None = None) -> dict:
        """Returns {stratum: gold images} of a design (default: the recommended one), as draw_gold_sample(allocation=)
        takes it. Raises ImagesAsDataError for a design the plan does not have."""
        design = design or self.recommended or self.designs["design"][0].as_py()
        rows = [r for r in self.allocations.to_pylist() if r["design"] == design]
        if not rows:
            raise ImagesAsDataError(f"{setting('design', design)}: the plan has {', '.join(self.designs['design'].to_pylist())}",
                                    what="option", option="design", value=design)
        return {r["stratum"]: r["gold_images"] for r in rows}

    def __repr__(self) -> str:
        level = f"{self.confidence:.0%}"
        lines = [f"imagesasdata gold-sample plan: {self.target}, {level} interval {self.target_width:g} wide",
                 f"  from {self.source}"]
        for r in self.designs.to_pylist():
            mark = " <- fewest images" if r["design"] == self.recommended else ""
            reach = "" if r["reaches_target"] else " (does not reach the target)"
            gold_only = f"; gold only {r['gold_only_width']:.3g}" if r["gold_only_width"] is not None else ""
            lines.append(f"  {r['design']:<13} {r['gold_size']:>7,} images: expected width {r['expected_width']:.3g}"
                         f"{gold_only}{reach}{mark}")
            lines.append(f"  {'':<13} {r['allocation']}")
        lines += [f"  assumes: {a}" for a in self.assumptions]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ allocations

def spread(size: int, shares, capacity, minimum: int = MIN_PER_STRATUM) -> np.ndarray:
    """`size` images shared among strata in proportion to `shares` (largest remainder), each stratum at least
    min(minimum, its capacity) and at most its capacity. Returns integer counts."""
    shares = np.asarray(shares, dtype=float)
    capacity = np.asarray(capacity, dtype=np.int64)
    counts = np.minimum(capacity, minimum).astype(np.int64)
    remaining = int(size) - int(counts.sum())
    while remaining > 0:
        room = capacity - counts
        active = (room > 0) & (shares > 0)
        if not active.any():
            active = room > 0
            if not active.any():
                break
            weights = active.astype(float)
        else:
            weights = np.where(active, shares, 0.0)
        ideal = remaining * weights / weights.sum()
        give = np.minimum(np.floor(ideal), room).astype(np.int64)
        left = remaining - int(give.sum())
        fraction = np.where(active & (give < room), ideal - np.floor(ideal), -1.0)
        for i in np.argsort(-fraction, kind="stable")[:left]:
            if fraction[i] >= 0:
                give[i] += 1
        if give.sum() == 0:
            give[int(np.argmax(np.where(active, room, -1)))] += 1
        counts += give
        remaining -= int(give.sum())
    return counts


class _Variance:
    """V(n_h) of one estimator under stratified sampling: constant + Σ_h factor_h (1/n_h − 1/N_h) (factor_h =
    N_h² S²_h, scaled), or a callable (a fit's expected_covariance())."""

    def __init__(self, names, sizes, within, scale: float = 1.0, constant: float = 0.0, function=None):
        self.names = [str(n) for n in names]
        self.sizes = np.asarray(sizes, dtype=float)
        self.within = np.maximum(np.asarray(within, dtype=float), 0.0)
        self.scale, self.constant, self.function = scale, constant, function

    def __call__(self, counts) -> float:
        counts = np.asarray(counts, dtype=float)
        if self.function is not None:
            return float(self.function(counts))
        return float(self.constant + (self.sizes ** 2 * self.within * (1 / counts - 1 / self.sizes)).sum()
                     / self.scale ** 2)

    def shares(self, design: str) -> np.ndarray:
        if design == "proportional" or design == "srs":
            return self.sizes / self.sizes.sum()
        if design == "equal":
            return np.ones(len(self.sizes)) / len(self.sizes)
        weights = self.sizes * np.sqrt(self.within)
        return weights / weights.sum() if weights.sum() > 0 else self.sizes / self.sizes.sum()


def _smallest_size(variance: _Variance, shares, target_variance: float, minimum: int) -> tuple[int, np.ndarray, bool]:
    """(size, counts, reached): the smallest total whose allocation's variance is at most the target."""
    capacity = variance.sizes.astype(np.int64)
    low = int(np.minimum(capacity, minimum).sum())
    high = int(capacity.sum())
    if variance(spread(high, shares, capacity, minimum)) > target_variance * (1 + 1e-12):
        return high, spread(high, shares, capacity, minimum), False
    if variance(spread(low, shares, capacity, minimum)) <= target_variance:
        return low, spread(low, shares, capacity, minimum), True
    while high - low > 1:
        middle = (low + high) // 2
        if variance(spread(middle, shares, capacity, minimum)) <= target_variance:
            high = middle
        else:
            low = middle
    return high, spread(high, shares, capacity, minimum), True


def _jeffreys_variance(counts, cells: np.ndarray, pk: np.ndarray, corpus_part: float, post_stratify: bool) -> float:
    """The variance of the share corrected_prevalence() reports (its Jeffreys interval, superpopulation), expected
    for gold sizes `counts` per stratum: Σ_cells W_c² p̃_c (1 − p̃_c) / (n_c + 2), p̃_c = (n_c p_c + ½) / (n_c + 1)
    (the Beta(y + ½, n − y + ½) posterior at the expected y), plus the corpus's own part. With post_stratify the
    cells are stratum × predicted class (a stratum whose predicted classes would get under one gold image each is
    one cell, as the estimator merges them); otherwise the strata."""
    counts = np.asarray(counts, dtype=float)
    total = cells.sum()
    sizes = cells.sum(1)
    variance = corpus_part
    for h in range(len(sizes)):
        present = cells[h] > 0
        expected = counts[h] * cells[h] / sizes[h]
        if post_stratify and np.all(expected[present] >= 1):
            n_c, p_c, w_c = expected[present], pk[present], cells[h][present] / total
        else:
            n_c = np.array([counts[h]])
            p_c = np.array([float((cells[h] * pk).sum() / sizes[h])])
            w_c = np.array([sizes[h] / total])
        smoothed = (n_c * p_c + 0.5) / (n_c + 1)
        variance += float((w_c ** 2 * smoothed * (1 - smoothed) / (n_c + 2)).sum())
    return variance


def _plan(models: dict, target_width: float, confidence: float, minimum: int, strata_label: dict) -> tuple:
    """Each design's size, allocation and widths. models: {design: (corrected _Variance, gold-only _Variance or
    None)}. Returns (designs, allocations, curve, recommended)."""
    z = z_value(confidence)
    target_variance = (target_width / (2 * z)) ** 2
    rows, allocation_rows, curve_rows = [], [], []
    for design, (corrected, gold_only) in models.items():
        shares = corrected.shares(design)
        size, counts, reached = _smallest_size(corrected, shares, target_variance, minimum)
        width = 2 * z * np.sqrt(max(corrected(counts), 0.0))
        gold_width = 2 * z * np.sqrt(max(gold_only(counts), 0.0)) if gold_only is not None else None
        note = None
        if not reached:
            note = "even coding every image does not reach the target: the corpus's own sampling variance remains"
        rows.append({"design": design, "strata": strata_label[design], "gold_size": int(size),
                     "expected_width": float(width), "gold_only_width": gold_width, "target_width": float(target_width),
                     "reaches_target": bool(reached),
                     "allocation": ", ".join(f"{n}: {int(c)}" for n, c in zip(corrected.names, counts)), "note": note})
        allocation_rows += [{"design": design, "stratum": n, "stratum_size": int(N), "gold_images": int(c)}
                            for n, N, c in zip(corrected.names, corrected.sizes, counts)]
        capacity = corrected.sizes.astype(np.int64)
        smallest = int(np.minimum(capacity, minimum).sum())
        largest = int(min(capacity.sum(), max(3 * size, smallest + 10)))
        for n in np.unique(np.geomspace(max(smallest, 1), largest, 40).round().astype(np.int64)):
            if n < smallest:
                continue
            counts_n = spread(int(n), shares, capacity, minimum)
            curve_rows.append({"design": design, "gold_size": int(n),
                               "expected_width": float(2 * z * np.sqrt(max(corrected(counts_n), 0.0)))})
    reaching = [r for r in rows if r["reaches_target"]]
    recommended = min(reaching, key=lambda r: (r["gold_size"], r["expected_width"]))["design"] if reaching else None
    return (pa.Table.from_pylist(rows, schema=DESIGN_SCHEMA), pa.Table.from_pylist(allocation_rows, schema=ALLOCATION_SCHEMA),
            pa.Table.from_pylist(curve_rows, schema=CURVE_SCHEMA), recommended)


# ------------------------------------------------------------------------------------------ error rates

def _conditional_from_gold(gold: pa.Table, classes: list, target: str, design) -> tuple[dict, int]:
    """{predicted class: P(true = target | predicted)} from a coded first wave, design-weighted, with Jeffreys' ½."""
    from .gold import inclusion_probabilities

    for column in ("label", "predicted"):
        if column not in gold.column_names:
            raise ImagesAsDataError(f"the gold sample has no {column!r} column; pass what read_coding_sheet() returned",
                                    what="column", value=column, choices=gold.column_names)
    weights = 1 / inclusion_probabilities(gold, design=design)
    truth = [None if v is None else str(v) for v in gold["label"].to_pylist()]
    predicted = [None if v is None else str(v) for v in gold["predicted"].to_pylist()]
    out = {}
    for k in classes:
        members = np.array([p == k and t is not None for p, t in zip(predicted, truth)])
        n = int(members.sum())
        if n == 0:
            out[k] = None
            continue
        hits = np.array([t == target for t in truth], dtype=float)
        share = float((weights[members] * hits[members]).sum() / weights[members].sum())
        out[k] = (share * n + 0.5) / (n + 1)
    missing = [k for k, v in out.items() if v is None]
    if len(missing) == len(classes):
        raise ImagesAsDataError("the gold sample has no coded image with a prediction; code the first wave first")
    for k in missing:   # a predicted class the first wave never drew: the most variable guess, ½
        out[k] = 0.5
    return out, int(sum(t is not None for t in truth))


def confusion_matrix_from(validation, classes: list, split: str = "val") -> np.ndarray:
    """Counts (rows: truth, columns: predicted) of a run's validation split (a Run or run directory) or of a long
    confusion table (truth, predicted, count; filtered to `split` when it has a split column)."""
    if not isinstance(validation, pa.Table) and (hasattr(validation, "path") or isinstance(validation, (str, bytes))
                                                 or hasattr(validation, "__fspath__")):
        from pathlib import Path

        folder = Path(validation.path if hasattr(validation, "path") else validation)
        if (folder / "confusion.parquet").exists():
            validation = to_arrow(folder / "confusion.parquet")
        elif folder.is_dir():
            raise ImagesAsDataError(f"{folder} has no confusion.parquet: pass a finished run, or a confusion table",
                                    what="file", path=str(folder))
    table = to_arrow(validation)
    needed = [c for c in ("truth", "predicted", "count") if c not in table.column_names]
    if needed:
        raise ImagesAsDataError(f"the validation confusion table has no {', '.join(needed)} column(s); pass a run or its "
                                "confusion table (split, truth, predicted, count)", what="column", value=needed[0])
    if "split" in table.column_names:
        splits = table["split"].to_pylist()
        if split not in splits:
            raise ImagesAsDataError(f"{setting('split', split)}: the confusion table holds {', '.join(sorted(set(map(str, splits))))}",
                                    what="option", option="split", value=split, choices=sorted(set(map(str, splits))))
        table = table.filter(pa.array([s == split for s in splits]))
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)))
    for t, p, n in zip(table["truth"].to_pylist(), table["predicted"].to_pylist(), table["count"].to_pylist()):
        if str(t) in index and str(p) in index:
            counts[index[str(t)], index[str(p)]] += float(n or 0)
    if counts.sum() == 0:
        raise ImagesAsDataError("the validation confusion table holds no images of the corpus's classes")
    return counts


def _conditional_from_confusion(counts: np.ndarray, classes: list, target: str, predicted_shares) -> tuple[dict, np.ndarray]:
    """{predicted k: P(true = target | predicted k)} in the corpus: the validation error rates P(predicted | true)
    (Jeffreys-smoothed) with the corpus's class shares implied by its predicted shares."""
    from .calibration import confusion_priors

    k = len(classes)
    rates = (counts + 0.5 / k) / (counts.sum(1, keepdims=True) + 0.5)
    priors = confusion_priors(rates, predicted_shares)
    joint = priors[:, None] * rates
    column = joint.sum(0)
    t = classes.index(target)
    return {c: float(joint[t, j] / column[j]) if column[j] > 0 else 0.5 for j, c in enumerate(classes)}, priors


# ------------------------------------------------------------------------------------------ the planner

def plan_gold_sample(labels=None, *, target_width: float, gold=None, validation=None, fit=None, term: str | None = None,
                     target_class=None, strata="predicted", designs=DESIGNS, confidence: float = 0.95,
                     split: str = "val", design: str | None = None, min_per_stratum: int = MIN_PER_STRATUM) -> GoldPlan:
    """The gold sample size and allocation that reach a target interval width, for each design side by side.

    For a prevalence — labels: the labelled corpus (a Labelling or labelling directory, a predict() table or file);
      and either gold: a coded first wave (read_coding_sheet()), or validation: a run (its validation confusion
      matrix, `split`) or a confusion table (truth, predicted, count). target_class: the class whose share is
      estimated (default: the positive class of two, else the rarest predicted class).
      strata: "predicted" (strata by predicted class), a column of the corpus, or None (simple random sampling only).
    For a coefficient — fit: a corrected_glm() fit on a first wave; term: its coefficient (default: the first that
      is not the intercept). The strata are the fit's.
    target_width: the width of the interval (conf_high − conf_low) to reach, at `confidence`.
    designs: which of "srs", "proportional", "neyman", "equal" to compare (those that apply).
    Returns a GoldPlan (designs, allocations, curve, recommended; plan.allocation() for draw_gold_sample()).
    Raises ImagesAsDataError for missing or contradictory inputs, unknown classes, terms or designs.
    """
    confidence = check_confidence(confidence)
    try:
        target_width = float(target_width)
    except (TypeError, ValueError):
        target_width = float("nan")
    if not target_width > 0:
        raise ImagesAsDataError(f"{setting('target_width', target_width)}: give the interval width to reach, above 0 (e.g. 0.05 "
                                "for a share known to ±2.5 points)", what="option", option="target_width")
    designs = [designs] if isinstance(designs, str) else list(designs)
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown or not designs:
        raise ImagesAsDataError(f"designs: choose among {', '.join(DESIGNS)} (got {listing(map(repr, unknown))})",
                                what="option", option="designs", choices=list(DESIGNS))
    minimum = int(min_per_stratum)
    if minimum < 1:
        raise ImagesAsDataError("min_per_stratum: at least 1 image per stratum", what="option", option="min_per_stratum")
    if fit is not None:
        if gold is not None or validation is not None:
            raise ImagesAsDataError("plan a coefficient from fit= alone, a prevalence from gold= or validation=; not both")
        return _plan_coefficient(fit, term, target_width, confidence, designs, minimum)
    if labels is None:
        raise ImagesAsDataError("plan_gold_sample() needs the labelled corpus (labels=) for a prevalence, or fit= for "
                                "a coefficient", what="option", option="labels")
    if (gold is None) == (validation is None):
        raise ImagesAsDataError("pass either gold= (a coded first wave) or validation= (a run or its confusion "
                                "table) to say how often the classifier errs", what="option", option="gold")
    return _plan_prevalence(labels, gold, validation, target_class, strata, target_width, confidence, designs, minimum,
                            split, design)


def _plan_prevalence(labels, gold, validation, target_class, strata, target_width, confidence, designs, minimum,
                     split, design) -> GoldPlan:
    from ..data.table import choose_positive_class
    from .gold import _usable_rows, corpus_table, sample_design

    corpus, classes = corpus_table(labels)
    if "predicted" not in corpus.column_names:
        raise ImagesAsDataError("the labelled corpus has no 'predicted' column; pass the output of predict() or "
                                "label_corpus()", what="column", value="predicted")
    corpus = corpus.take(pa.array(_usable_rows(corpus)))
    predicted = [str(v) for v in corpus["predicted"].to_pylist()]
    gold_table = to_arrow(gold) if gold is not None else None
    recorded = sample_design(gold_table) if gold_table is not None else {}
    classes = [str(c) for c in (classes or recorded.get("classes") or sorted(set(predicted)))]
    strange = sorted(set(predicted) - set(classes))
    if strange:
        raise ImagesAsDataError(f"predicted classes {listing(map(repr, strange))} are not among the classes "
                                f"({', '.join(classes)})")
    counts_by_class = {c: predicted.count(c) for c in classes}
    if target_class is None:
        if len(classes) == 2:
            target_class = choose_positive_class(classes, recorded.get("positive_class"))
        else:
            target_class = min(classes, key=lambda c: (counts_by_class[c], c))
    target_class = str(target_class)
    if target_class not in classes:
        from ..errors import did_you_mean

        raise ImagesAsDataError(f"{setting('target_class', target_class)} is not one of the classes ({', '.join(classes)})."
                                f"{did_you_mean(target_class, classes)}", what="option", option="target_class",
                                value=target_class, choices=classes)
    n = len(predicted)
    shares = np.array([counts_by_class[c] / n for c in classes])
    if gold_table is not None:
        p, coded = _conditional_from_gold(gold_table, classes, target_class, design)
        source = f"a coded first wave ({coded} gold images, design-weighted)"
    else:
        counts = confusion_matrix_from(validation, classes, split)
        p, priors = _conditional_from_confusion(counts, classes, target_class, shares)
        source = (f"the validation confusion matrix ({int(counts.sum())} images; the corpus's share of "
                  f"{target_class} implied by its predictions: {priors[classes.index(target_class)]:.3g})")
    if strata is None:
        stratum_of = ["all"] * n
    elif strata == "predicted":
        stratum_of = predicted
    else:
        if strata not in corpus.column_names:
            from ..errors import did_you_mean

            raise ImagesAsDataError(f"{setting('strata', strata)}: no such column in the labelled corpus (columns: "
                                    f"{', '.join(corpus.column_names)}).{did_you_mean(strata, corpus.column_names)}",
                                    what="option", option="strata", value=strata, choices=corpus.column_names)
        stratum_of = [None if v is None else str(v) for v in corpus[strata].to_pylist()]
        if any(v is None for v in stratum_of):
            raise ImagesAsDataError(f"{setting('strata', strata)}: some images have no value; fill it in or choose another column",
                                    what="option", option="strata", value=strata)
    pk = np.array([p[c] for c in classes])
    target = (np.array([c == target_class for c in classes], dtype=float))

    def model(stratum_values):
        names = sorted(set(stratum_values), key=str)
        position = {name: h for h, name in enumerate(names)}
        column = {c: k for k, c in enumerate(classes)}
        cells = np.zeros((len(names), len(classes)))
        for s_value, k in zip(stratum_values, predicted):
            cells[position[s_value], column[k]] += 1
        sizes = cells.sum(1)
        within = (cells / sizes[:, None] * pk * (1 - pk)).sum(1)          # S²_h after post-stratification
        stratum_share = (cells / sizes[:, None] * pk).sum(1)
        theta = float((cells * pk).sum() / n)
        corpus_part = float((cells * (pk - theta) ** 2).sum() / n ** 2)   # the corpus as a draw from its process
        return (_Variance(names, sizes, within, function=lambda counts: _jeffreys_variance(
                    counts, cells, pk, corpus_part, post_stratify=True)),
                _Variance(names, sizes, stratum_share * (1 - stratum_share), function=lambda counts: _jeffreys_variance(
                    counts, cells, pk, corpus_part, post_stratify=False)))

    models, labels_of = {}, {}
    if "srs" in designs:
        models["srs"], labels_of["srs"] = model(["all"] * n), "none"
    if strata is not None:
        stratified = model(stratum_of)
        for d in ("proportional", "neyman", "equal"):
            if d in designs:
                models[d], labels_of[d] = stratified, str(strata)
    if not models:
        raise ImagesAsDataError("strata=None allows only design 'srs'; add it to designs= or choose strata",
                                what="option", option="designs")
    table, allocations, curve, recommended = _plan(models, target_width, confidence, minimum, labels_of)
    assumptions = [
        f"P(true {target_class} | predicted class) in the corpus is {', '.join(f'{c}: {p[c]:.3g}' for c in classes)}"
        + (" (from the validation split: its error rates transfer to the corpus)" if gold_table is None else
           " (from the first wave; noisy when it is small)"),
        "widths are 2·z·SD of the Jeffreys posterior corrected_prevalence() uses, at the expected number of "
        "positives per cell; a realised interval varies around it (more so for a rare class: few positives)",
    ]
    if strata not in (None, "predicted"):
        assumptions.append(f"P(true | predicted) is the same in every {strata!r} stratum")
    return GoldPlan(table, allocations, curve, f"prevalence of {target_class}", target_width, confidence, source,
                    assumptions, recommended)


def _plan_coefficient(fit, term, target_width, confidence, designs, minimum) -> GoldPlan:
    from .estimators import expected_covariance

    parts = (getattr(fit, "design_parts", None) or {}).get("corrected")
    if parts is None:
        raise ImagesAsDataError("fit= must be a corrected_glm() fit with method='auto' or 'dsl' (ppi-python's fits carry "
                                "no design parts)", what="option", option="fit")
    terms = list(fit.terms)
    if term is None:
        term = next((t for t in terms if t not in ("Intercept", "(Intercept)")), terms[0])
    if term not in terms:
        from ..errors import did_you_mean

        raise ImagesAsDataError(f"{setting('term', term)} is not among the fit's terms ({', '.join(terms)}).{did_you_mean(term, terms)}",
                                what="option", option="term", value=term, choices=terms)
    j = terms.index(term)
    names = [str(n) for n in (parts["names"] or [f"stratum {h + 1}" for h in range(len(parts["sizes"]))])]
    sizes = parts["sizes"]
    within = [float(S[j, j]) for S in parts["within"]]
    gold_parts = (fit.design_parts or {}).get("gold_only")

    def variance_of(these):
        return lambda counts: float(expected_covariance(these, list(counts))[j, j])

    corrected = _Variance(names, sizes, within, function=variance_of(parts))
    gold_only = _Variance(names, sizes, [float(S[j, j]) for S in gold_parts["within"]],
                          function=variance_of(gold_parts)) if gold_parts is not None else None
    models, labels_of = {}, {}
    if len(sizes) == 1:   # a simple random first wave: one design to plan
        models["srs"], labels_of["srs"] = (corrected, gold_only), "none"
    else:
        for d in ("proportional", "neyman", "equal"):
            if d in designs:
                models[d], labels_of[d] = (corrected, gold_only), "the first wave's"
        if not models:
            raise ImagesAsDataError("the fit's gold sample is stratified: plan with 'proportional', 'neyman' or 'equal'",
                                    what="option", option="designs")
    table, allocations, curve, recommended = _plan(models, target_width, confidence, minimum, labels_of)
    source = f"a corrected_glm() fit on {fit.n_gold} gold images ({fit.design})"
    assumptions = ["the fit's λ and its within-stratum spreads of the gold corrections hold at the planned size "
                   "(expected_covariance())",
                   "widths are 2·z·SE; the t intervals corrected_glm() reports are a little wider with few gold images"]
    return GoldPlan(table, allocations, curve, f"coefficient {term}", target_width, confidence, source, assumptions,
                    recommended)
