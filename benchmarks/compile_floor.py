"""Is torch.compile a lever for CPU training? EfficientNet-Lite0 at the book's batch of 4, channels-last, at the
floor (a batch already in memory), eager against compiled in alternating rounds so both see the same load.

    .venv/bin/python benchmarks/compile_floor.py        # about 4 minutes on 2 cores, most of it compiling
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import floor_train  # noqa: E402

from imagesasdata.model.backbones import create_backbone  # noqa: E402


def main(rounds: int = 3, steps: int = 20, batch_size: int = 4, image_size: int = 224) -> None:
    torch.manual_seed(0)
    eager = create_backbone("efficientnet_lite0", num_classes=40).model
    compiled = create_backbone("efficientnet_lite0", num_classes=40).model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    compiled = torch.compile(compiled)
    floor_train(compiled, batch_size, 2, image_size)  # compiles forward and backward
    print(f"compile + warm-up: {time.perf_counter() - started:.1f} s", flush=True)
    for round_number in range(rounds):
        eager_rate = floor_train(eager, batch_size, steps, image_size)
        compiled_rate = floor_train(compiled, batch_size, steps, image_size)
        print(f"round {round_number}: eager {eager_rate:.1f} img/s, compiled {compiled_rate:.1f} img/s, "
              f"compiled / eager {compiled_rate / eager_rate:.2f}", flush=True)


if __name__ == "__main__":
    main()
