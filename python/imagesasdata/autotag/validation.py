"""A machine as one more coder: its codes beside the human coders', in the reliability measures social scientists
report (percent agreement and Krippendorff's alpha, from prepare/annotations.py), and the codes turned into the
predictions table that gold samples and corrected estimators take.

    vlm_predictions(codes, "protest")       one row per image: predicted (yes/no), prob_yes, prob_no, error
    vlm_predictions(codes)                  a pick-one codebook: predicted category, prob_<category>…
    coder_agreement(annotations, {"vlm": codes})
        per variable: agreement of the machine with each human coder, of the humans with each other, and
        Krippendorff's alpha among the humans with the machine left out and included
    prompt_sensitivity(codes_a, codes_b)    two wordings of a codebook: how often their codes agree (and alpha)
"""

from __future__ import annotations

import math

import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, listing, setting
from ..io.tables import to_arrow

YES, NO = "yes", "no"
_YES_WORDS = {"1", "yes", "y", "true", "t", "positive", "pos", "present"}
_NO_WORDS = {"0", "no", "n", "false", "f", "negative", "neg", "absent"}

AGREEMENT_SCHEMA = pa.schema([
    ("variable", pa.string()),     # a category of a yes/no codebook, or the label column of a pick-one one
    ("coder", pa.string()),        # a machine or human coder; null for "the human coders together"
    ("versus", pa.string()),       # a human coder, or "humans" (all human coders together)
    ("metric", pa.string()),       # percent_agreement or krippendorff_alpha (nominal)
    ("estimate", pa.float64()),
    ("n_images", pa.int64()),      # images coded by both sides (for alpha: by two or more coders)
    ("note", pa.string()),
])


# ------------------------------------------------------------------------------------------ codes as predictions

def _kind(codes: pa.Table) -> str:
    kinds = {k for k in codes["codebook_kind"].to_pylist() if k is not None} if "codebook_kind" in codes.column_names \
        else set()
    return kinds.pop() if len(kinds) == 1 else "each"


def _is_vlm(table: pa.Table) -> bool:
    return {"category", "present"} <= set(table.column_names)


def vlm_predictions(codes, category: str | None = None) -> pa.Table:
    """The predictions table (predict()'s shape) of VLM codes, for gold samples, thresholds and corrected estimates.

    category: for a yes/no codebook, the category to predict: predicted is "yes" or "no", prob_yes the model's
      probability that the category is present (null when the server gave none), prob_no its complement.
      None: a pick-one codebook's choice: predicted is the category, prob_<category> its probability.
    Returns image_id, path, image_sha256, predicted, prob_<class>…, error — one row per image, in the codes' order.
    """
    codes = to_arrow(codes)
    if not _is_vlm(codes):
        raise ImagesAsDataError("not VLM codes: no category and present columns; pass the table vlm_code() returns")
    kind = _kind(codes)
    names = []
    for name in codes["category"].to_pylist():
        if name is not None and name not in names:
            names.append(name)
    if category is None and kind == "each":
        raise ImagesAsDataError(f"these codes answer yes/no per category ({', '.join(names)}); name the one to "
                                "predict with category=")
    if category is not None and category not in names:
        raise ImagesAsDataError(f"{setting('category', category)} is not in the codes (categories: {', '.join(names)})."
                                f"{did_you_mean(str(category), names)}",
                                what="option", option="category", value=category)
    classes = [YES, NO] if category is not None else names
    order, images = [], {}
    for row in codes.to_pylist():
        image_id = row["image_id"]
        if image_id not in images:
            order.append(image_id)
            images[image_id] = {"image_id": image_id, "path": row["path"], "image_sha256": row.get("image_sha256"),
                                "error": row.get("error"), "answers": {}}
        if row.get("category") is not None and row.get("error") is None:
            images[image_id]["answers"][row["category"]] = (row["present"], row.get("probability"))
    out = []
    for image_id in order:
        image = images[image_id]
        answers = image.pop("answers")
        record = {**image, "predicted": None, **{f"prob_{c}": None for c in classes}}
        if image["error"] is None:
            if category is not None:
                present, chance = answers.get(category, (None, None))
                record["predicted"] = None if present is None else YES if present else NO
                record[f"prob_{YES}"] = chance
                record[f"prob_{NO}"] = None if chance is None else 1.0 - chance
            else:
                chosen = [name for name, (present, _) in answers.items() if present]
                record["predicted"] = chosen[0] if len(chosen) == 1 else None
                for name in names:
                    record[f"prob_{name}"] = answers.get(name, (None, None))[1]
        out.append(record)
    schema = pa.schema([("image_id", pa.string()), ("path", pa.string()), ("image_sha256", pa.string()),
                        ("predicted", pa.string())] + [(f"prob_{c}", pa.float64()) for c in classes]
                       + [("error", pa.string())])
    return pa.Table.from_pylist(out, schema=schema)


