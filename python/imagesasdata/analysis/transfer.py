"""When curated validation metrics may not transfer to the corpus (issue: precision and recall measured on a
balanced or rule-filtered set describe that set, not the images the regression will run on).

A run records how its training set was selected (model.json "training_selection"); label_corpus() copies the note
into labelling.json and prints it, and R prints it with the fit and the labelling.
"""

from __future__ import annotations

# The columns emotion_labels() adds (the book's section 7.3 clear-case rule): their presence in the training table
# means the images were filtered by that rule.
RULE_COLUMNS = {"score", "margin"}


def training_selection(description: dict, table) -> dict:
    """How the training and validation images were selected: {"balanced", "rule", "curated", "note"}.

    balanced: the run downsampled every class (balance=True). rule: "emotion clear-case rule" when the table came
    from emotion_labels() (its score and margin columns), else None. note: what to do about it, or None.
    """
    hyperparameters = description.get("hyperparameters") or {}
    balanced = bool(hyperparameters.get("balance"))
    columns = set(getattr(table, "column_names", []) or [])
    rule = "emotion clear-case rule" if RULE_COLUMNS <= columns else None
    curated = balanced or rule is not None
    return {"balanced": balanced, "rule": rule, "curated": curated, "note": transfer_note(balanced, rule) if curated else None}


def transfer_note(balanced: bool, rule) -> str:
    how = " and ".join(([ "balanced (every class downsampled to the smallest)"] if balanced else [])
                       + ([f"filtered by the {rule} (clear cases only)"] if rule else []))
    return (f"the training and validation images were {how}, so the validation metrics describe that curated set, "
            "not your corpus: measure corpus-level error on a gold sample — draw_gold_sample() on the labelled corpus, "
            "code the images, then gold_metrics() (CLI: imagesasdata gold-sample, then gold-metrics)")


def selection_note(description: dict):
    """The note a run carries (None for uncurated runs and for runs written before it existed)."""
    return ((description or {}).get("training_selection") or {}).get("note")
