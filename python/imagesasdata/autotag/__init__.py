"""Autotaggers validated against manual labels (the book's section 6).

Off-the-shelf taggers label a corpus with no training, but may lack the label you need, change without notice,
cost money per call and send your images to a company. This package makes the book's workflow safe, cheap and
checkable:

    rekognition_labels(images)        Amazon Rekognition DetectLabels, one row per image × label
    rekognition_celebrities(images)   Amazon Rekognition RecognizeCelebrities, one row per image × celebrity
    autotag_local(images)             the offline ImageNet network's top-k labels; nothing leaves the machine
    compare_tags(tags, manual, "Crowd")   confusion matrix, accuracy, precision, recall, F1 against manual labels
    label_frequencies(tags)           images per label (per tagger), for the book's Figures 6.3 and 6.4

Coding with words (issue 25): a codebook of categories and definitions, read by a vision-language model, or
classes as sentences for CLIP:

    codebook({"protest": "People gathered in public to ..."})   the categories, definitions and instructions
    vlm_code(images, book, model=, endpoint=)    one row per image × category, through the OpenAI-compatible API
    zero_shot_labels(images, classes, prompts=)  CLIP (open_clip): probabilities over classes, on this machine
    vlm_predictions(codes, "protest")            codes as a predictions table (gold samples, corrected estimates)
    coder_agreement(annotations, codes)          the machine as one more coder: agreement, Krippendorff's alpha
    prompt_sensitivity(codes_a, codes_b)         two wordings of a codebook: do they code alike?

Rekognition and VLM answers are cached on disk by image hash, operation and parameters (never paid for twice);
dry_run=True prices a run without sending anything.
"""

# Names load on first use (PEP 562), so that coding with a VLM or pricing a Rekognition run never imports torch;
# the local taggers (autotag_local, zero_shot_labels) bring it when they are called.
_PUBLIC = {
    "codebooks": ("Category", "Codebook", "codebook"),
    "compare": ("TagComparison", "compare_tags", "tag_metrics_from_counts"),
    "frequencies": ("label_frequencies",),
    "local": ("autotag_local", "imagenet_categories"),
    "payload": ("prepare_image",),
    "rekognition": ("DEFAULT_PRICE_PER_1000", "rekognition_celebrities", "rekognition_client", "rekognition_labels"),
    "responses": ("ResponseCache", "default_cache_dir"),
    "validation": ("coder_agreement", "prompt_sensitivity", "vlm_predictions"),
    "vlm": ("vlm_code",),
    "zero_shot": ("zero_shot_labels",),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "Category", "Codebook", "DEFAULT_PRICE_PER_1000", "ResponseCache", "TagComparison", "autotag_local", "codebook",
    "coder_agreement", "compare_tags", "default_cache_dir", "imagenet_categories", "label_frequencies",
    "prepare_image", "prompt_sensitivity", "rekognition_celebrities", "rekognition_client", "rekognition_labels",
    "tag_metrics_from_counts", "vlm_code", "vlm_predictions", "zero_shot_labels",
]
