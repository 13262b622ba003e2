"""Fine-tuning: the book's training loop (SGD, StepLR, cross-entropy, best epoch on validation), made
reproducible, resumable, crash-consistent and fast. Tensors stay inside the train and model layers.

`finetune()` (finetuning.py) is the one-line entry point; `Trainer` is the loop, usable on its own. Every pass over
the training images is `Trainer.train_pass`; head-first training is a phase of it and early stopping a callback of
`fit` (callbacks.py).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn as nn

from .. import runs
from ..infer.finished import held_out_results
from ..infer.run import Run
from ..model.backbones import Backbone, backbone_frozen, create_backbone, parameter_blocks, set_train_mode
from ..data.cache import DecodedImages, DecodeOnRead
from .callbacks import (EarlyStopping, HeadFirst, Phase, StopTraining, TrainingDiverged,  # noqa: F401 (their home)
                        epoch_order, make_optimizer)
from .config import TrainConfig, selection_score
from .features import HeadFeatures, flip_decisions, head_is_final, shared_features
from .schedules import (LearningRateSchedule, first_settled_epoch, make_scheduler, per_step, progressive_start,
                        training_sizes)
from ..data.table import check_labeled, choose_positive_class, image_table, order_classes
from ..model.devices import autocast, resolve_channels_last, resolve_device, resolve_precision
from ..errors import ImagesAsDataError, listing, setting
from ..io.faults import crash_point
from ..model.inference import forward_rows
from ..data.splits import choose_test_fraction, split_table
from ..data.transforms import Preprocessing, channel_statistics, crops_whole_image, normalize_batch, train_view

def prepare_trainer(data, config: TrainConfig, out: Path, *, label=None, path=None, images=None,
                    write: bool = True, resume: bool = False) -> "Trainer":
    """Everything before the first epoch: read and check the labels, split, build the backbone, decode the images
    once, and (unless write=False) start the run directory — when resuming, only after checking that the images,
    labels and splits are those the run was started with. Shared by finetune() and lr_find()."""
    table = image_table(data, label=label, path=path)
    classes = order_classes(check_labeled(table), config.class_order)
    positive = choose_positive_class(classes, config.positive_class)
    test_fraction, no_test = choose_test_fraction(table, config.test_fraction, config.val_fraction, config.balance)
    table = split_table(table, val_fraction=config.val_fraction, test_fraction=test_fraction,
                        seed=config.seed, balance=config.balance, group=config.group)
    torch.manual_seed(config.seed)  # the new last layer's N(0, 0.01) draw
    backbone = build_backbone(config, len(classes))
    prep = preprocessing_for(config, backbone)
    images = decoded_for(images, prep, table, config)
    skipped = skipped_table(table, images.errors)
    rows = rows_by_split(table, images, classes)
    if config.normalize == "train":
        prep.mean, prep.std = channel_statistics(images[r] for r in rows["train"])
    trainer = Trainer(backbone, config, prep, images, table, rows, classes, positive, out)
    trainer.test_split = {"fraction": test_fraction, "images": len(rows["test"]), "why_none": no_test}
    if no_test and write and config.test_fraction is None:
        trainer._say(f"no test split: {no_test}. The validation metrics chose the kept epoch, so they are "
                     "optimistic.")
    if write:
        if resume:
            runs.check_same_training_data(out, table, images.hashes, classes)
        runs.write_started(out, trainer.describe(), table, images.hashes, skipped)
    return trainer


def build_backbone(config: TrainConfig, num_classes: int) -> Backbone:
    """The config's network with a fresh head. When the recipe chose the architecture and its ImageNet weights
    cannot be had (recipe="book" offline), the error says so and how to run the recipe on the offline backbone."""
    try:
        return create_backbone(config.architecture, config.weights, num_classes, config.dropout, config.freeze,
                               progress=config.progress_bars, head_init=config.head_init)
    except ImagesAsDataError as error:
        if "architecture" not in getattr(config, "recipe_chose", ()) or config.weights != "imagenet":
            raise
        raise ImagesAsDataError(
            f"{setting('recipe', config.recipe)} fine-tunes {config.architecture} from ImageNet weights, as the book's Listing "
            f"1 does, and they could not be loaded: {error}. To run the book's recipe on the offline backbone "
            "instead, pass architecture='efficientnet_lite0' (model.json then records the override)",
            what="option", option="recipe", value=config.recipe
        ) from None


def recipe_record(config: TrainConfig) -> dict:
    """What model.json says about the recipe: its name, the options it chose, and those given instead of its own."""
    from .config import RECIPES

    chose = getattr(config, "recipe_chose", list(RECIPES[config.recipe]))
    options = RECIPES[config.recipe]
    # In the recipe's order; then what it chose outside its table (patience on a CPU: config.CPU_PATIENCE).
    return {"name": config.recipe,
            "chose": {name: getattr(config, name) for name in [*options, *chose] if name in chose},
            "overridden": {name: {"recipe": value, "used": getattr(config, name)}
                           for name, value in options.items() if name not in chose and getattr(config, name) != value}}


def decoded_for(shared: dict | None, prep: Preprocessing, table: pa.Table, config: TrainConfig):
    """Decoded images for this run, taken from (and added to) `shared`, a dict that runs of a grid pass along:
    images are decoded once per set of files and deterministic preprocessing."""
    paths = table["path"].to_pylist()
    # Randomly cropped training images are also kept whole (Listing 1 crops the whole picture; transforms.py).
    crop_rows = tuple(i for i, s in enumerate(table["split"].to_pylist()) if s == "train") \
        if crops_whole_image(prep) else ()
    key = decode_key(prep, config.cache, paths, crop_rows)
    if shared is None:
        return decode_images(paths, prep, config, crop_rows)
    if key not in shared:
        shared[key] = decode_images(paths, prep, config, crop_rows)
    return shared[key]


def decode_key(prep: Preprocessing, cache: str, paths, crop_rows) -> tuple:
    """Return what decides the decoded images (the deterministic preprocessing: resize mode, size, resampling filter,
    crop sources) with the cache mode and the files: runs of a grid share decoded images only when it is equal."""
    return (prep.resize, prep.resize_size, prep.interpolation, cache, tuple(paths), prep.crop_source_size,
            tuple(crop_rows))


def preprocessing_for(config: TrainConfig, backbone: Backbone) -> Preprocessing:
    """The Preprocessing a config asks for, with the backbone's own input size and statistics where unset."""
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, NORMALIZE_CHOICES

    if config.normalize not in NORMALIZE_CHOICES:
        raise ImagesAsDataError(f"{setting('normalize', config.normalize)}: choose one of {', '.join(NORMALIZE_CHOICES)}",
                                what="option", option="normalize", value=config.normalize)
    mean, std = (backbone.mean, backbone.std) if config.normalize == "backbone" else (IMAGENET_MEAN, IMAGENET_STD)
    return Preprocessing(image_size=config.image_size or backbone.input_size, resize=config.resize,
                         resize_size=config.resize_size, normalize=config.normalize, mean=mean, std=std,
                         augment_crop=config.augment_crop, augment_flip=config.augment_flip)