def as_tag_table(tags: pa.Table) -> pa.Table:
    """VLM codes or a predictions table in the tag-table shape compare_tags() reads (image_id, label, confidence
    0-100, error); any other table as it is. VLM codes: a row per category answered present (an image with none
    has one empty row); predictions: the predicted class as the tag, its probability as the confidence."""
    names = set(tags.column_names)
    if _is_vlm(tags):
        rows, seen, tagged = [], [], set()
        for row in tags.to_pylist():
            image_id = row["image_id"]
            if image_id not in seen:
                seen.append(image_id)
            if row.get("error") is not None:
                rows.append({"image_id": image_id, "tagger": row.get("tagger"), "label": None, "confidence": None,
                             "error": row["error"]})
                tagged.add(image_id)
            elif row.get("present"):
                chance = row.get("probability")
                rows.append({"image_id": image_id, "tagger": row.get("tagger"), "label": row["category"],
                             "confidence": None if chance is None else 100.0 * chance, "error": None})
                tagged.add(image_id)
        tagger = {r["image_id"]: r.get("tagger") for r in tags.to_pylist()}
        rows += [{"image_id": i, "tagger": tagger[i], "label": None, "confidence": None, "error": None}
                 for i in seen if i not in tagged]
        return _tag_rows(rows)
    if "predicted" in names and "label" not in names and "celebrity" not in names:
        rows = []
        for row in tags.to_pylist():
            label = row.get("predicted")
            chance = row.get(f"prob_{label}") if label is not None else None
            rows.append({"image_id": row["image_id"], "tagger": row.get("tagger"), "label": label,
                         "confidence": None if chance is None or (isinstance(chance, float) and math.isnan(chance))
                         else 100.0 * chance, "error": row.get("error")})
        return _tag_rows(rows)
    return tags


