"""Fitted runs shared by the test files of issue 15 (heatmaps, embeddings, subgroups, selection): each is trained
once per test session, whichever file asks first (fine-tunes cost tens of seconds on 2 CPU cores).

  faces_run()        the bundled sample (6 people × 8 ORL photos), efficientnet_lite0, frozen backbone, 64 px
  patch_images()     a task whose answer is known: 80 real ORL photos, each with a red or a blue square pasted in
                     its top-left corner; the class is the square's colour, nothing else
  patch_run(arch)    that task learned by efficientnet_lite0 (ImageNet, frozen backbone, 224 px) or by resnet18
                     trained from random weights (160 px)
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_ROOT: Path | None = None
_CACHE: dict = {}
PATCH_COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}
PATCH_SIDE = 0.3   # of the photo's width: 27 of 92 pixels


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="imagesasdata-inside-tests-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def _shared(name: str, build, fit: bool = True):
    """`name` (a fit, or with fit=False an image folder), built once. A fit reused from the cache is refused to a test
    not marked `trains`, as training it would be (tests/conftest.py): its assertions depend on that fit as much."""
    if fit and name in _CACHE:
        from imagesasdata.train.trainer import refuse_training_if_forbidden

        refuse_training_if_forbidden()
    if name not in _CACHE:
        _CACHE[name] = build(_root() / name)
    return _CACHE[name]


def faces_run():
    import imagesasdata as iad

    return _shared("faces64", lambda out: iad.finetune(
        iad.sample_data() / "faces", epochs=2, image_size=64, freeze="backbone", augment_crop=False, out=out,
        progress=False))


def patch_images(orl_faces: Path) -> Path:
    """red/ and blue/ class folders: people s1–s20, photos 1–4, alternating colours (40 of each)."""
    def build(root: Path) -> Path:
        from PIL import Image

        k = 0
        for person in range(1, 21):
            for shot in range(1, 5):
                colour = "red" if k % 2 == 0 else "blue"
                k += 1
                image = Image.open(orl_faces / f"s{person}" / f"{shot}.pgm").convert("RGB")
                side = int(PATCH_SIDE * image.width)
                image.paste(PATCH_COLOURS[colour], (0, 0, side, side))
                (root / colour).mkdir(parents=True, exist_ok=True)
                image.save(root / colour / f"s{person}_{shot}.png")
        return root

    return _shared("patch-images", build, fit=False)


def patch_run(orl_faces: Path, architecture: str):
    """The patch task fitted without cropping (resize "squish": the corner stays in the picture).

    Both runs name the training recipe they were measured with, so the engine's default recipe can change without
    moving these tests: EfficientNet-Lite0 frozen, with the statistics its weights were trained on (measured after
    the head-first default arrived: validation accuracy 1.0 with them, 0.875 with ImageNet's); ResNet-18 from random
    weights with the book's recipe (1.0; the head-first recipe's 10 head epochs on random features left it at 0.5
    after 3 epochs)."""
    import imagesasdata as iad

    images = patch_images(orl_faces)
    if architecture == "efficientnet_lite0":
        return _shared("patch-efficientnet", lambda out: iad.finetune(
            images, epochs=15, image_size=224, resize="squish", freeze="backbone", normalize="backbone",
            augment_crop=False,
            augment_flip=False, learning_rate=0.01, test_fraction=0, out=out, progress=False))
    if architecture == "resnet18":
        # From random weights, every layer trained: the squares' colours are learned in two epochs or so.
        return _shared("patch-resnet18", lambda out: iad.finetune(
            images, architecture="resnet18", weights=None, recipe="book", epochs=3, image_size=160, resize="squish",
            augment_crop=False, augment_flip=False, batch_size=8, learning_rate=0.01, test_fraction=0, out=out,
            progress=False))
    raise ValueError(architecture)
