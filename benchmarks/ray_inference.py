"""Labelling 10,000 images: the local backend beside Ray on this machine, and a scaling model on paper.

Measured here, side by side in one run (this machine is shared and noisy: read the ratios):

  local      label_corpus(backend="local"): one model, the next batch decoded on a thread pool (torch's default
             threads, and again with torch on 1 thread: on shared cores its threads can get in each other's way)
  ray ×1     label_corpus(backend="ray") on a local Ray cluster of this machine's cores: 1 model replica
             (1 core, 1 thread), which decodes its own batches (Ray fuses decoding into CPU replicas)
  ray ×2     the same with 2 replicas

on 10,000 distinct files made from the real sample images: the 400 ORL faces re-encoded as JPEGs (quality 70–95,
mirrored or not) and the five tweeted photos of ../shared/datasets/rekognition_examples re-encoded at 50–100% of
their size. The model is efficientnet_lite0 fine-tuned at image_size 64 (so that the run takes minutes on two
cores); all runs must give the same labels and probabilities.

Then the rates the scaling model needs, per CPU core at the book's image size (224): decoding a photo or a face,
and the forward pass of one replica. Combined with an assumed GPU replica rate (there is no GPU here) they give
how many cores or GPUs label 75 million images a day.

Usage: python benchmarks/ray_inference.py [--quick]    (about 10 minutes; prints Markdown for benchmarks/README.md;
--quick: 1,000 images, to check the script)
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import imagesasdata as iad  # noqa: E402
from imagesasdata.infer.labelling import model_bytes  # noqa: E402
from imagesasdata.model.inference import Predictor, decode_images  # noqa: E402
from imagesasdata.data.transforms import Preprocessing  # noqa: E402

IMAGES = 10_000
PHOTOS = 800
DAILY = 75_000_000                       # Instagram uploads a day in 2018 (the figure)
# Assumed, not measured (no GPU here): a T4 running ResNet-50 in mixed precision at batch 32, 224 px —
# 1,128 images/s in NVIDIA's DeepLearningExamples (PyTorch/Classification/ConvNets/resnet50v1.5/README.md,
# "Inference performance: NVIDIA T4"). EfficientNet-Lite0 needs a tenth of ResNet-50's arithmetic but its
# depthwise convolutions do not use a GPU as well, so we keep the ResNet-50 figure as the conservative one.
GPU_REPLICA_RATE = 1128
SECONDS = 20                             # timing the forward pass


def shared_datasets() -> Path:
    from conftest import shared_datasets as find

    return find()


def make_corpus(root: Path) -> list[str]:
    """IMAGES distinct JPEG files from the real sample images (faces re-encoded, photos re-encoded and rescaled)."""
    from PIL import Image, ImageOps

    data = shared_datasets()
    faces = sorted((data / "orl_faces").glob("s*/*.pgm"))
    photos = sorted((data / "rekognition_examples").glob("*.jpg"))
    rng = np.random.default_rng(0)
    paths = []
    opened_faces = [Image.open(f).convert("RGB") for f in faces]
    opened_photos = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in photos]
    (root / "faces").mkdir(parents=True)
    (root / "photos").mkdir()
    for i in range(IMAGES - PHOTOS):
        image = opened_faces[i % len(opened_faces)]
        if (i // len(opened_faces)) % 2:
            image = ImageOps.mirror(image)
        target = root / "faces" / f"{i:05d}.jpg"
        image.save(target, quality=int(70 + (i // len(opened_faces)) % 26))
        paths.append(str(target))
    for i in range(PHOTOS):
        image = opened_photos[i % len(opened_photos)]
        scale = rng.uniform(0.5, 1.0)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        target = root / "photos" / f"{i:05d}.jpg"
        image.save(target, quality=int(rng.integers(70, 96)))
        paths.append(str(target))
    order = rng.permutation(len(paths))  # photos spread through the manifest, as in a real corpus
    return [paths[i] for i in order]


def timed_labelling(run, manifest, out, **options):
    result = iad.label_corpus(run, manifest, out=out, shard_size=1000, batch_size=32, progress=False, **options)
    assert result.complete and result.labelled == IMAGES, result
    return result


def per_core_rates(run, paths) -> dict:
    """Images/s on one core at image size 224: decoding (faces, photos) and the forward pass of one replica."""
    import torch

    prep = Preprocessing.from_dict({**run.description["preprocessing"], "image_size": 224, "resize_size": None})
    faces = [p for p in paths if "/faces/" in p][:400]
    photos = [p for p in paths if "/photos/" in p][:200]
    rates = {}
    for name, sample in (("decode a face", faces), ("decode a photo", photos)):
        started = time.perf_counter()
        decode_images(sample, prep, workers=1)
        rates[name] = len(sample) / (time.perf_counter() - started)
    description = {**run.description, "preprocessing": prep.to_dict()}
    threads = torch.get_num_threads()
    for cores in (1, 2):
        predictor = Predictor(description, model_bytes(run), "cpu", "fp32", threads=cores)
        size = prep.resize_size
        batch = {"row": np.arange(32), "image": np.random.default_rng(0).integers(0, 255, (32, size, size, 3), np.uint8),
                 "error": [""] * 32}
        predictor(batch)  # warm-up: oneDNN builds its kernels for this shape
        started, done = time.perf_counter(), 0
        while time.perf_counter() - started < SECONDS:
            predictor(batch)
            done += 32
        rates[f"forward pass, {cores} core{'s' if cores > 1 else ''}"] = done / (time.perf_counter() - started)
    torch.set_num_threads(threads)
    return rates


def main() -> None:
    global IMAGES, PHOTOS, SECONDS
    import argparse

    import pyarrow.compute as pc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images and short timings, to check the script")
    if parser.parse_args().quick:
        IMAGES, PHOTOS, SECONDS = 1_000, 80, 3

    from imagesasdata.scale.cluster import connect
    from imagesasdata.io.tables import write_table

    scratch = Path(tempfile.mkdtemp(prefix="imagesasdata-ray-bench-"))
    try:
        started = time.perf_counter()
        paths = make_corpus(scratch / "corpus")
        print(f"made {len(paths):,} files in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        manifest = scratch / "manifest.parquet"
        write_table(iad.image_table(paths).select(["image_id", "path"]), manifest)
        run = iad.finetune(iad.sample_data() / "faces", image_size=64, epochs=1, progress=False, out=scratch / "run")

        started = time.perf_counter()
        ray = connect(num_cpus=os.cpu_count())
        cluster_seconds = time.perf_counter() - started

        import torch

        rows, tables = [], {}
        threads = torch.get_num_threads()
        for name, options in (("local", {"backend": "local"}), ("local, torch on 1 thread", {"backend": "local"}),
                              ("ray ×1 replica", {"backend": "ray", "replicas": 1}),
                              ("ray ×2 replicas", {"backend": "ray", "replicas": 2})):
            torch.set_num_threads(1 if "1 thread" in name else threads)
            result = timed_labelling(run, manifest, scratch / name.replace(" ", "_").replace(",", ""), **options)
            tables[name] = result.table
            rows.append((name, result.seconds, result.images_per_second))
            print(f"{name}: {result.images_per_second:.1f} images/s", file=sys.stderr)
        reference = tables["local"]
        probabilities = [c for c in reference.column_names if c.startswith("prob_")]
        differences = []
        for name, table in tables.items():
            assert table["predicted"].equals(reference["predicted"]), f"{name} labels differ from local"
            for column in probabilities:
                differences.append(pc.max(pc.abs(pc.subtract(table[column], reference[column]))).as_py())
        ray.shutdown()

        rates = per_core_rates(run, paths)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), {platform.python_version()}, "
          f"ray {__import__('ray').__version__}. Ray cluster start: {cluster_seconds:.1f} s (not in the times below).\n")
    print("| backend | seconds | images/s | vs local |")
    print("|---|---:|---:|---:|")
    for name, seconds, rate in rows:
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {rate / rows[0][2]:.2f}× |")
    print(f"\nSame answers: identical labels; largest probability difference {max(differences):.1e}.\n")
    print("| per CPU core, image size 224 | images/s |")
    print("|---|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} |")

    per_second = DAILY / 86_400
    decode = 1 / (0.9 / rates["decode a face"] + 0.1 / rates["decode a photo"])  # the benchmark's mix
    photo_decode = rates["decode a photo"]
    forward = rates["forward pass, 1 core"]
    print(f"\n75 million images a day = {per_second:,.0f} images/s around the clock.\n")
    print("| set-up | replica rate (images/s) | replicas | decoding cores (photos / this mix) |")
    print("|---|---:|---:|---:|")
    print(f"| CPU cores only (measured) | {forward:.1f} per core | {math.ceil(per_second / forward):,} cores | "
          f"{math.ceil(per_second / photo_decode):,} / {math.ceil(per_second / decode):,} |")
    print(f"| T4 GPUs (assumed {GPU_REPLICA_RATE:,}/s) | {GPU_REPLICA_RATE:,} per GPU | "
          f"{math.ceil(per_second / GPU_REPLICA_RATE):,} GPU | {math.ceil(per_second / photo_decode):,} / "
          f"{math.ceil(per_second / decode):,} |")


if __name__ == "__main__":
    main()
