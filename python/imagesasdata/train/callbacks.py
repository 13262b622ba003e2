"""What changes the one training loop without being a second one: phases of `Trainer.train_pass` and callbacks of
`Trainer.fit` (fastai's callback idea).

A `Phase` says what a pass trains and on what: the optimizer, the network a batch goes through, the order of the
training rows and how a batch is made. Fine-tuning is one phase (trainer.py builds it); training the new last layer
first on features computed once is another (`HeadFirst`). Both run through `Trainer.train_pass`, so autocast, the
gradient scaler, the divergence check and the crash points apply to both.

Callbacks of `fit` have any of: before_fit(trainer) (once, before the first epoch of a run that has not started),
after_epoch(trainer, state, result) (after each epoch, before its checkpoint: what they change in `state` is
committed with the epoch), before_batch(trainer, step) and after_batch(trainer, step, loss) (inside each pass;
the learning-rate finder, lr_find.py). A callback ends the run early by setting `state.stopped_early`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .config import TrainConfig
from .features import HeadFeatures, head_is_final
from .schedules import parameter_groups

# The head's epochs draw their data order and flips from a stream of their own, apart from fine-tuning's epochs.
HEAD_EPOCHS_STREAM = 7_919


class StopTraining(Exception):
    """Raised by a callback to end the current pass (the learning-rate finder when it is done)."""


class TrainingDiverged(Exception):
    """The loss or the weights stopped being finite numbers: nothing after this point would mean anything."""

    def __init__(self, epoch, what: str, learning_rate: float):
        where = epoch if isinstance(epoch, str) else f"epoch {epoch}"
        super().__init__(f"training diverged in {where}: {what}. The learning rate ({learning_rate:g}) is "
                         f"probably too high: try {learning_rate / 10:g} (lr_find() suggests one).")


@dataclass
class Phase:
    """One kind of pass of Trainer.train_pass.

    name: what a pass is called ("epoch", "head epoch") in progress bars, crash points and divergence messages.
    epochs: how many passes the phase has (progress bars).
    optimizer: what steps; network: what a batch goes through (the whole model, or the head on features).
    order(epoch): the training rows in that pass's order; batch(rows, epoch): the batch's inputs on the device.
    on_features: the inputs are the head's inputs already (not images to normalise).
    reseed: seed torch's generator (dropout masks) from (seed, epoch) at the start of each pass; the head phase
      keeps the stream the run was started with, as it always did.
    train_mode(): put the network in training mode for a pass.
    """

    name: str
    epochs: int
    optimizer: torch.optim.Optimizer
    network: nn.Module
    order: Callable[[int], list]
    batch: Callable[[list, int], torch.Tensor]
    on_features: bool
    reseed: bool
    train_mode: Callable[[], None]


def make_optimizer(model: nn.Module, config: TrainConfig, learning_rate: float | None = None,
                   blocks: list | None = None) -> torch.optim.Optimizer:
    """The config's optimizer over the parameters of `model` that train, at `learning_rate` (default the config's).
    blocks: the parameter names by depth (model/backbones.parameter_blocks); with config.lr_decay_per_block below
    1 each block is a parameter group of its own, at the rate schedules.parameter_groups gives it (the new last
    layer at `learning_rate`). Otherwise one group, as the book."""
    rate = config.learning_rate if learning_rate is None else learning_rate
    if blocks and config.lr_decay_per_block not in (None, 1.0):
        named = dict(model.named_parameters())
        parameters = parameter_groups([[(name, named[name]) for name in block] for block in blocks], rate,
                                      config.lr_decay_per_block)
    else:
        parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=rate, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=rate, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=rate, weight_decay=config.weight_decay)


def epoch_order(rows, seed: int, epoch: int) -> list[int]:
    """The shuffled training order of an epoch: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]


