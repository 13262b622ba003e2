"""Which input statistics the offline EfficientNet-Lite0 weights expect: the ImageNet tagger (the 1,000-class head
the weights come with, before any fine-tuning) on real photos whose ImageNet classes are known, under each choice.

The weights are TensorFlow's EfficientNet-Lite0, converted to PyTorch by the package's author; TensorFlow's Lite
models were trained on (pixel - 127) / 128, i.e. mean = std ≈ 0.5. The plain PyTorch loop uses ImageNet's mean
and standard deviation. Whichever the weights expect, the tagger is more confident in the right classes under it.
Two network builds are compared: timm's `efficientnet_lite0` (PyTorch padding, batch-norm epsilon 1e-5), and
timm's `tf_efficientnet_lite0` (TensorFlow's asymmetric "SAME" padding, epsilon 1e-3), the architecture the
weights were trained in.

Measures over 8 photos and their mirror images (16 views), Resize(256) + CenterCrop(224):
  top-1     views whose most probable class is one a person would accept (conftest.imagenet_examples)
  p(true)   mean probability of the accepted classes
  log p     summed log-probability of the accepted classes (higher is better; the test's measure)
  entropy   mean entropy of the predicted distribution, in nats (lower: more decisive)

Usage: python benchmarks/normalisation.py     (seconds; prints a Markdown table)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import imagenet_examples  # noqa: E402
from imagesasdata.backbones import efficientnet_lite0_state  # noqa: E402
from imagesasdata.transforms import (  # noqa: E402
    IMAGENET_MEAN, IMAGENET_STD, Preprocessing, eval_view, load_base, normalize_batch, to_chw,
)
from train_speed import machine, markdown  # noqa: E402

CHOICES = {
    "0.5 (TensorFlow's 127/128)": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "ImageNet mean/std": (IMAGENET_MEAN, IMAGENET_STD),
}
BUILDS = {
    "efficientnet_lite0 (PyTorch padding, eps 1e-5)": "efficientnet_lite0",
    "tf_efficientnet_lite0 (TF SAME padding, eps 1e-3)": "tf_efficientnet_lite0",
}


def tagger(name: str) -> torch.nn.Module:
    import timm

    model = timm.create_model(name)
    model.load_state_dict(efficientnet_lite0_state(model))
    return model.eval()


@torch.no_grad()
def scores(model, views: torch.Tensor, accepted: list, mean, std) -> dict:
    log_p = torch.log_softmax(model(normalize_batch(views, mean, std)), dim=1)
    true = torch.stack([torch.logsumexp(log_p[i, sorted(classes)], 0) for i, classes in enumerate(accepted)])
    top1 = sum(int(log_p[i].argmax()) in classes for i, classes in enumerate(accepted))
    entropy = -(log_p.exp() * log_p).sum(1)
    return {"top-1": f"{top1}/{len(accepted)}", "p(true)": float(true.exp().mean()), "log p": float(true.sum()),
            "entropy": float(entropy.mean())}


def known_views(folder: Path):
    """The 8 photos and their mirror images as uint8 evaluation views, with their accepted classes."""
    prep = Preprocessing()
    examples = imagenet_examples(folder)
    views = torch.stack([eval_view(to_chw(load_base(path, prep)), prep) for path, _ in examples])
    return torch.cat([views, views.flip(-1)]), [classes for _, classes in examples] * 2


def main() -> None:
    torch.manual_seed(0)
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as folder:
        views, accepted = known_views(Path(folder))
    rows = []
    for build, name in BUILDS.items():
        model = tagger(name)
        for choice, (mean, std) in CHOICES.items():
            rows.append({"network": build, "normalisation": choice, **scores(model, views, accepted, mean, std)})
    print(markdown(rows, ["network", "normalisation", "top-1", "p(true)", "log p", "entropy"]))


if __name__ == "__main__":
    main()
