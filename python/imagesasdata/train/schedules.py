"""How a run's learning rates and training image sizes change as it trains (issue 28): the schedule (the book's
StepLR per epoch, or a one-cycle or warm-up + cosine schedule per optimizer step, all torch's own schedulers),
discriminative learning rates (parameter groups by depth), and progressive resizing (the training images' side per
epoch). Pure functions of the options and the network's parameter names: the tests check their shapes without
training anything.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import option_error
from ..data.transforms import MIN_IMAGE_SIZE
from .config import TrainConfig

# The per-step schedules start (and OneCycleLR's warm-up starts) at learning_rate / WARMUP_DIVISOR: torch's
# OneCycleLR default div_factor; the warm-up + cosine schedule starts there too, so the two differ only after it.
WARMUP_DIVISOR = 25.0
# OneCycleLR ends at its start divided by this (torch's default final_div_factor): a 250,000th of the peak.
FINAL_DIVISOR = 1e4
# Progressive resizing grows the training images in steps of this many pixels (the networks' total stride).
SIZE_STEP = 32


def per_step(config: TrainConfig) -> bool:
    """True when the schedule changes the learning rate after every optimizer step (not once per epoch)."""
    return config.schedule != "step"


def parameter_groups(named_blocks: list[list[tuple[str, nn.Parameter]]], learning_rate: float,
                     decay_per_block: float | None) -> list[dict]:
    """Optimizer parameter groups for discriminative learning rates: one group per block (input first, the new
    last layer last), block k of n at learning_rate × decay^(n − 1 − k). Each group also records its `lr_scale`
    (the learning-rate finder scales its rates by it) and its `block` (the first parameter's name). Returns a list
    of dicts torch's optimizers take."""
    decay = 1.0 if decay_per_block is None else float(decay_per_block)
    count = len(named_blocks)
    groups = []
    for index, block in enumerate(named_blocks):
        scale = decay ** (count - 1 - index)
        groups.append({"params": [p for _, p in block], "lr": learning_rate * scale, "lr_scale": scale,
                       "block": block[0][0]})
    return groups


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """The config's learning-rate schedule on `optimizer` (whose groups hold their starting rates):

    step           torch's StepLR(step_size, gamma), stepped once per epoch (the book);
    one_cycle      torch's OneCycleLR: from peak / 25 up to each group's rate (its peak) over warmup_fraction of the
                   epochs × steps_per_epoch steps, then a cosine down to peak / 250,000; momentum is not cycled
                   (the momentum option keeps its meaning);
    warmup_cosine  torch's LinearLR from a 25th up to each group's rate over warmup_fraction of the steps, then
                   CosineAnnealingLR down to zero over the rest, chained by SequentialLR.
    The last two are stepped after every optimizer step (per_step(config)); a one-cycle run of fewer than 3 steps
    stays at its peak, and one of few steps rises over at least 2 of them. Returns the scheduler.
    """
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    total = max(1, int(config.epochs) * int(steps_per_epoch))
    peaks = [group["lr"] for group in optimizer.param_groups]
    if config.schedule == "one_cycle":
        if total < 3:
            # Too few steps for a rise and a fall (OneCycleLR divides by zero or returns 0 here): the peak throughout.
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        # OneCycleLR needs at least two steps in each phase (four in all steps with its 0.25 divide by zero): short
        # runs (a learning curve's smallest fraction, one epoch of a few images) get the nearest warm-up that works.
        warmup = min(max(config.warmup, 2 / total), (total - 1) / total)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total, pct_start=warmup, anneal_strategy="cos",
            cycle_momentum=False, div_factor=WARMUP_DIVISOR, final_div_factor=FINAL_DIVISOR)
    if config.schedule == "warmup_cosine":
        warmup = min(total - 1, max(1, round(config.warmup * total)))
        if warmup < 1:   # a single step: nothing to warm up over
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        rise = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / WARMUP_DIVISOR, end_factor=1.0,
                                                 total_iters=warmup)
        fall = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=0.0)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [rise, fall], milestones=[warmup])
    raise option_error("schedule", config.schedule, choices=("step", "one_cycle", "warmup_cosine"))


class LearningRateSchedule:
    """A callback of Trainer.train_pass that steps a per-step scheduler after every optimizer step of fine-tuning
    (the learning-rate finder's passes do not get it: they set their own rates)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def after_batch(self, trainer, step: int, loss: float) -> None:
        self.scheduler.step()


def training_sizes(epochs: int, start: int | None, full: int, full_size_epochs: int | None = None) -> list[int]:
    """The side in pixels of the training images in each epoch (1 … epochs) under progressive resizing.

    The last `full_size_epochs` epochs (default: half of them, rounded up; at least one) train at `full`; the
    epochs before grow linearly from `start` towards `full`, each rounded down to a multiple of 32 pixels and
    kept between `start` and `full` (the first is `start` itself). start None or 0, or not below full: every epoch at
    full size. Returns a list with one side per epoch.
    """
    epochs = int(epochs)
    if not start or start >= full:
        return [full] * epochs
    at_full = math.ceil(epochs / 2) if full_size_epochs is None else int(full_size_epochs)
    growing = max(0, epochs - max(1, at_full))
    sizes = []
    for index in range(growing):
        side = start + (full - start) * index / growing
        rounded = start if index == 0 else int(side // SIZE_STEP) * SIZE_STEP
        sizes.append(max(start, min(full, rounded)))
    return sizes + [full] * (epochs - growing)


def progressive_start(config: TrainConfig, full: int) -> int | None:
    """The first epoch's side under progressive resizing for images of `full` pixels, or None when off. A start the
    user gave must be below `full` (an error otherwise); one the recipe chose is dropped when it is not (recipe
    "fast" on images of 128 pixels or fewer trains at full size throughout)."""
    start = config.progressive_resize
    if not start:
        return None
    if start >= full:
        if "progressive_resize" in getattr(config, "recipe_chose", ()):
            return None
        raise option_error("progressive_resize", start, f"below image_size ({full}), or 0 for off",
                           hint=f"e.g. {max(MIN_IMAGE_SIZE, full // 2)}")
    return start


def first_settled_epoch(config: TrainConfig, sizes: list[int]) -> int:
    """The first epoch early stopping counts: past a per-step schedule's warm-up and at the full training size.
    While the rate still rises and the images are small, the validation loss says little about the end (measured:
    recipe "fast" with patience 2 stopped the sample faces after 3 of 8 epochs at 0.83-0.92 accuracy, where all 8
    reach 1.0). `sizes`: the training side per epoch (training_sizes). Returns 1 for the book's StepLR at full size."""
    warmup = math.ceil(config.warmup * int(config.epochs)) if per_step(config) else 0
    first_full = sizes.index(max(sizes)) + 1 if sizes else 1   # sizes only grow: the first at the largest
    return max(warmup + 1, first_full)
