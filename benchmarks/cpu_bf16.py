"""bfloat16 on a CPU that computes it natively (AVX-512 BF16 or AMX): speed and accuracy against fp32.

precision="auto" may choose bf16 on such CPUs only where it is measured faster and no less accurate, so this
measures both, side by side in one run (rounds alternate fp32 and bf16, so both see the same machine load):

  speed     training images/s at the floor (forward + backward + SGD step on a batch in memory, channels-last)
            for EfficientNet-Lite0 (the default network) and ResNet-18; median of the rounds
  accuracy  the offline EfficientNet-Lite0's ImageNet classifier on photos of known classes (as in
            normalisation.py) under bf16 autocast and fp32; fine-tuning accuracy in bf16 is a contender of
            accuracy.py: --contenders "engine,engine[precision='bf16']"

Usage: python benchmarks/cpu_bf16.py [--threads N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from imagesasdata.model.backbones import LITE_MEAN, LITE_STD, create_backbone  # noqa: E402
from imagesasdata.model.devices import cpu_has_native_bf16  # noqa: E402
from normalisation import known_views, scores, tagger  # noqa: E402
from train_speed import machine, markdown  # noqa: E402


def floor(architecture: str, batch: int, precision: str, steps: int) -> float:
    weights = "imagenet" if architecture == "efficientnet_lite0" else None
    model = create_backbone(architecture, weights, 6, progress=False).model.train()
    model = model.to(memory_format=torch.channels_last)
    inputs = torch.randn(batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 6, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}; native bfloat16 (CPU flags): {cpu_has_native_bf16()}; "
          f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    cases = (("efficientnet_lite0", 4, 8), ("efficientnet_lite0", 16, 3), ("resnet18", 16, 3))
    speeds = {}
    for _ in range(args.rounds):
        for architecture, batch, steps in cases:
            for precision in ("fp32", "bf16"):
                speeds.setdefault((architecture, batch, precision), []).append(floor(architecture, batch, precision, steps))
    rows = []
    for architecture, batch, _ in cases:
        fp32, bf16 = (sorted(speeds[(architecture, batch, p)])[args.rounds // 2] for p in ("fp32", "bf16"))
        rows.append({"model": architecture, "batch": batch, "fp32 img/s": fp32, "bf16 img/s": bf16,
                     "bf16 / fp32 speed": f"{bf16 / fp32:.2f}×"})
    print(markdown(rows, ["model", "batch", "fp32 img/s", "bf16 img/s", "bf16 / fp32 speed"]), "\n")

    with tempfile.TemporaryDirectory() as folder:
        views, accepted = known_views(Path(folder))
    model = tagger("efficientnet_lite0")
    rows = []
    for precision in ("fp32", "bf16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            rows.append({"precision": precision, **scores(model, views, accepted, LITE_MEAN, LITE_STD)})
    print(markdown(rows, ["precision", "top-1", "p(true)", "log p", "entropy"]))


if __name__ == "__main__":
    main()
