"""Zero-shot labels with CLIP: a class is a sentence, no training images (open_clip, `open-clip-torch`).

Each class is described by one or more sentences (a prompt ensemble: "a photo of a protest.", "a crowd holding
signs."); CLIP embeds the image and the sentences in one space, and the probability of a class is the softmax of
the scaled cosine similarities — CLIP's own zero-shot classifier, computed by the engine's one forward pass
(model.inference.Predictor) on a network built in model/clip.py. The result has the shape of predict():
image_id, path, predicted, prob_<class>…, error — so draw_gold_sample(), corrected_prevalence(), thresholds and
calibration apply unchanged, and compare_tags() validates it like any tagger. With embeddings=True each image's
normalised CLIP embedding comes too, for the embedding maps, clusters and selection tools.

Provenance (model, weights and their SHA-256 for a local file, open_clip's version, the sentences of every class
and their hash, the preprocessing) is in the table's schema metadata under b"imagesasdata.zero_shot"
(zero_shot_description() reads it back) and in the `tagger` column.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, check_number, setting
from .inputs import hash_files, image_inputs

METADATA_KEY = b"imagesasdata.zero_shot"


def zero_shot_labels(images, classes, *, prompts=None, model: str = "ViT-B-32", weights="openai",
                     batch_size: int = 32, device: str = "auto", precision: str = "fp32",
                     num_workers: int | None = None, embeddings: bool = False, progress: bool = True) -> pa.Table:
    """Label images with CLIP's zero-shot classifier over `classes`; nothing leaves the machine.

    images: a folder, files, a CSV/Parquet table or data frame with a path column, or an image_table().
    classes: the class names (at least 2), e.g. ["protest", "other"]. They name the columns prob_<class>.
    prompts: None ("a photo of {}." for each class), a template with {} or a list of templates (an ensemble
      applied to every class), or a mapping {class: sentence or list of sentences} written out per class — the
      usual choice when a class name is not a good description ("other": "a photo of people at home.").
    model: an open_clip model name (ViT-B-32, ViT-B-16, ViT-L-14, RN50, ...; "open_clip/" prefix optional).
    weights: an open_clip pretrained tag ("openai", "laion2b_s34b_b79k", ...; open_clip downloads them once into
      the Hugging Face cache), the path of a .safetensors file of the whole CLIP model, or None (random: tests).
    precision: "fp32" by default, so that a GPU and a CPU give the same probabilities.
    embeddings: add the normalised image embedding (fixed-width list of float32) as column `embedding`.
    Returns image_id, path, image_sha256, tagger ("clip:<model>:<weights>"), predicted, prob_<class>…,
    [embedding], error; unreadable images are rows with an error. Raises ImagesAsDataError for bad options,
    unknown models or tags, and weights that cannot be had (offline: the message says what to do).
    """
    from tqdm.auto import tqdm

    from ..data.transforms import Preprocessing
    from ..model.clip import class_prompts, load_clip, zero_shot_network
    from ..model.inference import Predictor, batch_ranges, map_paths

    classes = _check_classes(classes)
    batch_size = int(check_number("batch_size", batch_size, 1, None, integer=True))
    sentences = class_prompts(classes, prompts)
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, unreadable = hash_files(paths)

    clip = load_clip(model, weights)
    network = zero_shot_network(clip, sentences)
    prep = Preprocessing(image_size=clip.input_size, resize="rescale-crop", resize_size=clip.input_size,
                         mean=clip.mean, std=clip.std, interpolation=clip.interpolation)
    description = {"architecture": clip.architecture, "library": "open_clip", "classes": classes,
                   "preprocessing": prep.to_dict(), "hyperparameters": {"dropout": 0.0}, "head": ["head"]}
    predictor = Predictor(description, None, device, precision, features=embeddings, network=network)

    n = len(paths)
    probabilities = np.full((n, len(classes)), np.nan)
    vectors = [None] * n
    errors = dict(unreadable)

    def keep(output):
        for k, row in enumerate(output["row"]):
            row = int(row)
            if output["error"][k]:
                errors.setdefault(row, output["error"][k])
                continue
            probabilities[row] = output["probabilities"][k]
            if embeddings:
                vectors[row] = output["features"][k]
        bar.update(len(output["row"]))

    with tqdm(total=n, desc="zero-shot", unit="img", disable=not progress, leave=False) as bar:
        map_paths(predictor, prep, paths, batch_ranges(0, n, batch_size), keep, workers=num_workers)

    record = clip.describe()
    record.update(classes=classes, prompts=sentences, prompts_sha256=prompts_sha256(sentences),
                  preprocessing=prep.to_dict(), notes=clip.notes)
    tagger = f"clip:{clip.architecture}:{_short_weights(clip)}"
    ok = np.array([i not in errors for i in range(n)])
    predicted = [classes[int(np.argmax(p))] if ok[i] else None for i, p in enumerate(probabilities)]
    columns = {"image_id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string()),
               "image_sha256": pa.array(hashes, pa.string()), "tagger": pa.array([tagger] * n, pa.string()),
               "predicted": pa.array(predicted, pa.string())}
    for j, name in enumerate(classes):
        columns[f"prob_{name}"] = pa.array([float(p[j]) if ok[i] else None for i, p in enumerate(probabilities)],
                                           pa.float64())
    if embeddings:
        width = clip.embed_dim
        flat = np.zeros((n, width), np.float32)
        for i, vector in enumerate(vectors):
            if vector is not None:
                flat[i] = vector
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.float32()), width,
                                                                 mask=pa.array(~ok))
    columns["error"] = pa.array([errors.get(i) for i in range(n)], pa.string())
    result = pa.table(columns)
    return result.replace_schema_metadata({METADATA_KEY: json.dumps(record, sort_keys=True).encode()})


def zero_shot_description(table: pa.Table) -> dict:
    """The provenance zero_shot_labels() stored in its table (model, weights, prompts, preprocessing); {} if none."""
    metadata = table.schema.metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}


def prompts_sha256(sentences: dict) -> str:
    """SHA-256 of the class → sentences mapping as canonical JSON: the same prompts give the same hash anywhere."""
    text = json.dumps(sentences, sort_keys=False, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_classes(classes) -> list:
    if isinstance(classes, str):
        classes = [classes]
    classes = [str(c).strip() for c in (classes or [])]
    if len(classes) < 2:
        raise ImagesAsDataError(f"{setting('classes', classes)}: zero-shot labelling chooses among at least 2 classes; add "
                                "a class for everything else (e.g. 'other', described by its own prompt)",
                                what="option", option="classes", value=classes)
    if any(not c for c in classes) or len(set(classes)) != len(classes):
        raise ImagesAsDataError(f"{setting('classes', classes)}: class names must be non-empty and distinct",
                                what="option", option="classes", value=classes)
    return classes


def _short_weights(clip) -> str:
    if clip.weights_sha256:
        return f"file-{clip.weights_sha256[:12]}"
    return clip.weights
