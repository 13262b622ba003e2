"""Decode each image once per run: a store of preprocessed uint8 base images shared by every epoch, by the
validation passes and by every configuration of a grid. Small corpora live in memory; large ones are memory-mapped
on disk (under $IMAGESASDATA_CACHE, else the system's temporary folder). Decoding runs on a thread pool (Pillow releases the GIL while decoding and resizing).

`DecodeOnRead` has the same interface but decodes on every access: the book's reference behaviour, kept for the
honest check that the cache changes speed and nothing else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import BadImageError
from ..io.images import sha256_file
from ..io.threads import default_workers
from .transforms import Preprocessing, load_base

DEFAULT_MEMORY_LIMIT_GB = 2.0


def decode_many(paths, prep: Preprocessing, workers: int | None = None, progress=None, hashes: bool = False):
    """Yield (position, array or None, error or None, sha256 or None) for each path, in order, decoding on a
    thread pool. The hash is taken right after decoding, while the file is still in the page cache."""
    def work(path):
        try:
            array = load_base(path, prep)
        except BadImageError as error:
            return None, error.reason, None
        return array, None, sha256_file(path) if hashes else None

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for position, (array, error, digest) in enumerate(pool.map(work, paths)):
            if progress is not None:
                progress.update(1)
            yield position, array, error, digest


class DecodedImages:
    """Base images (N × resize_size × resize_size × 3, uint8) for `paths`, decoded once.

    errors: {row: reason} for images that could not be read; their slots are black and must not be used.
    hashes: {row: SHA-256 of the file} when asked for (run directories record them).
    """

    def __init__(self, paths, prep: Preprocessing, workers: int | None = None, progress: bool = True,
                 memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB, directory=None, hashes: bool = False):
        from tqdm.auto import tqdm

        self.paths = list(paths)
        self.prep = prep
        size = prep.resize_size
        shape = (len(self.paths), size, size, 3)
        nbytes = int(np.prod(shape))
        if nbytes > memory_limit_gb * 2**30:
            directory = Path(tempfile.mkdtemp(prefix="imagesasdata-cache-", dir=directory or os.environ.get("IMAGESASDATA_CACHE")))
            self.file = directory / f"decoded-{size}px-{len(self.paths)}.npy"
            self.array = np.lib.format.open_memmap(self.file, mode="w+", dtype=np.uint8, shape=shape)
            # The file lives as long as this object: grids share it, nothing is left behind.
            weakref.finalize(self, shutil.rmtree, directory, True)
        else:
            self.file = None
            self.array = np.zeros(shape, dtype=np.uint8)
        self.errors: dict[int, str] = {}
        self.hashes: dict[int, str] = {}
        bar = tqdm(total=len(self.paths), desc="decoding images", unit="img", disable=not progress, leave=False)
        with bar:
            for row, array, error, digest in decode_many(self.paths, prep, workers, bar, hashes):
                if error is None:
                    self.array[row] = array
                    if digest:
                        self.hashes[row] = digest
                else:
                    self.errors[row] = error

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.array[row]

    def usable(self, rows) -> list[int]:
        return [r for r in rows if r not in self.errors]


class DecodeOnRead:
    """Same interface as DecodedImages, decoding from disk on every access (the reference loop's behaviour)."""

    def __init__(self, paths, prep: Preprocessing, workers: int | None = None, progress: bool = True,
                 hashes: bool = False, **_):
        self.paths = list(paths)
        self.prep = prep
        # Find unreadable files up front, as the cache does, so both paths train on the same images.
        self.errors, self.hashes = {}, {}
        for row, _, error, digest in decode_many(self.paths, prep, workers, hashes=hashes):
            if error is not None:
                self.errors[row] = error
            elif digest:
                self.hashes[row] = digest

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, row: int) -> np.ndarray:
        return load_base(self.paths[row], self.prep)

    def usable(self, rows) -> list[int]:
        return [r for r in rows if r not in self.errors]
