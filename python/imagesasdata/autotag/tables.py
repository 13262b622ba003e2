"""Autotagger answers as Arrow tables: one row per image × label, or per image × celebrity.

Every image appears, as in the book's CSVs: an image in which nothing was found gets one row with empty (null)
label fields, an image that failed gets one row with its `error`. Confidences are percentages (0–100), as
Rekognition reports them, for every tagger, so that one min_confidence means the same thing everywhere.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import ImagesAsDataError

BOX = pa.struct([("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64())])
INSTANCE_BOX = pa.struct([("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()),
                          ("height", pa.float64()), ("confidence", pa.float64())])

IMAGE_FIELDS = [("image_id", pa.string()), ("path", pa.string()), ("image_sha256", pa.string()), ("tagger", pa.string())]

LABEL_SCHEMA = pa.schema(IMAGE_FIELDS + [
    ("label", pa.string()),
    ("confidence", pa.float64()),
    ("label_rank", pa.int32()),                 # position in the answer, 1 = most confident (the book's label_num)
    ("parents", pa.list_(pa.string())),
    ("aliases", pa.list_(pa.string())),
    ("categories", pa.list_(pa.string())),
    ("instances", pa.int64()),
    ("bounding_boxes", pa.list_(INSTANCE_BOX)),
    ("label_model_version", pa.string()),
    ("error", pa.string()),
])

CELEBRITY_SCHEMA = pa.schema(IMAGE_FIELDS + [
    ("celebrity", pa.string()),
    ("celebrity_id", pa.string()),
    ("match_confidence", pa.float64()),
    ("celebrity_rank", pa.int32()),             # position in the answer (the book's celeb_num)
    ("urls", pa.list_(pa.string())),
    ("known_gender", pa.string()),
    ("face_confidence", pa.float64()),
    ("face_box", BOX),
    ("unrecognized_faces", pa.int64()),         # faces found but not matched to anyone, per image
    ("error", pa.string()),
])


class MalformedResponse(Exception):
    """The service answered, but not in the documented shape: the answer is not cached and not trusted."""


def check_labels_response(response) -> None:
    """Raise MalformedResponse unless `response` looks like a DetectLabels answer."""
    if not isinstance(response, dict) or not isinstance(response.get("Labels"), list):
        raise MalformedResponse("no Labels list in the DetectLabels answer")
    for i, label in enumerate(response["Labels"]):
        if not isinstance(label, dict) or not isinstance(label.get("Name"), str) or not label["Name"]:
            raise MalformedResponse(f"label {i + 1} of the DetectLabels answer has no Name")
        if not isinstance(label.get("Confidence"), (int, float)):
            raise MalformedResponse(f"label {label['Name']!r} of the DetectLabels answer has no Confidence")


def check_celebrities_response(response) -> None:
    """Raise MalformedResponse unless `response` looks like a RecognizeCelebrities answer."""
    if not isinstance(response, dict) or not isinstance(response.get("CelebrityFaces"), list):
        raise MalformedResponse("no CelebrityFaces list in the RecognizeCelebrities answer")
    for i, face in enumerate(response["CelebrityFaces"]):
        if not isinstance(face, dict) or not isinstance(face.get("Name"), str) or not face["Name"]:
            raise MalformedResponse(f"celebrity {i + 1} of the RecognizeCelebrities answer has no Name")


def _box(box, confidence=None, with_confidence=False):
    if not isinstance(box, dict):
        return None
    row = {k: _float(box.get(k.capitalize())) for k in ("left", "top", "width", "height")}
    if with_confidence:
        row["confidence"] = _float(confidence)
    return row


def _float(value):
    return float(value) if isinstance(value, (int, float)) else None


def _names(items):
    return [i["Name"] for i in items or [] if isinstance(i, dict) and i.get("Name")]


def label_rows(image: dict, response: dict, tagger: str = "rekognition") -> list[dict]:
    """Rows for one image's DetectLabels answer; one empty row when no label was found."""
    version = response.get("LabelModelVersion")
    rows = []
    for rank, label in enumerate(response["Labels"], start=1):
        instances = label.get("Instances") or []
        rows.append({**image, "tagger": tagger, "label": label["Name"], "confidence": float(label["Confidence"]),
                     "label_rank": rank, "parents": _names(label.get("Parents")),
                     "aliases": _names(label.get("Aliases")), "categories": _names(label.get("Categories")),
                     "instances": len(instances),
                     "bounding_boxes": [_box(i.get("BoundingBox"), i.get("Confidence"), True) for i in instances
                                        if isinstance(i, dict) and isinstance(i.get("BoundingBox"), dict)],
                     "label_model_version": version, "error": None})
    return rows or [{**image, "tagger": tagger, "label_model_version": version}]


def celebrity_rows(image: dict, response: dict, tagger: str = "rekognition") -> list[dict]:
    """Rows for one image's RecognizeCelebrities answer; one empty row when nobody was recognised."""
    unrecognized = len(response.get("UnrecognizedFaces") or [])
    rows = []
    for rank, face in enumerate(response["CelebrityFaces"], start=1):
        details = face.get("Face") if isinstance(face.get("Face"), dict) else {}
        gender = face.get("KnownGender")
        rows.append({**image, "tagger": tagger, "celebrity": face["Name"], "celebrity_id": face.get("Id"),
                     "match_confidence": _float(face.get("MatchConfidence")), "celebrity_rank": rank,
                     "urls": [u for u in face.get("Urls") or [] if isinstance(u, str)],
                     "known_gender": gender.get("Type") if isinstance(gender, dict) else None,
                     "face_confidence": _float(details.get("Confidence")),
                     "face_box": _box(details.get("BoundingBox")), "unrecognized_faces": unrecognized})
    return rows or [{**image, "tagger": tagger, "unrecognized_faces": unrecognized}]


def error_row(image: dict, error: str, tagger: str = "rekognition") -> dict:
    return {**image, "tagger": tagger, "error": error}


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (missing keys are null) to a table with exactly `schema`."""
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def tag_columns(tags: pa.Table) -> tuple[str, str | None]:
    """The tag and confidence columns of a tag table: label/confidence, or celebrity/match_confidence."""
    names = tags.column_names
    if "label" in names:
        return "label", "confidence" if "confidence" in names else None
    if "celebrity" in names:
        return "celebrity", "match_confidence" if "match_confidence" in names else None
    raise ImagesAsDataError(
        f"not a tag table: no label or celebrity column (columns: {', '.join(names)}); pass the result of "
        "rekognition_labels(), rekognition_celebrities() or autotag_local(), or name the column with tag_column="
    )
