"""Preprocessing as in the book (Figure 4.2, Listing 1), split in two stages so that decoding happens once:

1. `base_array`: deterministic — decode, then resize to a square of `resize_size` pixels by one of the resize modes.
   Its uint8 output is what the image cache stores. With the book's rescale-crop and random crops on, the cache
   also keeps each training image whole (`crop_source_array`), because Listing 1's RandomResizedCrop cuts its
   crops out of the whole original image, not out of the centre square that evaluation sees.
2. `train_view` / `eval_view`: cheap views — a seeded random-resized-crop and horizontal flip for training
   (Pillow, off the GIL), a centre crop of `image_size` of the base for evaluation (the book's Resize(256) +
   CenterCrop(224)).
Normalisation runs on whole batches on the device (`normalize_batch`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from ..errors import ImagesAsDataError, did_you_mean, setting
from ..io.images import open_rgb

RESIZE_MODES = {
    "squish": "stretch the whole image to a square, ignoring its aspect ratio",
    "crop": "cut the central square out of the image at its original scale (small images are padded)",
    "pad": "shrink the whole image to fit the square, then pad the rest with black (letterboxing)",
    "rescale-crop": "rescale the shorter side, then cut the central square (the book's default: 256 then 224)",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE_CHOICES = ("backbone", "imagenet", "train")
# How the deterministic stage resamples: bilinear is the book's (torchvision's default); CLIP's weights were trained
# on bicubic resizes (open_clip's preprocess), which zero-shot labelling therefore reproduces.
INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
MIN_IMAGE_SIZE = 32  # smaller squares vanish in the networks' downsampling (32× for ResNets and EfficientNets)


@dataclass
class Preprocessing:
    """Everything needed to turn a file into the tensor the model saw; saved in model.json."""

    image_size: int = 224
    resize: str = "rescale-crop"
    resize_size: int | None = None
    normalize: str = "backbone"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    augment_crop: bool = True
    augment_flip: bool = True
    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    crop_source_size: int | None = None
    extra: dict = field(default_factory=dict)
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ImagesAsDataError(
                f"{setting('resize', self.resize)} is not a resize mode; choose one of: "
                + "; ".join(f"{k} ({v})" for k, v in RESIZE_MODES.items()) + did_you_mean(self.resize, RESIZE_MODES),
                what="option", option="resize", value=self.resize, choices=list(RESIZE_MODES)
            )
        self.image_size = int(self.image_size)
        if self.image_size < MIN_IMAGE_SIZE:
            raise ImagesAsDataError(f"image_size={self.image_size} is too small; use at least {MIN_IMAGE_SIZE} "
                                    "(the book uses 224)", what="option", option="image_size", value=self.image_size,
                                    expected=f"at least {MIN_IMAGE_SIZE}", hint="the book uses 224")
        if self.resize_size is None:
            # Resize 256 / crop 224 for the book's mode; the other modes already produce the final square.
            self.resize_size = round(self.image_size * 256 / 224) if self.resize == "rescale-crop" else self.image_size
        self.resize_size = int(self.resize_size)
        if self.crop_source_size is None:
            # Training crops come from the whole image at up to twice the base's resolution (512 px for the book's
            # 256): at least 224 px across for crops of a fifth of the image or more, and a bounded cache.
            self.crop_source_size = 2 * self.resize_size
        self.crop_source_size = int(self.crop_source_size)
        if self.resize_size < self.image_size:
            raise ImagesAsDataError(
                f"resize_size={self.resize_size} is smaller than image_size={self.image_size}; it must be at least as large",
                what="option", option="resize_size", value=self.resize_size, expected=f"at least image_size ({self.image_size})"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ImagesAsDataError(f"{setting('interpolation', self.interpolation)}: choose {' or '.join(INTERPOLATIONS)}",
                                    what="option", option="interpolation", value=self.interpolation)
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        self.crop_ratio = tuple(float(v) for v in self.crop_ratio)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(**values)


def base_array(image: Image.Image, resize: str, size: int, interpolation: str = "bilinear") -> np.ndarray:
    """The deterministic stage: an RGB image to a size×size×3 uint8 array by the named resize mode."""
    width, height = image.size
    method = INTERPOLATIONS[interpolation]
    if resize == "squish":
        image = image.resize((size, size), method)
    elif resize == "rescale-crop":
        # torchvision's Resize(size) geometry, truncation included, so the centre crop is Listing 1's to the pixel.
        new = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
        image = _centre_crop(image.resize(new, method), size)
    elif resize == "pad":
        scale = size / max(width, height)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = Image.new("RGB", (size, size))
        canvas.paste(image.resize(new, method), ((size - new[0]) // 2, (size - new[1]) // 2))
        image = canvas
    elif resize == "crop":
        image = _centre_crop(image, size)
    else:
        raise ImagesAsDataError(f"unknown resize mode {resize!r}")
    return np.array(image, dtype=np.uint8)  # a writable copy: torch wraps it without a warning


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Central size×size window, offsets rounded as torchvision's CenterCrop does; areas outside a small image
    are black."""
    width, height = image.size
    left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def load_base(path, prep: Preprocessing) -> np.ndarray:
    """Decode a file and run the deterministic stage. Raises BadImageError."""
    draft = prep.resize_size if prep.resize != "crop" else None
    return base_array(open_rgb(path, draft_size=draft), prep.resize, prep.resize_size, prep.interpolation)


