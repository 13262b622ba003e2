"""The frozen-backbone fast path: when only the new last layer trains and images are not randomly cropped, an
image's features (the head's input) are the same in every epoch and every configuration of a grid. They are
computed once, and the head trains on them in seconds — the same arithmetic as running the whole network, which
the tests check against the plain path. The head's epochs before fine-tuning (head_epochs) train on these
features too, as a phase of Trainer.train_pass (callbacks.HeadFirst).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from ..model.inference import forward_batch
from ..data.transforms import Preprocessing, eval_view, to_chw

_SHARED: "OrderedDict[tuple, HeadFeatures]" = OrderedDict()
_SHARED_LIMIT = 4


class HeadFeatures:
    """Head inputs for rows of a decoded-image store, plain and (when flips are on) mirrored."""

    def __init__(self, model: nn.Module, head: nn.Module, images, rows, prep: Preprocessing, device, precision: str,
                 channels_last: bool, flips: bool, batch_size: int = 64, progress: bool = True,
                 size: int | None = None):
        """size: the side of the views the features are computed on (default: prep.image_size; smaller ones are
        the evaluation view shrunk, as progressive resizing trains on)."""
        from tqdm.auto import tqdm

        self.position = {row: k for k, row in enumerate(rows)}
        captured = []
        hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach().float().cpu()))
        was_training = model.training
        model.eval()
        try:
            variants = [False, True] if flips else [False]
            self.variants = {}
            bar = tqdm(total=len(rows) * len(variants), desc="computing features", unit="img", leave=False,
                       disable=not progress)
            with bar:
                for flip in variants:
                    captured.clear()
                    for start in range(0, len(rows), batch_size):
                        views = torch.stack([eval_view(to_chw(images[r]), prep, size)
                                             for r in rows[start:start + batch_size]])
                        if flip:
                            views = views.flip(-1)
                        forward_batch(model, views, prep, device, precision, channels_last)
                        bar.update(len(views))
                    self.variants[flip] = torch.cat(captured) if captured else torch.zeros(0)
        finally:
            hook.remove()
            model.train(was_training)

    def batch(self, rows, flips=None) -> torch.Tensor:
        index = torch.tensor([self.position[r] for r in rows])
        plain = self.variants[False][index]
        if not flips or not any(flips):
            return plain
        mirrored = self.variants[True][index]
        mask = torch.tensor(flips).view(-1, *([1] * (plain.dim() - 1)))
        return torch.where(mask, mirrored, plain)


def head_is_final(model: nn.Module, head: nn.Module, images, rows, prep: Preprocessing, device, precision: str,
                  channels_last: bool) -> bool:
    """True when the network's output is exactly head(head input) — i.e. nothing runs after the head
    (not so for SqueezeNet, whose 1×1 convolution head is followed by pooling)."""
    captured = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    was_training = model.training
    model.eval()
    try:
        views = torch.stack([eval_view(to_chw(images[r]), prep) for r in rows[:2]])
        output = forward_batch(model, views, prep, device, precision, channels_last)
        with torch.no_grad():
            again = head(captured[0]).float().cpu()
        return again.shape == output.shape and torch.allclose(again, output, atol=1e-4, rtol=1e-3)
    finally:
        hook.remove()
        model.train(was_training)


def shared_features(key: tuple, build) -> HeadFeatures:
    """Features computed once per (images, backbone, preprocessing) in this process — a grid's configurations
    share them."""
    if key in _SHARED:
        _SHARED.move_to_end(key)
        return _SHARED[key]
    features = build()
    _SHARED[key] = features
    while len(_SHARED) > _SHARED_LIMIT:
        _SHARED.popitem(last=False)
    return features


def flip_decisions(rows, seed: int, epoch: int) -> list:
    """The horizontal flips train_view would draw for these rows (its first random draw when not cropping)."""
    return [bool(np.random.default_rng([seed, epoch, int(r)]).random() < 0.5) for r in rows]
