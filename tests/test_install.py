"""The engine as a user gets it from a wheel (not the editable checkout the other tests use): the sample data and
the packaged files are found, the command line runs, and nothing is imported from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (without dependencies: they are this venv's) into a folder."""
    wheels, target = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPOSITORY)],
                   check=True, capture_output=True)
    wheel = next(wheels.glob("imagesasdata-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    return target


def run_installed(target: Path, code: str, tmp_path: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(target))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout


def test_the_sample_data_ships_in_the_wheel(installed, tmp_path):
    out = run_installed(installed, "import imagesasdata as iad; d = iad.sample_data(); print(iad.__file__); "
                                   "print(d); print(iad.sample_data() == d); "
                                   "print(iad.image_table(d / 'faces').num_rows)", tmp_path).split("\n")
    assert out[0].startswith(str(installed))          # the installed engine, not the checkout
    assert Path(out[1]).is_relative_to(installed) and (Path(out[1]) / "new_images").is_dir()
    assert out[2] == "True" and out[3] == "48"        # a second call still works; 6 people × 8 photos


def test_the_command_line_runs_from_the_wheel(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed))
    result = subprocess.run([sys.executable, "-m", "imagesasdata.cli", "inventory",
                             str(Path(run_installed(installed, "import imagesasdata as iad; print(iad.sample_data())",
                                                    tmp_path).strip()) / "faces"), "--out", str(tmp_path / "i.csv"),
                             "--no-progress"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "i.csv").read_text().splitlines()) == 49
