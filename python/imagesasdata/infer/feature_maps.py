"""A real photo through a network's first convolution layer (the book's section 3): what each of its filters
responds to, as images. The closing step of "how a computer sees an image": the hand-worked convolutions of
teach/seeing.py, done by a fitted network with the filters it learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError
from ..io.tables import atomic_path
from ..runs import as_run_directory


@dataclass
class FeatureMaps:
    """The first convolution's output for one image: maps (K x H x W float32, one per filter), the layer's name and
    shape, the image's evaluation view (H x W x 3 uint8, what the network saw) and, when written, the sheet."""

    maps: np.ndarray
    layer: str
    filter_shape: tuple
    stride: tuple
    view: np.ndarray
    sheet: Path | None = None

    @property
    def table(self) -> pa.Table:
        """One row per map: map (from 1), height, width, mean, min, max (of its activations)."""
        flat = self.maps.reshape(len(self.maps), -1)
        return pa.table({"map": list(range(1, len(self.maps) + 1)), "height": [self.maps.shape[1]] * len(self.maps),
                         "width": [self.maps.shape[2]] * len(self.maps), "mean": flat.mean(1).tolist(),
                         "min": flat.min(1).tolist(), "max": flat.max(1).tolist()})

    def __repr__(self) -> str:
        k, h, w = self.maps.shape
        return (f"feature maps of {self.layer} ({k} filters of {' x '.join(map(str, self.filter_shape))}, stride "
                f"{self.stride[0]}): {k} maps of {h} x {w} from a {self.view.shape[0]} x {self.view.shape[1]} view"
                + (f"\n  sheet: {self.sheet}" if self.sheet else ""))


def feature_maps(image, run=None, *, architecture: str = "efficientnet_lite0", n: int | None = 16,
                 out=None, tile: int = 112) -> FeatureMaps:
    """Pass one image through the first convolution layer of a fitted run (or, with run=None, of `architecture`
    with its ImageNet weights). Returns that layer's output maps (a FeatureMaps).

    The image is prepared exactly as the network sees it in evaluation (the run's resize, centre crop and
    normalisation). out: also write a contact sheet PNG there — the evaluation view first, then the first n maps,
    each scaled from its own minimum (black) to its maximum (white), `tile` pixels a side.
    Raises ImagesAsDataError for an unreadable image or a network without a convolution layer.
    """
    import torch

    from ..data.transforms import Preprocessing, eval_view, load_base, normalize_batch, to_chw
    from ..model.backbones import imagenet_classifier
    from ..model.inference import Predictor

    if out is not None and Path(out).suffix.lower() != ".png":
        raise ImagesAsDataError(f"out={out}: the sheet is a PNG; give a file name ending in .png",
                                what="option", option="out", value=out, path=out)
    if run is not None:
        run = as_run_directory(run)
        predictor = Predictor(run.description, run.weights(), "cpu", "fp32")
        model, prep = predictor.model, predictor.prep
    else:
        backbone = imagenet_classifier(architecture, progress=False)
        model = backbone.model.eval()
        prep = Preprocessing(image_size=backbone.input_size, normalize="backbone", mean=backbone.mean,
                             std=backbone.std, augment_crop=False, augment_flip=False)
    name, layer = first_convolution(model)
    view = eval_view(to_chw(load_base(image, prep)), prep)
    captured = []
    hook = layer.register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    try:
        with torch.no_grad():
            batch = normalize_batch(view[None].float().to(next(model.parameters()).device), prep.mean, prep.std)
            model(batch.contiguous())
    finally:
        hook.remove()
    maps = captured[0][0].float().cpu().numpy()
    result = FeatureMaps(maps, name, tuple(layer.weight.shape), tuple(layer.stride),
                         view.permute(1, 2, 0).numpy().copy())
    if out is not None:
        result.sheet = write_sheet(result, Path(out).expanduser(), n, tile)
    return result


def first_convolution(model):
    """(name, module) of the first 2-D convolution in the network's definition order: the layer that reads pixels."""
    import torch.nn as nn

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ImagesAsDataError(f"{type(model).__name__} has no 2-D convolution layer")


def write_sheet(result: FeatureMaps, path: Path, n: int | None = 16, tile: int = 112) -> Path:
    """The evaluation view, then the first n maps (each from its own minimum, black, to its maximum, white), in a
    grid of `tile`-pixel squares; written atomically as PNG. Returns the path."""
    from PIL import Image

    maps = result.maps if n is None else result.maps[:max(1, int(n))]
    tiles = [Image.fromarray(result.view).resize((tile, tile), Image.BILINEAR)]
    for one in maps:
        low, high = float(one.min()), float(one.max())
        scaled = np.zeros_like(one) if high <= low else (one - low) / (high - low)
        tiles.append(Image.fromarray((scaled * 255).round().astype(np.uint8)).resize((tile, tile), Image.NEAREST)
                     .convert("RGB"))
    columns = min(len(tiles), 6)
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * (tile + 2), rows * (tile + 2)), "white")
    for k, picture in enumerate(tiles):
        sheet.paste(picture, ((k % columns) * (tile + 2) + 1, (k // columns) * (tile + 2) + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG")
    return path
