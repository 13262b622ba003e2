"""Duplicates on real images: the 400 ORL faces, the five tweeted images, and copies of them made here the way
copies arise online (re-encoded, resized, cropped, recompressed, byte-identical)."""

from __future__ import annotations

import io
import itertools
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from imagesasdata import ImagesAsDataError
from imagesasdata.cli import main
from imagesasdata.prepare.dedupe import (DEFAULT_THRESHOLD, brute_force_pairs, contact_sheet, duplicate_groups,
                                 duplicate_thumbnails, find_duplicates, hamming, hamming_pairs, image_hashes)
from imagesasdata.io.tables import read_table

# Copies of these are planted: the five tweeted photos and one photo of ten ORL people.
ORL_ORIGINALS = [f"orl/s{k}/1.pgm" for k in (1, 5, 9, 13, 17, 21, 25, 29, 33, 37)]
REKOGNITION = [f"ex_{k}.jpg" for k in range(1, 6)]


def _reencode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _trim(image, share):
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    return image.crop((dx, dy, w - dx, h - dy))


COPIES = {
    # name: (how the copy is made, file format)
    "q50": (lambda im: im, ("JPEG", {"quality": 50})),
    "half": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), ("PNG", {})),
    "crop5": (lambda im: _trim(im, 0.05), ("JPEG", {"quality": 90})),
    "crop3": (lambda im: _trim(im, 0.03), ("PNG", {})),
    # Saved by one site at quality 90, shrunk and re-saved as WebP by the next.
    "recompressed": (lambda im: _reencode(im, "JPEG", quality=90).resize((int(im.width * 0.8), int(im.height * 0.8))),
                     ("WEBP", {"quality": 40})),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, orl_faces, rekognition_examples):
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(orl_faces, root / "orl", ignore=shutil.ignore_patterns("README*"))
    for name in REKOGNITION:
        shutil.copy(rekognition_examples / name, root / name)
    planted = {}
    for original in ORL_ORIGINALS + REKOGNITION:
        image = Image.open(root / original).convert("RGB")
        stem = original.replace("/", "_").rsplit(".", 1)[0]
        for kind, (make, (fmt, options)) in COPIES.items():
            target = root / "copies" / f"{stem}_{kind}.{ {'JPEG': 'jpg', 'PNG': 'png', 'WEBP': 'webp'}[fmt]}"
            target.parent.mkdir(exist_ok=True)
            make(image).save(target, fmt, **options)
            planted[target.relative_to(root).as_posix()] = (original, kind)
    shutil.copy(root / "ex_2.jpg", root / "copies" / "ex_2_exact.jpg")
    planted["copies/ex_2_exact.jpg"] = ("ex_2.jpg", "exact")
    (root / "copies" / "broken.jpg").write_bytes((root / "ex_3.jpg").read_bytes()[:300])
    return root, planted


@pytest.fixture(scope="module")
def hashes(corpus):
    root, _ = corpus
    return image_hashes(root, progress=False)


@pytest.fixture(scope="module")
def duplicates(hashes):
    return find_duplicates(hashes)


def _by_id(table):
    return {row["image_id"]: row for row in table.to_pylist()}


def test_every_planted_copy_joins_its_original(corpus, duplicates):
    _, planted = corpus
    rows = _by_id(duplicates)
    for copy, (original, kind) in planted.items():
        assert rows[copy]["group_id"] == rows[original]["group_id"], f"{kind} copy {copy} not grouped with {original}"
        if kind == "exact":
            continue
        # The original has the most pixels in its group, so it (or its byte-identical copy) is the one kept.
        assert rows[rows[copy]["representative"]]["sha256"] == rows[original]["sha256"]
        assert rows[copy]["distance_to_representative"] <= DEFAULT_THRESHOLD
        assert not rows[copy]["exact_duplicate"]
    # A byte-identical copy ties on pixels and bytes: the first in the table (copies/ sorts first) is kept.
    exact, original = rows["copies/ex_2_exact.jpg"], rows["ex_2.jpg"]
    assert exact["is_representative"] and original["representative"] == "copies/ex_2_exact.jpg"
    assert original["exact_duplicate"] and original["distance_to_representative"] == 0


