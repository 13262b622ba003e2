"""Every option of a fine-tuning run, with the book's defaults, validated once and saved in model.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import ImagesAsDataError, did_you_mean

# Named recipes: defaults for the options they name, which options given explicitly override.
#   head-first  the engine's default: ImageNet statistics, and 10 epochs of the new last layer alone on features
#               computed once before fine-tuning everything — measured more accurate than the book's recipe at
#               equal epochs on every set of benchmarks/accuracy.py (benchmarks/README.md)
#   book        Listing 1 as printed: ImageNet statistics, the whole network fine-tuned from the first step
RECIPES = {
    "head-first": {"normalize": "imagenet", "head_epochs": 10},
    "book": {"normalize": "imagenet", "head_epochs": 0},
}
OPTIMIZERS = ("sgd", "adam", "adamw")
SELECT_ON = ("accuracy", "loss", "f1")
CACHE_MODES = ("auto", "memory", "disk", "none")

# What each option means, in the book's words; the CLI's --help and the R documentation are built from this.
OPTION_HELP = {
    "architecture": "network to fine-tune: a torchvision name from the book's Table 4.1 (resnet18, vgg16, densenet121, "
                    "inception_v3, …), any timm model, or efficientnet_lite0 (ImageNet weights installed, works offline)",
    "weights": "starting weights: 'imagenet' (pretrained; downloaded once and cached), a .safetensors file, or 'none'",
    "image_size": "side in pixels of the square the network sees (default: the architecture's own, 224; 299 for inception_v3)",
    "resize": "how an image becomes a square: squish, crop, pad, or rescale-crop (the book's Resize 256 + CenterCrop 224)",
    "resize_size": "side of the square before the final crop (default 256/224 × image_size for rescale-crop)",
    "recipe": "named defaults for normalize and head_epochs: 'head-first' (train the new last layer alone first, "
              "then everything; more accurate at equal epochs in our benchmarks) or 'book' (Listing 1 as printed)",
    "normalize": "pixel normalisation: 'backbone' (the statistics the weights were trained with), 'imagenet' (the "
                 "book's), or 'train' (mean and standard deviation of your training images); default: the recipe's",
    "augment_crop": "training augmentation: a random crop of 8–100% of the image, resized (RandomResizedCrop)",
    "augment_flip": "training augmentation: mirror half the images left-right",
    "val_fraction": "share of each class held out for validation, used to choose the epoch (the book: 0.2)",
    "test_fraction": "share of each class held out as a test set, evaluated once at the end (e.g. 0.1)",
    "balance": "downsample every class to the size of the smallest before splitting",
    "group": "a column of group ids (e.g. near-duplicate groups); a group never straddles two splits",
    "seed": "random seed for the split, the new layer's weights, the data order and augmentation",
    "epochs": "passes over the training images (the book's tutorial: 25; its grid: 50)",
    "batch_size": "images per gradient step (the book: 4); smaller batches give noisier but more frequent updates",
    "optimizer": "sgd (the book's), adam or adamw",
    "learning_rate": "size of each step down the loss gradient (the book: 0.001); too high diverges, too low crawls",
    "momentum": "SGD momentum: the share of the previous step carried into the next, smoothing the path (the book: 0.9)",
    "weight_decay": "L2 penalty on the weights (0 in the book)",
    "step_size": "StepLR: every step_size epochs the learning rate is multiplied by gamma (the book: 7)",
    "gamma": "StepLR: factor applied to the learning rate every step_size epochs (the book: 0.1)",
    "dropout": "probability of zeroing a feature before the new last layer during training (0 = none)",
    "head_epochs": "epochs of training only the new last layer, on features computed once, before the whole network "
                   "is fine-tuned (the book: 0); costs about one forward pass over the training images; default: "
                   "the recipe's",
    "freeze": "'none' (fine-tune everything, the book's default), 'backbone' (train only the new last layer), or a "
              "stage name such as 'layer3' (frozen up to and including it)",
    "patience": "early stopping: stop after this many epochs without a lower validation loss (default: never)",
    "select_on": "validation measure that picks the kept epoch: accuracy (the book's), loss or f1",
    "positive_class": "in a binary task, the class whose precision, recall and F1 are reported (default 'positive', "
                      "else the second class in sorted order)",
    "device": "auto (CUDA GPU, else Apple MPS, else CPU), cpu, cuda, cuda:1, mps",
    "precision": "auto (mixed precision on a GPU, fp32 on the CPU), fp32, bf16 or fp16",
    "channels_last": "channels-last memory layout ('auto': on), faster convolutions on most hardware",
    "cache": "decoded-image cache: auto (memory, or disk when large), memory, disk, or none (decode every epoch)",
    "feature_cache": "'auto': with a frozen backbone and no random crops, compute each image's features once and "
                     "train the last layer on them (same result, far faster); 'off': run the whole network every step",
    "num_workers": "threads decoding images (default: up to 8, one per CPU core)",
    "progress": "show progress bars",
}


@dataclass
class TrainConfig:
    architecture: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    image_size: int | None = None
    resize: str = "rescale-crop"
    resize_size: int | None = None
    recipe: str = "head-first"
    normalize: str | None = None
    augment_crop: bool = True
    augment_flip: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    balance: bool = False
    group: str | None = None
    seed: int = 0
    epochs: int = 25
    batch_size: int = 4
    optimizer: str = "sgd"
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    step_size: int = 7
    gamma: float = 0.1
    dropout: float = 0.0
    head_epochs: int | None = None
    freeze: str = "none"
    patience: int | None = None
    select_on: str = "accuracy"
    positive_class: str | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: object = "auto"
    cache: str = "auto"
    feature_cache: str = "auto"
    num_workers: int | None = None
    progress: bool = True

    # Options that change where or how fast a run goes, not what it computes: a run may resume with other values.
    RUNTIME = ("device", "precision", "channels_last", "cache", "feature_cache", "num_workers", "progress")

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ImagesAsDataError(f"recipe={self.recipe!r}: choose one of {', '.join(RECIPES)}."
                                    + did_you_mean(str(self.recipe), RECIPES))
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("epochs", "batch_size", "step_size", "seed", "head_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ImagesAsDataError(f"{name}={value!r} must be a whole number")
            setattr(self, name, int(value))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "step_size": self.step_size}
        for name, value in positive.items():
            if value < 1:
                raise ImagesAsDataError(f"{name}={value} must be at least 1")
        if self.head_epochs < 0:
            raise ImagesAsDataError(f"head_epochs={self.head_epochs} must be 0 (the book) or more")
        for name in ("learning_rate", "momentum", "weight_decay", "gamma", "dropout", "val_fraction", "test_fraction"):
            setattr(self, name, float(getattr(self, name)))
        if self.learning_rate <= 0:
            raise ImagesAsDataError(f"learning_rate={self.learning_rate} must be above 0 (the book uses 0.001)")
        if not 0 <= self.momentum < 1:
            raise ImagesAsDataError(f"momentum={self.momentum} must be at least 0 and below 1 (the book uses 0.9)")
        self.optimizer = str(self.optimizer).lower()
        if self.optimizer not in OPTIMIZERS:
            raise ImagesAsDataError(f"optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.select_on not in SELECT_ON:
            raise ImagesAsDataError(f"select_on={self.select_on!r}: choose one of {', '.join(SELECT_ON)}")
        if self.feature_cache not in ("auto", "off"):
            raise ImagesAsDataError(f"feature_cache={self.feature_cache!r}: choose 'auto' or 'off'")
        if self.cache not in CACHE_MODES:
            raise ImagesAsDataError(f"cache={self.cache!r}: choose one of {', '.join(CACHE_MODES)}")
        if self.patience is not None:
            self.patience = int(self.patience)
            if self.patience < 1:
                raise ImagesAsDataError(f"patience={self.patience} must be at least 1 epoch (or None to never stop early)")
        if self.image_size is not None:
            self.image_size = int(self.image_size)
        if self.weights in ("none", "None", False):
            self.weights = None
        if self.positive_class is not None:
            self.positive_class = str(self.positive_class)

    @classmethod
    def from_options(cls, **options) -> "TrainConfig":
        """Build from keyword options; an unknown option is an error that suggests the right name."""
        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                raise ImagesAsDataError(f"unknown option {name!r}.{did_you_mean(name, known)} Options: {', '.join(known)}")
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)

    def differences(self, other: "TrainConfig") -> dict:
        """Options (other than runtime ones) whose values differ: {name: (self, other)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if k not in self.RUNTIME and mine[k] != theirs[k]}
