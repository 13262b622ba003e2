"""Every option of a fine-tuning run, with the book's defaults, validated once and saved in model.json."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import ImagesAsDataError, option_error, unknown_option, warn
from ..schema import literal, selection_score, setting  # noqa: F401  (the one selection rule lives in schema, shared with R)
from ..data.transforms import MIN_IMAGE_SIZE, NORMALIZE_CHOICES, RESIZE_MODES

# Named recipes: defaults for the options they name, which options given explicitly override. Every other option
# defaults to the book's value (SGD 0.001 / 0.9, batch 4, StepLR 7 / 0.1, 25 epochs, RandomResizedCrop + flip,
# Resize 256 + CenterCrop 224, a new last layer drawn from N(0, 0.01): BOOK_DEFAULTS and the fields below),
# whichever recipe is named.
#   fast        the engine's default (issue 28; benchmarks/time_to_accuracy.py): EfficientNet-Lite0 with ImageNet
#               statistics, its stem and first four stages frozen (blocks.3: they cost most of a CPU's backward
#               pass and, measured, freezing them made the politicians and ORL models both faster and more
#               accurate); 2 epochs of the new last layer at 0.01 on features computed once; then a one-cycle
#               schedule peaking at 0.004 (a quarter of the steps rising), earlier blocks at 0.7× the rate of the
#               block above them, progressive resizing from 128 px (the last half of the epochs at full size), 8
#               epochs; when no epoch count is given and the run is on a CPU, it also stops once the validation loss
#               has not improved for 2 epochs (CPU_PATIENCE). Measured on a 2-core CPU (3 seeds): the book loop's
#               best validation accuracy in 0.22 (politicians) and 0.11 (ORL) of the loop's time, and more accurate
#               than the loop and than head-first; blocks.3 was chosen among blocks.2/3/4 on those sets. Networks
#               other than the EfficientNet-Lites, and random weights, freeze nothing (FREEZE_MEASURED_ON).
#   head-first  the default before: the offline EfficientNet-Lite0, ImageNet statistics, and 10 epochs of the new
#               last layer alone on features computed once before fine-tuning everything with the book's StepLR —
#               measured more accurate than the book's recipe at equal epochs on every set of
#               benchmarks/accuracy.py (benchmarks/README.md)
#   book        Listing 1: ResNet-18 with torchvision's ImageNet weights (downloaded once into torch's hub cache; where
#               they cannot be had the run stops and says how to get them — it never swaps the network silently),
#               ImageNet statistics, the whole network fine-tuned from the first step
RECIPES = {
    "head-first": {"architecture": "efficientnet_lite0", "normalize": "imagenet", "head_epochs": 10},
    "book": {"architecture": "resnet18", "normalize": "imagenet", "head_epochs": 0},
    "fast": {"architecture": "efficientnet_lite0", "normalize": "imagenet", "head_epochs": 2,
             "head_learning_rate": 0.01, "schedule": "one_cycle", "learning_rate": 0.004, "lr_decay_per_block": 0.7,
             "progressive_resize": 128, "epochs": 8, "freeze": "blocks.3"},
}
DEFAULT_RECIPE = "fast"
# The network families (name prefixes) a recipe's frozen stages were measured on, in timm's stage names: any other
# network, and random weights, freeze nothing under a recipe.
FREEZE_MEASURED_ON = ("efficientnet_lite", "tf_efficientnet_lite")
# Options a recipe may leave unnamed that still need a value: the book's (Listing 1).
BOOK_DEFAULTS = {"epochs": 25, "learning_rate": 0.001, "schedule": "step", "freeze": "none"}
# StepLR's own options (the book's values): under another schedule they change nothing, and the run says so.
BOOK_STEP = {"step_size": 7, "gamma": 0.1}
# Early stopping by default: the patience a recipe uses when the user gives no epoch count and the run is on a CPU
# (device "cpu", or "auto" on a machine without a GPU), where every epoch costs minutes.
CPU_PATIENCE = {"fast": 2}
# How the learning rate moves: "step" multiplies it by gamma every step_size epochs (the book's StepLR);
# "one_cycle" rises from a 25th of learning_rate to learning_rate over the first warmup_fraction of the optimizer
# steps, then falls along a cosine to nearly zero (torch's OneCycleLR; fastai's fit_one_cycle); "warmup_cosine"
# rises linearly from a 25th over warmup_fraction of the steps, then follows a cosine down to zero (torch's
# LinearLR then CosineAnnealingLR, in SequentialLR). The last two change the rate after every step (schedules.py).
SCHEDULES = ("step", "one_cycle", "warmup_cosine")
# warmup_fraction when not given: fastai's fit_one_cycle (pct_start=0.25); a short warm-up for the cosine.
WARMUP_FRACTION = {"one_cycle": 0.25, "warmup_cosine": 0.1}
# How the new last layer starts: "normal" draws its weights from N(0, 0.01) with zero bias (the book); "pytorch"
# keeps nn.Linear's own initialisation (uniform in ±1/sqrt(inputs), bias too), as PyTorch's transfer-learning
# tutorial and benchmarks/reference_loop.py do.
HEAD_INITS = ("normal", "pytorch")
OPTIMIZERS = ("sgd", "adam", "adamw")
SELECT_ON = ("accuracy", "loss", "f1")
CACHE_MODES = ("auto", "memory", "disk", "none")
# progress: True or "bars" (progress bars and a line per epoch), "epochs" (a line per epoch only: what a knitted
# document, a log file or Rscript can show), False or "none" (silent).
PROGRESS_CHOICES = ("bars", "epochs", "none")

# What each option means, in the book's words; the CLI's --help and the R documentation are built from this.
OPTION_HELP = {
    "architecture": "network to fine-tune: a torchvision name from the book's Table 4.1 (resnet18, vgg16, densenet121, "
                    "inception_v3, …), any timm model, or efficientnet_lite0 (ImageNet weights installed, works offline); "
                    "default: the recipe's (efficientnet_lite0 for fast and head-first, resnet18 for book)",
    "weights": "starting weights: 'imagenet' (pretrained; downloaded once and cached), a .safetensors file, or 'none'",
    "image_size": "side in pixels of the square the network sees (default: the architecture's own, 224; 299 for inception_v3)",
    "resize": "how an image becomes a square: squish, crop, pad, or rescale-crop (the book's Resize 256 + CenterCrop 224)",
    "resize_size": "side of the square before the final crop (default 256/224 × image_size for rescale-crop)",
    "recipe": "named defaults for the options it names: 'fast' (the default: efficientnet_lite0 with its first "
              "stages frozen, 2 epochs of the new last layer at 0.01, a one-cycle schedule peaking at 0.004, lower "
              "rates for earlier blocks, progressive resizing from 128 px, 8 epochs, and early stopping with patience 2 "
              "on a CPU when no epoch count is given; on a 2-core CPU it reached the book loop's best accuracy in a "
              "third of the loop's time or less, and ended more accurate), 'head-first' (the default before: "
              "efficientnet_lite0; 10 epochs of the new last layer alone, then everything with the book's StepLR) or "
              "'book' (Listing 1: resnet18 with ImageNet weights, everything fine-tuned from the first step)",
    "normalize": "pixel normalisation: 'backbone' (the statistics the weights were trained with), 'imagenet' (the "
                 "book's), or 'train' (mean and standard deviation of your training images); default: the recipe's",
    "augment_crop": "training augmentation: a random crop of 8–100% of the image, resized (RandomResizedCrop)",
    "augment_flip": "training augmentation: mirror half the images left-right",
    "val_fraction": "share of each class held out for validation, used to choose the epoch (the book: 0.2)",
    "test_fraction": "share of each class held out as a test set, evaluated once at the end; default: 0.1 when every "
                     "class has at least 20 images, else none (the run says why)",
    "balance": "downsample every class to the size of the smallest before splitting",
    "group": "a column of group ids (e.g. near-duplicate groups); a group never straddles two splits",
    "seed": "random seed for the split, the new layer's weights, the data order and augmentation",
    "epochs": "passes over the training images (the book's tutorial: 25; its grid: 50); default: the recipe's (8 "
              "for fast, which then also stops early on a CPU; 25 for head-first and book)",
    "batch_size": "images per gradient step (the book: 4); smaller batches give noisier but more frequent updates",
    "optimizer": "sgd (the book's), adam or adamw",
    "learning_rate": "size of each step down the loss gradient (the book: 0.001); too high diverges, too low crawls; "
                     "with a one_cycle or warmup_cosine schedule, the peak rate; default: the recipe's (0.004 for "
                     "fast; 0.001 for head-first and book)",
    "schedule": "how the learning rate moves: 'step' (the book's StepLR: times gamma every step_size epochs), "
                "'one_cycle' (up from a 25th of learning_rate, then down along a cosine to nearly zero: fastai's "
                "fit_one_cycle) or 'warmup_cosine' (a linear warm-up from a 25th, then a cosine to zero); the last "
                "two change the rate after every batch; default: the recipe's ('one_cycle' for fast; 'step' for "
                "head-first and book)",
    "warmup_fraction": "share of the optimizer steps in which the learning rate rises to its peak (one_cycle, "
                       "warmup_cosine); default 0.25 for one_cycle (fastai's), 0.1 for warmup_cosine",
    "momentum": "SGD momentum: the share of the previous step carried into the next, smoothing the path (the book: 0.9)",
    "weight_decay": "L2 penalty on the weights (0 in the book)",
    "step_size": "StepLR (schedule 'step'): every step_size epochs the learning rate is multiplied by gamma (the book: 7)",
    "gamma": "StepLR (schedule 'step'): factor applied to the learning rate every step_size epochs (the book: 0.1)",
    "lr_decay_per_block": "discriminative learning rates: each block of the network (a stage, from the input to the "
                          "new last layer) trains at this multiple of the rate of the block above it, so early "
                          "layers move least (e.g. 0.7); 1 or none: one rate for every layer (the book); default: "
                          "the recipe's (0.7 for fast; none for head-first and book)",
    "progressive_resize": "progressive resizing: the side in pixels of the training images in the first epoch; "
                          "it grows linearly (rounded down to multiples of 32) to image_size, and the last full_size_epochs run at full size "
                          "(validation is always at full size); 0 or none: off (the book); default: the recipe's "
                          "(128 for fast, off when image_size is not larger; off for head-first and book)",
    "full_size_epochs": "with progressive_resize, how many final epochs train at full size (default: half of the "
                        "epochs, rounded up)",
    "head_init": "how the new last layer starts: 'normal' (weights from N(0, 0.01), bias 0; the book) or 'pytorch' "
                 "(nn.Linear's own uniform initialisation, as PyTorch's transfer-learning tutorial)",
    "dropout": "probability of zeroing a feature before the new last layer during training (0 = none)",
    "head_epochs": "epochs of training only the new last layer, on features computed once, before the whole network "
                   "is fine-tuned (the book: 0); costs about one forward pass over the training images; default: "
                   "the recipe's (2 for fast, 10 for head-first, 0 for book; 0 when starting from random weights)",
    "head_learning_rate": "learning rate of the head epochs (constant); default: the recipe's (learning_rate; 0.01 "
                          "for fast)",
    "freeze": "'none' (fine-tune everything, the book's), 'backbone' (train only the new last layer), or a stage name "
              "such as 'layer3' (frozen up to and including it); default: the recipe's ('blocks.3' for fast on an "
              "EfficientNet-Lite: its stem and first four stages; 'none' for other networks, random weights, "
              "head-first and book)",
    "patience": "early stopping: stop after this many epochs without a lower validation loss, counted from the first "
                "epoch past a one_cycle or warmup_cosine warm-up and at full size under progressive_resize (default: "
                "the recipe's: 2 for fast on a CPU when no epoch count is given; never for head-first and book)",
    "select_on": "validation measure that picks the kept epoch: accuracy (the book's), loss or f1",
    "positive_class": "in a binary task, the class whose precision, recall and F1 are reported (default 'positive', "
                      "else the second class in sorted order; from R, the first level of a factor label)",
    "class_order": "the classes in the order of the probability columns and confusion matrices (default: sorted, "
                   "s2 before s10; from R, the levels of a factor label)",
    "device": "auto (CUDA GPU, else Apple MPS, else CPU), cpu, cuda, cuda:1, mps",
    "precision": "auto (mixed precision on a GPU, fp32 on the CPU), fp32, bf16 or fp16",
    "channels_last": "channels-last memory layout ('auto': on), faster convolutions on most hardware",
    "cache": "decoded-image cache: auto (memory, or disk when large), memory, disk, or none (decode every epoch)",
    "feature_cache": "'auto': with a frozen backbone and no random crops, compute each image's features once and "
                     "train the last layer on them (same result, far faster); 'off': run the whole network every step",
    "num_workers": "threads decoding images (default: up to 8, one per CPU core)",
    "progress": "'epochs': a line per epoch (losses, accuracies, seconds), which shows in logs, knitted documents and "
                "Rscript; on: progress bars as well; off: silent",
}


def runs_on_cpu(device) -> bool:
    """True when a run with this `device` option trains on the CPU: "cpu", or "auto" on a machine without a CUDA
    GPU or Apple's Metal backend (asks torch, so only called when a recipe's CPU default depends on it)."""
    name = str(device or "auto").lower()
    if name != "auto":
        return name == "cpu"
    from ..model.devices import resolve_device

    return resolve_device("auto").type == "cpu"


def whole_number(name: str, value) -> int:
    """`value` as an int, or an error naming the option (True, 2.5, "ten" and NaN are refused)."""
    try:
        if isinstance(value, bool) or int(value) != float(value):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise option_error(name, value, "a whole number") from None


def real_number(name: str, value) -> float:
    """`value` as a finite float, or an error naming the option (NaN and infinity are refused)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise option_error(name, value, "a number") from None
    if not math.isfinite(number):
        raise option_error(name, value, "a finite number")
    return number


