"""Labelling on Ray: images/s with 1, 2 and 4 CPU workers, the driver's share, and where the time goes.

One run, on one machine, of label_corpus(backend="ray") on a local Ray cluster of 4 logical CPUs, with 1, 2 and 4
model replicas (a replica is a CPU worker: one core, one torch thread, decoding its own images, as on a CPU node
of a real cluster). For each, the same 4,000-image corpus is labelled from scratch, and the run records:

  images/s      the call's wall time, from reading the manifest to the last shard (replicas' start-up included)
  decode        seconds the replicas spent reading and resizing images (summed over replicas)
  forward       seconds the replicas spent in the network's forward pass (summed over replicas)
  write         seconds the driver spent collecting rows and writing shards (ShardWriter)
  driver CPU    CPU seconds of the driver process over the call (streaming, Ray's bookkeeping, writing)

decode and forward are timed inside the replicas by wrappers around the very functions label_corpus hands to Ray
(model.inference.decode_batch and Predictor), which write their timings to a folder; nothing else changes.
All runs must give the local backend's labels.

Then the rates the cost table of docs/scaling.md needs, per CPU core at the book's image size (224 px): decoding a
face and a photo, and the forward pass of one replica; and, from the runs above, the driver's CPU per image.

The corpus: 4,000 distinct JPEG files made from the real sample images (ORL faces re-encoded at quality 70–95,
mirrored or not; the tweeted photos of ../shared/datasets/rekognition_examples re-encoded at 50–100% of their
size, 8% of the files), shuffled. The model: efficientnet_lite0 fine-tuned at image_size 64 (so that the runs
take minutes on two cores). On a machine with fewer than 4 cores, 4 workers share them: the table says how many
cores there are.

Usage: nice python benchmarks/ray_inference.py [--images N] [--quick]   (prints Markdown for benchmarks/README.md;
--quick: 400 images and short timings, to check the script)
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
from imagesasdata.data.transforms import Preprocessing  # noqa: E402
from imagesasdata.infer import labelling  # noqa: E402
from imagesasdata.infer.labelling import model_bytes  # noqa: E402
from imagesasdata.model import inference  # noqa: E402
from imagesasdata.model.inference import Predictor, decode_images  # noqa: E402

IMAGES = 4_000
PHOTO_SHARE = 0.08
WORKERS = (1, 2, 4)
DAILY = 75_000_000                       # Instagram uploads a day in 2018 (the figure)
# Assumed, not measured (no GPU here): a T4 running ResNet-50 in mixed precision at batch 32, 224 px —
# 1,128 images/s in NVIDIA's DeepLearningExamples (PyTorch/Classification/ConvNets/resnet50v1.5/README.md,
# "Inference performance: NVIDIA T4"). EfficientNet-Lite0 needs a tenth of ResNet-50's arithmetic but its
# depthwise convolutions do not use a GPU as well, so we keep the ResNet-50 figure as the conservative one.
GPU_REPLICA_RATE = 1128
SECONDS = 20                             # timing the forward pass at 224 px
TIMINGS = Path(tempfile.mkdtemp(prefix="imagesasdata-ray-timings-"))


# ------------------------------------------------------------------------------------------ instrumented pieces
# Defined here (in __main__), so Ray ships them to the replicas by value. Each appends "what seconds rows" lines
# to a file of its own process.

def _record(what: str, seconds: float, rows: int) -> None:
    with open(TIMINGS / f"{os.getpid()}.txt", "a") as handle:
        handle.write(f"{what} {seconds:.6f} {rows}\n")


def timed_decode_batch(batch, prep, endpoint_url=None, workers=None):
    started = time.perf_counter()
    output = inference.decode_batch(batch, prep, endpoint_url=endpoint_url, workers=workers)
    _record("decode", time.perf_counter() - started, len(output["row"]))
    return output


class TimedPredictor(Predictor):
    def __call__(self, batch):
        started = time.perf_counter()
        output = super().__call__(batch)
        _record("forward", time.perf_counter() - started, len(output["row"]))
        return output


def timed_shard_writer():
    """ShardWriter.add, timed on the driver (it collects rows and writes each finished shard)."""
    original = labelling.ShardWriter.add

    def add(self, rows, probabilities, errors):
        started = time.perf_counter()
        original(self, rows, probabilities, errors)
        _record("write", time.perf_counter() - started, len(rows))

    return original, add


def read_timings() -> dict:
    totals: dict = {}
    for file in TIMINGS.glob("*.txt"):
        for line in file.read_text().splitlines():
            what, seconds, rows = line.split()
            totals.setdefault(what, [0.0, 0])
            totals[what][0] += float(seconds)
            totals[what][1] += int(rows)
        file.unlink()
    return totals


# ------------------------------------------------------------------------------------------ corpus and rates

def shared_datasets() -> Path:
    from conftest import shared_datasets as find

    return find()


def make_corpus(root: Path, images: int) -> list[str]:
    """`images` distinct JPEG files from the real sample images (faces re-encoded, photos re-encoded and rescaled)."""
    from PIL import Image, ImageOps

    data = shared_datasets()
    faces = sorted((data / "orl_faces").glob("s*/*.pgm"))
    photos = sorted((data / "rekognition_examples").glob("*.jpg"))
    rng = np.random.default_rng(0)
    opened_faces = [Image.open(f).convert("RGB") for f in faces]
    opened_photos = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in photos]
    (root / "faces").mkdir(parents=True)
    (root / "photos").mkdir()
    photo_count = round(images * PHOTO_SHARE)
    paths = []
    for i in range(images - photo_count):
        image = opened_faces[i % len(opened_faces)]
        if (i // len(opened_faces)) % 2:
            image = ImageOps.mirror(image)
        target = root / "faces" / f"{i:05d}.jpg"
        image.save(target, quality=int(70 + (i // len(opened_faces)) % 26))
        paths.append(str(target))
    for i in range(photo_count):
        image = opened_photos[i % len(opened_photos)]
        scale = rng.uniform(0.5, 1.0)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
        target = root / "photos" / f"{i:05d}.jpg"
        image.save(target, quality=int(rng.integers(70, 96)))
        paths.append(str(target))
    order = rng.permutation(len(paths))  # photos spread through the manifest, as in a real corpus
    return [paths[i] for i in order]


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
    predictor = Predictor(description, model_bytes(run), "cpu", "fp32", threads=1)
    size = prep.resize_size
    batch = {"row": np.arange(32), "image": np.random.default_rng(0).integers(0, 255, (32, size, size, 3), np.uint8),
             "error": [""] * 32}
    predictor(batch)  # warm-up: oneDNN builds its kernels for this shape
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < SECONDS:
        predictor(batch)
        done += 32
    rates["forward pass, 1 core"] = done / (time.perf_counter() - started)
    torch.set_num_threads(threads)
    return rates


# ------------------------------------------------------------------------------------------ the run

def label_with_workers(run, manifest, out, workers: int) -> dict:
    started_cpu = time.process_time()
    result = iad.label_corpus(run, manifest, out=out, backend="ray", replicas=workers, cpus_per_replica=1,
                              shard_size=500, batch_size=32, progress=False)
    driver_cpu = time.process_time() - started_cpu
    assert result.complete and result.labelled == IMAGES, result
    timings = read_timings()
    assert timings["forward"][1] == IMAGES and timings["write"][1] == IMAGES, timings
    return {"workers": workers, "seconds": result.seconds, "rate": result.images_per_second, "table": result.table,
            "decode": timings["decode"][0], "forward": timings["forward"][0], "write": timings["write"][0],
            "driver_cpu": driver_cpu}


def main() -> None:
    global IMAGES, SECONDS
    import argparse

    import pyarrow.compute as pc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=IMAGES, help=f"corpus size (default: {IMAGES:,})")
    parser.add_argument("--quick", action="store_true", help="400 images and short timings, to check the script")
    arguments = parser.parse_args()
    IMAGES = 400 if arguments.quick else arguments.images
    SECONDS = 3 if arguments.quick else SECONDS

    from imagesasdata.io.tables import write_table
    from imagesasdata.scale.cluster import connect

    scratch = Path(tempfile.mkdtemp(prefix="imagesasdata-ray-bench-"))
    began = time.perf_counter()
    try:
        paths = make_corpus(scratch / "corpus", IMAGES)
        manifest = scratch / "manifest.parquet"
        write_table(iad.image_table(paths).select(["image_id", "path"]), manifest)
        run = iad.finetune(iad.sample_data() / "faces", image_size=64, epochs=1, progress=False, out=scratch / "run")
        reference = iad.label_corpus(run, manifest, out=scratch / "local", shard_size=500, cpus_per_replica=1,
                                     progress=False).table

        started = time.perf_counter()
        ray = connect(num_cpus=max(WORKERS))
        cluster_seconds = time.perf_counter() - started
        # the very functions label_corpus hands to Ray, timed
        labelling.decode_batch, labelling.Predictor = timed_decode_batch, TimedPredictor
        original_add, timed_add = timed_shard_writer()
        labelling.ShardWriter.add = timed_add
        rows = []
        try:
            for workers in WORKERS:
                rows.append(label_with_workers(run, manifest, scratch / f"ray_{workers}", workers))
                print(f"{workers} workers: {rows[-1]['rate']:.1f} images/s", file=sys.stderr)
        finally:
            labelling.decode_batch, labelling.Predictor = inference.decode_batch, Predictor
            labelling.ShardWriter.add = original_add
        largest = 0.0
        for row in rows:
            assert row["table"]["predicted"].equals(reference["predicted"]), f"{row['workers']} workers: labels differ"
            for column in (c for c in reference.column_names if c.startswith("prob_")):
                largest = max(largest, pc.max(pc.abs(pc.subtract(row["table"][column], reference[column]))).as_py())
        ray.shutdown()
        rates = per_core_rates(run, paths)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(TIMINGS, ignore_errors=True)

    load = os.getloadavg()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
          f"{load[0]:.1f} at the end), {platform.python_version()}, ray {__import__('ray').__version__}; "
          f"{IMAGES:,} images; local Ray cluster of {max(WORKERS)} logical CPUs (start: {cluster_seconds:.1f} s, not "
          f"counted); whole run {(time.perf_counter() - began) / 60:.0f} min.\n")
    print("| CPU workers | seconds | images/s | speed-up | decode (ms/image) | forward (ms/image) | "
          "write, driver (ms/image) | driver CPU (ms/image) | driver CPU / wall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        per = 1000 / IMAGES
        print(f"| {row['workers']} | {row['seconds']:.1f} | {row['rate']:.1f} | {row['rate'] / rows[0]['rate']:.2f}× | "
              f"{row['decode'] * per:.2f} | {row['forward'] * per:.2f} | {row['write'] * per:.3f} | "
              f"{row['driver_cpu'] * per:.2f} | {row['driver_cpu'] / row['seconds']:.0%} |")
    print(f"\nSame answers: the labels of the local backend in every run; largest probability difference "
          f"{largest:.1e}.\n")
    print("| per CPU core, image size 224 | images/s |")
    print("|---|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} |")

    # The cost model of docs/scaling.md, from the figures above.
    per_second = DAILY / 86_400
    forward, photo = rates["forward pass, 1 core"], rates["decode a photo"]
    per_core = 1 / (1 / forward + 1 / photo)            # a CPU replica decodes its own images
    driver_ms = min(row["driver_cpu"] for row in rows) * 1000 / IMAGES
    print(f"\n75 million images a day = {per_second:,.0f} images/s around the clock.\n")
    print("| set-up | per replica (images/s) | replicas | decoding cores | driver cores |")
    print("|---|---:|---:|---:|---:|")
    print(f"| CPU cores only | 1 / (1/{forward:.1f} + 1/{photo:.0f}) = {per_core:.1f} | "
          f"{math.ceil(per_second / per_core):,} cores | (in the replicas) | {per_second * driver_ms / 1000:.1f} |")
    print(f"| T4 GPUs (assumed {GPU_REPLICA_RATE:,}/s) | {GPU_REPLICA_RATE:,} | "
          f"{math.ceil(per_second / GPU_REPLICA_RATE):,} GPU | {per_second / photo:.1f} | "
          f"{per_second * driver_ms / 1000:.1f} |")


if __name__ == "__main__":
    main()
