"""Duplicate images: exact copies (equal SHA-256) and near duplicates (re-encoded, resized, recompressed or
lightly cropped copies), found by perceptual hashes from `imagehash` and a Hamming-distance threshold.

"No need to pay twice for the same picture", and no copy of a validation image in the training split. Every image
is linked to its group's representative, the copy to keep (the book's reference script writes the same link as a
CSV); groups can be seen on a contact sheet before anything is dropped.

Choices, measured on the ORL faces and the five tweeted images in ../shared/datasets (see tests/test_dedupe.py):
- phash with hash_size=16 (256 bits). At 64 bits, photos of two different ORL people come as close as 6 bits while
  a JPEG at quality 50 moves up to 4: no threshold separates them. At 256 bits, copies re-encoded, halved or
  recompressed stay within 22 bits and different people are at least 60 bits apart.
- threshold 24 bits (9.4% of the hash). Of the 1,800 pairs of photos of the same ORL person taken at different
  moments, 6 fall within it (0.3%): near-identical poses, shown on the contact sheet for a person to judge.
- Light crops. A perceptual hash follows the whole frame, so a crop moves it (an even border of 1% moves ~20 of
  256 bits, 3% ~60, 5% ~100). Each image is therefore also hashed after trimming an even border of 1, 2, 3, 4 and
  5% (CROP_SCALES), and a pair is near-duplicate when a trimmed hash of one is close to the full hash of the other:
  any even border up to 5% is then found. A crop that also shifts the picture is not: half a percent off-centre
  moves ~26 bits (found about a third of the time), 2% ~44 (never). That is no accident of this hash: a shift of the frame
  is exactly what separates two photos of a person who moved, and every hash tried (phash, dhash, whash,
  average_hash) that tolerates it also groups different moments.
- Search: multi-index hashing (Norouzi, Punjani & Fleet 2012). Each hash is cut into m chunks of about log2(n)
  bits; two hashes within r bits agree within ⌊r/m⌋ bits on at least one chunk (pigeonhole), so only images
  sharing a chunk up to ⌊r/m⌋ flipped bits are compared. (A BK-tree would prune little: with random 256-bit hashes
  128 ± 8 bits apart, a 24-bit radius cuts few branches.) Timings: benchmarks/dedupe_speed.py.
- Groups are connected components of the near-duplicate graph (union-find: single linkage), so a chain of
  small steps joins a group; distance_to_representative says how far each member is from the copy kept.
"""

from .grouping import find_duplicates
from .hashing import (CROP_SCALES, DEFAULT_HASH_SIZE, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD_FRACTION,
                      HASH_METHODS, image_hashes)
from .search import brute_force_pairs, hamming, hamming_pairs, hex_to_codes
from .sheets import contact_sheet, duplicate_groups, duplicate_thumbnails, representatives

__all__ = ["CROP_SCALES", "DEFAULT_HASH_SIZE", "DEFAULT_THRESHOLD", "DEFAULT_THRESHOLD_FRACTION", "HASH_METHODS",
           "brute_force_pairs", "contact_sheet", "duplicate_groups", "duplicate_thumbnails", "find_duplicates",
           "hamming", "hamming_pairs", "hex_to_codes", "image_hashes", "representatives"]
