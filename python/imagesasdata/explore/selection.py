"""Which images to label next (active learning, the book's section 5: coding is the expensive step). Table math on
a model's class probabilities and the images' embeddings; no torch.

Uncertainty alone picks the images the model is least sure of — often twenty near-copies of one confusing scene.
"uncertainty+diversity" follows Zhdanov (2019, "Diverse mini-batch active learning"): take the most uncertain
candidates (ten times the batch by default), group them by weighted k-means in embedding space into as many
groups as images wanted (weights: the uncertainty), and take from each group the image nearest its centre.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, setting
from ..io.tables import to_arrow
from .vectors import embedding_matrix, optional_column, unit_rows

STRATEGIES = ("uncertainty+diversity", "uncertainty", "diversity", "random")
UNCERTAINTY = ("entropy", "margin", "least_confidence")


def uncertainty_scores(probabilities: np.ndarray, measure: str = "entropy") -> np.ndarray:
    """Return how unsure the model is about each image (an array), from 0 (certain) to 1 (all classes equally
    likely). Raises ImagesAsDataError for an unknown measure.

    entropy: −Σ p log p, divided by log K; margin: 1 − (largest p − second largest p);
    least_confidence: (1 − largest p) · K / (K − 1)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    k = p.shape[1]
    if measure == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        return -terms.sum(axis=1) / np.log(k)
    ordered = np.sort(p, axis=1)
    if measure == "margin":
        return 1.0 - (ordered[:, -1] - ordered[:, -2])
    if measure == "least_confidence":
        return (1.0 - ordered[:, -1]) * k / (k - 1)
    raise ImagesAsDataError(f"{setting('uncertainty', measure)}: choose one of {', '.join(UNCERTAINTY)}."
                            f"{did_you_mean(str(measure), UNCERTAINTY)}",
                            what="option", option="uncertainty", value=measure)


def rank_for_labelling(predictions, embeddings=None, n: int = 20, *, strategy: str = "uncertainty+diversity",
                       uncertainty: str = "entropy", candidates: int | None = None, exclude=None,
                       seed: int = 0) -> pa.Table:
    """The n images of a pool to hand to coders next, in the order to code them.

    predictions: the pool's predictions (image_id, path, prob_<class> columns: predict()'s table).
    embeddings: the pool's embeddings (image_embeddings()), needed by the diversity strategies.
    strategy: "uncertainty+diversity" (default), "uncertainty", "diversity" (k-means over the whole pool, the image
      nearest each centre), or "random" (the baseline every strategy should beat).
    candidates: how many of the most uncertain images uncertainty+diversity chooses from (default 10 × n).
    exclude: images already labelled (a table with a path or image_id column): never selected.
    Returns rank, image_id, path, predicted, probability (of the predicted class), uncertainty, strategy and the
    prob_<class> columns. Raises ImagesAsDataError for unknown strategies, missing embeddings, or n < 1.
    """
    if strategy not in STRATEGIES:
        raise ImagesAsDataError(f"{setting('strategy', strategy)}: choose one of {', '.join(STRATEGIES)}."
                                f"{did_you_mean(str(strategy), STRATEGIES)}",
                                what="option", option="strategy", value=strategy)
    table = to_arrow(predictions)
    probability_columns = [c for c in table.column_names if c.startswith("prob_")]
    if "image_id" not in table.column_names or len(probability_columns) < 2:
        raise ImagesAsDataError("the predictions need an image_id column and a prob_<class> column per class "
                                "(predict()'s table)")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ImagesAsDataError(f"{setting('n', n)}: ask for a whole number of images, at least 1",
                                what="option", option="n", value=n)
    probabilities = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64)
                                     for c in probability_columns])
    usable = ~np.isnan(probabilities).any(axis=1)
    if exclude is not None:
        usable &= ~_excluded(table, to_arrow(exclude))
    if strategy != "random" and strategy != "uncertainty":
        if embeddings is None:
            raise ImagesAsDataError(f"{setting('strategy', strategy)} needs the pool's embeddings (image_embeddings()); or use "
                                    "strategy='uncertainty'", what="option", option="strategy", value=strategy)
        vectors = _aligned_embeddings(table, embeddings, usable)
    else:
        vectors = None
    pool = np.flatnonzero(usable)
    if len(pool) == 0:
        raise ImagesAsDataError("no image of the pool can be selected (all are unreadable or already labelled)")
    n = min(int(n), len(pool))
    scores = uncertainty_scores(probabilities[pool], uncertainty) if len(pool) else np.zeros(0)
    rng = np.random.default_rng(int(seed))
    # Ties in uncertainty are broken by position in the pool, never by chance, so results are repeatable.
    by_uncertainty = pool[np.argsort(-scores, kind="stable")]
    if strategy == "random":
        chosen = rng.choice(pool, size=n, replace=False)
    elif strategy == "uncertainty":
        chosen = by_uncertainty[:n]
    elif strategy == "diversity":
        chosen = _nearest_centres(unit_rows(vectors[pool]), n, None, seed, pool)
    else:
        size = min(len(pool), int(candidates) if candidates else 10 * n)
        if size < n:
            raise ImagesAsDataError(f"candidates={candidates}: choose from at least n={n} images",
                                    what="option", option="candidates", value=candidates)
        shortlist = by_uncertainty[:size]
        weights = uncertainty_scores(probabilities[shortlist], uncertainty) + 1e-6
        chosen = _nearest_centres(unit_rows(vectors[shortlist]), n, weights, seed, shortlist)
    all_scores = np.full(table.num_rows, np.nan)
    all_scores[pool] = scores
    if strategy != "random":   # code the most uncertain first
        chosen = np.array(sorted(chosen, key=lambda i: (-all_scores[i], i)), dtype=np.int64)
    classes = [c[len("prob_"):] for c in probability_columns]
    picked = probabilities[chosen]
    columns = {"rank": pa.array(np.arange(1, len(chosen) + 1), pa.int32()),
               "image_id": table["image_id"].take(pa.array(chosen)),
               "path": optional_column(table, "path").take(pa.array(chosen)),
               "predicted": pa.array([classes[i] for i in picked.argmax(axis=1)], pa.string()),
               "probability": pa.array(picked.max(axis=1), pa.float64()),
               "uncertainty": pa.array(all_scores[chosen], pa.float64()),
               "strategy": pa.array([strategy] * len(chosen), pa.string())}
    for c in probability_columns:
        columns[c] = table[c].take(pa.array(chosen))
    return pa.table(columns)


