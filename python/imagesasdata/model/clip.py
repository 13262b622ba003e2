"""CLIP networks from open_clip (`open-clip-torch`): zero-shot classifiers whose classes are sentences, and image
towers with a fresh head for linear probes — built here, as every network is built in model/.

Weights: an open_clip pretrained tag ("openai", "laion2b_s34b_b79k", ...: open_clip's normal download into the
Hugging Face cache, which works offline once filled), a local .safetensors file of a whole CLIP model's state dict
(open_clip's key names), or None (random weights: for tests only — the classes mean nothing). Pickled checkpoints
(.pt, .bin) are refused, as everywhere in the engine: convert them once with open_clip on a trusted machine
(`safetensors.torch.save_file(open_clip.create_model(name, pretrained=tag).state_dict(), "clip.safetensors")`).

OpenAI's CLIP weights were trained with QuickGELU activations; open_clip records this in its pretrained
configuration and builds "<name>-quickgelu". We do the same and record that name, so a run rebuilt from its
model.json has exactly the network it was trained with. A local file of OpenAI's weights needs the
"-quickgelu" name too (e.g. "ViT-B-32-quickgelu"); the loader cannot tell from the tensors.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ImagesAsDataError, did_you_mean, setting

log = logging.getLogger("imagesasdata.model")

LIBRARY = "open_clip"
PREFIX = "open_clip/"
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_WEIGHTS = "openai"
# The prompt of CLIP's paper for a class written as a noun phrase; a class can have its own prompt ensemble.
DEFAULT_TEMPLATE = "a photo of {}."
NO_NETWORK_HELP = (
    "This needs open_clip's download of the weights (from the Hugging Face hub, into HF_HOME's cache). Offline: "
    "fill that cache on a machine with a network, or pass weights='/path/to/clip.safetensors' (a whole CLIP "
    "model's state dict with open_clip's key names)"
)


@dataclass
class Clip:
    """A whole CLIP model (image and text towers), its tokenizer, and what the rest of the engine records."""

    model: nn.Module
    architecture: str             # open_clip's model name, "-quickgelu" included where the weights need it
    weights: str                  # a pretrained tag, a file's absolute path, or "none"
    weights_sha256: str | None    # of a local file; None for a pretrained tag (open_clip verifies its downloads)
    tokenizer: object
    mean: tuple
    std: tuple
    input_size: int
    interpolation: str            # "bicubic" for every CLIP open_clip ships
    open_clip_version: str = ""
    notes: list = field(default_factory=list)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if getattr(self.model, "text_projection", None) is not None \
            else int(self.model.visual.output_dim)

    def describe(self) -> dict:
        """The provenance recorded with every result (like a run's model.json)."""
        return {"library": LIBRARY, "architecture": self.architecture, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "open_clip_version": self.open_clip_version,
                "preprocessing": {"image_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                                  "interpolation": self.interpolation, "resize": "rescale-crop"}}


class ClipImageClassifier(nn.Module):
    """CLIP's image tower, its embedding L2-normalised, then a linear head.

    Zero-shot: the head's weights are the classes' normalised text embeddings times CLIP's logit scale, so that
    softmax(head(x)) is CLIP's own zero-shot probability. Linear probe: a fresh head, trained on frozen features.
    The head's input (the normalised image embedding) is what Predictor(features=True) returns as embeddings.
    """

    def __init__(self, visual: nn.Module, embed_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.visual = visual
        linear = nn.Linear(embed_dim, num_classes)
        self.head = nn.Sequential(nn.Dropout(dropout), linear) if dropout > 0 else linear

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.visual(images), dim=-1))


def clip_name(architecture: str) -> str:
    """open_clip's model name from "open_clip/ViT-B-32" or "ViT-B-32"; ImagesAsDataError if open_clip has none."""
    import open_clip

    name = str(architecture).strip()
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    known = open_clip.list_models()
    if name not in known:
        raise ImagesAsDataError(f"unknown open_clip model {name!r}.{did_you_mean(name, known)} "
                                f"Common ones: ViT-B-32, ViT-B-16, ViT-L-14, RN50 (open_clip.list_models() lists all)")
    return name


def pretrained_tags(name: str) -> list:
    import open_clip

    return list(open_clip.list_pretrained_tags_by_model(name.removesuffix("-quickgelu")))


def load_clip(architecture: str = DEFAULT_MODEL, weights=DEFAULT_WEIGHTS) -> Clip:
    """The CLIP model `architecture` with `weights` (a pretrained tag, a .safetensors path, or None).

    "imagenet" or "pretrained" (the engine's usual word for "the published weights") mean the model's first
    pretrained tag ("openai" where OpenAI published it). Raises ImagesAsDataError for unknown names and tags,
    weight files that are not safetensors or do not fit, and downloads that fail (offline).
    """
    import open_clip

    name = clip_name(architecture)
    label = "none" if weights in (None, "none", "None", False) else str(weights)
    tags = pretrained_tags(name)
    if label in ("imagenet", "pretrained"):
        if not tags:
            raise ImagesAsDataError(f"open_clip publishes no weights for {name}; pass weights='/path/to/file.safetensors'")
        label = DEFAULT_WEIGHTS if DEFAULT_WEIGHTS in tags else tags[0]
    path = Path(label).expanduser()
    sha256 = None
    notes = []
    if label == "none":
        model = open_clip.create_model(name, pretrained=None)
        notes.append("random weights: for tests only; its classes and embeddings mean nothing")
    elif path.suffix or path.exists() or "/" in label:
        model, label, sha256 = _from_file(name, path)
    elif label in tags:
        config = open_clip.get_pretrained_cfg(name.removesuffix("-quickgelu"), label)
        if config.get("quick_gelu") and not name.endswith("-quickgelu"):
            if f"{name}-quickgelu" in open_clip.list_models():
                name = f"{name}-quickgelu"
                notes.append(f"the {label} weights were trained with QuickGELU: built as {name}")
        try:
            # Fetch (or find in the cache) before building the network: offline, fail in a second, not a minute.
            from open_clip.pretrained import download_pretrained

            download_pretrained(config)
            model = open_clip.create_model(name, pretrained=label, require_pretrained=True)
        except Exception as error:  # hub and URL errors come in many types; the advice is the same
            raise ImagesAsDataError(f"could not fetch open_clip's {label!r} weights for {name} "
                                    f"({type(error).__name__}: {str(error)[:300]}). {NO_NETWORK_HELP}") from None
    else:
        raise ImagesAsDataError(f"{setting('weights', label)}: not a pretrained tag of {name} (tags: {', '.join(tags) or 'none'}) "
                                f"and not a .safetensors file.{did_you_mean(label, tags)}",
                                what="option", option="weights", value=label)
    model.eval()
    config = getattr(model.visual, "preprocess_cfg", None) or {}
    size = config.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    interpolation = config.get("interpolation", "bicubic")
    if config.get("resize_mode", "shortest") != "shortest" or interpolation not in ("bicubic", "bilinear"):
        notes.append(f"open_clip resizes this model by {config.get('resize_mode')}/{interpolation}; approximated by "
                     "a bicubic resize of the shorter side and a centre crop")
        interpolation = "bicubic"
    return Clip(model, name, label, sha256, open_clip.get_tokenizer(name),
                tuple(float(v) for v in config.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                tuple(float(v) for v in config.get("std", open_clip.OPENAI_DATASET_STD)), size, interpolation,
                getattr(open_clip, "__version__", ""), notes)


def _from_file(name: str, path: Path):
    import open_clip
    from safetensors import SafetensorError

    if not path.exists():
        raise ImagesAsDataError(f"weights file {path} does not exist; pass an open_clip pretrained tag (e.g. "
                                f"'{DEFAULT_WEIGHTS}') or the path of a .safetensors file", what="file", path=path)
    if path.suffix != ".safetensors":
        raise ImagesAsDataError(f"{path}: CLIP weights must be a .safetensors file (pickled .pt/.bin files can run "
                                "code when loaded); convert it once on a trusted machine with open_clip and "
                                "safetensors.torch.save_file(model.state_dict(), 'clip.safetensors')",
                                what="file", path=path)
    try:
        # open_clip reads a .safetensors file with safetensors (no pickle), strictly: every tensor must fit.
        model = open_clip.create_model(name, pretrained=str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ImagesAsDataError(f"{path}: not a valid safetensors file ({error})", what="file", path=path) from None
    except (RuntimeError, AssertionError, KeyError) as error:   # missing, unexpected or misshapen tensors
        first = str(error).strip().splitlines()
        raise ImagesAsDataError(f"{path}: these weights do not fit open_clip's {name} ({' '.join(first[:3])[:400]}). "
                                "Is the file for another CLIP model (or does it need the '-quickgelu' name)?",
                                what="file", path=path) from None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return model, str(path.resolve()), digest.hexdigest()


def class_prompts(classes, prompts=None) -> dict:
    """{class: [sentences]}: prompts may be None (DEFAULT_TEMPLATE for every class), a template with "{}" (or a
    list of templates: an ensemble) applied to every class, or a mapping class → sentence(s) written out."""
    classes = [str(c) for c in classes]
    if prompts is None:
        prompts = DEFAULT_TEMPLATE
    if isinstance(prompts, str) or (isinstance(prompts, (list, tuple)) and all(isinstance(p, str) for p in prompts)):
        templates = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = [t for t in templates if "{}" not in t]
        if missing or not templates:
            raise ImagesAsDataError(f"prompts: every template needs '{{}}' where the class goes (got {missing or templates!r}); "
                                    "or pass a mapping {class: sentence(s)}")
        return {c: [t.format(c) for t in templates] for c in classes}
    if isinstance(prompts, dict):
        unknown = [k for k in prompts if str(k) not in classes]
        absent = [c for c in classes if c not in {str(k) for k in prompts}]
        if unknown or absent:
            raise ImagesAsDataError(f"prompts: the mapping must give sentences for exactly the classes "
                                    f"({', '.join(classes)}); " + (f"not classes: {', '.join(map(str, unknown))}; " if unknown else "")
                                    + (f"missing: {', '.join(absent)}" if absent else ""))
        out = {}
        for key, value in prompts.items():
            sentences = [value] if isinstance(value, str) else [str(v) for v in value]
            if not sentences or not all(s.strip() for s in sentences):
                raise ImagesAsDataError(f"prompts[{key!r}] is empty; give at least one sentence")
            out[str(key)] = sentences
        return {c: out[c] for c in classes}
    raise ImagesAsDataError(f"prompts must be a template such as 'a photo of {{}}.', a list of templates, or a mapping "
                            f"{{class: sentence(s)}} (got {type(prompts).__name__})")


@torch.no_grad()
def text_classifier(clip: Clip, sentences: dict) -> torch.Tensor:
    """Classes × embedding: each class's sentences encoded, L2-normalised, averaged and normalised again (the
    prompt ensemble of CLIP's paper)."""
    rows = []
    for texts in sentences.values():
        encoded = clip.model.encode_text(clip.tokenizer(list(texts)), normalize=True)
        rows.append(F.normalize(encoded.float().mean(dim=0), dim=-1))
    return torch.stack(rows)


def zero_shot_network(clip: Clip, sentences: dict) -> ClipImageClassifier:
    """The image tower with a head whose weights are logit_scale × the classes' text embeddings (bias 0):
    softmax of its output is CLIP's zero-shot probability over the classes."""
    weights = text_classifier(clip, sentences)
    network = ClipImageClassifier(clip.model.visual, weights.shape[1], weights.shape[0])
    with torch.no_grad():
        network.head.weight.copy_(clip.model.logit_scale.exp().float() * weights)
        network.head.bias.zero_()
    return network.eval()


def clip_backbone(architecture: str, weights, num_classes: int, dropout: float = 0.0):
    """(network with a fresh N(0, 0.01) head for num_classes, Clip) — a CLIP image tower for a linear probe."""
    from .backbones import HEAD_STD

    clip = load_clip(architecture, weights)
    network = ClipImageClassifier(clip.model.visual, clip.embed_dim, num_classes, dropout)
    linear = network.head[-1] if isinstance(network.head, nn.Sequential) else network.head
    nn.init.normal_(linear.weight, mean=0.0, std=HEAD_STD)
    nn.init.zeros_(linear.bias)
    return network, clip