def _tag_rows(rows: list) -> pa.Table:
    schema = pa.schema([("image_id", pa.string()), ("tagger", pa.string()), ("label", pa.string()),
                        ("confidence", pa.float64()), ("error", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


# ------------------------------------------------------------------------------------------ agreement

def _yes_no(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return YES if value else NO
    text = str(value).strip().lower()
    if isinstance(value, (int, float)) and float(value) in (0.0, 1.0):
        text = str(int(value))
    if text in _YES_WORDS:
        return YES
    if text in _NO_WORDS:
        return NO
    raise ValueError(text)


def _text(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def machine_codes(table, value: str = "label") -> dict:
    """{variable: {image_id: answer}} from a machine's table: VLM codes (yes/no per category, or a pick-one
    codebook's category under `value`) or a predictions table (predicted, under `value`). Errors are left out."""
    table = to_arrow(table)
    out: dict = {}
    if _is_vlm(table):
        kind = _kind(table)
        for row in table.to_pylist():
            if row.get("error") is not None or row.get("category") is None:
                continue
            if kind == "one":
                if row["present"]:
                    out.setdefault(value, {})[str(row["image_id"])] = row["category"]
            else:
                out.setdefault(row["category"], {})[str(row["image_id"])] = YES if row["present"] else NO
        return out
    if "predicted" in table.column_names:
        errors = table["error"].to_pylist() if "error" in table.column_names else [None] * table.num_rows
        for image_id, predicted, error in zip(table["image_id"].to_pylist(), table["predicted"].to_pylist(), errors):
            if error is None and predicted is not None:
                out.setdefault(value, {})[str(image_id)] = str(predicted)
        return out
    raise ImagesAsDataError("a machine coder's table needs category/present columns (vlm_code()) or a predicted "
                            "column (zero_shot_labels(), vlm_predictions(), predict())")


def _human_codes(annotations: pa.Table, variable: str, image: str, annotator: str, binary: bool) -> dict:
    """{annotator: {image_id: answer}}; yes/no answers read as such when the variable is binary."""
    out: dict = {}
    bad = []
    for row, (image_id, person, answer) in enumerate(zip(annotations[image].to_pylist(),
                                                          annotations[annotator].to_pylist(),
                                                          annotations[variable].to_pylist()), start=1):
        if image_id is None or person is None:
            continue
        try:
            code = _yes_no(answer) if binary else _text(answer)
        except ValueError:
            bad.append(f"row {row} ({answer!r})")
            continue
        if code is not None:
            out.setdefault(str(person), {})[str(image_id)] = code
    if bad:
        raise ImagesAsDataError(f"column {variable!r} of the annotations must say yes or no (true/false, 1/0): "
                                f"{listing(bad, 5)}")
    return out


def _reliability(coders: dict) -> dict:
    """Percent agreement and nominal alpha of `coders` ({name: {image: answer}}) via annotation_reliability."""
    from ..prepare.annotations import annotation_reliability

    rows = [{"image_id": image_id, "annotator": name, "answer": answer}
            for name, answers in coders.items() for image_id, answer in answers.items()]
    if not rows:
        return {"percent_agreement": (None, 0, "no image coded"), "krippendorff_alpha": (None, 0, "no image coded")}
    table = pa.Table.from_pylist(rows, schema=pa.schema([("image_id", pa.string()), ("annotator", pa.string()),
                                                         ("answer", pa.string())]))
    result = annotation_reliability(table, value="answer", level="nominal").to_pylist()
    return {r["metric"]: (r["estimate"], r["n_units"], r["note"]) for r in result}


def coder_agreement(annotations, coders, *, value: str = "label", variables=None, image: str = "image_id",
                    annotator: str = "annotator") -> pa.Table:
    """How a machine codes compared with people: per variable, percent agreement of each machine with each human
    coder (and of the humans with each other, the yardstick), and Krippendorff's alpha (nominal) among the human
    coders with the machines left out and with each machine included as one more coder.

    annotations: one row per image × human coder: `image`, `annotator` and the answer columns — one yes/no column
      per category of a yes/no codebook (named as the categories), or `value` for a pick-one codebook or a
      classifier's classes.
    coders: a machine's table — vlm_code() codes, zero_shot_labels() or any predictions table — or a mapping
      {name: table} of several (two models, two codebook wordings).
    variables: the categories to compare (default: those both sides have).
    Returns variable, coder, versus, metric, estimate, n_images, note (AGREEMENT_SCHEMA). Raises
    ImagesAsDataError when the tables share no variable or image, or an answer is not yes/no where it must be.
    """
    annotations = to_arrow(annotations)
    for column, option in ((image, "image"), (annotator, "annotator")):
        if column not in annotations.column_names:
            raise ImagesAsDataError(f"the annotations have no {column!r} column (columns: "
                                    f"{', '.join(annotations.column_names)}); name it with {option}=")
    if not isinstance(coders, dict):
        table = to_arrow(coders)
        taggers = {t for t in table["tagger"].to_pylist() if t} if "tagger" in table.column_names else set()
        coders = {taggers.pop() if len(taggers) == 1 else "machine": table}
    machines = {str(name): machine_codes(table, value) for name, table in coders.items()}
    available = set().union(*[set(codes) for codes in machines.values()]) if machines else set()
    wanted = [variables] if isinstance(variables, str) else list(variables) if variables is not None else \
        [v for v in annotations.column_names if v in available and v not in (image, annotator)]
    missing = [v for v in wanted if v not in annotations.column_names or v not in available]
    if missing or not wanted:
        raise ImagesAsDataError(
            f"no variable to compare: the machine codes have {', '.join(sorted(available)) or 'none'}, the "
            f"annotations have columns {', '.join(annotations.column_names)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + "; name the annotation columns after the codebook's categories (or value= for a label column)")
    humans_names = sorted({str(p) for p in annotations[annotator].to_pylist() if p is not None})
    clash = [m for m in machines if m in humans_names]
    if clash:
        raise ImagesAsDataError(f"machine coder names {', '.join(clash)} are also human coders' names; rename them")
    rows = []
    for variable in wanted:
        binary = all(set(codes.get(variable, {}).values()) <= {YES, NO} for codes in machines.values())
        humans = _human_codes(annotations, variable, image, annotator, binary)
        human_images = set().union(*[set(a) for a in humans.values()]) if humans else set()
        if not human_images & set().union(*[set(c.get(variable, {})) for c in machines.values()]):
            raise ImagesAsDataError(f"{variable}: no image is coded by both the machine and the human coders; do the "
                                    f"image ids match? (annotations: {listing(sorted(human_images), 3)})")
        for name, codes in machines.items():
            answers = codes.get(variable, {})
            for person in humans_names:
                if person in humans:
                    rows += _pair_rows(variable, name, person, answers, humans[person])
        for first, person in enumerate(humans_names):
            for other in humans_names[first + 1:]:
                if person in humans and other in humans:
                    rows += _pair_rows(variable, person, other, humans[person], humans[other])
        result = _reliability(humans)
        estimate, n, note = result["krippendorff_alpha"]
        rows.append({"variable": variable, "coder": None, "versus": "humans", "metric": "krippendorff_alpha",
                     "estimate": estimate, "n_images": n, "note": note})
        for name, codes in machines.items():
            result = _reliability({**humans, name: codes.get(variable, {})})
            estimate, n, note = result["krippendorff_alpha"]
            rows.append({"variable": variable, "coder": name, "versus": "humans", "metric": "krippendorff_alpha",
                         "estimate": estimate, "n_images": n, "note": note})
    return pa.Table.from_pylist(rows, schema=AGREEMENT_SCHEMA)


def _pair_rows(variable, coder, versus, first: dict, second: dict) -> list:
    shared = sorted(set(first) & set(second))
    agreement = sum(first[i] == second[i] for i in shared) / len(shared) if shared else None
    result = _reliability({"a": {i: first[i] for i in shared}, "b": {i: second[i] for i in shared}})
    alpha, _, note = result["krippendorff_alpha"]
    base = {"variable": variable, "coder": coder, "versus": versus, "n_images": len(shared)}
    return [{**base, "metric": "percent_agreement", "estimate": agreement, "note": None if shared else "no image in common"},
            {**base, "metric": "krippendorff_alpha", "estimate": alpha, "note": note}]


SENSITIVITY_SCHEMA = pa.schema([
    ("variable", pa.string()), ("metric", pa.string()), ("estimate", pa.float64()), ("n_images", pa.int64()),
    ("first", pa.string()), ("second", pa.string()), ("note", pa.string()),
])


def prompt_sensitivity(first, second, *, names=("first", "second"), value: str = "label") -> pa.Table:
    """Do two wordings of a codebook code the same images alike? Per variable: percent_agreement, Krippendorff's
    alpha (nominal) between the two, changed (images coded differently), and, where both carry probabilities,
    mean_abs_probability_difference. first, second: vlm_code() codes (or predictions tables) of the same images
    under the two wordings (or two models). names: labels for the two in the result (default: their prompt
    hashes' first 12 characters when they have them).
    Returns variable, metric, estimate, n_images, first, second, note.
    """
    first, second = to_arrow(first), to_arrow(second)
    labels = list(names)
    for k, table in enumerate((first, second)):
        if tuple(names) == ("first", "second") and "prompt_sha256" in table.column_names:
            hashes = {h for h in table["prompt_sha256"].to_pylist() if h}
            if len(hashes) == 1:
                labels[k] = next(iter(hashes))[:12]
    if labels[0] == labels[1]:
        labels = [f"{labels[0]} (first)", f"{labels[1]} (second)"]
    a, b = machine_codes(first, value), machine_codes(second, value)
    shared_variables = [v for v in a if v in b]
    if not shared_variables:
        raise ImagesAsDataError(f"the two tables share no variable (first: {', '.join(a)}; second: {', '.join(b)})")
    probabilities = [_probabilities(t) for t in (first, second)]
    rows = []
    for variable in shared_variables:
        shared = sorted(set(a[variable]) & set(b[variable]))
        if not shared:
            raise ImagesAsDataError(f"{variable}: the two tables code no image in common")
        base = {"variable": variable, "n_images": len(shared), "first": labels[0], "second": labels[1]}
        agree = sum(a[variable][i] == b[variable][i] for i in shared)
        result = _reliability({"first": {i: a[variable][i] for i in shared}, "second": {i: b[variable][i] for i in shared}})
        alpha, _, note = result["krippendorff_alpha"]
        rows += [{**base, "metric": "percent_agreement", "estimate": agree / len(shared), "note": None},
                 {**base, "metric": "krippendorff_alpha", "estimate": alpha, "note": note},
                 {**base, "metric": "changed", "estimate": float(len(shared) - agree), "note": "images coded differently"}]
        p, q = probabilities[0].get(variable, {}), probabilities[1].get(variable, {})
        both = [i for i in shared if p.get(i) is not None and q.get(i) is not None]
        if both:
            rows.append({**base, "metric": "mean_abs_probability_difference", "n_images": len(both),
                         "estimate": sum(abs(p[i] - q[i]) for i in both) / len(both), "note": None})
    return pa.Table.from_pylist(rows, schema=SENSITIVITY_SCHEMA)


def _probabilities(table: pa.Table) -> dict:
    """{variable: {image_id: P(present)}} of yes/no VLM codes; {} for anything else."""
    if not _is_vlm(table) or _kind(table) != "each":
        return {}
    out: dict = {}
    for row in table.to_pylist():
        if row.get("error") is None and row.get("category") is not None and row.get("probability") is not None:
            out.setdefault(row["category"], {})[str(row["image_id"])] = row["probability"]
    return out
