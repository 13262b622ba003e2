"""The frozen-backbone fast path: when only the new last layer trains and images are not randomly cropped, an
image's features (the head's input) are the same in every epoch and every configuration of a grid. They are
computed once, and the head trains on them in seconds — the same arithmetic as running the whole network, which
the tests check against the plain path.
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
                 channels_last: bool, flips: bool, batch_size: int = 64, progress: bool = True):
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
                        views = torch.stack([eval_view(to_chw(images[r]), prep) for r in rows[start:start + batch_size]])
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


# The head's epochs draw their data order and flips from a stream of their own, apart from fine-tuning's epochs.
HEAD_EPOCHS_STREAM = 7_919


def train_head_first(trainer) -> bool:
    """Train only the new last layer for `config.head_epochs` passes over the training images, before the whole
    network is fine-tuned (linear probing, then fine-tuning).

    A fresh head is random: the first steps of fine-tuning send noise back into the pretrained layers. A head
    that already separates the classes lets fine-tuning start from useful gradients. The backbone runs once per
    image (in eval mode, on the evaluation view and its mirror image) and the head trains on those features with
    the run's optimizer, learning rate and batch size — seconds, where an epoch of fine-tuning takes minutes.
    Returns False when the backbone is frozen anyway, and (with a warning) when the architecture has no single last
    layer to train on features.
    """
    import warnings

    from ..model.backbones import backbone_frozen
    from .trainer import epoch_order, make_optimizer

    config, model, head_names = trainer.config, trainer.model, trainer.backbone.head
    if backbone_frozen(model, head_names):
        return False   # the whole run trains the last layer alone already
    runtime = (trainer.device, trainer.precision, trainer.channels_last)
    rows = trainer.rows["train"]
    head = model.get_submodule(head_names[0]) if len(head_names) == 1 else None
    if head is None or not head_is_final(model, head, trainer.images, rows, trainer.prep, *runtime):
        warnings.warn(f"head_epochs={config.head_epochs} is skipped: {trainer.backbone.architecture}'s last layer "
                      "cannot be trained on its own features here (use head_epochs=0 to silence this)", stacklevel=3)
        return False
    flips = trainer.prep.augment_flip
    features = HeadFeatures(model, head, trainer.images, rows, trainer.prep, *runtime, flips=flips,
                            progress=config.progress_bars)
    optimizer = make_optimizer(head, config)
    loss_function = trainer.loss_function   # cross-entropy; binary cross-entropy for multi-label runs
    head.train()
    for epoch in range(1, config.head_epochs + 1):
        order = epoch_order(rows, config.seed, HEAD_EPOCHS_STREAM + epoch)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            mirrored = [bool(np.random.default_rng([config.seed, HEAD_EPOCHS_STREAM, epoch, int(r)]).random() < 0.5)
                        for r in batch] if flips else None
            inputs = features.batch(batch, mirrored).to(trainer.device)
            targets = torch.from_numpy(trainer.targets[batch]).to(trainer.device)
            loss = loss_function(head(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return True
