"""How long `import imagesasdata` takes, and what it drags in, in fresh interpreters.

    python benchmarks/import_time.py [--before PATH_TO_OTHER_python_FOLDER] [--repeats 7]

Each case runs in a new interpreter (so nothing is cached in-process; the files are in the page cache after the
first round), alternating engines when --before is given so both see the same machine load. Prints a Markdown
table: median wall seconds of the statement, and whether torch was imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CASES = {
    "import imagesasdata": "import imagesasdata",
    "image_table() of the sample": "import imagesasdata as iad; iad.image_table(iad.sample_data() / 'faces')",
    "image_inventory() of the sample": "import imagesasdata as iad; iad.image_inventory(iad.sample_data() / 'faces', progress=False)",
    "the R bridge (library(imagesasdata))": "import imagesasdata, importlib; importlib.import_module("
                                            "'imagesasdata.interop.bridge' if importlib.util.find_spec("
                                            "'imagesasdata.interop') else 'imagesasdata.bridge')",
}
PROBE = """
import time, sys, importlib.util
started = time.perf_counter()
{statement}
print(time.perf_counter() - started, 'torch' in sys.modules)
"""


def measure(python_folder: Path, statement: str) -> tuple[float, bool]:
    env = dict(os.environ, PYTHONPATH=str(python_folder))
    out = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), out[1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="another checkout's python/ folder, measured alternately")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1] / "python"
    engines = {"this checkout": here}
    if args.before:
        engines = {"before": args.before.resolve(), "after": here}
    print("| case | " + " | ".join(f"{name} (s) | torch imported" for name in engines) + " |")
    print("|---|" + "---:|---|" * len(engines))
    for case, statement in CASES.items():
        times = {name: [] for name in engines}
        torch_seen = {}
        for _ in range(args.repeats):
            for name, folder in engines.items():
                seconds, torch_imported = measure(folder, statement)
                times[name].append(seconds)
                torch_seen[name] = torch_imported
        cells = [f"{statistics.median(times[name]):.3f} | {'yes' if torch_seen[name] else 'no'}" for name in engines]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
