"""The command line: `imagesasdata VERB ...`, with the same verbs and options as the Python API.

Each verb group lives in its own module and registers itself through `add_commands(subparsers)`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import ImagesAsDataError

# Modules that add verbs; each has add_commands(subparsers). Later capabilities append here.
COMMAND_MODULES = ["train", "autotag", "prepare", "tune", "label", "analysis", "beyond", "inside", "words"]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="imagesasdata",
        description="Images as data for social science: fine-tune, validate and apply CNN image classifiers "
                    "(Webb Williams, Casas & Wilkerson 2020).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imagesasdata {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="VERB")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_commands(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        return args.handler(args) or 0
    except ImagesAsDataError as error:
        print(f"imagesasdata {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