def test_different_people_and_different_photos_are_never_grouped(duplicates):
    groups = {}
    for row in duplicates.to_pylist():
        groups.setdefault(row["group_id"], []).append(row["image_id"])

    def subject(image_id):
        if image_id.startswith("orl/"):
            return image_id.split("/")[1]
        name = Path(image_id).name
        return next((r for r in REKOGNITION if name.startswith(r[:-4])), None) or \
            next(o.split("/")[1] for o in ORL_ORIGINALS if name.startswith(o.replace("/", "_")[:-4] + "_"))

    for members in groups.values():
        readable = [m for m in members if not m.endswith("broken.jpg")]
        assert len({subject(m) for m in readable}) <= 1, f"one group holds different subjects: {members}"


def test_two_moments_of_one_person_are_not_duplicates(duplicates, hashes):
    """Photos 1 and 2 of every ORL person were taken at different moments: none is grouped at the default
    threshold. Of all 1,800 same-person pairs, fewer than 1% are — near-identical poses such as s14/2 and s14/3
    (14 bits apart), which the contact sheet shows for a person to judge."""
    rows = _by_id(duplicates)
    for person in range(1, 41):
        assert rows[f"orl/s{person}/1.pgm"]["group_id"] != rows[f"orl/s{person}/2.pgm"]["group_id"], person
    grouped = total = 0
    for person in range(1, 41):
        for a, b in itertools.combinations(range(1, 11), 2):
            total += 1
            grouped += rows[f"orl/s{person}/{a}.pgm"]["group_id"] == rows[f"orl/s{person}/{b}.pgm"]["group_id"]
    assert total == 1800 and 0 < grouped < 18
    assert rows["orl/s14/2.pgm"]["group_id"] == rows["orl/s14/3.pgm"]["group_id"]


def test_unreadable_file_is_listed_and_alone(duplicates):
    rows = _by_id(duplicates)
    broken = rows["copies/broken.jpg"]
    assert "truncated" in broken["error"] or "corrupt" in broken["error"]
    assert broken["group_size"] == 1 and broken["is_representative"] and broken["distance_to_representative"] is None
    assert sum(r["error"] is not None for r in rows.values()) == 1


def test_output_table_links_every_image_to_its_groups_first_unique_instance(duplicates):
    assert {"image_id", "path", "group_id", "representative", "group_size", "is_representative",
            "distance_to_representative", "exact_duplicate", "sha256", "perceptual_hash", "error"} <= set(duplicates.column_names)
    rows = duplicates.to_pylist()
    by_group = {}
    for row in rows:
        by_group.setdefault(row["group_id"], []).append(row)
    for members in by_group.values():
        representatives = [m for m in members if m["is_representative"]]
        assert len(representatives) == 1
        assert all(m["representative"] == representatives[0]["image_id"] for m in members)
        assert all(m["group_size"] == len(members) for m in members)
    # Group ids count 1, 2, … in table order of the representatives.
    first_seen = list(dict.fromkeys(r["group_id"] for r in rows if r["is_representative"]))
    assert first_seen == list(range(1, len(by_group) + 1))


def test_keep_first_and_exact_only(corpus, hashes):
    first = _by_id(find_duplicates(hashes, keep="first"))
    # copies/ sorts before ex_1.jpg, so with keep="first" a copy represents the tweeted photo's group.
    assert first["ex_1.jpg"]["representative"].startswith("copies/ex_1_")
    root, _ = corpus
    exact = find_duplicates(root, near=False, progress=False)
    sizes = {r["image_id"]: r["group_size"] for r in exact.to_pylist()}
    assert sizes["ex_2.jpg"] == sizes["copies/ex_2_exact.jpg"] == 2
    assert sizes["ex_1.jpg"] == 1 and sum(s > 1 for s in sizes.values()) == 2
    assert exact["perceptual_hash"].null_count == exact.num_rows


def test_lower_threshold_groups_less(hashes, duplicates):
    strict = find_duplicates(hashes, threshold=4)
    assert pa.compute.max(strict["group_size"]).as_py() <= pa.compute.max(duplicates["group_size"]).as_py()
    assert sum(strict["is_representative"].to_pylist()) > sum(duplicates["is_representative"].to_pylist())
    with pytest.raises(ImagesAsDataError, match="threshold"):
        find_duplicates(hashes, threshold=500)
    with pytest.raises(ImagesAsDataError, match="phash"):
        find_duplicates(hashes, method="pash")


