"""A sensitive-content prescreen (the book's section 8.3): flag images likely to be sexual or violent before
annotators see them — offline, or with Rekognition's moderation labels.

    moderation_local(images)          NudeNet (sexual content) and ImageNet's weapon categories (a violence proxy),
                                      on this machine: nothing leaves it
    rekognition_moderation(images)    Amazon Rekognition DetectModerationLabels, with the response cache, the
                                      per-image claims and the dry run of every Rekognition call (never pay twice)

Both return one row per image × moderation label in one shape (a Rekognition-like taxonomy: `category` is the
top-level name, e.g. "Explicit Nudity", "Violence"); an image with nothing found is one row with a null label.
prepare.screening turns either into flags (screen_images), a blurred contact sheet and a coding sheet that hides
flagged images. Nothing here deletes, moves or changes an image.
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import BadImageError, check_number, setting
from .inputs import hash_files, image_inputs
from .rekognition import DEFAULT_PRICE_PER_1000, Operation, _tag
from .tables import MalformedResponse, error_row, rows_to_table

BOX = pa.struct([("left", pa.float64()), ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64())])
MODERATION_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("path", pa.string()), ("image_sha256", pa.string()), ("tagger", pa.string()),
    ("label", pa.string()),
    ("confidence", pa.float64()),          # 0–100
    ("category", pa.string()),             # the top-level label: "Explicit Nudity", "Violence", "Suggestive", …
    ("parent", pa.string()),               # the label's parent (null for a top-level label)
    ("taxonomy_level", pa.int32()),        # 1 = top level
    ("box", BOX),                          # pixels, where the detector gives one (NudeNet); null otherwise
    ("moderation_model_version", pa.string()),
    ("error", pa.string()),
])
DEFAULT_MIN_CONFIDENCE = 50.0             # Rekognition's own default for DetectModerationLabels
LOCAL_DETECTORS = ("nudity", "weapons")


# ------------------------------------------------------------------------------------------ Rekognition

def check_moderation_response(response) -> None:
    """Raise MalformedResponse unless `response` looks like a DetectModerationLabels answer."""
    if not isinstance(response, dict) or not isinstance(response.get("ModerationLabels"), list):
        raise MalformedResponse("no ModerationLabels list in the DetectModerationLabels answer")
    for i, label in enumerate(response["ModerationLabels"]):
        if not isinstance(label, dict) or not isinstance(label.get("Name"), str) or not label["Name"]:
            raise MalformedResponse(f"moderation label {i + 1} of the answer has no Name")
        if not isinstance(label.get("Confidence"), (int, float)):
            raise MalformedResponse(f"moderation label {label['Name']!r} of the answer has no Confidence")


def moderation_rows(image: dict, response: dict, tagger: str = "rekognition") -> list[dict]:
    """Rows for one image's DetectModerationLabels answer; one empty row when nothing was found."""
    labels = response["ModerationLabels"]
    version = response.get("ModerationModelVersion")
    parents = {label["Name"]: label.get("ParentName") or None for label in labels}

    def top(name):
        seen = set()
        while parents.get(name) and name not in seen:
            seen.add(name)
            name = parents[name]
        return name

    rows = []
    for label in sorted(labels, key=lambda l: -float(l["Confidence"])):
        level = label.get("TaxonomyLevel")
        rows.append({**image, "tagger": tagger, "label": label["Name"], "confidence": float(label["Confidence"]),
                     "category": top(label["Name"]), "parent": label.get("ParentName") or None,
                     "taxonomy_level": int(level) if isinstance(level, (int, float)) else None,
                     "moderation_model_version": version})
    return rows or [{**image, "tagger": tagger, "moderation_model_version": version}]


MODERATION = Operation("DetectModerationLabels", "detect_moderation_labels", check_moderation_response,
                       moderation_rows, MODERATION_SCHEMA)


def rekognition_moderation(images, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, cache=None,
                           region: str | None = None, endpoint_url: str | None = None, profile: str | None = None,
                           concurrency: int = 4, max_attempts: int = 10, dry_run: bool = False,
                           price_per_1000: float = DEFAULT_PRICE_PER_1000, client=None,
                           progress: bool = True, resend_in_flight: bool = True) -> pa.Table:
    """Moderation labels from Amazon Rekognition DetectModerationLabels: one row per image × label.

    Every rule of rekognition_labels() holds: credentials from the standard AWS chain only; each distinct image
    sent once and its answer cached the moment it arrives (a rerun pays nothing; two runs sharing a cache claim
    each image; a killed run's requests in flight are asked again, or not with resend_in_flight=False);
    dry_run=True counts and prices the calls and sends nothing. DetectModerationLabels is priced as
    DetectLabels (Rekognition Image Group 2).
    min_confidence: labels below it are not returned (50 is the service's default).
    Returns columns image_id, path, image_sha256, tagger, label, confidence (0–100), category (the top-level
    label), parent, taxonomy_level, box (null: the service gives none), moderation_model_version, error.
    """
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    return _tag(MODERATION, images, {"MinConfidence": min_confidence}, cache=cache, region=region,
                endpoint_url=endpoint_url, profile=profile, concurrency=concurrency, max_attempts=max_attempts,
                dry_run=dry_run, price_per_1000=price_per_1000, client=client, progress=progress,
                resend_in_flight=resend_in_flight)


