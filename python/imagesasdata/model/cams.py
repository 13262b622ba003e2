"""Where a fitted network looks: class-activation heatmaps from the maintained `grad-cam` package
(pytorch-grad-cam): Grad-CAM and its gradient-based relatives, and the gradient-free Score-CAM, Ablation-CAM and
Eigen-CAM.

The layer a heatmap is read from is chosen per network by looking at it, not from a table of names: one forward
pass on a blank image records every module's output, and the default is the last module before the classifier whose
output is still a spatial feature map (ResNet's `layer4`, EfficientNet's final convolution `bn2`, DenseNet's
`features`, VGG's last pooling layer, ...). Any other module with a spatial output can be named instead.

A HeatmapMaker holds one network and one CAM object for a whole job, so hundreds of images go through it batch by
batch (model.inference.map_paths) without rebuilding anything per image.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
import torch.nn as nn

from ..data.transforms import normalize_batch
from ..errors import ImagesAsDataError, did_you_mean, listing, missing_extra, setting
from .inference import Predictor

# name → (class in pytorch_grad_cam, what it does, needs gradients)
CAM_METHODS = {
    "gradcam": ("GradCAM", "Grad-CAM: the layer's channels weighted by the mean gradient of the class score", True),
    "gradcam++": ("GradCAMPlusPlus", "Grad-CAM++: second-order gradient weights, better with several objects", True),
    "xgradcam": ("XGradCAM", "XGrad-CAM: gradients weighted by the normalised activations", True),
    "layercam": ("LayerCAM", "Layer-CAM: positive gradients weighted element by element", True),
    "hirescam": ("HiResCAM", "HiRes-CAM: gradient times activation, element by element (faithful to the model)", True),
    "scorecam": ("ScoreCAM", "Score-CAM, gradient-free: each channel's map masks the image and the class score "
                             "weights it (one forward pass per channel: slow without a GPU)", False),
    "ablationcam": ("AblationCAM", "Ablation-CAM, gradient-free: the drop in the class score when each channel is "
                                   "zeroed (one forward pass per channel: slow without a GPU)", False),
    "eigencam": ("EigenCAM", "Eigen-CAM, gradient-free and the same for every class: the first principal component "
                             "of the layer's activations", False),
}
# Modules whose output is their input: never worth naming as the layer of a heatmap.
_PASS_THROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)


def _check_method(method: str) -> str:
    name = str(method).lower().replace("-", "").replace("_", "")
    if name not in CAM_METHODS:
        raise ImagesAsDataError(
            f"{setting('method', method)} is not a heatmap method; choose one of: "
            + "; ".join(f"{k} ({v[1]})" for k, v in CAM_METHODS.items()) + did_you_mean(str(method), CAM_METHODS),
            what="option", option="method", value=method
        )
    return name


def feature_map_layers(model: nn.Module, head, image_size: int) -> list[dict]:
    """The modules a heatmap can be read from, in the order they run: each called once per forward pass, before the
    classifier, with a 4-D output (a feature map). Rows: name, type, channels, height, width."""
    records: dict = {}
    order: list = []
    head = list(head or [])
    head_started = []

    def after(name):
        def hook(module, inputs, output):
            record = records.setdefault(name, {"calls": 0})
            record["calls"] += 1
            record["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            record["before_head"] = not head_started
            if name not in order:
                order.append(name)
        return hook

    handles = []
    inside_head = lambda n: any(n == h or n.startswith(h + ".") for h in head)  # noqa: E731
    for name, module in model.named_modules():
        if not name or inside_head(name):
            continue
        handles.append(module.register_forward_hook(after(name)))
    for name in head:
        handles.append(model.get_submodule(name).register_forward_pre_hook(lambda m, i: head_started.append(True)))
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, 3, image_size, image_size), device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    modules = dict(model.named_modules())
    layers = []
    tokens_after = False   # a sequence of tokens (N × tokens × C) after the last map: a vision transformer
    for name in order:
        record = records[name]
        shape = record.get("shape")
        if record["before_head"] and shape is not None and len(shape) == 3 and layers:
            tokens_after = True
        if record["calls"] != 1 or not record["before_head"] or shape is None or len(shape) != 4 \
                or isinstance(modules[name], _PASS_THROUGH):
            continue
        tokens_after = False
        layers.append({"name": name, "type": type(modules[name]).__name__, "channels": int(shape[1]),
                       "height": int(shape[2]), "width": int(shape[3])})
    if tokens_after:
        for layer in layers:
            layer["tokens_after"] = True
    return layers


def default_layer(layers: list[dict]) -> str:
    """The last feature map that is still a map (more than one position); pooling to 1×1 is not."""
    if not layers or layers[-1].get("tokens_after"):
        raise ImagesAsDataError("this network has no convolutional feature map just before its classifier (a vision "
                                "transformer works on a sequence of tokens), so class-activation heatmaps cannot be "
                                "drawn for it; name an earlier layer with layer= to see its map anyway")
    spatial = [layer for layer in layers if layer["height"] * layer["width"] > 1]
    if spatial:
        return spatial[-1]["name"]
    unpooled = [layer for layer in layers if "Pool" not in layer["type"]]
    return (unpooled or layers)[-1]["name"]


def resolve_layer(model: nn.Module, layers: list[dict], layer: str | None) -> str:
    """`layer` checked against the feature maps of the network (None: the default). Raises ImagesAsDataError."""
    if layer is None:
        return default_layer(layers)
    names = [entry["name"] for entry in layers]
    if layer in names:
        return layer
    modules = dict(model.named_modules())
    last = listing(names[-8:], 8)
    if layer in modules:
        raise ImagesAsDataError(f"{setting('layer', layer)} exists but its output is not a feature map the heatmap can be read "
                                f"from (it is not 4-D, runs after the classifier starts, or runs more than once); the "
                                f"last feature maps of this network are {last}",
                                what="option", option="layer", value=layer)
    raise ImagesAsDataError(f"{setting('layer', layer)} is not a module of this network; its last feature maps are {last} "
                            f"(heatmap_layers() lists them all).{did_you_mean(layer, names)}", what="option",
                            option="layer", value=layer)


class HeatmapMaker:
    """One network and one CAM object for a whole job: decoded batches ({"row", "image", "error"}) in, class
    probabilities and heatmaps out.

    predictor: a model.inference.Predictor (its network, preprocessing and device are used as they are).
    method: a key of CAM_METHODS. layer: a module name from feature_map_layers() (None: the default).
    batch_size: images per forward pass inside Score-CAM and Ablation-CAM (their masked or ablated copies).
    targets: {row: class index} — the class whose heatmap each image gets; rows not in it get their predicted class.
    """

    def __init__(self, predictor: Predictor, method: str = "gradcam", layer: str | None = None,
                 batch_size: int = 32):
        try:
            import pytorch_grad_cam
        except ImportError:
            raise missing_extra("heatmaps", "grad-cam", "inside") from None
        self.method = _check_method(method)
        self.predictor = predictor
        model = predictor.model
        self.layers = feature_map_layers(model, predictor.head, predictor.prep.image_size)
        self.layer = resolve_layer(model, self.layers, layer)
        target_layer = model.get_submodule(self.layer)
        class_name, _, self.uses_gradients = CAM_METHODS[self.method]
        cam_class = getattr(pytorch_grad_cam, class_name)
        kwargs = {"batch_size": int(batch_size), "ablation_layer": quick_ablation_layer()} \
            if self.method == "ablationcam" else {}
        self.shortcut = False
        cam_model = model
        if self.method == "ablationcam":
            small = smallest_replay_input(model, self.layer, predictor.prep.image_size)
            if small:
                cam_model, self.shortcut = ShrinkWhileAblated(model, self.layer, small), True
        self.cam = cam_class(model=cam_model, target_layers=[target_layer], **kwargs)
        if self.method == "scorecam":
            self.cam.batch_size = int(batch_size)   # ScoreCAM reads this attribute (default 16)
        for parameter in model.parameters():       # gradients must reach the layer, whatever was frozen in training
            parameter.requires_grad_(True)
        self.targets: dict = {}

    def layer_info(self) -> dict:
        return next(entry for entry in self.layers if entry["name"] == self.layer)

    def __call__(self, batch: dict) -> dict:
        """{"row", "image", "error"} → {"row", "probabilities", "targets" (class index; -1 for unreadable images),
        "heatmaps" (N × image_size × image_size, each scaled to 0–1; NaN for unreadable images), "error"}."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        plain = self.predictor(batch)   # the one forward pass: the same probabilities as predict()
        rows = plain["row"]
        errors = list(plain["error"])
        readable = np.flatnonzero([e == "" for e in errors])
        size = self.predictor.prep.image_size
        heatmaps = np.full((len(errors), size, size), np.nan, np.float32)
        targets = np.full(len(errors), -1, np.int64)
        if len(readable):
            predicted = np.nanargmax(plain["probabilities"][readable], axis=1)
            chosen = [self.targets.get(int(rows[i]), int(p)) for i, p in zip(readable, predicted)]
            targets[readable] = chosen
            views = self.predictor.views(batch, readable).to(self.predictor.device)
            inputs = normalize_batch(views, self.predictor.prep.mean, self.predictor.prep.std)
            # Score-CAM and Ablation-CAM draw a progress bar per image on stderr; ours already counts images.
            quiet = contextlib.redirect_stderr(io.StringIO()) if not self.uses_gradients else contextlib.nullcontext()
            with quiet, torch.enable_grad():
                maps = self.cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(k)) for k in chosen])
            heatmaps[readable] = np.nan_to_num(np.asarray(maps, np.float32), nan=0.0)
        return {"row": rows, "probabilities": plain["probabilities"], "targets": targets, "heatmaps": heatmaps,
                "error": plain["error"]}

    def close(self) -> None:
        """Remove the CAM's hooks from the network."""
        self.cam.activations_and_grads.release()


