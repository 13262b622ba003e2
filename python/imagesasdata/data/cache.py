"""Decode each image once per run: a store of preprocessed uint8 base images shared by every epoch, by the
validation passes and by every configuration of a grid, plus — for training images that are randomly cropped —
each image whole (`CropSources`), which the book's RandomResizedCrop cuts its crops from. Small corpora live in
memory; large ones are memory-mapped on disk (under $IMAGESASDATA_CACHE, else the system's temporary folder).
Decoding runs on a thread pool (Pillow releases the GIL while decoding and resizing).

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
from .transforms import Preprocessing, load_base, load_crop_source

DEFAULT_MEMORY_LIMIT_GB = 2.0


def decode_many(paths, prep: Preprocessing, workers: int | None = None, progress=None, hashes: bool = False,
                crop_rows=()):
    """Yield (position, array or None, error or None, sha256 or None, crop source or None) for each path, in
    order, decoding on a thread pool. Crop sources are made for the positions in `crop_rows` only. The hash is
    taken right after decoding, while the file is still in the page cache."""
    crop_rows = frozenset(crop_rows)

    def work(item):
        position, path = item
        try:
            array = load_base(path, prep)
            source = load_crop_source(path, prep) if position in crop_rows else None
        except BadImageError as error:
            return None, error.reason, None, None
        return array, None, sha256_file(path) if hashes else None, source

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for position, (array, error, digest, source) in enumerate(pool.map(work, enumerate(paths))):
            if progress is not None:
                progress.update(1)
            yield position, array, error, digest, source


class CropSources:
    """Whole images of any size, packed one after another in a flat uint8 buffer: the crop sources of the
    training images. In memory, or in a file memory-mapped once decoding ends when they would be large."""

    def __init__(self, file: Path | None = None):
        self.file = file
        self.placed: dict[int, tuple[int, tuple]] = {}   # row -> (offset, shape)
        self._parts: list = []
        self._size = 0
        self._handle = open(file, "wb") if file is not None else None
        self.buffer = None

    def add(self, row: int, array: np.ndarray) -> None:
        self.placed[row] = (self._size, array.shape)
        if self._handle is not None:
            self._handle.write(np.ascontiguousarray(array).tobytes())
        else:
            self._parts.append(np.ascontiguousarray(array).reshape(-1))
        self._size += array.size

    def finish(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self.buffer = np.memmap(self.file, dtype=np.uint8, mode="r") if self._size else np.zeros(0, np.uint8)
        else:
            self.buffer = np.concatenate(self._parts) if self._parts else np.zeros(0, np.uint8)
            self._parts = []

    def __contains__(self, row: int) -> bool:
        return row in self.placed

    def __getitem__(self, row: int) -> np.ndarray:
        offset, shape = self.placed[row]
        return self.buffer[offset:offset + int(np.prod(shape))].reshape(shape)


class DecodedImages:
    """Base images (N × resize_size × resize_size × 3, uint8) for `paths`, decoded once, and the crop sources
    (whole images, see transforms.crop_source_array) of the rows in `crop_rows`.

    errors: {row: reason} for images that could not be read; their slots are black and must not be used.
    hashes: {row: SHA-256 of the file} when asked for (run directories record them).
    """

    def __init__(self, paths, prep: Preprocessing, workers: int | None = None, progress: bool = True,
                 memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB, directory=None, hashes: bool = False,
                 crop_rows=()):
        from tqdm.auto import tqdm

        self.paths = list(paths)
        self.prep = prep
        crop_rows = sorted(set(crop_rows))
        size = prep.resize_size
        shape = (len(self.paths), size, size, 3)
        nbytes = int(np.prod(shape))
        # Crop sources are at most crop_source_size on their shorter side; 4:3 photos are the common case.
        source_bytes = len(crop_rows) * prep.crop_source_size ** 2 * 3 * 4 // 3
        directory_for = None
        if nbytes + source_bytes > memory_limit_gb * 2**30:
            directory_for = Path(tempfile.mkdtemp(prefix="imagesasdata-cache-", dir=directory or os.environ.get("IMAGESASDATA_CACHE")))
            # The files live as long as this object: grids share them, nothing is left behind.
            weakref.finalize(self, shutil.rmtree, directory_for, True)
        if directory_for is not None and nbytes > memory_limit_gb * 2**30:
            self.file = directory_for / f"decoded-{size}px-{len(self.paths)}.npy"
            self.array = np.lib.format.open_memmap(self.file, mode="w+", dtype=np.uint8, shape=shape)
        else:
            self.file = None
            self.array = np.zeros(shape, dtype=np.uint8)
        self.crop_sources = CropSources(directory_for / "crop-sources.bin" if directory_for is not None else None)
        self.errors: dict[int, str] = {}
        self.hashes: dict[int, str] = {}
        bar = tqdm(total=len(self.paths), desc="decoding images", unit="img", disable=not progress, leave=False)
        with bar:
            for row, array, error, digest, source in decode_many(self.paths, prep, workers, bar, hashes, crop_rows):
                if error is None:
                    self.array[row] = array
                    if source is not None:
                        self.crop_sources.add(row, source)
                    if digest:
                        self.hashes[row] = digest
                else:
                    self.errors[row] = error
        self.crop_sources.finish()

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.array[row]

    def train_image(self, row: int) -> np.ndarray:
        """What training views of this row are cut from: its crop source when one was kept, else its base."""
        return self.crop_sources[row] if row in self.crop_sources else self.array[row]

    def usable(self, rows) -> list[int]:
        return [r for r in rows if r not in self.errors]


class DecodeOnRead:
    """Same interface as DecodedImages, decoding from disk on every access (the reference loop's behaviour)."""

    def __init__(self, paths, prep: Preprocessing, workers: int | None = None, progress: bool = True,
                 hashes: bool = False, crop_rows=(), **_):
        self.paths = list(paths)
        self.prep = prep
        self.crop_rows = frozenset(crop_rows)
        # Find unreadable files up front, as the cache does, so both paths train on the same images.
        self.errors, self.hashes = {}, {}
        for row, _, error, digest, _ in decode_many(self.paths, prep, workers, hashes=hashes):
            if error is not None:
                self.errors[row] = error
            elif digest:
                self.hashes[row] = digest

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, row: int) -> np.ndarray:
        return load_base(self.paths[row], self.prep)

    def train_image(self, row: int) -> np.ndarray:
        if row in self.crop_rows:
            return load_crop_source(self.paths[row], self.prep)
        return load_base(self.paths[row], self.prep)

    def usable(self, rows) -> list[int]:
        return [r for r in rows if r not in self.errors]
