"""The command line as a user runs it: `python -m imagesasdata.cli VERB ...` in a subprocess."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "imagesasdata.cli"]


def run(*args, check=True):
    """Run the CLI with `args` (paths become strings); with check, exit code 0 is asserted with stderr shown."""
    result = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result
