"""Running a network forward over images: on cached base images during training, and on files for prediction.

Files are decoded on a thread pool one chunk ahead of the network, so decoding and compute overlap; an
unreadable file becomes an error on its row, never an exception.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn

from .cache import default_workers
from .devices import autocast
from .errors import BadImageError
from .transforms import Preprocessing, eval_view, load_base, normalize_batch, to_chw


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


def forward_files(model: nn.Module, paths, prep: Preprocessing, device, precision: str, channels_last: bool,
                  batch_size: int = 32, workers: int | None = None, progress=None):
    """Yield (positions, logits, errors) chunk by chunk over `paths`.

    positions: indices into `paths` of the images in `logits`; errors: {index: reason} for unreadable files.
    """
    def decode(path):
        try:
            return load_base(path, prep), None
        except BadImageError as error:
            return None, error.reason

    model.eval()
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        def submit(start):
            return start, [pool.submit(decode, p) for p in paths[start:start + batch_size]]

        pending = submit(0) if paths else None
        while pending is not None:
            start, futures = pending
            following = start + batch_size
            pending = submit(following) if following < len(paths) else None   # decode ahead while computing
            positions, views, errors = [], [], {}
            for offset, future in enumerate(futures):
                array, error = future.result()
                if error is None:
                    positions.append(start + offset)
                    views.append(eval_view(to_chw(array), prep))
                else:
                    errors[start + offset] = error
            logits = forward_batch(model, torch.stack(views), prep, device, precision, channels_last) if views else None
            if progress is not None:
                progress.update(len(futures))
            yield positions, logits, errors


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=1).numpy()