def decode_images(paths, prep: Preprocessing, config: TrainConfig, crop_rows=()):
    """Decode once into memory or onto disk (cache="auto" picks by size), or not at all (cache="none")."""
    kwargs = dict(workers=config.num_workers, progress=config.progress_bars, hashes=True, crop_rows=crop_rows)
    if config.cache == "none":
        return DecodeOnRead(paths, prep, **kwargs)
    limit = {"memory": float("inf"), "disk": 0.0}.get(config.cache)
    return DecodedImages(paths, prep, **({"memory_limit_gb": limit} if limit is not None else {}), **kwargs)


def skipped_table(table: pa.Table, errors: dict) -> pa.Table:
    """The images left out because they could not be read, with the reason; also printed as a warning."""
    rows = sorted(errors)
    skipped = pa.table({
        "image_id": pa.array([table["image_id"][r].as_py() for r in rows], pa.string()),
        "path": pa.array([table["path"][r].as_py() for r in rows], pa.string()),
        "split": pa.array([table["split"][r].as_py() for r in rows], pa.string()),
        "error": pa.array([errors[r] for r in rows], pa.string()),
    })
    if rows:
        warnings.warn(
            f"skipped {len(rows)} unreadable image(s): "
            + listing([f"{table['path'][r].as_py()} ({errors[r]})" for r in rows], 5),
            stacklevel=3,
        )
    return skipped