# ------------------------------------------------------------------------------------------ offline

def moderation_local(images, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, detectors=LOCAL_DETECTORS,
                     batch_size: int = 32, device: str = "auto", num_workers: int | None = None,
                     progress: bool = True) -> pa.Table:
    """Moderation labels computed on this machine (nothing is sent anywhere): one row per image × label.

    detectors: 'nudity' — NudeNet's detector of exposed (category "Explicit Nudity") and covered ("Suggestive")
      intimate body parts, each found part a label with its box; 'weapons' — the ImageNet categories of weapons
      from the offline EfficientNet-Lite0 (category "Violence", parent "Weapons"), a proxy that finds guns and
      blades, not blood or injuries.
    min_confidence: labels below this confidence (0–100: NudeNet's score, or the ImageNet probability) are dropped.
    Returns the table shape of rekognition_moderation() (tagger "local"); an image with nothing found is one row
    with a null label, an unreadable one a row with its error.
    """
    from tqdm.auto import tqdm

    from ..io.images import open_rgb
    from ..io.threads import map_in_threads
    from ..model.moderation import NUDENET_CATEGORIES, NudityDetector, nudenet_version

    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    detectors = (detectors,) if isinstance(detectors, str) else tuple(detectors or ())
    unknown = [d for d in detectors if d not in LOCAL_DETECTORS]
    if unknown or not detectors:
        from ..errors import ImagesAsDataError

        raise ImagesAsDataError(f"{setting('detectors', list(detectors))}: choose one or both of {', '.join(LOCAL_DETECTORS)}",
                                what="option", option="detectors", value=list(detectors))
    table = image_inputs(images)
    ids, paths = table["image_id"].to_pylist(), table["path"].to_pylist()
    hashes, unreadable = hash_files(paths)
    found: dict[int, list] = {i: [] for i in range(len(paths))}
    errors: dict[int, str] = dict(unreadable)
    versions = []

    if "nudity" in detectors:
        detector = NudityDetector()
        versions.append(nudenet_version())

        def nudity(position):
            if position in errors:
                return position, None, None
            try:
                image = open_rgb(paths[position])
            except BadImageError as error:
                return position, None, error.reason
            finally:
                bar.update(1)
            best: dict = {}
            for name, score, box in detector.detect(image):
                if name not in best or score > best[name][0]:
                    best[name] = (score, box)
            return position, best, None

        with tqdm(total=len(paths), desc="nudity", unit="img", disable=not progress, leave=False) as bar:
            for position, best, error in map_in_threads(nudity, range(len(paths)), workers=num_workers):
                if error:
                    errors[position] = error
                for name, (score, box) in (best or {}).items():
                    found[position].append({"label": name, "confidence": 100.0 * score,
                                            "category": NUDENET_CATEGORIES[name], "parent": NUDENET_CATEGORIES[name],
                                            "taxonomy_level": 2, "box": dict(zip(("left", "top", "width", "height"), box))})

    if "weapons" in detectors:
        from ..model.inference import batch_ranges, predict_paths
        from ..model.moderation import WEAPON_CATEGORIES
        from .local import _model_version, imagenet_categories, tagger

        batch_size = int(check_number("batch_size", batch_size, 1, None, integer=True))
        categories = imagenet_categories()
        weapons = [categories.index(name) for name in WEAPON_CATEGORIES]
        versions.append(f"weapons: {_model_version()}")
        predictor = tagger(device)

        def keep(positions, probabilities, batch_errors):
            for position, shares, error in zip(positions, probabilities * 100.0, batch_errors):
                position = int(position)
                if error:
                    errors.setdefault(position, error)
                    continue
                for index in weapons:
                    found[position].append({"label": categories[index], "confidence": float(shares[index]),
                                            "category": "Violence", "parent": "Weapons", "taxonomy_level": 3})
            bar.update(len(positions))

        with tqdm(total=len(paths), desc="weapons", unit="img", disable=not progress, leave=False) as bar:
            predict_paths(predictor, paths, batch_ranges(0, len(paths), batch_size), keep, workers=num_workers)

    version = "; ".join(versions)
    rows = []
    for position, (image_id, path, sha) in enumerate(zip(ids, paths, hashes)):
        image = {"image_id": image_id, "path": path, "image_sha256": sha}
        if position in errors:
            rows.append(dict(error_row(image, errors[position], "local"), moderation_model_version=version))
            continue
        kept = sorted((f for f in found[position] if f["confidence"] >= min_confidence), key=lambda f: -f["confidence"])
        rows += [{**image, "tagger": "local", **f, "moderation_model_version": version} for f in kept] \
            or [{**image, "tagger": "local", "moderation_model_version": version}]
    return rows_to_table(rows, MODERATION_SCHEMA)
