"""Running a network forward over images: on cached base images during training, and on files (local or s3://)
for prediction — the one path that predict(), label_corpus(), the local autotagger and Ray's replicas share.

Files are decoded on a thread pool one batch ahead of the network, so decoding and compute overlap; an
unreadable file becomes an error on its row, never an exception.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import torch
import torch.nn as nn

from ..data.transforms import Preprocessing, eval_view, load_base, normalize_batch, to_chw
from ..errors import BadImageError, ImagesAsDataError
from ..io.s3 import read_s3_bytes
from ..io.threads import default_workers
from .devices import autocast, resolve_channels_last, resolve_device, resolve_precision


@torch.no_grad()
def forward_batch(model: nn.Module, views: torch.Tensor, prep: Preprocessing, device, precision: str,
                  channels_last: bool) -> torch.Tensor:
    """Logits (float32, on the CPU) for a uint8 NCHW batch of evaluation views."""
    inputs = normalize_batch(views.to(device, non_blocking=True), prep.mean, prep.std)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        output = model(inputs)
    return output.float().cpu()


def forward_rows(model: nn.Module, images, rows, prep: Preprocessing, device, precision: str, channels_last: bool,
                 batch_size: int = 64) -> torch.Tensor:
    """Logits for rows of a DecodedImages store, in eval mode (the caller's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for start in range(0, len(rows), batch_size):
            views = torch.stack([eval_view(to_chw(images[r]), prep) for r in rows[start:start + batch_size]])
            chunks.append(forward_batch(model, views, prep, device, precision, channels_last))
        return torch.cat(chunks) if chunks else torch.zeros((0, 0))
    finally:
        model.train(was_training)


def read_base(path: str, prep: Preprocessing, endpoint_url: str | None = None) -> np.ndarray:
    """The deterministic preprocessing stage (load_base) of a local file or an s3:// object. Raises BadImageError.

    An S3 object is decoded from a temporary file by the very code that decodes local files, so both give the
    same pixels (and the same reasons for refusing a file)."""
    if not path.startswith("s3://"):
        return load_base(path, prep)
    data = read_s3_bytes(path, endpoint_url)
    with tempfile.NamedTemporaryFile(prefix="imagesasdata-", suffix=PurePosixPath(path).suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            return load_base(handle.name, prep)
        except BadImageError as error:
            raise BadImageError(path, error.reason) from None


def decode_images(paths, prep: Preprocessing, *, endpoint_url: str | None = None, workers: int | None = None,
                  pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, list]:
    """(uint8 N×S×S×3 base images, errors) for `paths`; an unreadable image is zeros with its reason in errors
    ("" for the readable ones), decoded on a thread pool (reads from S3 wait on the network, not the CPU)."""
    def work(path):
        try:
            return read_base(path, prep, endpoint_url), ""
        except BadImageError as error:
            return None, error.reason

    size = prep.resize_size
    paths = [str(p) for p in paths]
    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(workers or default_workers(), len(paths) or 1))) as own:
            results = list(own.map(work, paths))
    else:
        results = list(pool.map(work, paths))
    images = np.zeros((len(paths), size, size, 3), np.uint8)
    errors = []
    for i, (array, error) in enumerate(results):
        if array is not None:
            images[i] = array
        errors.append(error)
    return images, errors


def decode_batch(batch: dict, prep: dict, endpoint_url: str | None = None, workers: int | None = None) -> dict:
    """decode_images on a batch of {"row", "path"} (numpy columns), as Ray Data hands it over."""
    images, errors = decode_images(list(batch["path"]), Preprocessing.from_dict(prep), endpoint_url=endpoint_url,
                                   workers=workers)
    return {"row": np.asarray(batch["row"], np.int64), "image": images, "error": np.array(errors, dtype=object)}