def test_reuse_skips_known_files(corpus, hashes, monkeypatch):
    import imagesasdata.prepare.dedupe.hashing as dedupe

    calls = []
    original = dedupe._perceptual_hashes
    monkeypatch.setattr(dedupe, "_perceptual_hashes", lambda *a: calls.append(a) or original(*a))
    root, _ = corpus
    again = image_hashes(root, progress=False, reuse=hashes)
    assert again["perceptual_hash"].to_pylist() == hashes["perceptual_hash"].to_pylist()
    assert [Path(c[0]).name for c in calls] == ["broken.jpg"]  # only the file that has no hash yet
    with pytest.warns(UserWarning, match="not reusing"):
        image_hashes([root / "ex_1.jpg"], progress=False, reuse=hashes, hash_size=8)


@pytest.mark.parametrize("bits,threshold,plan", [
    (256, 24, None), (256, 40, None), (64, 6, None), (64, 3, None), (256, 0, None),
    # Chunks wider than the lookup table (searched in sorted keys) with flipped bits per chunk, as at large n.
    (256, 24, ([24] * 10 + [16], 2)), (64, 6, ([16] * 4, 1)),
])
def test_multi_index_search_equals_brute_force(bits, threshold, plan):
    rng = np.random.default_rng(bits + threshold)
    words = bits // 64
    codes = rng.integers(0, 2**63, size=(1500, words), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(1500, words), dtype=np.uint64)
    # Plant near copies at every distance up to threshold + 2.
    for k in range(200):
        flips = rng.choice(bits, size=k % (threshold + 3), replace=False)
        copy = codes[k].copy()
        for f in flips:
            copy[f // 64] ^= np.uint64(1) << np.uint64(f % 64)
        codes[1000 + k] = copy
    fast = hamming_pairs(codes, threshold, plan=plan)
    slow = brute_force_pairs(codes, threshold)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    assert len(fast[0]) >= 200 * (threshold + 1) // (threshold + 3)
    assert (hamming(codes[fast[0]], codes[fast[1]]) == fast[2]).all() and (fast[2] <= threshold).all()
    queries = codes[::7] ^ np.uint64(1)
    for a, b in zip(hamming_pairs(codes, threshold, queries=queries, plan=plan),
                    brute_force_pairs(codes, threshold, queries=queries)):
        np.testing.assert_array_equal(a, b)


def test_contact_sheet_and_thumbnails(duplicates, tmp_path):
    groups = duplicate_groups(duplicates)
    n_groups = len(set(groups["group_id"].to_pylist()))
    assert n_groups >= len(ORL_ORIGINALS) + len(REKOGNITION)
    assert groups["position"].to_pylist()[0] == 0 and groups["is_representative"].to_pylist()[0]
    sheet = contact_sheet(duplicates, tmp_path / "sheet.png", max_groups=5, thumb_size=64)
    assert isinstance(sheet, Image.Image)
    saved = Image.open(tmp_path / "sheet.png")
    assert saved.size == sheet.size and sheet.height > 5 * 64
    # The representative of the first group is drawn in the first cell: not a blank page.
    first_cell = np.asarray(sheet.crop((8, 36, 72, 100)).convert("L"))
    assert first_cell.std() > 10
    members = duplicate_thumbnails(duplicates, tmp_path / "thumbs", thumb_size=48)
    assert members.num_rows == groups.num_rows
    for path in members["thumbnail"].to_pylist()[:10]:
        assert max(Image.open(path).size) == 48


def test_cli_dedupe(corpus, tmp_path):
    root, _ = corpus
    small = tmp_path / "small"
    small.mkdir()
    for name in ("ex_1.jpg", "ex_3.jpg", "copies/ex_1_q50.jpg", "copies/ex_3_crop5.jpg"):
        shutil.copy(root / name, small / Path(name).name)
    out = tmp_path / "dups.csv"
    code = main(["dedupe", str(small), "--out", str(out), "--contact-sheet", str(tmp_path / "sheet.png"),
                 "--hashes", str(tmp_path / "hashes.parquet"), "--no-progress"])
    assert code == 0
    table = read_table(out)
    rows = {r["image_id"]: r for r in table.to_pylist()}
    assert rows["ex_1_q50.jpg"]["representative"] == "ex_1.jpg"
    assert rows["ex_3_crop5.jpg"]["representative"] == "ex_3.jpg"
    assert (tmp_path / "sheet.png").exists() and (tmp_path / "hashes.parquet").exists()
    assert main(["dedupe", str(tmp_path / "nothing"), "--out", str(out)]) == 1