def _nearest_centres(vectors: np.ndarray, k: int, weights, seed: int, rows: np.ndarray) -> np.ndarray:
    """k-means (weighted) into k groups; from each, the member nearest its centre (as positions in `rows`)."""
    from sklearn.cluster import KMeans

    if k >= len(rows):
        return rows.copy()
    model = KMeans(n_clusters=k, n_init=3, random_state=int(seed)).fit(vectors, sample_weight=weights)
    chosen = []
    for c in range(k):
        members = np.flatnonzero(model.labels_ == c)
        if len(members) == 0:
            continue
        distance = np.linalg.norm(vectors[members] - model.cluster_centers_[c], axis=1)
        chosen.append(rows[members[np.argmin(distance)]])
    if len(chosen) < k:   # an empty cluster (identical images): fill up with the next candidates in order
        chosen += [r for r in rows if r not in set(chosen)][:k - len(chosen)]
    return np.array(chosen, dtype=np.int64)


def _excluded(table: pa.Table, labelled: pa.Table) -> np.ndarray:
    """True for pool rows already labelled: matched by path when both tables have one, else by image_id."""
    for column in ("path", "image_id"):
        if column in table.column_names and column in labelled.column_names:
            done = {str(v) for v in labelled[column].to_pylist() if v is not None}
            return np.array([str(v) in done for v in table[column].to_pylist()], bool)
    raise ImagesAsDataError("exclude= needs a path or image_id column to match the pool's images")


def _aligned_embeddings(table: pa.Table, embeddings, usable: np.ndarray) -> np.ndarray:
    """The embedding of each pool row (by image_id); rows that are usable must have one."""
    vectors_table, matrix = embedding_matrix(_only_readable(embeddings))
    position = {str(v): i for i, v in enumerate(vectors_table["image_id"].to_pylist())}
    ids = [str(v) for v in table["image_id"].to_pylist()]
    missing = [ids[i] for i in np.flatnonzero(usable) if ids[i] not in position]
    if missing:
        raise ImagesAsDataError(f"{len(missing)} image(s) of the pool have no embedding: {listing(missing, 5)}; "
                                "compute embeddings for the same images as the predictions")
    out = np.zeros((table.num_rows, matrix.shape[1]))
    for i, image_id in enumerate(ids):
        if image_id in position:
            out[i] = matrix[position[image_id]]
    return out


def _only_readable(embeddings) -> pa.Table:
    """Rows with an embedding (an unreadable image cannot be selected anyway: its predictions are empty too)."""
    import pyarrow.compute as pc

    table = to_arrow(embeddings)
    if "embedding" in table.column_names:
        table = table.filter(pc.is_valid(table["embedding"]))
    return table
