"""Labelling on Ray: images/s with 1, 2 and 4 CPU workers, the driver's share, and where the time goes.

One run, on one machine, of label_corpus(backend="ray") on a local Ray cluster of 4 logical CPUs, with 1, 2 and 4
model replicas (a replica is a CPU worker: one core, one torch thread, decoding its own images, as on a CPU node
of a real cluster). For each, the same 4,000-image corpus is labelled from scratch, and the run records:

  images/s      the call's wall time, from reading the manifest to the last shard (replicas' start-up included)
  decode        time the replicas spent reading and resizing images (summed over replicas)
  forward       time the replicas spent in the network's forward pass (summed over replicas)
  write         time the driver spent collecting rows and writing shards (ShardWriter)
  driver CPU    CPU time of the driver process over the call (streaming, Ray's bookkeeping, writing)

each as wall time and as CPU time (the processes' own CPU seconds: on a machine shared with other jobs, wall time
measures the contention as much as the work; CPU time measures the work). decode and forward are timed inside the
replicas by wrappers around the very functions label_corpus hands to Ray (model.inference.decode_batch and
Predictor), which write their timings to a folder; nothing else changes. All runs must give the local backend's
labels. The driver's share is its CPU time over all the CPU time the job used (driver + replicas' decode and
forward).

Then the figures the cost table of docs/scaling.md needs, per image at the book's image size (224 px) on one core:
the CPU time to decode a face and a photo, and of the forward pass of one replica; with the driver's CPU per image
from the runs above.

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

def _record(what: str, wall: float, cpu: float, rows: int) -> None:
    with open(TIMINGS / f"{os.getpid()}.txt", "a") as handle:
        handle.write(f"{what} {wall:.6f} {cpu:.6f} {rows}\n")


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def timed_decode_batch(batch, prep, endpoint_url=None, workers=None):
    wall, cpu = _clocks()
    output = inference.decode_batch(batch, prep, endpoint_url=endpoint_url, workers=workers)
    _record("decode", time.perf_counter() - wall, time.process_time() - cpu, len(output["row"]))
    return output


class TimedPredictor(Predictor):
    def __call__(self, batch):
        wall, cpu = _clocks()
        output = super().__call__(batch)
        _record("forward", time.perf_counter() - wall, time.process_time() - cpu, len(output["row"]))
        return output


def timed_shard_writer():
    """ShardWriter.add, timed on the driver (it collects rows and writes each finished shard)."""
    original = labelling.ShardWriter.add

    def add(self, rows, probabilities, errors):
        wall, cpu = _clocks()
        original(self, rows, probabilities, errors)
        _record("write", time.perf_counter() - wall, time.process_time() - cpu, len(rows))

    return original, add


def read_timings() -> dict:
    """{what: [wall seconds, CPU seconds, rows]} summed over every process, and the files removed."""
    totals: dict = {}
    for file in TIMINGS.glob("*.txt"):
        for line in file.read_text().splitlines():
            what, wall, cpu, rows = line.split()
            totals.setdefault(what, [0.0, 0.0, 0])
            totals[what][0] += float(wall)
            totals[what][1] += float(cpu)
            totals[what][2] += int(rows)
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


def per_core_costs(run, paths) -> dict:
    """{what: (wall ms, CPU ms) per image} on one core at image size 224: decoding a face and a photo (one decoding
    thread), and the forward pass of one replica (one torch thread, batches of 32)."""
    import torch

    prep = Preprocessing.from_dict({**run.description["preprocessing"], "image_size": 224, "resize_size": None})
    faces = [p for p in paths if "/faces/" in p][:400]
    photos = [p for p in paths if "/photos/" in p][:200]
    costs = {}
    for name, sample in (("decode a face", faces), ("decode a photo", photos)):
        wall, cpu = _clocks()
        decode_images(sample, prep, workers=1)
        costs[name] = ((time.perf_counter() - wall) * 1000 / len(sample), (time.process_time() - cpu) * 1000 / len(sample))
    description = {**run.description, "preprocessing": prep.to_dict()}
    threads = torch.get_num_threads()
    predictor = Predictor(description, model_bytes(run), "cpu", "fp32", threads=1)
    size = prep.resize_size
    batch = {"row": np.arange(32), "image": np.random.default_rng(0).integers(0, 255, (32, size, size, 3), np.uint8),
             "error": [""] * 32}
    predictor(batch)  # warm-up: oneDNN builds its kernels for this shape
    (wall, cpu), done = _clocks(), 0
    while time.perf_counter() - wall < SECONDS:
        predictor(batch)
        done += 32
    costs["forward pass, 1 thread"] = ((time.perf_counter() - wall) * 1000 / done, (time.process_time() - cpu) * 1000 / done)
    torch.set_num_threads(threads)
    return costs


# ------------------------------------------------------------------------------------------ the run

def label_with_workers(run, manifest, out, workers: int) -> dict:
    started_cpu = time.process_time()
    result = iad.label_corpus(run, manifest, out=out, backend="ray", replicas=workers, cpus_per_replica=1,
                              shard_size=500, batch_size=32, progress=False)
    driver_cpu = time.process_time() - started_cpu
    assert result.complete and result.labelled == IMAGES, result
    timings = read_timings()
    assert timings["forward"][2] == IMAGES and timings["write"][2] == IMAGES, timings
    return {"workers": workers, "seconds": result.seconds, "rate": result.images_per_second, "table": result.table,
            **{f"{what}_{clock}": timings[what][k] for what in ("decode", "forward", "write")
               for k, clock in ((0, "wall"), (1, "cpu"))},
            "driver_cpu": driver_cpu, "nodes": result.cluster["images_by_node"]}


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
        costs = per_core_costs(run, paths)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(TIMINGS, ignore_errors=True)

    load = os.getloadavg()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
          f"{load[0]:.1f} at the end), Python {platform.python_version()}, ray {__import__('ray').__version__}; "
          f"{IMAGES:,} images at image_size 64; local Ray cluster of {max(WORKERS)} logical CPUs (start: "
          f"{cluster_seconds:.1f} s, not counted); whole run {(time.perf_counter() - began) / 60:.0f} min.\n")
    per = 1000 / IMAGES
    print("| CPU workers | seconds | images/s | speed-up | driver's share of the CPU time |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        job_cpu = row["decode_cpu"] + row["forward_cpu"] + row["driver_cpu"]
        print(f"| {row['workers']} | {row['seconds']:.1f} | {row['rate']:.1f} | {row['rate'] / rows[0]['rate']:.2f}× | "
              f"{row['driver_cpu'] / job_cpu:.0%} |")
    print("\nWhere the time goes, in ms per image (replicas: summed over replicas; wall / CPU):\n")
    print("| CPU workers | decode (replicas) | forward (replicas) | collect + write shards (driver) | driver, all |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['workers']} | {row['decode_wall'] * per:.2f} / {row['decode_cpu'] * per:.2f} | "
              f"{row['forward_wall'] * per:.2f} / {row['forward_cpu'] * per:.2f} | "
              f"{row['write_wall'] * per:.3f} / {row['write_cpu'] * per:.3f} | "
              f"{row['seconds'] * per:.2f} / {row['driver_cpu'] * per:.2f} |")
    print(f"\nSame answers: the labels of the local backend in every run; largest probability difference "
          f"{largest:.1e}.\n")
    print("| per image, one core, image size 224 | wall ms | CPU ms | images/s per core (CPU) |")
    print("|---|---:|---:|---:|")
    for name, (wall, cpu) in costs.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {1000 / cpu:.1f} |")

    # The cost model of docs/scaling.md, from the CPU times above.
    per_second = DAILY / 86_400
    forward, photo = costs["forward pass, 1 thread"][1], costs["decode a photo"][1]
    driver = min(row["driver_cpu"] for row in rows) * 1000 / IMAGES
    print(f"\n75 million images a day = {per_second:,.0f} images/s around the clock.\n")
    print("| set-up | CPU ms per image | cores (per_second × ms / 1000) |")
    print("|---|---:|---:|")
    print(f"| CPU replicas (decode a photo + forward) | {photo:.2f} + {forward:.2f} = {photo + forward:.2f} | "
          f"{per_second * (photo + forward) / 1000:.0f} |")
    print(f"| decoding for GPU replicas (photos) | {photo:.2f} | {per_second * photo / 1000:.1f} |")
    print(f"| the driver (collect + write, Ray's bookkeeping) | {driver:.2f} | {per_second * driver / 1000:.1f} |")
    print(f"| T4 GPUs (assumed {GPU_REPLICA_RATE:,} images/s each) | — | "
          f"{per_second / GPU_REPLICA_RATE:.2f} GPU → {math.ceil(per_second / GPU_REPLICA_RATE)} |")


if __name__ == "__main__":
    main()