# ------------------------------------------------------------------------------------------ Ablation-CAM, cheaper

SMALL_INPUTS = (8, 16, 32)   # pixels: the smallest the layers before the feature map run on is used


def quick_ablation_layer():
    """grad-cam's AblationLayer, whose every ablated copy looks for the minimum of the whole batch (a cost that grows
    with the square of the batch size): here the minimum is found once per batch. When it is 0 (a layer after a
    ReLU, as the default layers are) the result is the library's exactly; otherwise the library's own loop runs."""
    from pytorch_grad_cam.ablation_layer import AblationLayer

    class QuickAblationLayer(AblationLayer):
        def __call__(self, x):
            output = self.activations
            if torch.min(output) != 0:
                return super().__call__(x)
            for i in range(output.size(0)):
                output[i, self.indices[i], :] = 0
            return output

    return QuickAblationLayer()


class ShrinkWhileAblated(nn.Module):
    """The network as Ablation-CAM sees it. Ablation-CAM replaces the layer by grad-cam's AblationLayer, which
    returns the layer's cached activations (one channel zeroed per copy) whatever its input, and runs the whole
    network once per channel. While the layer is replaced, the image is cut to a few pixels, so the layers before
    it, whose result is thrown away, cost next to nothing (hundreds of times fewer operations at 224 pixels).
    Used only where smallest_replay_input() showed that nothing after the layer reads anything but its output."""

    def __init__(self, model: nn.Module, layer: str, small: int):
        super().__init__()
        self.model = model
        self.layer = layer
        self.small = int(small)

    def forward(self, inputs):
        from pytorch_grad_cam.ablation_layer import AblationLayer

        if isinstance(self.model.get_submodule(self.layer), AblationLayer):
            inputs = inputs[..., :self.small, :self.small]
        return self.model(inputs)