class HeadFirst:
    """Train only the new last layer for `epochs` passes over the training images before the whole network is
    fine-tuned (linear probing, then fine-tuning).

    The head trains at head_learning_rate (default: learning_rate), constant; under progressive resizing its features
    are those of images at the first epoch's size.

    A fresh head is random: the first steps of fine-tuning send noise back into the pretrained layers. A head that
    already separates the classes lets fine-tuning start from useful gradients. The backbone runs once per image (in
    eval mode, on the evaluation view and its mirror image) and the head trains on those features with the run's
    optimizer, learning rate and batch size, in passes of Trainer.train_pass — seconds, where an epoch of
    fine-tuning takes minutes. `trained` says afterwards whether it ran: not when the backbone is frozen anyway
    (the whole run trains the last layer alone), nor (with a warning) when the architecture has no single last
    layer to train on features.
    """

    def __init__(self, epochs: int):
        self.epochs = int(epochs)
        self.trained = False

    def before_fit(self, trainer) -> None:
        phase = head_first_phase(trainer, self.epochs)
        if phase is None:
            return
        for epoch in range(1, self.epochs + 1):
            trainer.train_pass(epoch, phase=phase)
        self.trained = True


def head_first_phase(trainer, epochs: int) -> Phase | None:
    """The phase that trains the head alone on features computed once; None when it does not apply (see HeadFirst)."""
    from ..model.backbones import backbone_frozen

    config, model, head_names = trainer.config, trainer.model, trainer.backbone.head
    if backbone_frozen(model, head_names):
        return None
    runtime = (trainer.device, trainer.precision, trainer.channels_last)
    rows = trainer.rows["train"]
    head = model.get_submodule(head_names[0]) if len(head_names) == 1 else None
    if head is None or not head_is_final(model, head, trainer.images, rows, trainer.prep, *runtime):
        warnings.warn(f"head_epochs={epochs} is skipped: {trainer.backbone.architecture}'s last layer "
                      "cannot be trained on its own features here (use head_epochs=0 to silence this)", stacklevel=4)
        return None
    flips = trainer.prep.augment_flip
    # At the size of fine-tuning's first epoch: smaller under progressive resizing, which also makes them cheaper.
    features = HeadFeatures(model, head, trainer.images, rows, trainer.prep, *runtime, flips=flips,
                            progress=config.progress_bars, size=trainer.training_size(1))

    def batch(batch_rows, epoch: int) -> torch.Tensor:
        mirrored = [bool(np.random.default_rng([config.seed, HEAD_EPOCHS_STREAM, epoch, int(r)]).random() < 0.5)
                    for r in batch_rows] if flips else None
        return features.batch(batch_rows, mirrored).to(trainer.device)

    optimizer = make_optimizer(head, config, learning_rate=config.head_learning_rate)
    return Phase(name="head epoch", epochs=epochs, optimizer=optimizer, network=head,
                 order=lambda epoch: epoch_order(rows, config.seed, HEAD_EPOCHS_STREAM + epoch), batch=batch,
                 on_features=True, reseed=False, train_mode=head.train)


def train_head_first(trainer, epochs: int | None = None) -> bool:
    """Run the HeadFirst phase on a trainer now (config.head_epochs passes unless `epochs`); True when it ran."""
    callback = HeadFirst(trainer.config.head_epochs if epochs is None else epochs)
    callback.before_fit(trainer)
    return callback.trained


class EarlyStopping:
    """Stop when the validation loss has not improved (by more than 1e-12) for `patience` epochs in a row, counting
    from epoch `start` (schedules.first_settled_epoch: epochs before it neither count nor set the best loss). What
    it counts lives in the training state, so a resumed run stops where the uninterrupted one would."""

    def __init__(self, patience: int, start: int = 1):
        self.patience = int(patience)
        self.start = int(start)

    def after_epoch(self, trainer, state, result) -> None:
        if result.epoch < self.start:
            return
        if result.val_loss < state.best_val_loss - 1e-12:
            state.best_val_loss, state.epochs_without_improvement = result.val_loss, 0
        else:
            state.epochs_without_improvement += 1
        if self.patience and state.epochs_without_improvement >= self.patience:
            state.stopped_early = True
            trainer._say(f"early stopping: validation loss has not improved for {self.patience} epochs")
