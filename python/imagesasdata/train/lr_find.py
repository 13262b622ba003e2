"""The learning-rate finder (Smith 2017; fastai's lr_find): a schedule on the trainer's own loop, not a second loop.

The finder is a callback of Trainer.train_pass: before each step it sets the learning rate (rising exponentially
from start_lr to end_lr), after each step it records the loss, and it ends the passes when the loss explodes or
the steps are done. Everything else — data order, augmentation, the step itself — is the trainer's.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError
from .callbacks import StopTraining
from .config import TrainConfig


# Which suggestion a schedule's learning_rate is: the book's StepLR starts at it and only lowers it, so the steepest
# fall of the loss (a rate that learns fast and safely); a one-cycle or warm-up + cosine schedule rises to it as a
# peak, for which fastai's lr_find suggests its "valley" (fastai pairs it with fit_one_cycle and fine_tune).
RULES = {"steepest": "steepest fall of the smoothed loss",
         "valley": "fastai's valley: half-way down the longest descent of the smoothed loss"}


@dataclass
class LearningRateFinder:
    """The loss as the learning rate grows exponentially over a few hundred steps. A good learning rate lies where
    the loss falls fastest — well before it blows up."""

    table: pa.Table          # step, learning_rate, loss, smoothed_loss
    suggestion: float        # the learning rate for the options' schedule: `rule`'s
    rule: str = "steepest"   # which suggestion it is (RULES): "steepest" for schedule "step", "valley" otherwise
    steepest: float | None = None   # the learning rate of the steepest fall of the smoothed loss
    valley: float | None = None     # fastai's valley suggestion

    def __repr__(self) -> str:
        return (f"imagesasdata learning-rate finder: {self.table.num_rows} steps from "
                f"{self.table['learning_rate'][0].as_py():.1e} to {self.table['learning_rate'][-1].as_py():.1e}; "
                f"suggested learning rate {self.suggestion:.1e} ({RULES[self.rule]})")


@dataclass
class ExponentialRateSchedule:
    """The finder's callback: the rate of step k is start_lr × (end_lr / start_lr)^(k / (num_steps − 1)); stops
    when the debiased smoothed loss exceeds 4× its minimum, the loss is not finite, or num_steps are done."""

    start_lr: float
    end_lr: float
    num_steps: int
    rows: list = field(default_factory=list)
    smoothed: float = 0.0
    best: float = math.inf

    def rate(self, step: int) -> float:
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / (self.num_steps - 1))

    def before_batch(self, trainer, step: int) -> None:
        # With discriminative rates each group keeps its share (lr_scale): the rate recorded is the last layer's.
        for group in trainer.optimizer.param_groups:
            group["lr"] = self.rate(step) * group.get("lr_scale", 1.0)

    def after_batch(self, trainer, step: int, loss: float) -> None:
        self.smoothed = 0.98 * self.smoothed + 0.02 * loss
        debiased = self.smoothed / (1 - 0.98 ** step)
        self.rows.append({"step": step, "learning_rate": self.rate(step - 1), "loss": loss, "smoothed_loss": debiased})
        self.best = min(self.best, debiased)
        if not math.isfinite(loss) or debiased > 4 * self.best or step >= self.num_steps:
            raise StopTraining


def lr_find(data, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100, label=None, path=None,
            **options) -> LearningRateFinder:
    """Train briefly with a learning rate rising from start_lr to end_lr; stop when the loss explodes.

    Uses the same data, backbone and options as finetune() (nothing is written to disk), including the recipe's:
    lr_find(data) runs the default recipe's ("fast") network and parameter groups. Returns the curve and a
    suggested learning rate for the options' schedule — the steepest fall of the loss for the book's StepLR, fastai's
    valley for one_cycle and warmup_cosine, whose learning_rate is a peak — to pass as learning_rate= to finetune()
    with the same options; in R, autoplot() draws it. Raises ImagesAsDataError for bad rates or steps.
    """
    from .trainer import prepare_trainer

    if not 0 < start_lr < end_lr or not math.isfinite(end_lr):
        raise ImagesAsDataError(f"start_lr={start_lr} and end_lr={end_lr}: need 0 < start_lr < end_lr (finite)",
                                what="option", option="start_lr", value=start_lr)
    if num_steps < 10:
        raise ImagesAsDataError(f"num_steps={num_steps}: use at least 10 steps",
                                what="option", option="num_steps", value=num_steps)
    config = TrainConfig.from_options(**options)
    schedule = ExponentialRateSchedule(start_lr, end_lr, int(num_steps))
    with tempfile.TemporaryDirectory(prefix="imagesasdata-lr-find-") as scratch:
        trainer = prepare_trainer(data, config, Path(scratch), label=label, path=path, write=False)
        epoch = 0
        try:
            while True:
                epoch += 1
                trainer.train_pass(epoch, callbacks=[schedule])
        except StopTraining:
            pass
    rows = schedule.rows
    table = pa.Table.from_pylist(rows)
    losses = np.array([r["smoothed_loss"] for r in rows])
    rates = np.array([r["learning_rate"] for r in rows])
    if len(rows) >= 3:
        slopes = np.gradient(losses, np.log10(rates))
        steepest = float(rates[int(np.argmin(slopes[: max(2, int(len(slopes) * 0.9))]))])
    else:
        steepest = float(rates[0])
    valley = valley_rate(rates, losses, schedule.num_steps)
    rule = "steepest" if config.schedule == "step" else "valley"
    return LearningRateFinder(table, steepest if rule == "steepest" else valley, rule, steepest, valley)


def valley_rate(rates, losses, planned_steps: int) -> float:
    """fastai's valley suggestion (fastai.callback.schedule: lr_find's slice, then valley()): leaving out the first
    tenth of the planned steps and the last five points, the longest run of falling loss (longest decreasing
    subsequence), and the rate half-way down it (fastai's arithmetic: a third of its length plus a sixth). Returns
    the rate (the first one when there are too few points)."""
    rates, losses = list(rates), list(losses)
    start, stop = planned_steps // 10, len(losses) - 5
    if stop - start < 3:
        return float(rates[0])
    rates, losses = rates[start:stop], losses[start:stop]
    n = len(losses)
    lengths = [1] * n
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[max_end] < lengths[i]:
                max_end = i
                max_start = max_end - lengths[max_end]
    sections = (max_end - max_start) / 3
    return float(rates[max_start + int(sections) + int(sections / 2)])