def smallest_replay_input(model: nn.Module, layer: str, image_size: int) -> int:
    """The smallest of SMALL_INPUTS on which replaying `layer`'s output gives the network's logits for the full image
    (so the output depends on the input only through that layer: no skip connection around it); 0 if none does."""
    for small in SMALL_INPUTS:
        if small < image_size and tail_sees_only(model, layer, image_size, small):
            return small
    return 0


def tail_sees_only(model: nn.Module, layer: str, image_size: int, small: int = 32) -> bool:
    """True when replaying `layer`'s output for a random image, on a small × small crop of it, gives the same
    logits as the whole image: the network's output depends on its input only through that layer."""
    if image_size <= small:
        return False
    module = model.get_submodule(layer)
    parameter = next(model.parameters())
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((2, 3, image_size, image_size), generator=generator).to(parameter.device, parameter.dtype)
    kept = {}

    def keep(m, inputs, output):
        kept["output"] = output

    def replay(m, inputs, output):
        return kept["output"]

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            handle = module.register_forward_hook(keep)
            try:
                full = model(image)
            finally:
                handle.remove()
            handle = module.register_forward_hook(replay)
            try:
                cropped = model(image[..., :small, :small])
            finally:
                handle.remove()
    except Exception:  # noqa: BLE001 — a network that cannot run on a small input simply takes the full path
        return False
    finally:
        model.train(was_training)
    return full.shape == cropped.shape and bool(torch.allclose(full, cropped, rtol=1e-4, atol=1e-5))
