"""Faces as data (the book's sections 1.1.2 and 7.8): find the faces in each image, crop and align them, and ask a
fitted classifier about each face ("who is this", "is this the politician"), aggregated per image.

    detect_faces(images)            one row per face: image_id, face_id, box (pixels), score, landmarks
    face_counts(faces)              one row per image: how many faces
    crop_faces(image, faces)        aligned crops in memory (Pillow images)
    face_crops(images, out=...)     aligned crops written to files, with the source's label and split: training
                                    data for finetune() (pass group="source_image_id" to keep an image's faces
                                    in one split)
    classify_faces(run, images)     a fitted run on every face, in memory: .faces (one row per face) and .images
                                    (per image: faces, faces_<class>, any_<class>, all_<class>)

The detector is MTCNN (model/faces.py). Unreadable images are rows with their error; an image without a face
has faces = 0 (in face_crops(), a line in skipped.parquet saying so). Nothing is downloaded.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import BadImageError, ImagesAsDataError, check_number
from ..io.images import open_rgb
from ..io.tables import write_json, write_table
from ..notices import notice, with_notices

POINT = pa.struct([("name", pa.string()), ("x", pa.float64()), ("y", pa.float64())])
FACE_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()),
    ("face_id", pa.int32()),                      # 1 = the most confident face of the image
    ("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64()),   # pixels
    ("score", pa.float64()),                      # the detector's confidence, 0–1
    ("landmarks", pa.list_(POINT)),               # eyes, nose, mouth corners (pixels)
    ("image_width", pa.int32()), ("image_height", pa.int32()),
    ("detector", pa.string()), ("error", pa.string()),
])
CROPS_DESCRIPTION = "faces.json"
SKIPPED = "skipped.parquet"


def _images(images) -> pa.Table:
    from ..data.table import image_table

    if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names):
        return images
    return image_table(images)


def _detector(min_face_size, threshold, device):
    from ..model.faces import FaceDetector

    min_face_size = int(check_number("min_face_size", min_face_size, 12, None, integer=True))
    threshold = check_number("threshold", threshold, 0, 1)
    return FaceDetector(min_face_size=min_face_size, threshold=threshold, device=device)


def _face_rows(image_id, path, faces, size, detector_name) -> list[dict]:
    from ..model.faces import LANDMARKS

    width, height = size
    rows = []
    for k, face in enumerate(faces, start=1):
        rows.append({"image_id": image_id, "path": path, "face_id": k, "left": face.left, "top": face.top,
                     "width": face.width, "height": face.height, "score": face.score,
                     "landmarks": [{"name": n, "x": float(x), "y": float(y)} for n, (x, y) in zip(LANDMARKS, face.landmarks)],
                     "image_width": width, "image_height": height, "detector": detector_name})
    return rows or [{"image_id": image_id, "path": path, "image_width": width, "image_height": height,
                     "detector": detector_name}]


def detect_faces(images, *, min_face_size: int = 20, threshold: float = 0.9, device: str = "auto",
                 num_workers: int | None = None, progress: bool = True) -> pa.Table:
    """Find the faces in images with MTCNN: one row per face.

    images: a folder, a list of files, a CSV/Parquet table or data frame with a path column, or an image_table().
    min_face_size: the smallest face searched for, in pixels (MTCNN's default 20; smaller is slower and finds
      more small faces in crowds, and more false ones). threshold: the detector's final score (0–1) a face needs.
    Returns columns image_id, path, face_id (1 = most confident), left, top, width, height (pixels), score (0–1),
    landmarks (a list of five points: eyes, nose, mouth corners), image_width, image_height, detector, error.
    An image without a face is one row with a null face_id; an unreadable one a row with its error.
    """
    from tqdm.auto import tqdm

    from ..io.threads import map_in_threads
    from ..model.faces import detector_version

    detector = _detector(min_face_size, threshold, device)
    name = detector_version()
    table = _images(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()

    def work(item):
        image_id, path = item
        try:
            image = open_rgb(path)
        except BadImageError as error:
            result = [{"image_id": image_id, "path": path, "detector": name, "error": error.reason}]
        else:
            result = _face_rows(image_id, path, detector.detect(image), image.size, name)
        bar.update(1)
        return result

    with tqdm(total=len(paths), desc="faces", unit="img", disable=not progress, leave=False) as bar:
        results = map_in_threads(work, list(zip(ids, paths)), workers=num_workers)
    return pa.Table.from_pylist([{n: r.get(n) for n in FACE_SCHEMA.names} for rows in results for r in rows],
                                schema=FACE_SCHEMA)


def face_counts(faces: pa.Table) -> pa.Table:
    """Return one row per image of a detect_faces() table: image_id, path, faces (0 when none was found; null when the
    image could not be read), error."""
    _require(faces, ("image_id", "path", "face_id", "error"))
    counts: dict = {}
    for row in faces.select(["image_id", "path", "face_id", "error"]).to_pylist():
        key = (row["image_id"], row["path"])
        entry = counts.setdefault(key, {"image_id": row["image_id"], "path": row["path"], "faces": 0, "error": None})
        if row["error"] is not None:
            entry["faces"], entry["error"] = None, row["error"]
        elif row["face_id"] is not None:
            entry["faces"] += 1
    schema = pa.schema([("image_id", pa.string()), ("path", pa.string()), ("faces", pa.int32()), ("error", pa.string())])
    return pa.Table.from_pylist(list(counts.values()), schema=schema)


def _require(table, names):
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the table lacks columns {missing}; pass the result of detect_faces()")


# ------------------------------------------------------------------------------------------ crops

def crop_faces(image, faces, *, size: int = 160, margin: float = 0.2, align: bool = True) -> list:
    """Square crops of `faces` (Face objects, or detect_faces() rows as dicts) from a Pillow RGB image, in memory.

    size: side of each crop in pixels. margin: room around the detector's box, as a share of its longer side
    (0.2 keeps the chin, hair line and ears that the box cuts). align: rotate each face so that its eyes are
    level (from the detector's landmarks), which removes head tilt before a classifier sees it. Pixels outside
    the picture are black. Returns a list of Pillow images, one per face.
    """
    from PIL import Image

    crops = []
    for face in faces:
        left, top, width, height = (face[k] if isinstance(face, dict) else getattr(face, k)
                                    for k in ("left", "top", "width", "height"))
        side = max(width, height) * (1.0 + 2.0 * margin)   # `margin` of the box's longer side on every side
        centre_x, centre_y = left + width / 2.0, top + height / 2.0
        angle = 0.0
        points = _landmarks(face)
        if align and points is not None:
            (lx, ly), (rx, ry) = points[0], points[1]
            angle = math.atan2(ry - ly, rx - lx)
        scale = side / size
        cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
        # Output pixel (u, v) samples the picture at centre + R(angle)·scale·(u − size/2, v − size/2).
        half = size / 2.0
        coefficients = (cos, -sin, centre_x - cos * half + sin * half,
                        sin, cos, centre_y - sin * half - cos * half)
        crops.append(image.transform((size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR,
                                     fillcolor=(0, 0, 0)))
    return crops


def _landmarks(face):
    if isinstance(face, dict):
        points = face.get("landmarks")
        if not points:
            return None
        return [(p["x"], p["y"]) for p in points]
    points = getattr(face, "landmarks", None)
    return None if points is None else [tuple(p) for p in np.asarray(points)]


def _crop_options(size, margin):
    return int(check_number("size", size, 16, 2048, integer=True)), check_number("margin", margin, 0, 2)


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"
    return name[-120:]


def face_crops(images, out=None, *, size: int = 160, margin: float = 0.2, align: bool = True,
               largest_only: bool = False, min_face_size: int = 20, threshold: float = 0.9, label: str | None = None,
               path: str | None = None, faces: pa.Table | None = None, overwrite: bool = False,
               device: str = "auto", progress: bool = True) -> pa.Table:
    """Detect, align and crop the faces of images into PNG files: training data for finetune() made of faces.

    images: anything image_table() reads, labelled or not (label=, path= name a table's columns). Each crop keeps
      its image's label and split, so `finetune(crops, group="source_image_id")` trains on faces with every face
      of an image in the same split.
    out: the folder for the crops (default: a new temporary folder); crops go to <out>/<label>/ (or <out>/ when
      unlabelled), and the table also to <out>/faces.parquet. The folder is locked while it is written; an
      existing one is replaced only with overwrite=True.
    largest_only: one crop per image, its largest face (for labels that describe one person per photo).
    faces: a detect_faces() table to crop from instead of detecting again.
    size, margin, align: as in crop_faces(). min_face_size, threshold: as in detect_faces().
    Returns columns image_id (<source id>#face<k>), path (the crop), label, split, source_image_id, source_path,
    face_id, left, top, width, height, score. Images without a face, and unreadable ones, are not cropped: they
    are listed with the reason in <out>/skipped.parquet, and a warning says how many.
    """
    from tqdm.auto import tqdm

    from ..data.table import image_table
    from ..io.locks import claimed_directory
    from ..io.tables import atomic_path

    size, margin = _crop_options(size, margin)
    table = images if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names) \
        and label is None and path is None else image_table(images, label=label, path=path)
    labels = table["label"].to_pylist() if "label" in table.column_names else [None] * table.num_rows
    splits = table["split"].to_pylist() if "split" in table.column_names else [None] * table.num_rows
    found = _faces_by_image(faces) if faces is not None else None
    detector = None if found is not None else _detector(min_face_size, threshold, device)
    rows, skipped = [], []
    with claimed_directory(out, what="face crops", marker=CROPS_DESCRIPTION, resume=False, overwrite=overwrite,
                           option_hint="overwrite=True (CLI: --overwrite)") as folder, \
            tqdm(total=table.num_rows, desc="cropping", unit="img", disable=not progress, leave=False) as bar:
        write_json({"format": "imagesasdata.face_crops/1", "size": size, "margin": margin, "align": align,
                    "largest_only": largest_only, "min_face_size": min_face_size, "threshold": threshold,
                    "status": "writing"}, folder / CROPS_DESCRIPTION)
        used = set()
        for image_id, source, label_value, split in zip(table["image_id"].to_pylist(), table["path"].to_pylist(),
                                                        labels, splits):
            bar.update(1)
            try:
                image = open_rgb(source)
            except BadImageError as error:
                skipped.append({"image_id": image_id, "path": source, "reason": error.reason})
                continue
            detected = found.get(image_id, []) if found is not None else detector.detect(image)
            if largest_only and detected:
                detected = [max(detected, key=lambda f: _area(f))]
            if not detected:
                skipped.append({"image_id": image_id, "path": source, "reason": _no_face_reason(min_face_size, threshold)})
                continue
            subfolder = folder / _safe_name(str(label_value)) if label_value is not None else folder
            subfolder.mkdir(parents=True, exist_ok=True)
            for face, crop in zip(detected, crop_faces(image, detected, size=size, margin=margin, align=align)):
                face_id = face["face_id"] if isinstance(face, dict) else detected.index(face) + 1
                stem = _safe_name(f"{image_id}__face{face_id}")
                while stem in used:
                    stem += "_"
                used.add(stem)
                target = subfolder / f"{stem}.png"
                with atomic_path(target) as temporary:
                    crop.save(temporary, format="PNG")
                box = {k: (face[k] if isinstance(face, dict) else getattr(face, k))
                       for k in ("left", "top", "width", "height", "score")}
                rows.append({"image_id": f"{image_id}#face{face_id}", "path": str(target), "label": label_value,
                             "split": split, "source_image_id": image_id, "source_path": source, "face_id": face_id,
                             **box})
        result = pa.Table.from_pylist(rows, schema=CROP_SCHEMA)
        write_table(result, folder / "faces.parquet")
        write_table(pa.Table.from_pylist(skipped, schema=SKIPPED_SCHEMA), folder / SKIPPED)
        write_json({"format": "imagesasdata.face_crops/1", "size": size, "margin": margin, "align": align,
                    "largest_only": largest_only, "min_face_size": min_face_size, "threshold": threshold,
                    "crops": len(rows), "skipped": len(skipped), "status": "complete"}, folder / CROPS_DESCRIPTION)
    if skipped:
        warnings.warn(f"{len(skipped)} of {table.num_rows} images gave no crop (no face found, or unreadable); "
                      f"the reasons are in {folder / SKIPPED}", stacklevel=2)
    return result


CROP_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("label", pa.string()), ("split", pa.string()),
    ("source_image_id", pa.string()), ("source_path", pa.string()), ("face_id", pa.int32()),
    ("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64()),
    ("score", pa.float64()),
])
SKIPPED_SCHEMA = pa.schema([("image_id", pa.string()), ("path", pa.string()), ("reason", pa.string())])


def _area(face) -> float:
    return (face["width"] * face["height"]) if isinstance(face, dict) else face.width * face.height


def _no_face_reason(min_face_size, threshold) -> str:
    return (f"no face found (MTCNN, min_face_size={min_face_size}, threshold={threshold}); faces smaller than "
            "min_face_size pixels, strong profiles and covered faces are often missed")


def _faces_by_image(faces: pa.Table) -> dict:
    _require(faces, ("image_id", "face_id", "left", "top", "width", "height", "score"))
    found: dict = {}
    for row in faces.to_pylist():
        found.setdefault(row["image_id"], [])
        if row["face_id"] is not None and row.get("error") is None:
            found[row["image_id"]].append(row)
    return found


# ------------------------------------------------------------------------------------------ a classifier per face

@dataclass
class FaceClassification:
    """A fitted run applied to every face: `faces` (one row per face) and `images` (one row per image)."""

    faces: pa.Table
    images: pa.Table
    classes: list
    notices: list = field(default_factory=list)   # the section 8 notice this identification carried (notices.py)

    def __repr__(self) -> str:
        counts = self.images["faces"].to_pylist()
        found = sum(c for c in counts if c)
        return (f"imagesasdata face classification: {found} faces in {len(counts)} images "
                f"({sum(1 for c in counts if c == 0)} without a face, {sum(1 for c in counts if c is None)} unreadable); "
                f"classes {', '.join(self.classes)}")


def classify_faces(run, images, *, faces: pa.Table | None = None, margin: float = 0.2, align: bool = True,
                   min_face_size: int = 20, threshold: float = 0.9, batch_size: int = 32, device: str = "auto",
                   precision: str = "auto", allow_unfinished: bool = False, progress: bool = True) -> FaceClassification:
    """Run a fitted classifier on every face of every image, and aggregate per image.

    run: a Run or run directory, ideally fitted on face_crops() made with the same margin and align.
    images: anything image_table() reads. faces: a detect_faces() table to use instead of detecting again.
    Faces are cropped in memory and go through the run's own preprocessing and forward pass (model.inference).
    Returns a FaceClassification: `.faces` — image_id, path, face_id, left, top, width, height, score,
    predicted, prob_<class>…; `.images` — image_id, path, faces, then for each class faces_<class> (how many
    faces were predicted as it), any_<class> (at least one) and all_<class> (every face; null when there is no
    face), and error (unreadable images: counts are null).
    """
    from tqdm.auto import tqdm

    from ..data.transforms import base_array
    from ..model.inference import Predictor
    from ..runs import as_run_directory

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    margin = check_number("margin", margin, 0, 2)
    batch_size = int(check_number("batch_size", batch_size, 1, None, integer=True))
    records = [notice("face_identification")]   # once per session; recorded in the output either way
    predictor = Predictor(run.description, run.weights(), device, precision)
    classes = list(run.classes)
    prep = predictor.prep
    table = _images(images)
    found = _faces_by_image(faces) if faces is not None else None
    detector = None if found is not None else _detector(min_face_size, threshold, device)
    face_rows, image_rows = [], []
    pending_rows, pending_bases = [], []

    def flush():
        if not pending_rows:
            return
        output = predictor({"row": np.arange(len(pending_rows)), "image": np.stack(pending_bases),
                            "error": [""] * len(pending_rows)})
        for row, probabilities in zip(pending_rows, output["probabilities"]):
            row["predicted"] = classes[int(np.argmax(probabilities))]
            for c, p in zip(classes, probabilities):
                row[f"prob_{c}"] = float(p)
            face_rows.append(row)
        pending_rows.clear()
        pending_bases.clear()

    with tqdm(total=table.num_rows, desc="faces", unit="img", disable=not progress, leave=False) as bar:
        for image_id, path in zip(table["image_id"].to_pylist(), table["path"].to_pylist()):
            bar.update(1)
            try:
                image = open_rgb(path)
            except BadImageError as error:
                image_rows.append({"image_id": image_id, "path": path, "error": error.reason})
                continue
            detected = found.get(image_id, []) if found is not None else detector.detect(image)
            image_rows.append({"image_id": image_id, "path": path, "error": None})
            crops = crop_faces(image, detected, size=prep.resize_size, margin=margin, align=align)
            for k, (face, crop) in enumerate(zip(detected, crops), start=1):
                box = {key: (face[key] if isinstance(face, dict) else getattr(face, key))
                       for key in ("left", "top", "width", "height", "score")}
                face_id = face["face_id"] if isinstance(face, dict) else k
                pending_rows.append({"image_id": image_id, "path": path, "face_id": face_id, **box})
                pending_bases.append(base_array(crop, prep.resize, prep.resize_size))
                if len(pending_rows) >= batch_size:
                    flush()
        flush()
    schema = pa.schema([("image_id", pa.string()), ("path", pa.string()), ("face_id", pa.int32()),
                        ("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()),
                        ("height", pa.float64()), ("score", pa.float64()), ("predicted", pa.string())]
                       + [(f"prob_{c}", pa.float64()) for c in classes])
    per_face = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in face_rows], schema=schema)
    return FaceClassification(with_notices(per_face, records),
                              with_notices(faces_per_image(per_face, image_rows, classes), records), classes, records)


def faces_per_image(per_face: pa.Table, images: list[dict], classes) -> pa.Table:
    """Per image: faces, faces_<class>, any_<class>, all_<class>, error (see classify_faces())."""
    predicted: dict = {}
    for image_id, label in zip(per_face["image_id"].to_pylist(), per_face["predicted"].to_pylist()):
        predicted.setdefault(image_id, []).append(label)
    fields = [("image_id", pa.string()), ("path", pa.string()), ("faces", pa.int32())]
    fields += [(f"faces_{c}", pa.int32()) for c in classes]
    fields += [(f"any_{c}", pa.bool_()) for c in classes] + [(f"all_{c}", pa.bool_()) for c in classes]
    fields += [("error", pa.string())]
    rows = []
    for image in images:
        row = dict(image)
        if image["error"] is None:
            labels = predicted.get(image["image_id"], [])
            row["faces"] = len(labels)
            for c in classes:
                n = sum(1 for label in labels if label == c)
                row[f"faces_{c}"] = n
                row[f"any_{c}"] = n > 0
                row[f"all_{c}"] = (n == len(labels)) if labels else None
        rows.append(row)
    schema = pa.schema(fields)
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)
