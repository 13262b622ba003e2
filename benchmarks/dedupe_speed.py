"""Near-duplicate search speed: multi-index hashing (find_duplicates' search) against comparing every pair.

Hashes are 256-bit (phash, hash_size=16) at the default threshold of 24 bits, and 64-bit at 6 bits. Two corpora:
  random    uniform random hashes, 10% of them planted near copies of others (0 … threshold + 4 bits away);
  clustered hashes drawn around n/50 centres, 40–90 bits from their centre, plus the same planted copies — like a
            corpus with many similar pictures (the same podium, the same logo), the hard case for chunk indexes.
Brute force is timed in full up to 20,000 hashes; at 100,000 it is timed on 1,000 query rows against all 100,000
and scaled by n / 1,000 (its work is exactly proportional). Both searches must return the same pairs: checked at
10,000. Last, hashing throughput on the real images in ../shared/datasets.

    .venv/bin/python benchmarks/dedupe_speed.py            # prints a Markdown table for benchmarks/README.md
    .venv/bin/python benchmarks/dedupe_speed.py --quick    # 10,000 only
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import time
from pathlib import Path

import numpy as np

from imagesasdata.prepare.dedupe import brute_force_pairs, find_duplicates, hamming_pairs, image_hashes


def flip(code, bits, rng, count):
    copy = code.copy()
    for position in rng.choice(bits, size=count, replace=False):
        copy[position // 64] ^= np.uint64(1) << np.uint64(position % 64)
    return copy


def corpus(n, bits, threshold, kind, seed=0):
    rng = np.random.default_rng(seed)
    words = bits // 64
    random_words = lambda size: rng.integers(0, 2**32, size=size, dtype=np.uint64) << np.uint64(32) | \
        rng.integers(0, 2**32, size=size, dtype=np.uint64)
    if kind == "random":
        codes = random_words((n, words))
    else:
        centres = random_words((max(1, n // 50), words))
        owner = rng.integers(0, len(centres), size=n)
        codes = np.stack([flip(centres[o], bits, rng, int(rng.integers(40, 91)) * bits // 256) for o in owner])
    planted = n // 10
    for k in range(planted):
        codes[n - planted + k] = flip(codes[k], bits, rng, k % (threshold + 5))
    return codes


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 hashes only")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 20_000, 100_000]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}\n")
    print("| hashes | bits | threshold | corpus | pairs found | multi-index (s) | brute force (s) | speed-up |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for bits, threshold in ((256, 24), (64, 6)):
        for kind in ("random", "clustered"):
            for n in sizes:
                codes = corpus(n, bits, threshold, kind)
                fast_time, fast = timed(hamming_pairs, codes, threshold)
                if n <= 20_000:
                    slow_time, slow = timed(brute_force_pairs, codes, threshold)
                    if n == 10_000:
                        assert all(np.array_equal(a, b) for a, b in zip(fast, slow)), "searches disagree"
                    slow_text = f"{slow_time:.2f}"
                else:
                    rows = 1_000
                    part, _ = timed(brute_force_pairs, codes, threshold, queries=codes[:rows])
                    slow_time = part * n / rows
                    slow_text = f"{slow_time:.0f} (est.)"
                print(f"| {n:,} | {bits} | {threshold} | {kind} | {len(fast[0]):,} | {fast_time:.2f} | {slow_text} | "
                      f"{slow_time / fast_time:.0f}× |", flush=True)

    datasets = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    files = sorted(glob.glob(str(datasets / "orl_faces" / "s*" / "*.pgm"))) + \
        sorted(glob.glob(str(datasets / "rekognition_examples" / "*.jpg")))
    if files:
        hash_time, hashes = timed(image_hashes, files, progress=False)
        group_time, _ = timed(find_duplicates, hashes)
        print(f"\nreal images: hashed {len(files)} files (400 ORL PGMs, 5 JPEGs up to 1200 px) in {hash_time:.1f} s "
              f"({len(files) / hash_time:.0f} images/s, 6 hashes each); grouping took {group_time:.2f} s")
        inventory_speed(files, 20_000 if not args.quick else 4_000)


def inventory_speed(files, n):
    """image_inventory() on n files (copies of the real images, hard-linked into a temporary folder)."""
    import shutil
    import tempfile

    from imagesasdata import image_inventory

    folder = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    try:
        for k in range(n):
            source = Path(files[k % len(files)])
            target = folder / f"{k // 1000:03d}" / f"{k}{source.suffix}"
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy(source, target)
        print(f"\ninventory of {n:,} files (headers only):")
        print("| workers | SHA-256 | seconds | files/s |")
        print("|---:|---|---:|---:|")
        for workers, checksum in ((1, False), (None, False), (1, True), (None, True)):
            seconds, table = timed(image_inventory, folder, num_workers=workers, checksum=checksum, progress=False)
            assert table.num_rows == n
            print(f"| {workers or 'default'} | {'yes' if checksum else 'no'} | {seconds:.1f} | {n / seconds:,.0f} |",
                  flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
