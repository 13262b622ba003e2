"""The decoded-image cache: in memory, on disk, or decoding on every read, the pixels are the same."""

import numpy as np

from imagesasdata.data.cache import DecodedImages, DecodeOnRead
from imagesasdata.data.transforms import Preprocessing, load_base, load_crop_source


def test_crop_sources_are_the_same_in_memory_on_disk_and_decoded_on_read(orl_faces, rekognition_examples):
    paths = [orl_faces / "s1" / "1.pgm", orl_faces / "s2" / "1.pgm"] + sorted(rekognition_examples.glob("*.jpg"))
    prep = Preprocessing()
    crop_rows = [0, 2, 3, 5]
    memory = DecodedImages(paths, prep, progress=False, crop_rows=crop_rows)
    disk = DecodedImages(paths, prep, progress=False, crop_rows=crop_rows, memory_limit_gb=0)
    on_read = DecodeOnRead(paths, prep, progress=False, crop_rows=crop_rows)
    assert memory.file is None and disk.file is not None and disk.crop_sources.file is not None
    for row, path in enumerate(paths):
        expected = load_crop_source(path, prep) if row in crop_rows else load_base(path, prep)
        for store in (memory, disk, on_read):
            assert np.array_equal(store.train_image(row), expected)
            assert np.array_equal(store[row], load_base(path, prep))
    # Whole images, not squares: the ORL face is kept at 92×112, a large photo shrunk to 512 on its shorter side.
    assert memory.train_image(0).shape == (112, 92, 3)
    assert min(memory.train_image(3).shape[:2]) == 512
