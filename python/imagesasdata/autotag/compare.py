"""Validating an autotagger against manual labels (the book's section 6.1, Tables 6.1 and 6.2).

A tag, or a set of tags, is a proxy for a concept: "Crowd" for protest, "John Legend" for John Legend. An image
is predicted positive when it carries any of the proxy tags at or above min_confidence; the manual label says
whether it truly is. The result is the confusion matrix and accuracy, precision, recall and F1 of the positive
class, as tables, plus the per-image decisions so that every number can be traced back to images.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import check_number, did_you_mean, ImagesAsDataError, listing, literal, column_error, warn, setting
from ..measure.metrics import confusion_table, metric_interval, metric_value, metrics_from_counts
from ..io.tables import to_arrow
from .tables import tag_columns

CLASSES = ("negative", "positive")
CELLS = {("positive", "positive"): "true positive", ("negative", "positive"): "false positive",
         ("positive", "negative"): "false negative", ("negative", "negative"): "true negative"}
TRUE_WORDS = {"true", "t", "yes", "y", "1", "positive", "pos"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "negative", "neg"}


@dataclass
class TagComparison:
    """Tags against manual labels: confusion (truth, predicted, cell, count), metrics (metric, estimator, class,
    estimate, n), per_image decisions and the images left out (excluded, with the reason)."""

    confusion: pa.Table
    metrics: pa.Table
    per_image: pa.Table
    excluded: pa.Table
    positive_tags: list = field(default_factory=list)
    manual_positive: str = ""
    min_confidence: float = 0.0

    def count(self, cell: str) -> int:
        """One cell of the confusion matrix: "true positive", "false positive", "false negative", "true negative"."""
        return int(sum(r["count"] for r in self.confusion.to_pylist() if r["cell"] == cell))

    def metric(self, name: str) -> float:
        return metric_value(self.metrics, name, "binary")

    def _interval(self, name: str) -> str:
        lower, upper = metric_interval(self.metrics, name, "binary")
        return "none" if lower is None else f"{lower:.1%}–{upper:.1%}"

    def by_group(self, metadata, group, *, by: str = "image_id", **options):
        """The same comparison for each group of images (gender, skin tone, account type, …): a SubgroupAudit
        (measure.subgroups.subgroup_metrics) of the per-image decisions joined to `metadata` by `by`."""
        from ..measure.subgroups import subgroup_metrics

        return subgroup_metrics(self.per_image, metadata, group, by=by, truth="truth", predicted="predicted",
                                classes=list(CLASSES), positive_class="positive", **options)

    def summary(self) -> str:
        tags = " or ".join(repr(t) for t in self.positive_tags)
        n = sum(self.count(c) for c in CELLS.values())
        lines = [
            f"tags {tags} (confidence ≥ {self.min_confidence:g}) as a proxy for manual label {self.manual_positive!r}: "
            f"{n} images" + (f", {self.excluded.num_rows} left out (see .excluded)" if self.excluded.num_rows else ""),
            f"                 manual {self.manual_positive!r}   manual other",
            f"  tagged         {self.count('true positive'):>12}   {self.count('false positive'):>12}",
            f"  not tagged     {self.count('false negative'):>12}   {self.count('true negative'):>12}",
            f"  accuracy {self.metric('accuracy'):.1%}  precision {self.metric('precision'):.1%}  "
            f"recall {self.metric('recall'):.1%}  F1 {self.metric('f1'):.1%}",
            "  95% intervals: " + ", ".join(f"{name} {self._interval(name)}" for name in ("accuracy", "precision",
                                                                                        "recall", "f1")),
        ]
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        return f"<TagComparison\n{self.summary()}\n>"


def tag_metrics_from_counts(true_positive: int, false_positive: int, false_negative: int,
                            true_negative: int) -> pa.Table:
    """Return the metrics from the four cells of a published 2×2 table (e.g. the book's Tables 6.1 and 6.2)."""
    counts = np.array([[true_negative, false_positive], [false_negative, true_positive]], dtype=np.int64)
    if (counts < 0).any():
        raise ImagesAsDataError("confusion counts cannot be negative")
    return metrics_from_counts(counts, list(CLASSES), "positive")


def compare_tags(tags, manual, positive, *, manual_positive=None, min_confidence: float = 0.0,
                 manual_label: str = "label", by: str = "image_id", tag_column: str | None = None,
                 confidence_column: str | None = None, tagger: str | None = None) -> TagComparison:
    """Compare autotagger tags with manual labels. Returns a TagComparison (confusion, metrics, per_image,
    excluded). Raises ImagesAsDataError for missing columns, a positive= that names no tag, a bad min_confidence,
    or tables that share no image.

    tags: a tag table (rekognition_labels(), rekognition_celebrities(), autotag_local(), or any table with
      image_id and label/celebrity columns), vlm_code() codes (a category answered present is a tag, confidence =
      100 × its probability), a predictions table (zero_shot_labels(), predict(): the predicted class is the tag),
      or a CSV/Parquet path to one.
    manual: a table with one row per image: `by` (image_id) and `manual_label` (label) columns.
    positive: the tag, or list of tags, that counts as a positive prediction (case-insensitive), e.g. "Crowd".
    manual_positive: the manual label value that is the positive class; every other value is negative (default:
      true/yes/1/positive, or, when there are two values, the one that matches a positive tag).
    min_confidence: tags below this confidence (0–100) do not count.
    tagger: which tagger's rows to use when the tag table holds several (its `tagger` column).
    Images with a tagging error, without tags or without a manual label are left out and listed in .excluded.
    """
    from .validation import as_tag_table

    # VLM codes and zero-shot (or any) predictions are tag tables too: a category answered present, or the
    # predicted class, is the tag; its probability × 100 the confidence.
    tags = as_tag_table(to_arrow(tags))
    manual = to_arrow(manual)
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    positive_tags = [positive] if isinstance(positive, str) else list(positive or [])
    positive_tags = [str(t) for t in positive_tags if str(t).strip()]
    if not positive_tags:
        raise ImagesAsDataError("positive= names no tag; give the tag (or tags) that stand for the positive class, "
                                "e.g. positive='Crowd'", what="option", option="positive", value=positive,
                                hint="give the tag (or tags) that stand for the positive class, e.g. positive='Crowd'")
    tags = _one_tagger(tags, tagger)
    if tag_column is None:
        tag_column, detected_confidence = tag_columns(tags)
        confidence_column = confidence_column or detected_confidence
    for name, role in ((by, "by"), (tag_column, "tag_column")) + (((confidence_column, "confidence_column"),)
                                                                    if confidence_column else ()):
        if name not in tags.column_names:
            raise column_error(role, name, tags.column_names, "the tag table")
    for name, role in ((by, "by"), (manual_label, "manual_label")):
        if name not in manual.column_names:
            raise column_error(role, name, manual.column_names, "the manual labels")

    truth_of = _manual_labels(manual, by, manual_label)
    manual_positive = _manual_positive(set(truth_of.values()), manual_positive, positive_tags)
    wanted = {t.casefold() for t in positive_tags}
    seen_tags = {str(v) for v in tags[tag_column].to_pylist() if v is not None}
    missing = [t for t in positive_tags if t.casefold() not in {s.casefold() for s in seen_tags}]
    if missing:
        warn(f"positive tag(s) {', '.join(literal(t) for t in missing)} never occur in the tag table, so no "
             f"image is predicted positive by them.{did_you_mean(missing[0], seen_tags)}")

    # One pass over the tag rows: which images were tagged, which failed, which carry a proxy tag.
    tagged, failed, matches = set(), {}, {}
    errors = tags["error"].to_pylist() if "error" in tags.column_names else [None] * tags.num_rows
    confidences = tags[confidence_column].to_pylist() if confidence_column else [None] * tags.num_rows
    for image_id, tag, confidence, error in zip(_strings(tags[by]), tags[tag_column].to_pylist(), confidences, errors):
        if error is not None:
            failed.setdefault(image_id, error)
            continue
        tagged.add(image_id)
        if tag is not None and str(tag).casefold() in wanted and (confidence is None or confidence >= min_confidence):
            matches.setdefault(image_id, []).append((str(tag), confidence))

    excluded, per_image = [], []
    for image_id, label in truth_of.items():
        if image_id in failed and image_id not in tagged:
            excluded.append({"image_id": image_id, "reason": f"tagging failed: {failed[image_id]}"})
        elif image_id not in tagged:
            excluded.append({"image_id": image_id, "reason": "not in the tag table"})
        else:
            found = matches.get(image_id, [])
            per_image.append({
                "image_id": image_id, "manual_label": label,
                "truth": "positive" if label == manual_positive else "negative",
                "predicted": "positive" if found else "negative",
                "matched_tags": sorted({t for t, _ in found}),
                "max_confidence": max((c for _, c in found if c is not None), default=None),
            })
    for image_id in sorted(tagged - set(truth_of)):
        excluded.append({"image_id": image_id, "reason": "no manual label"})
    if not per_image:
        sample_tags = listing(sorted(tagged), 3)
        sample_manual = listing(list(truth_of), 3)
        raise ImagesAsDataError(
            f"no image is in both tables: tag table image ids look like {sample_tags or '(none tagged)'}, manual "
            f"ones like {sample_manual}; match them on a shared id with by="
        )
    for row in per_image:
        row["cell"] = CELLS[(row["truth"], row["predicted"])]
    truth = [r["truth"] for r in per_image]
    predicted = [r["predicted"] for r in per_image]
    confusion = confusion_table(truth, predicted, list(CLASSES))
    confusion = confusion.append_column(
        "cell", pa.array([CELLS[(t, p)] for t, p in zip(confusion["truth"].to_pylist(), confusion["predicted"].to_pylist())]))
    confusion = confusion.select(["truth", "predicted", "cell", "count"])
    counts = {c: sum(1 for r in per_image if r["cell"] == c) for c in CELLS.values()}
    metrics = tag_metrics_from_counts(counts["true positive"], counts["false positive"], counts["false negative"],
                                      counts["true negative"])
    per_image_table = pa.Table.from_pylist(per_image, schema=pa.schema([
        ("image_id", pa.string()), ("manual_label", pa.string()), ("truth", pa.string()), ("predicted", pa.string()),
        ("matched_tags", pa.list_(pa.string())), ("max_confidence", pa.float64()), ("cell", pa.string()),
    ]))
    excluded_table = pa.Table.from_pylist(excluded, schema=pa.schema([("image_id", pa.string()), ("reason", pa.string())]))
    return TagComparison(confusion, metrics, per_image_table, excluded_table, positive_tags, manual_positive,
                         min_confidence)


def _one_tagger(tags: pa.Table, tagger):
    if "tagger" not in tags.column_names:
        if tagger is not None:
            raise ImagesAsDataError(f"{setting('tagger', tagger)}, but the tag table has no tagger column",
                                    what="option", option="tagger", value=tagger)
        return tags
    names = sorted({v for v in tags["tagger"].to_pylist() if v is not None})
    if tagger is None:
        if len(names) > 1:
            raise ImagesAsDataError(f"the tag table holds several taggers ({', '.join(names)}); pick one with tagger=")
        return tags
    if tagger not in names:
        raise ImagesAsDataError(f"{setting('tagger', tagger)} is not in the tag table (taggers: {', '.join(names)})."
                                f"{did_you_mean(tagger, names)}", what="option", option="tagger", value=tagger)
    import pyarrow.compute as pc

    return tags.filter(pc.equal(tags["tagger"], tagger))


def _strings(column) -> list:
    return [None if v is None else str(v) for v in column.to_pylist()]


def _manual_labels(manual: pa.Table, by: str, manual_label: str) -> dict:
    """{image_id: label as text}; an error naming the rows for missing or contradictory labels."""
    truth_of, empty, conflicts = {}, [], []
    for row, (image_id, label) in enumerate(zip(_strings(manual[by]), manual[manual_label].to_pylist()), start=1):
        if image_id is None or label is None or str(label).strip() == "":
            empty.append(row)
            continue
        label = _label_text(label)
        if image_id in truth_of and truth_of[image_id] != label:
            conflicts.append(f"{image_id} ({truth_of[image_id]!r} vs {label!r})")
        truth_of.setdefault(image_id, label)
    if empty:
        raise ImagesAsDataError(f"manual labels: rows {listing(empty)} have no {by} or no {manual_label}; "
                                "label them or drop them", what="rows", row=empty)
    if conflicts:
        raise ImagesAsDataError(f"manual labels disagree for the same image: {listing(conflicts)}; keep one label per image")
    if not truth_of:
        raise ImagesAsDataError("the manual label table has no rows")
    return truth_of


def _label_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _manual_positive(values: set, manual_positive, positive_tags) -> str:
    if manual_positive is not None:
        chosen = _label_text(manual_positive)
        if chosen not in values:
            raise ImagesAsDataError(f"{setting('manual_positive', manual_positive)} is not among the manual labels "
                                    f"({', '.join(sorted(values))}).{did_you_mean(chosen, values)}",
                                    what="option", option="manual_positive", value=manual_positive)
        return chosen
    lowered = {v.casefold(): v for v in values}
    if set(lowered) <= TRUE_WORDS | FALSE_WORDS:
        yes = [v for k, v in lowered.items() if k in TRUE_WORDS]
        if len(yes) == 1:
            return yes[0]
    if len(values) == 2:
        named = [v for v in values if v.casefold() in {t.casefold() for t in positive_tags}]
        if len(named) == 1:
            return named[0]
    raise ImagesAsDataError(
        f"which manual label is the positive class? The manual labels are {', '.join(sorted(values)[:10])}; "
        "pass manual_positive= (e.g. manual_positive='protest')"
    )
