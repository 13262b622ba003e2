"""Several people label the same images: from their long table (one row per image × annotator) to one label per
image, and the intercoder reliability social scientists report with it (percent agreement, Krippendorff's alpha).

The book labels protest and John Legend images positive if any annotator said so, takes majority votes for
categories, and averages the 0–10 emotion scores (section 7.3).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, literal
from ..io.tables import to_arrow

AGGREGATION_METHODS = ("any", "majority", "mean")
LEVELS = ("nominal", "ordinal", "interval", "ratio")
# How people write yes and no in a label column (compared lower-cased).
POSITIVE_WORDS = {"1", "yes", "y", "true", "t", "positive", "pos"}
NEGATIVE_WORDS = {"0", "no", "n", "false", "f", "negative", "neg"}


def aggregate_annotations(annotations, *, method: str = "any", value="label", image: str = "image_id",
                          annotator: str = "annotator", positive=None, score_range=None, images=None) -> pa.Table:
    """One row per image from a long table of annotations (one row per image × annotator).

    method: "any" — positive if any annotator said so (the book's rule for protest and John Legend);
      "majority" — the most common answer (null on a tie); "mean" — the average score (0–10 emotion scores).
    value: the column holding the answer, or a list of columns (one per question, e.g. each emotion).
    image, annotator: the columns naming the image and the person.
    positive: for "any", the answer that counts as positive (default: true, 1, "yes", "positive", …).
    score_range: for "mean", (low, high); scores outside it are an error, e.g. (0, 10).
    images: the images on disk (a folder or table image_table() reads); adds path and error columns, error naming
      each annotated image that is not there (a warning lists them).
    Returns columns image_id, n_annotators, then per value column: the aggregate, <value>_n (answers given),
    and <value>_votes (any: how many said positive) or <value>_agreement (majority: share giving the majority
    answer). Images keep their order of first appearance. Missing answers (null) are skipped.
    Raises ImagesAsDataError naming the rows at fault for non-numeric or out-of-range scores, unreadable yes/no
    answers, missing image or annotator names, and one annotator answering twice for the same image.
    """
    if method not in AGGREGATION_METHODS:
        raise ImagesAsDataError(
            f"method must be one of {', '.join(AGGREGATION_METHODS)} (got {method!r}).{did_you_mean(method, AGGREGATION_METHODS)}"
        )
    table, values = _check_table(annotations, value, image, annotator)
    ids = _names(table, image, "image")
    _names(table, annotator, "annotator")
    per_image = {}
    for row, image_id in enumerate(ids):
        per_image.setdefault(image_id, []).append(row)
    people = table[annotator].to_pylist()
    columns = {"image_id": pa.array(list(per_image), pa.string()),
               "n_annotators": pa.array([len({people[r] for r in rows}) for rows in per_image.values()], pa.int32())}
    for name in values:
        answers = table[name].to_pylist()
        if method == "mean":
            scores = _numbers(answers, name, ids, people, score_range)
            means, counts = [], []
            for rows in per_image.values():
                given = [scores[r] for r in rows if scores[r] is not None]
                means.append(sum(given) / len(given) if given else None)
                counts.append(len(given))
            columns[name] = pa.array(means, pa.float64())
        elif method == "any":
            flags = _yes_no(answers, name, positive, ids, people)
            result, counts, votes = [], [], []
            for rows in per_image.values():
                given = [flags[r] for r in rows if flags[r] is not None]
                result.append(any(given) if given else None)
                counts.append(len(given))
                votes.append(sum(given))
            columns[name] = pa.array(result, pa.bool_())
        else:
            result, counts, agreement = [], [], []
            for rows in per_image.values():
                given = [answers[r] for r in rows if not _missing(answers[r])]
                tally = Counter(given).most_common()
                top = tally[0][1] if tally else 0
                tied = tally and len(tally) > 1 and tally[1][1] == top
                result.append(None if not tally or tied else tally[0][0])
                counts.append(len(given))
                agreement.append(top / len(given) if given else None)
            columns[name] = pa.array(result, table[name].type if not pa.types.is_null(table[name].type) else None)
        columns[f"{name}_n"] = pa.array(counts, pa.int32())
        if method == "any":
            columns[f"{name}_votes"] = pa.array(votes, pa.int32())
        elif method == "majority":
            columns[f"{name}_agreement"] = pa.array(agreement, pa.float64())
    out = pa.table(columns)
    if images is not None:
        out = _match_images(out, images)
    return out


def annotation_reliability(annotations, *, value="label", image: str = "image_id", annotator: str = "annotator",
                           level=None) -> pa.Table:
    """Intercoder reliability per label: percent agreement and Krippendorff's alpha.

    value: the answer column, or a list of them (one result block per column).
    level: "nominal", "ordinal", "interval" or "ratio", or a list; default nominal, plus interval when every
      answer is a number (scores).
    Returns one row per label × measure: label, metric ("percent_agreement" or "krippendorff_alpha"), level,
    estimate, n_units (images rated by two or more annotators: the only ones that count), n_coders, n_ratings
    (answers in those images) and note (why an estimate is missing). Percent agreement is Krippendorff's observed
    agreement: the share of agreeing pairs of answers within images, each image weighted by its answers — for two
    annotators, simply the share of images on which they agree. Alpha comes from the `krippendorff` package.
    """
    table, values = _check_table(annotations, value, image, annotator)
    ids = _names(table, image, "image")
    people = _names(table, annotator, "annotator")
    requested = [level] if isinstance(level, str) else list(level) if level is not None else None
    for name in requested or ():
        if name not in LEVELS:
            raise ImagesAsDataError(f"level must be one of {', '.join(LEVELS)} (got {name!r}).{did_you_mean(name, LEVELS)}")
    rows_out = []
    for name in values:
        answers = table[name].to_pylist()
        given = [r for r, a in enumerate(answers) if not _missing(a)]
        numeric = bool(given) and all(_is_number(answers[r]) for r in given)
        levels = requested or (["nominal", "interval"] if numeric else ["nominal"])
        units = {}
        for r in given:
            units.setdefault(ids[r], []).append(r)
        pairable = {u: rows for u, rows in units.items() if len(rows) >= 2}
        n_ratings = sum(len(rows) for rows in pairable.values())
        coders = len({people[r] for rows in pairable.values() for r in rows})
        base = {"label": name, "n_units": len(pairable), "n_coders": coders, "n_ratings": n_ratings}
        domain = sorted({_key(answers[r]) for r in given}, key=lambda v: (isinstance(v, str), v))
        counts = np.zeros((len(pairable), len(domain)))
        column = {v: k for k, v in enumerate(domain)}
        for u, rows in enumerate(pairable.values()):
            for r in rows:
                counts[u, column[_key(answers[r])]] += 1
        note = None
        if not pairable:
            note = "no image was labelled by two or more annotators"
        agreement = observed_agreement(counts) if pairable else None
        rows_out.append({**base, "metric": "percent_agreement", "level": None, "estimate": agreement, "note": note})
        for lev in levels:
            estimate, why = None, note
            if lev != "nominal" and not numeric:
                bad = [r for r in given if not _is_number(answers[r])]
                raise ImagesAsDataError(
                    f"{lev} alpha needs numbers in column {name!r}; rows {listing([r + 1 for r in bad])} hold "
                    f"{listing(sorted({repr(answers[r]) for r in bad}), 5)}. Use level='nominal' for categories",
                    what="rows", row=[r + 1 for r in bad]
                )
            if pairable and len(domain) < 2:
                why = f"every answer is {domain[0]!r}: agreement is perfect but alpha is undefined (no variation)"
            elif pairable:
                import krippendorff

                value_domain = [float(v) for v in domain] if lev != "nominal" else list(range(len(domain)))
                estimate = float(krippendorff.alpha(value_counts=counts, value_domain=value_domain,
                                                    level_of_measurement=lev))
            rows_out.append({**base, "metric": "krippendorff_alpha", "level": lev, "estimate": estimate, "note": why})
    schema = pa.schema([("label", pa.string()), ("metric", pa.string()), ("level", pa.string()),
                        ("estimate", pa.float64()), ("n_units", pa.int64()), ("n_coders", pa.int64()),
                        ("n_ratings", pa.int64()), ("note", pa.string())])
    return pa.Table.from_pylist(rows_out, schema=schema)


def observed_agreement(counts: np.ndarray) -> float:
    """Krippendorff's observed agreement from a units × values table of counts (units with 2+ answers):
    Σ_u Σ_c n_uc (n_uc − 1) / (m_u − 1), divided by the number of answers."""
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    if not len(m):
        return float("nan")
    return float(((counts * (counts - 1)).sum(axis=1) / (m - 1)).sum() / m.sum())


# ---------------------------------------------------------------------------------------------------- checks

def _check_table(annotations, value, image, annotator):
    if isinstance(annotations, (str, Path)) and not Path(annotations).exists():
        raise ImagesAsDataError(f"{annotations}: no such file")
    table = to_arrow(annotations)
    if table.num_rows == 0:
        raise ImagesAsDataError("the annotation table has no rows; it needs one row per image × annotator")
    values = [value] if isinstance(value, str) else list(value or [])
    if not values:
        raise ImagesAsDataError("name the answer column(s) with value=")
    columns = table.column_names
    for role, name in [("image", image), ("annotator", annotator)] + [("value", v) for v in values]:
        if name not in columns:
            raise ImagesAsDataError(
                f"no {role} column {name!r} in the annotation table (columns: {', '.join(columns)}); name it with "
                f"{role}=…{did_you_mean(name, columns)}"
            )
    image_values = table[image].to_pylist()
    people = table[annotator].to_pylist()
    seen, repeated = {}, []
    for row, pair in enumerate(zip(image_values, people)):
        if pair in seen:
            repeated.append(f"rows {seen[pair] + 1} and {row + 1} ({pair[1]} on {pair[0]})")
        else:
            seen[pair] = row
    if repeated:
        raise ImagesAsDataError(
            f"an annotator answers twice for the same image: {listing(repeated, 5)}; keep one row per image × annotator"
        )
    return table, values


def _names(table, column, role) -> list:
    values = table[column].to_pylist()
    missing = [r + 1 for r, v in enumerate(values) if _missing(v) or (isinstance(v, str) and not v.strip())]
    if missing:
        raise ImagesAsDataError(f"the {role} column {column!r} is empty in rows {listing(missing)}; every row needs one",
                                what="rows", row=missing)
    return [_text(v) for v in values]


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _key(value):
    """Answers compared as numbers when they are numbers (1 and 1.0 agree), else as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if _is_number(value):
        return float(value)
    return str(value)


def _numbers(answers, name, ids, people, score_range) -> list:
    scores, bad, outside = [], [], []
    low, high = (None, None) if score_range is None else _range(score_range)
    for row, answer in enumerate(answers):
        if _missing(answer):
            scores.append(None)
            continue
        try:
            number = float(answer)
            if math.isnan(number) or math.isinf(number):
                raise ValueError
        except (TypeError, ValueError):
            bad.append(f"row {row + 1} ({people[row]} on {ids[row]}: {answer!r})")
            scores.append(None)
            continue
        if low is not None and not low <= number <= high:
            outside.append(f"row {row + 1} ({people[row]} on {ids[row]}: {answer!r})")
        scores.append(number)
    if bad:
        raise ImagesAsDataError(f"column {literal(name)} must hold numbers (scores); not a number in {listing(bad, 5)}",
                                what="column", option="value", value=name)
    if outside:
        raise ImagesAsDataError(
            f"column {name!r}: scores outside {low:g}–{high:g} in {listing(outside, 5)}; fix them or widen score_range"
        )
    return scores


def _range(score_range):
    try:
        low, high = (float(v) for v in score_range)
    except (TypeError, ValueError):
        raise ImagesAsDataError(f"score_range must be (low, high), e.g. (0, 10) (got {score_range!r})")
    if low > high:
        raise ImagesAsDataError(f"score_range must be (low, high) with low ≤ high (got {score_range!r})")
    return low, high


def _yes_no(answers, name, positive, ids, people) -> list:
    flags, unknown = [], []
    wanted = None if positive is None else _key(positive)
    for row, answer in enumerate(answers):
        if _missing(answer):
            flags.append(None)
        elif wanted is not None:
            flags.append(_key(answer) == wanted)
        elif isinstance(answer, bool):
            flags.append(answer)
        elif _is_number(answer) and float(answer) in (0.0, 1.0):
            flags.append(float(answer) == 1.0)
        elif str(answer).strip().lower() in POSITIVE_WORDS | NEGATIVE_WORDS:
            flags.append(str(answer).strip().lower() in POSITIVE_WORDS)
        else:
            unknown.append(row)
            flags.append(None)
    if unknown:
        shown = sorted({repr(answers[r]) for r in unknown})
        raise ImagesAsDataError(
            f"column {name!r}: cannot tell whether {listing(shown, 5)} means yes or no (rows "
            f"{listing([r + 1 for r in unknown])}); say which answer is positive with positive=…, or use "
            "method='majority' for categories", what="rows", row=[r + 1 for r in unknown]
        )
    return flags


def _match_images(out: pa.Table, images) -> pa.Table:
    """Add path and error: each annotated image found among `images` by image_id, then file path, then file name."""
    from ..data.table import image_table

    disk = image_table(images)
    by_id = dict(zip(disk["image_id"].to_pylist(), disk["path"].to_pylist()))
    by_path = {p: p for p in disk["path"].to_pylist()}
    names = Counter(Path(p).name for p in by_path)
    by_name = {Path(p).name: p for p in by_path if names[Path(p).name] == 1}
    paths, errors, missing = [], [], []
    where = images if isinstance(images, (str, Path)) else "the images given"
    for image_id in out["image_id"].to_pylist():
        found = by_id.get(image_id) or by_path.get(str(Path(image_id).expanduser().resolve())) or by_name.get(Path(image_id).name)
        paths.append(found)
        errors.append(None if found else f"annotated image not found in {where}")
        if not found:
            missing.append(image_id)
    if missing:
        warnings.warn(f"{len(missing)} annotated images are not on disk: {listing(missing)}; they have an error in the result")
    return out.append_column("path", pa.array(paths, pa.string())).append_column("error", pa.array(errors, pa.string()))
