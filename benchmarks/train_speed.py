"""Training and inference speed of the engine beside the compute floor and the book's reference loop.

Everything is measured side by side in one run (this machine is shared and noisy: read the ratios).

  floor      the same model, batch size and precision on tensors already in memory (no decoding, no augmentation)
  engine     imagesasdata's trainer / predict on real files (decoded once, augmented on cached pixels)
  reference  the book's loop (reference_loop.py): ImageFolder, decode every epoch, batch 4

Usage: python benchmarks/train_speed.py [--quick]    (prints Markdown tables for benchmarks/README.md)
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagesasdata as iad  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001  (sections appear as they finish)
from imagesasdata.train.config import TrainConfig  # noqa: E402
from imagesasdata.model.devices import autocast  # noqa: E402
from imagesasdata.train.trainer import prepare_trainer  # noqa: E402
from reference_loop import reference_finetune  # noqa: E402


def orl_faces() -> Path:
    from conftest import shared_datasets

    return shared_datasets() / "orl_faces"


def book_layout(root: Path, people=40, train_per_person=8) -> Path:
    """ORL in the book's train/ val/ layout, as JPEGs (what researchers' tweet images are)."""
    from PIL import Image

    for person in range(1, people + 1):
        for k in range(1, 11):
            split = "train" if k <= train_per_person else "val"
            target = root / split / f"s{person:02d}" / f"{k}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.open(orl_faces() / f"s{person}" / f"{k}.pgm").convert("RGB").save(target, quality=95)
    return root


def floor_train(model, batch_size, steps, image_size, precision="fp32", channels_last=True, device="cpu"):
    """Images/s of forward + backward + SGD step on one batch already in memory."""
    device = torch.device(device)
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    inputs = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 2, (batch_size,), device=device)
    loss_function = torch.nn.CrossEntropyLoss()

    def step():
        with autocast(device, precision):
            loss = loss_function(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - started)


@torch.no_grad()
def floor_inference(model, batch_size, steps, image_size, precision="fp32", channels_last=True, device="cpu"):
    device = torch.device(device)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    inputs = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        with autocast(device, precision):
            model(inputs)
    started = time.perf_counter()
    for _ in range(steps):
        with autocast(device, precision):
            model(inputs)
    return batch_size * steps / (time.perf_counter() - started)


def markdown(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}, {gpu}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and epochs (a smoke run)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sections", default="choices,floor,inference,reference,grid")
    args = parser.parse_args()
    sections = args.sections.split(",")
    steps = 5 if args.quick else 12
    device = args.device
    print(f"Machine: {machine()}\n")
    work = Path(tempfile.mkdtemp(prefix="imagesasdata-bench-"))
    try:
        layout = book_layout(work / "orl40")

        if "choices" in sections:
            print("### CPU/GPU choices: floor images/s for memory format and precision\n")
            rows = []
            for arch, batch in (("efficientnet_lite0", 4), ("resnet18", 16)):
                for channels_last in (False, True):
                    for precision in (("fp32", "bf16") if device == "cpu" else ("fp32", "bf16", "fp16")):
                        model = iad.create_backbone(arch, None, 2, progress=False).model
                        # few steps: bf16 without native CPU support runs an order of magnitude slower
                        rows.append({"model": arch, "batch": batch, "channels_last": channels_last,
                                     "precision": precision,
                                     "train img/s": floor_train(model, batch, 3, 224, precision, channels_last, device)})
            print(markdown(rows, ["model", "batch", "channels_last", "precision", "train img/s"]), "\n")

        if "floor" in sections:
            rounds = 1 if args.quick else 3
            print("### Training: engine epoch against the compute floor (224 px, ORL 40 people, 320 training images; "
                  f"median of {rounds} alternating rounds)\n")
            rows = []
            for arch, batch, weights in (("efficientnet_lite0", 4, "imagenet"), ("efficientnet_lite0", 16, "imagenet"),
                                         ("resnet18", 16, None)):
                config = TrainConfig.from_options(progress=False, epochs=rounds + 1, architecture=arch, weights=weights,
                                                  batch_size=batch, device=device)
                trainer = prepare_trainer(layout, config, work / "scratch", write=False)
                trainer.run_epoch(1)  # warm-up: allocator, oneDNN kernels
                engine, floor = [], []
                for epoch in range(2, rounds + 2):  # alternate, so both see the same machine load
                    engine.append(len(trainer.rows["train"]) / trainer.run_epoch(epoch).train_seconds)
                    floor.append(floor_train(trainer.model, batch, steps, 224, trainer.precision, trainer.channels_last,
                                             device))
                ratios = sorted(f / e for f, e in zip(floor, engine))
                rows.append({"model": arch, "batch": batch, "precision": trainer.precision,
                             "channels_last": trainer.channels_last, "floor img/s": sorted(floor)[len(floor) // 2],
                             "engine img/s": sorted(engine)[len(engine) // 2],
                             "engine / floor time": ratios[len(ratios) // 2]})
            print(markdown(rows, ["model", "batch", "precision", "channels_last", "floor img/s", "engine img/s",
                                  "engine / floor time"]), "\n")

        if "inference" in sections:
            print("### Inference: predict() on JPEG files against the floor (batch 32, 224 px)\n")
            run = iad.finetune(layout, out=work / "run", epochs=1, progress=False, device=device)
            files = sorted(str(p) for p in layout.rglob("*.jpg"))
            started = time.perf_counter()
            run.predict(files, progress=False, device=device)
            engine = len(files) / (time.perf_counter() - started)
            trainer_precision = "fp32" if device == "cpu" else "bf16"
            floor = floor_inference(run.model(device), 32, max(3, steps // 2), 224, trainer_precision, True, device)
            print(markdown([{"images": len(files), "floor img/s": floor, "engine img/s": engine,
                             "engine / floor time": floor / engine}],
                           ["images", "floor img/s", "engine img/s", "engine / floor time"]), "\n")

        if "reference" in sections:
            epochs = 1 if args.quick else 3
            print(f"### A full fine-tune: the book's reference loop against the engine (ORL 40 people, 224 px, "
                  f"{epochs} epochs, batch 4, same backbone and seed)\n")
            reference = reference_finetune(layout, epochs=epochs, seed=0)
            started = time.perf_counter()
            run = iad.finetune(layout, out=work / "engine", epochs=epochs, seed=0, progress=False, device=device)
            engine_seconds = time.perf_counter() - started
            rows = [{"loop": "book's reference", "seconds": reference["seconds"], "val accuracy": reference["val_accuracy"]},
                    {"loop": "imagesasdata", "seconds": engine_seconds, "val accuracy": run.metric("accuracy", "val")}]
            print(markdown(rows, ["loop", "seconds", "val accuracy"]))
            print(f"\nspeed-up: {reference['seconds'] / engine_seconds:.2f}×\n")

        if "grid" in sections:
            epochs = 1 if args.quick else 5
            print(f"### The book's 12-configuration grid: 12 reference runs against one frozen-backbone grid "
                  f"(bundled sample, 6 people × 8 photos, 224 px, {epochs} epochs each)\n")
            sample = book_layout(work / "sample", people=6, train_per_person=7)
            from imagesasdata.train.grids import expand_grid

            configurations, _ = expand_grid("book")
            started = time.perf_counter()
            reference_accuracy = []
            for c in configurations:
                r = reference_finetune(sample, epochs=epochs, batch_size=c["batch_size"], learning_rate=c["learning_rate"],
                                       momentum=c["momentum"], seed=0)
                reference_accuracy.append(r["val_accuracy"])
            reference_seconds = time.perf_counter() - started
            started = time.perf_counter()
            grid = iad.tune(sample, "book", out=work / "grid", epochs=epochs, freeze="backbone", augment_crop=False,
                            progress=False, device=device)
            grid_seconds = time.perf_counter() - started
            started = time.perf_counter()
            grid50 = iad.tune(sample, "book", out=work / "grid50", freeze="backbone", augment_crop=False,
                              progress=False, device=device)
            grid50_seconds = time.perf_counter() - started
            rows = [{"grid": f"12 reference runs, {epochs} epochs", "seconds": reference_seconds,
                     "best val accuracy": max(reference_accuracy)},
                    {"grid": f"engine, frozen backbone, {epochs} epochs", "seconds": grid_seconds,
                     "best val accuracy": max(grid.results["val_accuracy"].to_pylist())},
                    {"grid": "engine, frozen backbone, the book's 50 epochs", "seconds": grid50_seconds,
                     "best val accuracy": max(grid50.results["val_accuracy"].to_pylist())}]
            print(markdown(rows, ["grid", "seconds", "best val accuracy"]))
            print(f"\nspeed-up at equal epochs: {reference_seconds / grid_seconds:.1f}×\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
