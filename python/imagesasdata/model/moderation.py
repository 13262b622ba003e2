"""Offline detectors for the sensitive-content prescreen (autotag/moderation.py uses them).

- Sexual content: NudeNet 3.4 (PyPI `nudenet`), a YOLOv8 detector of exposed and covered body parts whose ONNX
  model (320n.onnx, 12 MB) ships inside the wheel and runs on onnxruntime. NudeNet is AGPL-3.0 licensed; it is an
  optional dependency (the `beyond` extra), imported only when the prescreen runs.
- Violence: no maintained offline violence classifier ships its weights on PyPI. The local screen therefore uses
  a proxy, the ImageNet categories of weapons (guns, cannons, missiles, tanks, blades, the guillotine) from the
  offline EfficientNet-Lite0 the local autotagger already uses. It finds weapons, not blood, injuries or fights:
  see the README, and use Rekognition's moderation labels or a classifier fine-tuned on your own coded images
  for those.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ImagesAsDataError

# NudeNet's classes that a prescreen reports, and the top-level category each belongs to (Rekognition's names).
NUDENET_CATEGORIES = {
    "FEMALE_GENITALIA_EXPOSED": "Explicit Nudity", "MALE_GENITALIA_EXPOSED": "Explicit Nudity",
    "ANUS_EXPOSED": "Explicit Nudity", "FEMALE_BREAST_EXPOSED": "Explicit Nudity", "BUTTOCKS_EXPOSED": "Explicit Nudity",
    "FEMALE_GENITALIA_COVERED": "Suggestive", "FEMALE_BREAST_COVERED": "Suggestive", "BUTTOCKS_COVERED": "Suggestive",
    "ANUS_COVERED": "Suggestive",
}
# ImageNet-1k categories (torchvision's names) that stand in for violence: weapons and instruments of execution.
WEAPON_CATEGORIES = ("assault rifle", "rifle", "revolver", "holster", "cannon", "missile", "projectile", "tank",
                     "guillotine", "cleaver", "hatchet", "scabbard")


def nudenet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"NudeNet {version('nudenet')} (320n.onnx)"
    except PackageNotFoundError:
        return "NudeNet (320n.onnx)"


class NudityDetector:
    """NudeNet's detector. detect(image) → [(class, score 0–1, (left, top, width, height) in pixels)], for the
    classes in NUDENET_CATEGORIES. Thread-safe."""

    def __init__(self):
        try:
            from nudenet import NudeDetector
        except ImportError:
            raise ImagesAsDataError("the offline prescreen needs NudeNet (and onnxruntime, OpenCV): pip install "
                                    "'imagesasdata[beyond]', or pass detectors=['weapons'] to screen for weapons only", what="missing_extra", extra="beyond") from None
        self._detector = NudeDetector()   # reads 320n.onnx from the installed wheel; nothing is downloaded
        self._lock = threading.Lock()

    def detect_all(self, image) -> list[tuple]:
        """Every detection, of all NudeNet's 18 classes (faces, feet, covered and exposed parts)."""
        # NudeNet's own file reader hands OpenCV's BGR pixels to its preprocessing: give it the same.
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            found = self._detector.detect(pixels)
        return [(d["class"], float(d["score"]), tuple(float(v) for v in d["box"])) for d in found]

    def detect(self, image) -> list[tuple]:
        """The detections of the classes a prescreen reports (NUDENET_CATEGORIES)."""
        return [d for d in self.detect_all(image) if d[0] in NUDENET_CATEGORIES]
