"""Rebuild the bundled sample from the ORL face database (kept for provenance; not run by the build).

Usage: python data/make_sample.py ../shared/datasets/orl_faces
"""
import csv
import sys
from pathlib import Path

from PIL import Image

PEOPLE = ["s1", "s2", "s3", "s4", "s5", "s6"]   # six people: the book's "six world leaders", scaled down
LABELLED = range(1, 9)                          # photos 1-8 of each person are hand-labelled
NEW = (9, 10)                                   # photos 9-10 play the unlabelled rest of the corpus


def main(orl: Path, out: Path) -> None:
    rows = []
    for person in PEOPLE:
        (out / "faces" / person).mkdir(parents=True, exist_ok=True)
        for k in LABELLED:
            target = out / "faces" / person / f"{k}.png"
            Image.open(orl / person / f"{k}.pgm").save(target, optimize=True)
            rows.append((f"faces/{person}/{k}.png", "positive" if person == "s1" else "negative"))
        for k in NEW:
            (out / "new_images").mkdir(exist_ok=True)
            Image.open(orl / person / f"{k}.pgm").save(out / "new_images" / f"{person}_{k}.png", optimize=True)
    with open(out / "person_vs_others.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows(rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
