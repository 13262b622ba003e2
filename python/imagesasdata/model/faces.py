"""The face detector: MTCNN (Zhang et al. 2016) as packaged by facenet-pytorch, whose weights ship in its wheel.

Why MTCNN: its three small networks (P-, R- and O-Net, 2 MB together) install from PyPI with their weights, run
on a CPU in tens of milliseconds on a news photo, and return five landmarks (eyes, nose, mouth corners) that
align each face. It is a 2016 detector: faces under about 20 pixels, strong profiles, heavy occlusion and very
dark or blurred faces are often missed (see the README). Nothing is downloaded: the networks are built here
and their state dicts read with torch.load(weights_only=True) from the installed package.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ImagesAsDataError
from .devices import resolve_device

DETECTOR = "mtcnn"
# The cascade's own stage thresholds (facenet-pytorch's defaults); `threshold` below filters the final score.
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")   # as seen in the picture


@dataclass
class Face:
    """One detected face: box in pixels (left, top, width, height), score (0–1) and five landmarks (x, y)."""

    left: float
    top: float
    width: float
    height: float
    score: float
    landmarks: np.ndarray     # 5 × 2, in LANDMARKS order


def detector_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"MTCNN (facenet-pytorch {version('facenet-pytorch')})"
    except PackageNotFoundError:
        return "MTCNN (facenet-pytorch)"


def _networks():
    try:
        import facenet_pytorch
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
    except ImportError:
        raise ImagesAsDataError(
            "face detection needs facenet-pytorch: pip install --no-deps facenet-pytorch (its own requirements pin "
            "old torch versions; with --no-deps it runs on the torch you have), or pip install 'imagesasdata[beyond]'"
        , what="missing_extra", extra="beyond") from None
    folder = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data")
    nets = []
    for cls, name in ((PNet, "pnet.pt"), (RNet, "rnet.pt"), (ONet, "onet.pt")):
        net = cls(pretrained=False)
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ImagesAsDataError(f"facenet-pytorch is installed without its MTCNN weights ({path} is missing); "
                                    "reinstall it: pip install --no-deps --force-reinstall facenet-pytorch", what="missing_extra", extra="beyond",
                                    path=path)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        nets.append(net.eval())
    return nets


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = None


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread while any detection is in progress (restored after the last one ends).

    MTCNN's networks are tiny: splitting each convolution over threads costs more than it gains, and on a busy
    machine (other jobs on the cores) two threads per call were measured 35 times slower than one. Images are
    detected in parallel instead, one per worker thread."""
    global _threads_users, _threads_before
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


class FaceDetector:
    """MTCNN on one device. detect(image) → list of Face, most confident first. Safe to call from several threads
    (inference only reads the networks)."""

    def __init__(self, *, min_face_size: int = 20, threshold: float = 0.9, device: str = "auto"):
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self.device = resolve_device(device)
        self.pnet, self.rnet, self.onet = (net.to(self.device) for net in _networks())

    @torch.no_grad()
    def detect(self, image) -> list[Face]:
        """Faces in a Pillow RGB image whose final score reaches the threshold."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        if min(image.size) < 12:     # below P-Net's 12-pixel window: nothing can be found
            return []
        with _one_thread() if self.device.type == "cpu" else contextlib.nullcontext():
            boxes, points = detect_face(image, self.min_face_size, self.pnet, self.rnet, self.onet,
                                        list(STAGE_THRESHOLDS), PYRAMID_FACTOR, self.device)
        boxes, points = boxes[0], points[0]
        if boxes is None or len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        width, height = image.size
        faces = []
        for box, landmarks in zip(boxes, points):
            if box[4] < self.threshold:
                continue
            # Boxes may reach past the picture's edge (a face cut by the frame): clip them to it.
            left, top = max(0.0, box[0]), max(0.0, box[1])
            right, bottom = min(float(width), box[2]), min(float(height), box[3])
            if right <= left or bottom <= top:
                continue
            faces.append(Face(left, top, right - left, bottom - top, float(box[4]), landmarks))
        faces.sort(key=lambda f: -f.score)
        return faces
