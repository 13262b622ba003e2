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


@dataclass
class LearningRateFinder:
    """The loss as the learning rate grows exponentially over a few hundred steps. A good learning rate lies where
    the loss falls fastest — well before it blows up."""

    table: pa.Table          # step, learning_rate, loss, smoothed_loss
    suggestion: float        # the learning rate of the steepest fall of the smoothed loss

    def __repr__(self) -> str:
        return (f"imagesasdata learning-rate finder: {self.table.num_rows} steps from "
                f"{self.table['learning_rate'][0].as_py():.1e} to {self.table['learning_rate'][-1].as_py():.1e}; "
                f"suggested learning rate {self.suggestion:.1e} (steepest fall of the loss)")


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
        for group in trainer.optimizer.param_groups:
            group["lr"] = self.rate(step)

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

    Uses the same data, backbone and options as finetune() (nothing is written to disk). Returns the curve and a
    suggested learning rate; in R, autoplot() draws it.
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
        suggestion = float(rates[int(np.argmin(slopes[: max(2, int(len(slopes) * 0.9))]))])
    else:
        suggestion = float(rates[0])
    return LearningRateFinder(table, suggestion)
