"""Pieces shared by the CLI's verb modules: options generated from a dataclass, and printing tables."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pyarrow as pa


def add_dataclass_options(parser: argparse.ArgumentParser, cls, help_texts: dict, skip=()) -> None:
    """One --option per dataclass field, typed from its default, documented from help_texts."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        text = help_texts.get(field.name, "").replace("%", "%%")  # argparse formats help with %
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{text} (default: {'on' if default else 'off'})")
            continue
        kind = _argument_type(hints.get(field.name), default)
        shown = "" if default is None or "default" in text else f" (default: {default})"
        parser.add_argument(flag, type=kind, default=None, metavar=field.name.upper(), help=text + shown)


def _argument_type(hint, default):
    if isinstance(default, bool):
        return None
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    text = str(hint)
    if "int" in text and "str" not in text:
        return int
    if "float" in text:
        return float
    return str


def given_options(args, cls) -> dict:
    """The dataclass options the user actually passed (None means: keep the default)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def print_table(table: pa.Table, max_rows: int = 40, digits: int = 3) -> None:
    """A plain-text table for the terminal."""
    rows = table.slice(0, max_rows).to_pylist()
    names = table.column_names

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    cells = [[cell(r[n]) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    if table.num_rows > max_rows:
        print(f"… {table.num_rows - max_rows} more rows")