def crops_whole_image(prep: Preprocessing) -> bool:
    """True when training crops are cut from the whole image rather than from the base square.

    The book's Listing 1 applies RandomResizedCrop to the original picture, so with rescale-crop the periphery that
    the evaluation's centre crop drops is still seen in training. The other resize modes already keep the whole
    picture in their square (squish, pad) or mean to work at the centre (crop), so their crops come from the base.
    """
    return prep.augment_crop and prep.resize == "rescale-crop"


def crop_source_array(image: Image.Image, size: int) -> np.ndarray:
    """The whole image, aspect ratio kept, shrunk only when its shorter side exceeds `size` (never enlarged):
    what training crops are cut from. A uniform shrink keeps every crop box's share of the picture and its
    aspect ratio, so the crops are Listing 1's, at a bounded resolution."""
    width, height = image.size
    scale = size / min(width, height)
    if scale < 1:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
    return np.array(image, dtype=np.uint8)


def load_crop_source(path, prep: Preprocessing) -> np.ndarray:
    """Decode a file into its crop source (see crop_source_array). Raises BadImageError."""
    return crop_source_array(open_rgb(path, draft_size=prep.crop_source_size), prep.crop_source_size)


def to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def eval_view(base: torch.Tensor, prep: Preprocessing, size: int | None = None) -> torch.Tensor:
    """Centre crop of image_size from a uint8 CHW base image; with a smaller `size`, that crop shrunk to size×size
    (antialiased bilinear): the whole evaluation view at a lower resolution, as progressive resizing trains on."""
    view = TF.center_crop(base, [prep.image_size, prep.image_size]) if base.shape[-1] != prep.image_size else base
    if size is not None and size != prep.image_size:
        view = TF.resize(view, [size, size], antialias=True)
    return view


def train_view(base: np.ndarray, prep: Preprocessing, rng: np.random.Generator, size: int | None = None) -> torch.Tensor:
    """Seeded training augmentation of a uint8 HWC image: random-resized-crop and/or horizontal flip.

    base: the image's crop source (whole, any aspect ratio) when crops_whole_image(prep), else its base square.
    The crop box is drawn on the whole of `base`, then cut and resized with Pillow's antialiased bilinear filter,
    as torchvision's RandomResizedCrop does on the book's PIL images — single-threaded and outside the GIL, so the
    trainer can prepare the next batch on a thread while the network trains on all cores. Without random crops
    the view is the evaluation's centre crop. size: the side of the view (default image_size; progressive resizing
    asks for smaller ones: the same crop box resized smaller, or the centre crop shrunk); the random draws do not
    depend on it. Returns a uint8 CHW tensor.
    """
    image = Image.fromarray(base)
    side = prep.image_size
    size = side if size is None else int(size)
    if prep.augment_crop:
        top, left, height, width = random_resized_crop_box(image.height, image.width, prep.crop_scale, prep.crop_ratio, rng)
        # Crop, then resize, as torchvision's resized_crop does: resizing with box= would let the filter read
        # pixels outside the box (up to 19 grey levels apart at the edges of a downscaled crop).
        image = image.crop((left, top, left + width, top + height)).resize((size, size), Image.BILINEAR)
    else:
        if image.width != side or image.height != side:
            image = _centre_crop(image, side)
        if size != side:
            image = image.resize((size, size), Image.BILINEAR)
    if prep.augment_flip and rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return to_chw(np.array(image))


def random_resized_crop_box(height: int, width: int, scale, ratio, rng: np.random.Generator):
    """torchvision's RandomResizedCrop.get_params, drawing from an explicit generator so runs are reproducible
    whatever the number of loader workers, and the fast and plain data paths see the same crops."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def normalize_batch(batch: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """uint8 NCHW to normalised float NCHW, on whatever device the batch is on."""
    mean_t = torch.tensor(mean, device=batch.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    std_t = torch.tensor(std, device=batch.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    return (batch.to(dtype) - mean_t) / std_t


def channel_statistics(arrays) -> tuple[tuple, tuple]:
    """Per-channel mean and standard deviation (0–1 scale) over uint8 HxWx3 images: normalize="train"."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for array in arrays:
        pixels = array.reshape(-1, 3).astype(np.float64) / 255.0
        total += pixels.sum(0)
        total_sq += (pixels ** 2).sum(0)
        count += pixels.shape[0]
    if count == 0:
        raise ImagesAsDataError("cannot compute normalisation statistics: no training images")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