class Predictor:
    """One model replica: base images in, class probabilities out — the one forward pass of predict(),
    label_corpus(), the local autotagger and Ray's replicas (eval view, normalisation on the device, autocast).

    Built from a model description (a run's model.json, or the ImageNet tagger's) and its weights — a state dict,
    or safetensors bytes, so that a replica on another machine needs no copy of the run directory — or given the
    network itself (`network=`, built by model/ for this description; weights are then ignored).
    """

    def __init__(self, description: dict, weights, device: str = "auto", precision: str = "auto",
                 threads: int | None = None, features: bool = False, network: nn.Module | None = None):
        from safetensors.torch import load as load_safetensors

        from ..analysis.calibration import applied_temperature
        from .backbones import rebuild_model

        if threads:
            torch.set_num_threads(int(threads))
        self.prep = Preprocessing.from_dict(description["preprocessing"])
        self.classes = list(description["classes"])
        # 1 unless the description asks for the run's fitted temperature (analysis.calibration.prediction_description)
        self.temperature = applied_temperature(description)
        self.multi_label = description.get("task") == "multi_label"
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = resolve_channels_last("auto", self.device)
        if network is None:
            state = load_safetensors(weights) if isinstance(weights, (bytes, bytearray)) else weights
            network = rebuild_model(description, state)
        # else a network model/ built just now for this description (a CLIP zero-shot classifier), used as it is
        model = network.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.head = list(description.get("head") or [])
        self._captured: list = []
        self._hooks = []
        if features:
            self._hooks = [self.model.get_submodule(name).register_forward_hook(self._capture) for name in self.head]
            if not self._hooks:
                raise ImagesAsDataError("this model description names no classifier layer (head), so its "
                                        "penultimate features cannot be found")

    def _capture(self, module, inputs, output) -> None:
        self._captured.append(inputs[0].detach())

    def views(self, batch: dict, rows) -> torch.Tensor:
        """The uint8 NCHW evaluation views of `rows` of a decoded batch."""
        return torch.stack([eval_view(to_chw(np.asarray(batch["image"][i])), self.prep) for i in rows])

    def __call__(self, batch: dict) -> dict:
        """{"row", "image", "error"} → {"row", "probabilities" (NaN for unreadable images), "error"}, and with
        features=True also "features": the head's input (the penultimate layer, average-pooled when it is a map)."""
        errors = [e if isinstance(e, str) else "" for e in batch["error"]]
        readable = np.flatnonzero([e == "" for e in errors])
        probabilities = np.full((len(errors), len(self.classes)), np.nan)
        features = None
        if len(readable):
            self._captured.clear()
            logits = forward_batch(self.model, self.views(batch, readable), self.prep, self.device, self.precision,
                                   self.channels_last)
            # One sigmoid per label in a multi-label run (train/multilabel.py); else a softmax over the classes.
            probabilities[readable] = (torch.sigmoid(logits.float()).numpy() if self.multi_label
                                       else softmax(logits / self.temperature))
            if self._hooks:
                # A network with two heads (a distilled timm model) feeds both the same input; take the first.
                captured = self._captured[0].float()
                if captured.dim() == 4:   # SqueezeNet's head is a 1×1 convolution on the feature map
                    captured = captured.mean(dim=(2, 3))
                captured = captured.flatten(1).cpu().numpy()
                features = np.full((len(errors), captured.shape[1]), np.nan, np.float32)
                features[readable] = captured
        output = {"row": np.asarray(batch["row"], np.int64), "probabilities": probabilities,
                  "error": np.array(errors, dtype=object)}
        if self._hooks:
            output["features"] = features if features is not None else np.full((len(errors), 0), np.nan, np.float32)
        return output


def predict_paths(predictor: Predictor, paths, batches, on_batch, *, workers: int | None = None,
                  endpoint_url: str | None = None) -> None:
    """Run `predictor` over `paths` batch by batch (`batches`: ranges of positions), decoding the next batch on a
    thread pool while this one computes; on_batch(positions, probabilities, errors) receives each result."""
    map_paths(predictor, predictor.prep, paths, batches,
              lambda output: on_batch(output["row"], output["probabilities"], list(output["error"])),
              workers=workers, endpoint_url=endpoint_url)


def map_paths(function, prep: Preprocessing, paths, batches, on_output, *, workers: int | None = None,
              endpoint_url: str | None = None) -> None:
    """The loop under predict_paths, for any function of a decoded batch ({"row", "image", "error"} → a dict):
    a Predictor, or a heatmap maker (model.cams) that holds its network for the whole job. The next batch is
    decoded on a thread pool while this one computes; on_output(output) receives each result."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool, \
            ThreadPoolExecutor(max_workers=1) as ahead:
        def decode(rows):
            return decode_images([paths[r] for r in rows], prep, endpoint_url=endpoint_url, pool=pool)

        following = ahead.submit(decode, batches[0]) if batches else None
        for number, rows in enumerate(batches):
            images, errors = following.result()
            following = ahead.submit(decode, batches[number + 1]) if number + 1 < len(batches) else None
            on_output(function({"row": np.arange(rows.start, rows.stop), "image": images, "error": errors}))


def batch_ranges(start: int, stop: int, batch_size: int) -> list[range]:
    return [range(first, min(stop, first + batch_size)) for first in range(start, stop, batch_size)]


def predictions_table(manifest: pa.Table, probabilities: np.ndarray, errors, classes, threshold=None,
                      positive_class=None, multi_label: bool = False) -> pa.Table:
    """The table predict() returns: image_id, path, predicted, prob_<class>…, error (nulls for unreadable rows).
    threshold: binary tasks: positive when the positive class's probability is at least this (default: argmax);
    multi-label runs: each label whose probability is at least this (default 0.5), joined by ";"."""
    from ..analysis.thresholds import decide

    ok = ~np.isnan(probabilities).any(axis=1)
    if multi_label:
        cut = 0.5 if threshold is None else float(threshold)
        predicted = [";".join(c for c, p in zip(classes, row) if p >= cut) if good else None
                     for row, good in zip(probabilities, ok)]
    else:
        predicted = decide(probabilities, classes, threshold, positive_class)
    columns = {"image_id": manifest["image_id"], "path": manifest["path"], "predicted": pa.array(predicted, pa.string())}
    for i, c in enumerate(classes):
        columns[f"prob_{c}"] = pa.array(np.where(ok, probabilities[:, i], np.nan), pa.float64(), from_pandas=True)
    columns["error"] = pa.array([e or None for e in errors], pa.string())
    return pa.table(columns)


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=1).numpy()