@dataclass
class TrainConfig:
    architecture: str | None = None
    weights: str | None = "imagenet"
    image_size: int | None = None
    resize: str = "rescale-crop"
    resize_size: int | None = None
    recipe: str = DEFAULT_RECIPE
    normalize: str | None = None
    augment_crop: bool = True
    augment_flip: bool = True
    val_fraction: float = 0.2
    test_fraction: float | None = None
    balance: bool = False
    group: str | None = None
    seed: int = 0
    epochs: int | None = None
    batch_size: int = 4
    optimizer: str = "sgd"
    learning_rate: float | None = None
    schedule: str | None = None
    warmup_fraction: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    step_size: int = BOOK_STEP["step_size"]
    gamma: float = BOOK_STEP["gamma"]
    lr_decay_per_block: float | None = None
    progressive_resize: int | None = None
    full_size_epochs: int | None = None
    head_init: str = "normal"
    dropout: float = 0.0
    head_epochs: int | None = None
    head_learning_rate: float | None = None
    freeze: str | None = None
    patience: int | None = None
    select_on: str = "accuracy"
    positive_class: str | None = None
    class_order: list | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: object = "auto"
    cache: str = "auto"
    feature_cache: str = "auto"
    num_workers: int | None = None
    progress: bool | str = True

    # Options that change where or how fast a run goes, not what it computes: a run may resume with other values.
    RUNTIME = ("device", "precision", "channels_last", "cache", "feature_cache", "num_workers", "progress")

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise option_error("recipe", self.recipe, choices=RECIPES)
        head_epochs_given = self.head_epochs is not None
        epochs_given = self.epochs is not None
        # Which options the recipe chose (not given explicitly): model.json records them (Trainer.describe).
        self.recipe_chose = [name for name in RECIPES[self.recipe] if getattr(self, name) is None]
        for name in self.recipe_chose:
            setattr(self, name, RECIPES[self.recipe][name])
        for name, value in BOOK_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if not epochs_given and self.patience is None and self.recipe in CPU_PATIENCE and runs_on_cpu(self.device):
            # Early stopping by default on a CPU when no epoch count was given (CPU_PATIENCE); recorded as chosen.
            self.patience = CPU_PATIENCE[self.recipe]
            self.recipe_chose.append("patience")
        random_weights = self.weights in (None, "none", "None", False)
        if random_weights and not head_epochs_given:
            # Random weights have no features worth probing: the head would learn noise (measured: a ResNet-18 from
            # random weights learnt a trivial task to 0.5 in 3 epochs with head-first, 1.0 with the book's recipe).
            self.head_epochs = 0
        measured_on = str(self.architecture).removeprefix("timm/").startswith(FREEZE_MEASURED_ON)
        if "freeze" in self.recipe_chose and (random_weights or not measured_on):
            # A recipe's frozen stages are those of the network it was measured on; random weights, or another
            # network, fine-tune every layer.
            self.freeze = "none"
        unused = [setting(name, getattr(self, name)) for name, value in BOOK_STEP.items() if getattr(self, name) != value]
        if unused and self.schedule != "step":
            # The default recipe's one-cycle schedule ignores StepLR's options: say so rather than drop them silently.
            warn(f"{' and '.join(unused)}: only the book's StepLR uses {'them' if len(unused) > 1 else 'it'}, and this "
                 f"run's schedule is {literal(self.schedule)} (recipe {literal(self.recipe)}); add "
                 f"{setting('schedule', 'step')} (or {setting('recipe', 'book')}) to use StepLR", stacklevel=3)
        # Every number is checked here, before anything is read or trained: a NaN or a negative rate would
        # otherwise train to NaN weights and a run marked complete.
        for name in ("epochs", "batch_size", "step_size", "seed", "head_epochs"):
            setattr(self, name, whole_number(name, getattr(self, name)))
        self._check_schedule_options()
        for name in ("epochs", "batch_size", "step_size"):
            if getattr(self, name) < 1:
                raise option_error(name, getattr(self, name), "at least 1")
        if not 0 <= self.seed < 2**32:
            raise option_error("seed", self.seed, f"a whole number from 0 to {2**32 - 1}")
        if self.head_epochs < 0:
            raise option_error("head_epochs", self.head_epochs, "0 (the book) or more")
        for name in ("learning_rate", "momentum", "weight_decay", "gamma", "dropout", "val_fraction", "test_fraction"):
            if name == "test_fraction" and self.test_fraction is None:
                continue   # "auto": data/splits.choose_test_fraction decides once the labels are read
            setattr(self, name, real_number(name, getattr(self, name)))
        if self.learning_rate <= 0:
            raise option_error("learning_rate", self.learning_rate, "above 0", hint="the book uses 0.001")
        if not 0 <= self.momentum < 1:
            raise option_error("momentum", self.momentum, "at least 0 and below 1", hint="the book uses 0.9")
        if self.weight_decay < 0:
            raise option_error("weight_decay", self.weight_decay, "at least 0", hint="the book uses 0")
        if not 0 < self.gamma <= 1:
            raise option_error("gamma", self.gamma, "above 0 and at most 1",
                               hint="the learning rate is multiplied by it every step_size epochs; the book uses 0.1, "
                                    "and 1 keeps the rate constant")
        if not 0 <= self.dropout < 1:
            raise option_error("dropout", self.dropout, "at least 0 and below 1")
        for name in ("val_fraction", "test_fraction"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) < 1:
                raise option_error(name, getattr(self, name), "at least 0 and below 1",
                                   hint="the book holds out 0.2 for validation")
        if self.val_fraction + (self.test_fraction or 0) >= 1:
            raise ImagesAsDataError(f"val_fraction + test_fraction = {self.val_fraction + (self.test_fraction or 0):g} leaves "
                                    "no images to train on; keep their sum below 1", what="option",
                                    option="test_fraction" if self.test_fraction else "val_fraction",
                                    value=self.test_fraction if self.test_fraction else self.val_fraction,
                                    hint="keep val_fraction + test_fraction below 1")
        self.optimizer = str(self.optimizer).lower()
        if self.optimizer not in OPTIMIZERS:
            raise option_error("optimizer", self.optimizer, choices=OPTIMIZERS, suggest=False)
        if self.head_init not in HEAD_INITS:
            raise option_error("head_init", self.head_init, choices=HEAD_INITS)
        if self.select_on not in SELECT_ON:
            raise option_error("select_on", self.select_on, choices=SELECT_ON, suggest=False)
        if self.feature_cache not in ("auto", "off"):
            raise option_error("feature_cache", self.feature_cache, choices=("auto", "off"), suggest=False)
        if self.cache not in CACHE_MODES:
            raise option_error("cache", self.cache, choices=CACHE_MODES, suggest=False)
        if self.patience is not None:
            self.patience = whole_number("patience", self.patience)
            if self.patience < 1:
                raise option_error("patience", self.patience, "at least 1 epoch", hint="or None to never stop early")
        if self.num_workers is not None:
            self.num_workers = whole_number("num_workers", self.num_workers)
            if self.num_workers < 1:
                raise option_error("num_workers", self.num_workers, "at least 1", hint="or None for one per core")
        for name in ("image_size", "resize_size"):
            if getattr(self, name) is not None:
                setattr(self, name, whole_number(name, getattr(self, name)))
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise ImagesAsDataError(f"image_size={self.image_size} is too small; use at least {MIN_IMAGE_SIZE} "
                                    "(the book uses 224)", what="option", option="image_size", value=self.image_size,
                                    expected=f"at least {MIN_IMAGE_SIZE}", hint="the book uses 224")
        if self.normalize not in NORMALIZE_CHOICES:
            raise option_error("normalize", self.normalize, choices=NORMALIZE_CHOICES)
        if self.resize not in RESIZE_MODES:
            raise option_error("resize", self.resize, choices=RESIZE_MODES)
        if self.resize_size is not None and self.image_size is not None and self.resize_size < self.image_size:
            raise ImagesAsDataError(f"resize_size={self.resize_size} is smaller than image_size={self.image_size}; it "
                                    "must be at least as large", what="option", option="resize_size",
                                    value=self.resize_size, expected=f"at least image_size ({self.image_size})")
        if self.weights in ("none", "None", False):
            self.weights = None
        if not isinstance(self.progress, bool):
            if self.progress not in PROGRESS_CHOICES:
                raise option_error("progress", self.progress, choices=(True, False, *PROGRESS_CHOICES), suggest=False)
            self.progress = {"bars": True, "none": False}.get(self.progress, self.progress)
        if self.positive_class is not None:
            self.positive_class = str(self.positive_class)
        if self.class_order is not None:
            if isinstance(self.class_order, str):   # the command line's --class-order protest,other
                self.class_order = [c.strip() for c in self.class_order.split(",") if c.strip()]
            if not hasattr(self.class_order, "__iter__"):
                raise option_error("class_order", self.class_order, "a list of class names",
                                   hint="e.g. ['protest', 'other']")
            self.class_order = [str(c) for c in self.class_order]
            if len(set(self.class_order)) != len(self.class_order):
                raise option_error("class_order", self.class_order, "a list naming each class once")

    def _check_schedule_options(self) -> None:
        """The options of issue 28 (schedules, discriminative rates, progressive resizing, the head's rate)."""
        if self.schedule not in SCHEDULES:
            raise option_error("schedule", self.schedule, choices=SCHEDULES)
        if self.warmup_fraction is not None:
            self.warmup_fraction = real_number("warmup_fraction", self.warmup_fraction)
            if not 0 < self.warmup_fraction < 1:
                raise option_error("warmup_fraction", self.warmup_fraction, "above 0 and below 1",
                                   hint="0.25 rises for a quarter of the steps (fastai's one-cycle)")
        if self.lr_decay_per_block is not None:
            self.lr_decay_per_block = real_number("lr_decay_per_block", self.lr_decay_per_block)
            if not 0 < self.lr_decay_per_block <= 1:
                raise option_error("lr_decay_per_block", self.lr_decay_per_block, "above 0 and at most 1",
                                   hint="1 trains every block at the same rate; 0.7 gives each block 0.7 of the rate "
                                        "of the block above it")
        if self.head_learning_rate is not None:
            self.head_learning_rate = real_number("head_learning_rate", self.head_learning_rate)
            if self.head_learning_rate <= 0:
                raise option_error("head_learning_rate", self.head_learning_rate, "above 0",
                                   hint="or None for learning_rate")
        if self.progressive_resize is not None and self.progressive_resize is not False:
            self.progressive_resize = whole_number("progressive_resize", self.progressive_resize)
            if self.progressive_resize and self.progressive_resize < MIN_IMAGE_SIZE:
                raise option_error("progressive_resize", self.progressive_resize,
                                   f"0 (off) or at least {MIN_IMAGE_SIZE} pixels", hint="e.g. 128 for 224-pixel images")
        if self.progressive_resize is False:
            self.progressive_resize = 0
        if self.full_size_epochs is not None:
            self.full_size_epochs = whole_number("full_size_epochs", self.full_size_epochs)
            if self.full_size_epochs < 1:
                raise option_error("full_size_epochs", self.full_size_epochs, "at least 1")

    @property
    def warmup(self) -> float:
        """The share of steps spent rising to the peak rate (for the per-step schedules)."""
        return self.warmup_fraction if self.warmup_fraction is not None else WARMUP_FRACTION.get(self.schedule, 0.0)

    @property
    def progress_bars(self) -> bool:
        """Whether to draw progress bars (downloads, decoding, batches)."""
        return self.progress is True

    @property
    def progress_lines(self) -> bool:
        """Whether to write a line per epoch (and a grid's line per configuration)."""
        return self.progress is True or self.progress == "epochs"

    def check_model_options(self) -> None:
        """Run the checks that need the network's definition (no weights are loaded): that the architecture exists
        and that `freeze` names one of its stages. Cheap enough to run for every configuration of a grid up front.
        Returns None; raises ImagesAsDataError for an unknown architecture or stage."""
        from ..model.backbones import check_architecture_options

        check_architecture_options(self.architecture, self.freeze)

    @classmethod
    def from_options(cls, **options) -> "TrainConfig":
        """Return a TrainConfig built from keyword options. Raises ImagesAsDataError for an unknown option,
        suggesting the right name."""
        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                raise unknown_option(name, known)
        return cls(**options)

    def to_dict(self) -> dict:
        """Return the options as a plain dict {name: value}."""
        return asdict(self)

    def differences(self, other: "TrainConfig") -> dict:
        """Return the options (other than runtime ones) whose values differ: {name: (self, other)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if k not in self.RUNTIME and mine[k] != theirs[k]}

    def differences_from_saved(self, saved: dict) -> dict:
        """Return the options (other than runtime ones) whose values differ from `saved`, a run's recorded options (model.json
        or a checkpoint, possibly of another version: unknown names are ignored, absent ones not compared):
        {name: (self, saved)}. The saved values are normalised as given options are ("none" weights, …)."""
        known = {f.name for f in fields(self)}
        present = {k: v for k, v in saved.items() if k in known}
        try:
            theirs = type(self)(**present).to_dict()
        except (ImagesAsDataError, TypeError, ValueError):
            theirs = present
        mine = self.to_dict()
        return {k: (mine[k], theirs[k]) for k in present if k not in self.RUNTIME and mine[k] != theirs[k]}
