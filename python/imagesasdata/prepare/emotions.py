"""Training labels from emotion scores (the book's section 7.3).

Annotators score how much an image evokes each emotion, 0–10; averaged, most images evoke several emotions a
little. For a classifier of one emotion the book keeps only clear cases: positives score at least 3 on that
emotion and at least 3 points above their second-highest emotion; negatives score 0 on every emotion, drawn at
random (seeded) to match the number of positives. The summaries behind its Figure 7.1 (how many emotions an
image evokes; which emotions come together) and Figure 7.2 (max class vs clear max class) are long tables ready
for ggplot.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing
from ..io.tables import to_arrow

BOOK_EMOTIONS = ("anger", "disgust", "enthusiasm", "fear", "sadness")
DEFAULT_MIN_SCORE = 3.0
DEFAULT_MIN_MARGIN = 3.0
DEFAULT_SCORE_RANGE = (0.0, 10.0)


def emotion_labels(scores, *, emotions=None, min_score: float = DEFAULT_MIN_SCORE,
                   min_margin: float = DEFAULT_MIN_MARGIN, negative_max: float = 0.0, balance: bool = True,
                   seed: int = 0, image: str = "image_id", score_range=DEFAULT_SCORE_RANGE,
                   multi_label: bool = False) -> pa.Table:
    """Positive and negative training images for each emotion, by the book's rule.

    multi_label=True: instead, every image once, with every emotion it evokes — one image, several emotions, as
      half of the book's images do. One row per image: image_id, a True/False column per emotion (score ≥
      min_score; min_margin, negative_max and balance do not apply), n_emotions, emotions (those evoked, joined by
      ";"), then the other columns. finetune(table, label=[the emotions]) trains on it with one sigmoid output per
      emotion.

    scores: one row per image with a score column per emotion (e.g. aggregate_annotations(method="mean")).
    emotions: the score columns (default: the book's anger, disgust, enthusiasm, fear, sadness).
    min_score, min_margin: a positive scores at least min_score on the emotion and at least min_margin above its
      second-highest emotion.
    negative_max: a negative scores at most this on every emotion (the book: 0).
    balance: draw as many negatives as there are positives, at random with `seed` (all of them, with a warning,
      when there are fewer); False keeps every negative.
    Returns a long table, one row per emotion × selected image: emotion, image_id, label ("positive" or
    "negative"), score (on that emotion), margin (over the second-highest emotion), then the other columns of
    `scores` (path, group_id, …) so the result goes straight to split or write_layout after filtering one emotion.
    """
    table, emotions, matrix = _scores(scores, emotions, image, score_range)
    if multi_label:
        return _multi_label(table, emotions, matrix, min_score, image)
    if min_margin < 0:
        raise ImagesAsDataError(f"min_margin must be 0 or more (got {min_margin})")
    margin = _margins(matrix)
    negatives = np.nonzero((matrix <= negative_max).all(axis=1))[0]
    ids = table[image].to_pylist()
    carried = [c for c in table.column_names if c not in emotions and c != image]
    rows, labels, emotion_names, score_values, margin_values = [], [], [], [], []
    for k, emotion in enumerate(emotions):
        positive = np.nonzero((matrix[:, k] >= min_score) & (margin[:, k] >= min_margin))[0]
        chosen = negatives
        if balance:
            if len(negatives) < len(positive):
                warnings.warn(
                    f"{emotion}: only {len(negatives)} images score ≤ {negative_max:g} on every emotion for "
                    f"{len(positive)} positives; all are used and the classes are unbalanced"
                )
            else:
                rng = np.random.default_rng([seed, k])
                chosen = np.sort(rng.choice(negatives, size=len(positive), replace=False))
        for selected, label in ((positive, "positive"), (chosen, "negative")):
            rows += selected.tolist()
            labels += [label] * len(selected)
            emotion_names += [emotion] * len(selected)
            score_values += matrix[selected, k].tolist()
            margin_values += margin[selected, k].tolist()
    take = pa.array(rows, pa.int64())
    out = pa.table({
        "emotion": pa.array(emotion_names, pa.string()),
        "image_id": pa.array([ids[r] for r in rows], pa.string()),
        "label": pa.array(labels, pa.string()),
        "score": pa.array(score_values, pa.float64()),
        "margin": pa.array(margin_values, pa.float64()),
    })
    for name in carried:
        if name not in out.column_names:
            out = out.append_column(name, table[name].take(take))
    return out


def _multi_label(table: pa.Table, emotions, matrix: np.ndarray, min_score: float, image: str) -> pa.Table:
    evoked = matrix >= min_score
    out = pa.table({"image_id": pa.array(table[image].to_pylist(), pa.string())})
    for k, emotion in enumerate(emotions):
        out = out.append_column(emotion, pa.array(evoked[:, k].tolist(), pa.bool_()))
    out = out.append_column("n_emotions", pa.array(evoked.sum(axis=1).tolist(), pa.int64()))
    out = out.append_column("emotions", pa.array([";".join(e for e, v in zip(emotions, row) if v)
                                                  for row in evoked], pa.string()))
    for name in table.column_names:
        if name not in emotions and name != image and name not in out.column_names:
            out = out.append_column(name, table[name])
    return out


def emotion_counts(scores, *, emotions=None, min_score: float = DEFAULT_MIN_SCORE, image: str = "image_id",
                   score_range=DEFAULT_SCORE_RANGE) -> pa.Table:
    """How many emotions each image evokes (score ≥ min_score): the book's Figure 7.1, left.
    Returns n_emotions (0 … number of emotions), n_images, share."""
    _, emotions, matrix = _scores(scores, emotions, image, score_range)
    evoked = (matrix >= min_score).sum(axis=1)
    counts = np.bincount(evoked, minlength=len(emotions) + 1)
    return pa.table({
        "n_emotions": pa.array(np.arange(len(emotions) + 1), pa.int32()),
        "n_images": pa.array(counts, pa.int64()),
        "share": pa.array(counts / max(1, len(matrix)), pa.float64()),
    })


def emotion_cooccurrence(scores, *, emotions=None, min_score: float = DEFAULT_MIN_SCORE, image: str = "image_id",
                         score_range=DEFAULT_SCORE_RANGE) -> pa.Table:
    """Which emotions an image evokes together (both ≥ min_score): the book's Figure 7.1, right, in long form.
    Returns emotion, other_emotion, n_images (evoking both; the diagonal counts images evoking the emotion) and
    share (of the images evoking `emotion`, the share also evoking `other_emotion`; null when none evoke it)."""
    _, emotions, matrix = _scores(scores, emotions, image, score_range)
    evoked = (matrix >= min_score).astype(np.int64)
    together = evoked.T @ evoked
    rows = []
    for a, first in enumerate(emotions):
        for b, second in enumerate(emotions):
            base = together[a, a]
            rows.append({"emotion": first, "other_emotion": second, "n_images": int(together[a, b]),
                         "share": float(together[a, b] / base) if base else None})
    schema = pa.schema([("emotion", pa.string()), ("other_emotion", pa.string()), ("n_images", pa.int64()),
                        ("share", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def emotion_max_class(scores, *, emotions=None, min_score: float = DEFAULT_MIN_SCORE,
                      min_margin: float = DEFAULT_MIN_MARGIN, image: str = "image_id",
                      score_range=DEFAULT_SCORE_RANGE) -> pa.Table:
    """Per emotion, images where it is the max class and the clear max class: the book's Figure 7.2.

    max class: the emotion has the image's highest score, strictly (ties count for no emotion; all-zero images
    have none). clear max class: also scores ≥ min_score and ≥ min_margin above the second-highest — the
    positives of emotion_labels(). Returns emotion, class_type ("max_class" or "clear_max_class"), n_images.
    """
    _, emotions, matrix = _scores(scores, emotions, image, score_range)
    margin = _margins(matrix)
    rows = []
    for k, emotion in enumerate(emotions):
        strict_max = margin[:, k] > 0
        clear = strict_max & (matrix[:, k] >= min_score) & (margin[:, k] >= min_margin)
        rows.append({"emotion": emotion, "class_type": "max_class", "n_images": int(strict_max.sum())})
        rows.append({"emotion": emotion, "class_type": "clear_max_class", "n_images": int(clear.sum())})
    schema = pa.schema([("emotion", pa.string()), ("class_type", pa.string()), ("n_images", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def _margins(matrix: np.ndarray) -> np.ndarray:
    """Each score minus the highest of the other emotions (negative when another emotion scores higher)."""
    if matrix.shape[1] < 2:
        return matrix.copy()
    margins = np.empty_like(matrix)
    for k in range(matrix.shape[1]):
        others = np.delete(matrix, k, axis=1)
        margins[:, k] = matrix[:, k] - others.max(axis=1)
    return margins


def _scores(scores, emotions, image, score_range):
    """The table, the emotion names and an images × emotions float matrix, after checking every score."""
    table = to_arrow(scores)
    if table.num_rows == 0:
        raise ImagesAsDataError("the score table has no rows; it needs one row per image with a score per emotion")
    columns = table.column_names
    if emotions is None:
        missing = [e for e in BOOK_EMOTIONS if e not in columns]
        if missing:
            raise ImagesAsDataError(
                f"name the emotion score columns with emotions=[…]; the default (the book's {', '.join(BOOK_EMOTIONS)}) "
                f"lacks {', '.join(missing)} among the columns {', '.join(columns)}"
            )
        emotions = list(BOOK_EMOTIONS)
    emotions = [emotions] if isinstance(emotions, str) else list(emotions)
    if not emotions:
        raise ImagesAsDataError("emotions is empty; name at least one score column")
    for name in emotions + [image]:
        if name not in columns:
            raise ImagesAsDataError(f"no column {name!r} in the score table (columns: {', '.join(columns)}).{did_you_mean(name, columns)}")
    if len(set(emotions)) != len(emotions):
        raise ImagesAsDataError(f"emotions lists a column twice: {emotions}")
    low, high = score_range if score_range is not None else (-math.inf, math.inf)
    matrix = np.zeros((table.num_rows, len(emotions)))
    ids = table[image].to_pylist()
    problems = []
    for k, name in enumerate(emotions):
        for row, value in enumerate(table[name].to_pylist()):
            number = _number(value)
            if number is None:
                problems.append(f"row {row + 1} ({ids[row]}) {name} = {value!r} is not a number")
            elif not low <= number <= high:
                problems.append(f"row {row + 1} ({ids[row]}) {name} = {value!r} is outside {low:g}–{high:g}")
            else:
                matrix[row, k] = number
    if problems:
        raise ImagesAsDataError(f"{len(problems)} bad scores: {listing(problems, 8)}. Every image needs a score from "
                                f"{low:g} to {high:g} on every emotion (change score_range for another scale)")
    return table, emotions, matrix


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
