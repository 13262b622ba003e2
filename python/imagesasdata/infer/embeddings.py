"""Image embeddings: the backbone's penultimate-layer features (the input of the classifier) for any images, from a
fitted run or from the offline ImageNet network — computed in batches by the one forward pass
(model.inference.Predictor with features=True) and cached by each file's SHA-256, so a corpus is embedded once.

The cache is a folder: one subfolder per model (a run's weights, or an ImageNet network with its preprocessing),
holding Parquet parts of (sha256, embedding). A copy of an image under another name, or in another corpus, is found
in the cache by its content. Like every folder the engine writes, the cache is locked while a job writes to it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.table import image_table
from ..io.images import sha256_file
from ..io.locks import claimed_directory
from ..io.s3 import is_uri
from ..io.tables import write_json, write_table

CACHE_DESCRIPTION = "embeddings-cache.json"
IMAGENET = "efficientnet_lite0"


def image_embeddings(images, run=None, *, architecture: str = IMAGENET, image_size: int = 224,
                     resize: str = "rescale-crop", cache=None, batch_size: int = 32, device: str = "auto",
                     precision: str = "fp32", num_workers: int | None = None, progress: bool = True,
                     allow_unfinished: bool = False, weights=None) -> pa.Table:
    """The penultimate-layer features of each image: what the network "sees", as a vector.

    images: a folder, image files, a CSV/Parquet table or data frame with a path column, or an image_table().
    run: a fitted run (its network, fine-tuned for your classes, and its preprocessing); None: the ImageNet network
      `architecture` (default efficientnet_lite0, whose weights install with the engine) with the book's
      preprocessing at image_size (resize: as in finetune()) — for exploring a corpus before anything is labelled.
      "open_clip/<model>" (e.g. "open_clip/ViT-B-32"): CLIP's normalised image embedding, with CLIP's own
      preprocessing (image_size and resize do not apply) and `weights` (an open_clip tag, default "openai", or a
      .safetensors file) — the space in which zero_shot_labels() compares images with sentences.
    cache: a folder that keeps every vector by the image file's SHA-256 and the model; later calls reuse them.
    precision: "fp32" by default, so the same image gives the same vector on a GPU and a CPU.
    Returns image_id, path, sha256, embedding (a fixed-width list of float32), cached (taken from the cache) and
    error (an unreadable image has no embedding and its reason here; it never stops the job).
    """
    from tqdm.auto import tqdm

    from ..model.inference import Predictor, batch_ranges, map_paths

    table = images if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names) \
        else image_table(images)
    description, weights, identity = _model(run, architecture, image_size, resize, allow_unfinished, weights)
    identity["precision"] = str(precision)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    paths = table["path"].to_pylist()
    n = len(paths)
    digests: list = [None] * n
    errors = [""] * n
    for i, path in enumerate(paths):
        if is_uri(path):
            continue   # objects in S3 are embedded every time: reading them to hash costs as much as embedding
        try:
            digests[i] = sha256_file(path)
        except OSError:
            pass   # decoding it will say why it cannot be read, in the words used everywhere else

    def embed(known: dict) -> tuple[dict, int]:
        """Vectors for every readable image not in `known`, each distinct file once."""
        todo, seen = [], set()
        for i in range(n):
            if digests[i] is not None and digests[i] in known:
                continue
            if digests[i] is None or digests[i] not in seen:
                todo.append(i)
                seen.add(digests[i])
        computed: dict = {}
        if not todo:
            return computed, 0
        network = description.pop("network", None)   # a CLIP image tower, built by model/clip.py
        predictor = Predictor(description, weights, device, precision, features=True, network=network)

        def keep(output):
            for k, row in enumerate(output["row"]):
                i = todo[row]
                look = digests[i] if digests[i] is not None else ("row", i)
                computed[look] = output["error"][k] or output["features"][k]   # a reason, or the vector
            bar.update(len(output["row"]))

        with tqdm(total=len(todo), desc="embedding", unit="img", disable=not progress, leave=False) as bar:
            map_paths(predictor, predictor.prep, [paths[i] for i in todo],
                      batch_ranges(0, len(todo), int(batch_size)), keep, workers=num_workers)
        return computed, len(todo)

    if cache is None:
        known: dict = {}
        computed, _ = embed(known)
    else:
        with claimed_directory(cache, what="embedding cache", marker=CACHE_DESCRIPTION, resume=True) as folder:
            if not (folder / CACHE_DESCRIPTION).exists():
                write_json({"format": "imagesasdata-embedding-cache", "version": 1}, folder / CACHE_DESCRIPTION)
            known = read_cache(folder, key)
            computed, _ = embed(known)
            fresh = {d: v for d, v in computed.items() if isinstance(d, str) and not isinstance(v, str)}
            if fresh:
                (folder / key).mkdir(exist_ok=True)
                if not (folder / key / "model.json").exists():
                    write_json(identity, folder / key / "model.json")
                write_table(_cache_part(fresh), folder / key / f"part-{uuid.uuid4().hex}.parquet")
    vectors, cached = [], []
    for i in range(n):
        look = digests[i] if digests[i] is not None else ("row", i)
        found = known[look] if look in known else computed[look]
        if isinstance(found, str):   # unreadable: its reason
            errors[i] = found
            found = None
        vectors.append(found)
        cached.append(look in known)
    return _table(table, digests, vectors, cached, errors)


def _model(run, architecture: str, image_size: int, resize: str, allow_unfinished: bool, weights=None):
    """(model description, weights, what identifies the vectors) for a run, a CLIP model or an ImageNet network."""
    if run is None and str(architecture).startswith("open_clip/"):
        return _clip_model(architecture, weights)
    if run is not None:
        from ..runs import WEIGHTS, as_run_directory

        run = as_run_directory(run)
        run.require_finished(allow_unfinished)
        weights = run.weights()
        recorded = (run.description.get("files") or {}).get(WEIGHTS)
        if recorded is None or run.status == "training":   # the best checkpointed epoch: hash what is loaded
            digest = hashlib.sha256()
            for name in sorted(weights):
                digest.update(name.encode())
                digest.update(weights[name].detach().cpu().contiguous().numpy().tobytes())
            recorded = digest.hexdigest()
        return run.description, weights, {"model": "run", "weights_sha256": recorded,
                                          "preprocessing": run.description["preprocessing"]}
    from ..data.transforms import Preprocessing
    from ..model.backbones import imagenet_classifier

    backbone = imagenet_classifier(architecture, progress=False)
    prep = Preprocessing(image_size=int(image_size), resize=resize, mean=backbone.mean, std=backbone.std)
    description = {"architecture": backbone.architecture, "library": backbone.library, "head": backbone.head,
                   "classes": [str(i) for i in range(_outputs(backbone))], "preprocessing": prep.to_dict(),
                   "hyperparameters": {"dropout": 0.0}}
    return description, backbone.model.state_dict(), {"model": "imagenet", "architecture": backbone.architecture,
                                                      "library": backbone.library, "weights": backbone.weights,
                                                      "preprocessing": prep.to_dict()}


def _clip_model(architecture: str, weights):
    """A CLIP image tower with a one-output head (unused: the features are the head's input, the normalised
    embedding); identified by model name, weights (tag, or file hash) and preprocessing."""
    from ..data.transforms import Preprocessing
    from ..model.clip import DEFAULT_WEIGHTS, ClipImageClassifier, load_clip

    clip = load_clip(architecture, DEFAULT_WEIGHTS if weights is None else weights)
    network = ClipImageClassifier(clip.model.visual, clip.embed_dim, 1).eval()
    prep = Preprocessing(image_size=clip.input_size, resize="rescale-crop", resize_size=clip.input_size,
                         mean=clip.mean, std=clip.std, interpolation=clip.interpolation)
    description = {"architecture": clip.architecture, "library": "open_clip", "head": ["head"], "classes": ["0"],
                   "preprocessing": prep.to_dict(), "hyperparameters": {"dropout": 0.0}, "network": network}
    return description, None, {"model": "open_clip", "architecture": clip.architecture, "weights": clip.weights,
                               "weights_sha256": clip.weights_sha256, "preprocessing": prep.to_dict()}


def _outputs(backbone) -> int:
    head = backbone.model.get_submodule(backbone.head[0])
    return int(getattr(head, "out_features", None) or getattr(head, "out_channels"))


def read_cache(folder: Path, key: str) -> dict:
    """{sha256: vector} of one model's cached embeddings (every part; later parts win, though they agree)."""
    known: dict = {}
    for part in sorted((Path(folder) / key).glob("part-*.parquet")):
        table = pq.read_table(part)
        values = table["embedding"].combine_chunks()
        width = values.type.list_size
        matrix = values.flatten().to_numpy(zero_copy_only=False).reshape(-1, width) if len(values) else None
        for row, digest in enumerate(table["sha256"].to_pylist()):
            known[digest] = matrix[row]
    return known


def _cache_part(vectors: dict) -> pa.Table:
    digests = list(vectors)
    matrix = np.stack([np.asarray(vectors[d], np.float32) for d in digests])
    flat = pa.array(matrix.reshape(-1), pa.float32())
    return pa.table({"sha256": pa.array(digests, pa.string()),
                     "embedding": pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])})


def _table(table: pa.Table, digests, vectors, cached, errors) -> pa.Table:
    n = table.num_rows
    width = next((len(v) for v in vectors if v is not None), 0)
    matrix = np.zeros((n, width), np.float32)
    ok = np.array([v is not None for v in vectors], bool)
    for i, vector in enumerate(vectors):
        if vector is not None:
            matrix[i] = vector
    if width:
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), width,
                                                      mask=pa.array(~ok))
    else:   # no image could be read
        embedding = pa.nulls(n, pa.list_(pa.float32(), 1))
    return pa.table({"image_id": table["image_id"], "path": table["path"],
                     "sha256": pa.array(digests, pa.string()), "embedding": embedding,
                     "cached": pa.array(cached, pa.bool_()),
                     "error": pa.array([e or None for e in errors], pa.string())})
