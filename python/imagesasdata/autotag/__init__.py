"""Autotaggers validated against manual labels (the book's section 6).

Off-the-shelf taggers label a corpus with no training, but may lack the label you need, change without notice,
cost money per call and send your images to a company. This package makes the book's workflow safe, cheap and
checkable:

    rekognition_labels(images)        Amazon Rekognition DetectLabels, one row per image × label
    rekognition_celebrities(images)   Amazon Rekognition RecognizeCelebrities, one row per image × celebrity
    autotag_local(images)             the offline ImageNet network's top-k labels; nothing leaves the machine
    compare_tags(tags, manual, "Crowd")   confusion matrix, accuracy, precision, recall, F1 against manual labels
    label_frequencies(tags)           images per label (per tagger), for the book's Figures 6.3 and 6.4

Rekognition answers are cached on disk by image hash, operation and parameters (never paid for twice);
dry_run=True prices a run without sending anything.
"""

from .compare import TagComparison, compare_tags, tag_metrics_from_counts
from .frequencies import label_frequencies
from .local import autotag_local, imagenet_categories
from .payload import prepare_image
from .rekognition import DEFAULT_PRICE_PER_1000, rekognition_celebrities, rekognition_client, rekognition_labels
from .responses import ResponseCache, default_cache_dir

__all__ = [
    "DEFAULT_PRICE_PER_1000", "ResponseCache", "TagComparison", "autotag_local", "compare_tags", "default_cache_dir",
    "imagenet_categories", "label_frequencies", "prepare_image", "rekognition_celebrities", "rekognition_client",
    "rekognition_labels", "tag_metrics_from_counts",
]