def rows_by_split(table: pa.Table, images, classes) -> dict:
    """Usable row numbers per split; every class must keep at least one readable training and validation image."""
    splits = table["split"].to_pylist()
    labels = table["label"].to_pylist()
    rows = {name: images.usable([i for i, s in enumerate(splits) if s == name]) for name in ("train", "val", "test")}
    for name in ("train", "val"):
        present = {labels[r] for r in rows[name]}
        lacking = [c for c in classes if c not in present]
        if lacking:
            raise ImagesAsDataError(
                f"the {name} split has no readable images of class(es) {listing(lacking)}; label more images of "
                "them (or fix the unreadable ones listed above)"
            )
    return rows


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_f1: float
    learning_rate: float
    train_seconds: float
    val_seconds: float


@dataclass
class TrainingState:
    """What a resumed run needs besides the weights: where it was and what it had seen."""

    epoch: int = 0                       # epochs finished
    best_epoch: int = 0
    best_score: tuple = (-float("inf"),)
    epochs_without_improvement: int = 0
    best_val_loss: float = float("inf")
    history: list = field(default_factory=list)
    stopped_early: bool = False


class Trainer:
    """The training loop. Data order and augmentation depend only on (seed, epoch, image), so a resumed run
    and a cached run follow exactly the path an uninterrupted, uncached one would."""

    def __init__(self, backbone: Backbone, config: TrainConfig, prep: Preprocessing, images, table: pa.Table,
                 rows: dict, classes: list, positive_class, out: Path):
        global trainers_built
        refuse_training_if_forbidden()
        trainers_built += 1
        self.backbone = backbone
        self.model = backbone.model
        self.config = config
        self.prep = prep
        self.images = images
        self.table = table
        self.rows = rows
        self.classes = classes
        self.positive_class = positive_class
        self.out = Path(out)
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.channels_last = resolve_channels_last(config.channels_last, self.device)
        index = {c: i for i, c in enumerate(classes)}
        self.targets = np.array([index.get(v, -1) for v in table["label"].to_pylist()], dtype=np.int64)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Discriminative learning rates: a parameter group per block, by depth (schedules.parameter_groups).
        blocks = parameter_blocks(backbone) if config.lr_decay_per_block not in (None, 1.0) else None
        self.optimizer = make_optimizer(self.model, config, blocks=blocks)
        self.steps_per_epoch = math.ceil(len(rows["train"]) / config.batch_size)
        self.scheduler = make_scheduler(self.optimizer, config, self.steps_per_epoch)
        # The training images' side per epoch (progressive resizing; all at image_size otherwise).
        self.train_sizes = training_sizes(config.epochs, progressive_start(config, prep.image_size), prep.image_size,
                                          config.full_size_epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.loss_function = nn.CrossEntropyLoss()
        self.features = self._head_features()
        self.steps = 0   # optimizer steps taken by this trainer (callbacks see them)
        self.fine_tuning = self._fine_tuning_phase()

    def _fine_tuning_phase(self) -> Phase:
        """The phase of fine-tuning's epochs: the whole network (or, on the frozen-backbone path, its head on
        features computed once), the run's optimizer, the epoch's order, dropout reseeded per epoch."""
        network = self.model if self.features is None else self.model.get_submodule(self.backbone.head[0])
        return Phase(name="epoch", epochs=self.config.epochs, optimizer=self.optimizer, network=network,
                     order=lambda epoch: epoch_order(self.rows["train"], self.config.seed, epoch),
                     batch=self.train_batch, on_features=self.features is not None, reseed=True,
                     train_mode=lambda: set_train_mode(self.model, self.backbone.head))

    def _head_features(self):
        """The frozen-backbone fast path (features.py), when this run qualifies; otherwise None."""
        head = self.backbone.head
        if self.config.feature_cache == "off" or self.prep.augment_crop or len(head) != 1 \
                or not backbone_frozen(self.model, head) or not hasattr(self.images, "array"):
            return None
        head_module = self.model.get_submodule(head[0])
        runtime = (self.device, self.precision, self.channels_last)
        if not head_is_final(self.model, head_module, self.images, self.rows["train"], self.prep, *runtime):
            return None
        rows = sorted(r for split_rows in self.rows.values() for r in split_rows)
        key = (id(self.images), self.backbone.architecture, self.backbone.weights, repr(self.prep.to_dict()),
               tuple(rows), *map(str, runtime))
        return shared_features(key, lambda: HeadFeatures(
            self.model, head_module, self.images, rows, self.prep, *runtime, flips=self.prep.augment_flip,
            progress=self.config.progress_bars))

    def training_size(self, epoch: int) -> int:
        """The side in pixels of fine-tuning's training images in `epoch` (image_size outside the run's epochs,
        as in the learning-rate finder's extra passes)."""
        return self.train_sizes[epoch - 1] if 1 <= epoch <= len(self.train_sizes) else self.prep.image_size

    def describe(self) -> dict:
        """model.json's content (runs.py adds the outcome when training ends)."""
        description = runs.describe_model(self.backbone, self.config, self.prep, self.classes, self.positive_class,
                                          device=str(self.device), precision=self.precision,
                                          channels_last=self.channels_last)
        description["recipe"] = recipe_record(self.config)
        # What the headline metrics can be trusted for: val chose the epoch (optimistic); test, if any, did not.
        description["test_split"] = getattr(self, "test_split", None)
        return description

    # ------------------------------------------------------------------------------------------ the loop

    def callbacks(self) -> list:
        """fit()'s callbacks from the options: the head first (head_epochs), early stopping (patience)."""
        found = []
        if self.config.head_epochs:
            found.append(HeadFirst(self.config.head_epochs))
        if self.config.patience:
            found.append(EarlyStopping(self.config.patience, start=first_settled_epoch(self.config, self.train_sizes)))
        return found

    def fit(self, resume: bool = False, callbacks=None) -> Run:
        """Train epoch after epoch (each `run_epoch`, a pass of `train_pass`), keep the best epoch's weights by the
        one selection rule, commit a checkpoint per epoch, and write the finished run. callbacks: see callbacks.py
        (default: those the options ask for, `callbacks()`). Returns the Run; raises ImagesAsDataError when training
        diverges (the run is then marked failed). Ctrl-C keeps the best model so far."""
        callbacks = self.callbacks() if callbacks is None else list(callbacks)
        state = TrainingState()
        best_weights = None
        if resume and runs.has_checkpoint(self.out):
            state, best_weights = self._restore()
        try:
            if state.epoch == 0:
                best_weights = clone_weights(self.model)   # what a failure before the first epoch keeps
                for callback in callbacks:
                    getattr(callback, "before_fit", lambda trainer: None)(self)
                best_weights = clone_weights(self.model)   # epoch 0: the starting weights (with the head trained)
            for epoch in range(state.epoch + 1, self.config.epochs + 1):
                if state.stopped_early:
                    break   # committed with the epoch that stopped it: a resumed run stops where it did
                result = self.run_epoch(epoch)
                crash_point(f"epoch {epoch} trained")
                state.history += history_rows(result)
                state.epoch = epoch
                score = self.score(result)
                if score > state.best_score:
                    state.best_score, state.best_epoch = score, epoch
                    best_weights = clone_weights(self.model)  # by value: later steps must not change it
                for callback in callbacks:
                    getattr(callback, "after_epoch", lambda trainer, state, result: None)(self, state, result)
                self._checkpoint(state)   # the epoch's commit point
        except KeyboardInterrupt:
            self._say(f"interrupted after epoch {state.epoch}; keeping the best model so far (epoch {state.best_epoch}) "
                      f"in {self.out} — resume with resume=True")
            self._finish(best_weights, state, status="interrupted")
            raise
        except TrainingDiverged as diverged:
            message = (f"{diverged} The run in {self.out} is marked failed; it keeps the best epoch so far "
                       f"({state.best_epoch or 'none: the starting weights'}) and the checkpoint of epoch {state.epoch}.")
            self._finish(best_weights, state, status="failed", error=message)
            raise ImagesAsDataError(message) from None
        return self._finish(best_weights, state, status="complete")

    def score(self, result: EpochResult) -> tuple:
        return selection_score(self.config.select_on, result.val_accuracy, result.val_f1, result.val_loss)

    def run_epoch(self, epoch: int) -> EpochResult:
        """One epoch of the book's loop: a pass over the training images, the scheduler's step (after the pass, or
        after every batch for the per-step schedules), validation. The recorded learning rate is the new last
        layer's (the last parameter group) at the epoch's start."""
        started = time.perf_counter()
        learning_rate = self.optimizer.param_groups[-1]["lr"]
        stepping = per_step(self.config)
        train_loss, train_accuracy = self.train_pass(epoch, callbacks=[LearningRateSchedule(self.scheduler)] if stepping else ())
        if not stepping:
            self.scheduler.step()
        if not weights_are_finite(self.model):
            raise TrainingDiverged(epoch, "the weights became infinite or NaN", self.config.learning_rate)
        trained = time.perf_counter()
        val = self.validate()
        if not math.isfinite(val["loss"]):
            raise TrainingDiverged(epoch, f"the validation loss became {val['loss']}", self.config.learning_rate)
        result = EpochResult(epoch, train_loss, train_accuracy, val["loss"], val["accuracy"], val["f1"],
                             learning_rate, trained - started, time.perf_counter() - trained)
        size = self.training_size(epoch)
        self._say(f"epoch {epoch}/{self.config.epochs}  train loss {result.train_loss:.4f} acc {result.train_accuracy:.3f}"
                  f"  |  val loss {result.val_loss:.4f} acc {result.val_accuracy:.3f}  "
                  f"({result.train_seconds + result.val_seconds:.1f}s"
                  + (f"; trained at {size} px)" if size != self.prep.image_size and self.features is None else ")"))
        return result

    def train_pass(self, epoch: int, callbacks=(), phase: Phase | None = None) -> tuple[float, float]:
        """One pass over the training images in the epoch's order: (mean loss, accuracy). The one training loop:
        fine-tuning's epochs, the head's epochs (phase=, callbacks.HeadFirst) and the learning-rate finder's steps.

        callbacks: objects with before_batch(trainer, step) and/or after_batch(trainer, step, loss) — fastai's
        callback idea on this one loop (the learning-rate finder sets the rate before each step and stops the pass
        by raising StopTraining). Steps are counted across passes.
        phase: what the pass trains and on what (callbacks.Phase); default fine-tuning's.
        Raises TrainingDiverged when a batch's loss is not a finite number.
        """
        from tqdm.auto import tqdm

        phase = phase or self.fine_tuning
        if phase.reseed:
            torch.manual_seed(self.config.seed * 100_003 + epoch)  # dropout masks
        phase.train_mode()
        order = phase.order(epoch)
        total_loss, correct, seen = 0.0, 0, 0
        batches = [order[i:i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]
        bar = tqdm(batches, desc=f"{phase.name} {epoch}/{phase.epochs}", unit="batch", leave=False,
                   disable=not self.config.progress_bars)
        # On a GPU, or when images are decoded every time (cache="none"), the next batch is prepared on a thread
        # while this one trains. On a CPU with cached images the network already uses every core, and a second
        # busy thread slows it more than augmentation costs (measured: 1.45× the floor at batch 4, against 1.1×).
        # Each image's augmentation is seeded by (seed, epoch, image), so the order of work changes nothing.
        overlap = self.device.type != "cpu" or isinstance(self.images, DecodeOnRead)
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            def prepare(rows):
                if overlap:
                    return prefetch.submit(phase.batch, rows, epoch)
                return _Ready(phase.batch(rows, epoch))

            upcoming = prepare(batches[0])
            for index, batch_rows in enumerate(bar):
                for callback in callbacks:
                    getattr(callback, "before_batch", lambda *a: None)(self, self.steps)
                inputs = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = prepare(batches[index + 1])
                targets = torch.from_numpy(self.targets[batch_rows]).to(self.device)
                loss, logits = self.step(inputs, targets, phase)
                self.steps += 1
                for callback in callbacks:
                    getattr(callback, "after_batch", lambda *a: None)(self, self.steps, loss)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"{phase.name} {epoch}", f"in batch {index + 1} of {len(batches)} the "
                                           f"training loss became {loss}", self.config.learning_rate)
                if index == 0:
                    crash_point(f"{phase.name} {epoch}: first batch")
                total_loss += loss * len(batch_rows)
                correct += self.batch_correct(logits, targets)
                seen += len(batch_rows)
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        return total_loss / seen, correct / seen

    def batch_correct(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """How many images of a batch were classified right (multi-label runs count the share of labels)."""
        return int((logits.argmax(1) == targets).sum())

    def train_batch(self, batch_rows, epoch: int) -> torch.Tensor:
        """Augmented uint8 views of cached base images, seeded per (seed, epoch, image), at the epoch's training size
        (progressive resizing) — or, on the frozen-backbone path, their features with the same flips (full size)."""
        if self.features is not None:
            flips = flip_decisions(batch_rows, self.config.seed, epoch) if self.prep.augment_flip else None
            return self.features.batch(batch_rows, flips).to(self.device)
        size = self.training_size(epoch)
        views = [train_view(self.images.train_image(r), self.prep,
                            np.random.default_rng([self.config.seed, epoch, int(r)]), size) for r in batch_rows]
        return torch.stack(views)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, phase: Phase | None = None):
        """One optimizer step of the phase's network on a batch (under autocast, through the gradient scaler):
        (the batch's loss, its logits)."""
        phase = phase or self.fine_tuning
        if not phase.on_features:
            inputs = normalize_batch(inputs.to(self.device, non_blocking=True), self.prep.mean, self.prep.std)
            if self.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
        network = phase.network
        with autocast(self.device, self.precision):
            output = network(inputs)
            if isinstance(output, tuple):  # inception_v3 in training: main and auxiliary logits, as in the book
                logits, aux = output
                loss = self.loss_function(logits, targets) + 0.4 * self.loss_function(aux, targets)
            else:
                logits = output
                loss = self.loss_function(logits, targets)
        phase.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(phase.optimizer)
        self.scaler.update()
        return float(loss.detach()), logits.detach().float()

    def validate(self) -> dict:
        from ..measure.metrics import metrics_from_counts, confusion_counts

        rows = self.rows["val"]
        logits = self.logits(rows)
        targets = torch.from_numpy(self.targets[rows])
        loss = float(nn.functional.cross_entropy(logits, targets))
        predicted = logits.argmax(1).numpy()
        counts = confusion_counts([self.classes[t] for t in targets.numpy()], [self.classes[p] for p in predicted], self.classes)
        metrics = metrics_from_counts(counts, self.classes, self.positive_class).to_pylist()
        f1 = next(m["estimate"] for m in metrics if m["metric"] == "f1" and m["estimator"] in ("binary", "macro"))
        return {"loss": loss, "accuracy": float((predicted == targets.numpy()).mean()), "f1": f1}

    def logits(self, rows) -> torch.Tensor:
        if self.features is not None:
            head = self.model.get_submodule(self.backbone.head[0])
            head.eval()
            with torch.no_grad(), autocast(self.device, self.precision):
                return head(self.features.batch(rows).to(self.device)).float().cpu()
        return forward_rows(self.model, self.images, rows, self.prep, self.device, self.precision, self.channels_last,
                            batch_size=max(32, self.config.batch_size))

    # ------------------------------------------------------------------------------------------ saving

    def _finish(self, best_weights: dict, state: TrainingState, status: str, error: str | None = None) -> Run:
        self.model.load_state_dict(best_weights)
        results = {split: (rows, self.logits(rows)) for split, rows in self.rows.items() if rows and split != "train"}
        self._write_finished(self.held_out_results(results), best_weights, state, status, error)
        return Run(self.out)

    def held_out_results(self, results: dict):
        """The kept weights' predictions, metrics and calibration on the held-out splits (infer/finished.py)."""
        return held_out_results(runs.read_description(self.out), self.table, self.targets, self.classes,
                                self.positive_class, results)

    def _write_finished(self, evaluated, best_weights: dict, state: TrainingState, status: str,
                        error: str | None) -> None:
        runs.write_finished(self.out, tables=evaluated.tables, outcome=evaluated.outcome, history=state.history,
                            best_epoch=state.best_epoch, epochs_run=state.epoch, stopped_early=state.stopped_early,
                            status=status, weights=best_weights, error=error)

    def _checkpoint(self, state: TrainingState) -> None:
        runs.write_checkpoint(self.out, state.epoch, clone_weights(self.model), self.optimizer, self.scheduler,
                              {**state.__dict__, "best_score": list(state.best_score)}, self.config, state.best_epoch)

    def _restore(self):
        # finetune() compared the options with the checkpoint's before anything was written (check_resume_options)
        weights, optimizer_state, scheduler_state, saved, best_weights, _ = runs.read_checkpoint(self.out)
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(scheduler_state)
        saved["best_score"] = tuple(saved["best_score"])
        state = TrainingState(**saved)
        self._say(f"resuming {self.out} after epoch {state.epoch} (best so far: epoch {state.best_epoch})")
        return state, best_weights

    def _say(self, message: str) -> None:
        if self.config.progress_lines:
            import sys

            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()   # a line per epoch must show as it happens, also when stdout is a pipe or a log


# The test suites' guard. tests/conftest.py and rpkg/tests/testthat/helper-engine.R set this variable to "forbidden"
# for every test that is not marked as training (pytest marker `trains`; testthat `trains()`), so that a test that
# trains without saying so fails at once instead of escaping `make test-other-cpus`, which reruns the marked ones
# under other instruction sets. Outside the test suites it is unset and costs one lookup per run.
TRAINING_GUARD = "IMAGESASDATA_TRAINING"
trainers_built = 0   # Trainers this process built: tests/conftest.py notes which fixtures train


class TrainingForbidden(RuntimeError):
    """Training was started where the test suite forbids it (not an ImagesAsDataError: a test that expects one of
    those must not swallow this)."""


def refuse_training_if_forbidden() -> None:
    """Raise TrainingForbidden when IMAGESASDATA_TRAINING=forbidden (set by the test suites, see TRAINING_GUARD)."""
    if os.environ.get(TRAINING_GUARD) == "forbidden":
        raise TrainingForbidden(
            "this test trains a network but is not marked as training: add @pytest.mark.trains (Python) or start "
            "its test_that() block with trains() (R), so that `make test-other-cpus` reruns it under other "
            f"instruction sets ({TRAINING_GUARD}=forbidden, set by the test suite; DEVELOPERS.md, Tests)")


def weights_are_finite(model: nn.Module) -> bool:
    """True when no parameter or buffer (batch-norm statistics included) holds NaN or infinity."""
    with torch.no_grad():
        return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class _Ready:
    """A batch prepared in line, with the interface of a Future."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def clone_weights(model: nn.Module) -> dict:
    """A copy of the state dict by value, on the CPU (the book's reference code kept a live reference instead)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def history_rows(result: EpochResult) -> list[dict]:
    return [
        {"epoch": result.epoch, "split": "train", "loss": result.train_loss, "accuracy": result.train_accuracy,
         "learning_rate": result.learning_rate, "seconds": result.train_seconds},
        {"epoch": result.epoch, "split": "val", "loss": result.val_loss, "accuracy": result.val_accuracy,
         "learning_rate": result.learning_rate, "seconds": result.val_seconds},
    ]
