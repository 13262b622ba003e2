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

Transfer (--transfer): what fine-tuning needs is not the 1,000 ImageNet classes but features that separate new
classes. A linear probe — the new last layer alone, trained for 20 epochs with SGD (momentum 0.9, batch 4) on the
features of the evaluation view and its mirror image — measures that, on lfw_politicians and ORL's 40 people,
under each build and normalisation; mean validation accuracy and loss over 3 seeds, at two learning rates.

Usage: python benchmarks/normalisation.py [--transfer]     (seconds; --transfer: minutes)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import imagenet_examples  # noqa: E402
from imagesasdata.model.backbones import efficientnet_lite0_state  # noqa: E402
from imagesasdata.data.transforms import (  # noqa: E402
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


def probe(data: Path, name: str, mean, std, work: Path, seeds=(0, 1, 2), rates=(0.001, 0.01), epochs=20) -> list:
    """Validation accuracy and loss of a linear probe on the build's features, per learning rate (seed means)."""
    import numpy as np

    from imagesasdata.train.config import TrainConfig
    from imagesasdata.train.features import HeadFeatures
    from imagesasdata.train.trainer import epoch_order, prepare_trainer

    options = {"architecture": name, "weights": "imagenet"}
    if name != "efficientnet_lite0":   # the same tensors, saved for timm's TensorFlow-padded build
        from safetensors.torch import save_file

        file = work / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in efficientnet_lite0_state(tagger(name)).items()}, str(file))
        options["weights"] = str(file)
    config = TrainConfig.from_options(progress=False, epochs=1, augment_crop=False, **options)
    trainer = prepare_trainer(data, config, work / "scratch", write=False)
    trainer.prep.mean, trainer.prep.std = mean, std
    head = trainer.model.get_submodule(trainer.backbone.head[0])
    train, val = trainer.rows["train"], trainer.rows["val"]
    features = HeadFeatures(trainer.model, head, trainer.images, sorted(train + val), trainer.prep, trainer.device,
                            trainer.precision, trainer.channels_last, flips=True, progress=False)
    val_x, val_y = features.batch(val), torch.from_numpy(trainer.targets[val])
    results = []
    for rate in rates:
        accuracy, loss = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            torch.nn.init.normal_(head.weight, 0.0, 0.01)
            torch.nn.init.zeros_(head.bias)
            optimizer = torch.optim.SGD(head.parameters(), lr=rate, momentum=0.9)
            for epoch in range(1, epochs + 1):
                order = epoch_order(train, seed, epoch)
                for start in range(0, len(order), 4):
                    batch = order[start:start + 4]
                    flips = [bool(np.random.default_rng([seed, epoch, r]).random() < 0.5) for r in batch]
                    step_loss = torch.nn.functional.cross_entropy(head(features.batch(batch, flips)),
                                                                  torch.from_numpy(trainer.targets[batch]))
                    optimizer.zero_grad()
                    step_loss.backward()
                    optimizer.step()
            with torch.no_grad():
                logits = head(val_x)
            accuracy.append(float((logits.argmax(1) == val_y).float().mean()))
            loss.append(float(torch.nn.functional.cross_entropy(logits, val_y)))
        results.append({"learning rate": rate, "val accuracy": float(np.mean(accuracy)), "val loss": float(np.mean(loss))})
    return results


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--transfer", action="store_true", help="also the linear-probe comparison (minutes)")
    args = parser.parse_args()
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
    if args.transfer:
        from accuracy import build_set

        print("\n### Transfer: linear probe on the features (3 seeds)\n")
        rows = []
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            for set_name in ("politicians", "orl40"):
                data = build_set(set_name, work)
                for build, name in BUILDS.items():
                    for choice, (mean, std) in CHOICES.items():
                        for result in probe(data, name, mean, std, work):
                            rows.append({"set": set_name, "network": build.split(" ")[0], "normalisation": choice,
                                         **result})
        print(markdown(rows, ["set", "network", "normalisation", "learning rate", "val accuracy", "val loss"]))


if __name__ == "__main__":
    main()
