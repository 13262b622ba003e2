"""Errors written for people: what went wrong, which file, row or option, and what to do about it.

A message names options and values through schema's marks (setting(), literal(), flag(), argument(), cli_only()):
the text is written once, Python and the command line read it in Python's spelling (str(error)), and the R bridge
asks for R's (message_for("r")), so no interface parses another's wording.
"""

from __future__ import annotations

import warnings as _warnings

from .schema import argument, cli_only, flag, literal, render, setting

__all__ = ["ImagesAsDataError", "ImagesAsDataWarning", "BadImageError", "option_error", "unknown_option",
           "column_error", "missing_extra", "warn", "listing", "did_you_mean", "check_number", "literal", "setting",
           "flag", "argument", "cli_only"]


class ImagesAsDataError(ValueError):
    """A problem with the user's input or options; the message says how to fix it.

    Besides the message, the parts an interface needs to say it in its own words travel as fields (all optional):
    what (the kind of problem: "option" for a bad value of an option, "unknown_option", "column" for a column that
    is not there, "missing_extra", "file" for a file or folder that is not what it should be, "rows" for rows of a
    table, "image", "data" for the content of the data given, "state" for something a job or folder is in the
    middle of, "environment" for the machine: a service, a package, a device), option (the option's or column's
    name), value (what was given), expected (what an option's value must be, as in "must be {expected}":
    "above 0", "a whole number"), choices (what is allowed), path (a file), row (1-based; a list of rows where
    several are at fault), hint (what to do, or a short aside such as "the book uses 0.001"), extra (the engine
    extra that provides a missing package: "stats", "inside", "beyond", ...). The R bridge passes them to R, which
    builds its condition from them (rpkg/R/engine.R), never from the message's wording. option_error(),
    unknown_option(), column_error() and missing_extra() build the common kinds with their fields.

    The message (and expected and hint) may hold schema's marked code; str(error) is the Python spelling and
    message_for("r") R's.
    """

    FIELDS = ("what", "option", "value", "expected", "choices", "path", "row", "hint", "extra")

    def __init__(self, message: str = "", *, what=None, option=None, value=None, expected=None, choices=None,
                 path=None, row=None, hint=None, extra=None):
        self.template = message
        super().__init__(render(message, "python"))
        self.what, self.option, self.value, self.expected, self.choices = what, option, value, expected, choices
        self.path, self.row, self.hint, self.extra = path, row, hint, extra

    def message_for(self, interface: str = "python") -> str:
        """Return the message spelt for `interface` ("python" or "r"; see schema.render)."""
        return render(getattr(self, "template", None) or str(self), interface)

    def fields(self, interface: str = "python") -> dict:
        """Return the fields that are set, as plain values: choices as strings; value as itself when a str, int, float or
        bool (or a list of those), else as its repr; path as a string; row as an int or a list of ints; expected and
        hint spelt for `interface`, and for "r" the option in R's name (schema.r_argument)."""
        from .schema import r_argument

        out = {}
        for name in self.FIELDS:
            value = getattr(self, name, None)
            if value is None:
                continue
            if name == "choices":
                value = [str(c) for c in value]
            elif name == "value" and isinstance(value, (list, tuple)) and all(
                    isinstance(v, (str, int, float, bool)) for v in value):
                value = list(value)
            elif name == "value" and not isinstance(value, (str, int, float, bool)):
                value = repr(value)
            elif name == "path":
                value = str(value)
            elif name == "row":
                value = _rows(value)
            elif name in ("expected", "hint"):
                value = render(str(value), interface)
            elif name == "option" and interface == "r":
                value = r_argument(value)
            out[name] = value
        return out


def _rows(value):
    """A row field as an int or a list of ints; anything else as text (an interface must never fail on a field)."""
    try:
        return [int(r) for r in value] if isinstance(value, (list, tuple)) else int(value)
    except (TypeError, ValueError):
        return str(value)


class ImagesAsDataWarning(UserWarning):
    """A warning of the engine's whose text may hold schema's marked code: str() is the Python spelling, the bridge
    asks message_for("r") for R's."""

    def __init__(self, message: str = ""):
        self.template = message
        super().__init__(render(message, "python"))

    def message_for(self, interface: str = "python") -> str:
        """Return the warning's text spelt for `interface` ("python" or "r")."""
        return render(self.template, interface)


def warn(message: str, stacklevel: int = 2) -> None:
    """warnings.warn() for a message that may hold marked code (an ImagesAsDataWarning, a UserWarning); stacklevel
    counts from the caller, as warnings.warn's does. Returns None."""
    _warnings.warn(ImagesAsDataWarning(message), stacklevel=stacklevel + 1)


def option_error(option: str, value, expected: str | None = None, *, choices=None, hint: str | None = None,
                 suggest: bool = True) -> ImagesAsDataError:
    """The error for a bad value of an option, with its fields (what="option").

    With `choices`: "option='x': choose one of a, b, c. Did you mean 'b'?" (the suggestion when `suggest` and one is
    close); else
    "option=value must be {expected} ({hint})". Returns the error (the caller raises it).
    """
    shown = setting(option, value)
    if choices is not None:
        choices = list(choices)
        message = f"{shown}: choose one of {', '.join(map(str, choices))}"
        if suggest and did_you_mean(str(value), choices):
            message += "." + did_you_mean(str(value), choices)
        if hint:
            message += f". {hint}"
    else:
        message = f"{shown} must be {expected}" + (f" ({hint})" if hint else "")
    return ImagesAsDataError(message, what="option", option=option, value=value, expected=expected,
                             choices=choices, hint=hint)


def unknown_option(name: str, known) -> ImagesAsDataError:
    """The error for an option that does not exist, suggesting the closest known one (what="unknown_option")."""
    known = list(known)
    return ImagesAsDataError(f"unknown option {literal(name)}.{did_you_mean(name, known)} Options: {', '.join(known)}",
                             what="unknown_option", option=name, choices=known)


def column_error(role: str, name, columns, where: str) -> ImagesAsDataError:
    """The error for a column named by option `role` that `where` (e.g. "the tag table") lacks (what="column";
    option is the role, value the name, choices the columns there)."""
    columns = [str(c) for c in columns]
    return ImagesAsDataError(f"{setting(role, name)}: no such column in {where} (columns: {', '.join(columns)})."
                             f"{did_you_mean(str(name), columns)}", what="column", option=role, value=name,
                             choices=columns)


def missing_extra(what: str, package: str, extra: str) -> ImagesAsDataError:
    """The error for an optional package that is not installed: `what` needs `package`, which the engine's `extra`
    brings (pip install 'imagesasdata[extra]'; from R, install_engine(extras = "extra"))."""
    return ImagesAsDataError(f"{what} needs {package}: pip install 'imagesasdata[{extra}]'", what="missing_extra",
                             option=package, extra=extra, hint=f"pip install 'imagesasdata[{extra}]'")


class BadImageError(ImagesAsDataError):
    """One image that cannot be used. Long runs record it and carry on; only a direct call raises it."""

    def __init__(self, path, reason: str):
        self.reason = reason
        super().__init__(f"{path}: {reason}", what="image", path=str(path))


def listing(items, limit: int = 10) -> str:
    """Format up to `limit` offending items (rows, files) for an error message, saying how many more there are."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", … and {len(items) - limit} more"
    return shown


def did_you_mean(name: str, choices) -> str:
    """A ' Did you mean …?' hint for a misspelt option or name (the names as marked literals), or ''."""
    import difflib

    unique = list(dict.fromkeys(str(c) for c in choices))   # a name offered by two libraries is suggested once
    close = difflib.get_close_matches(str(name), unique, n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(literal(c) for c in close)}?" if close else ""


def check_number(name: str, value, low, high=None, integer: bool = False) -> float:
    """`value` as a float within [low, high], or an ImagesAsDataError naming the option."""
    if isinstance(value, bool):
        raise ImagesAsDataError(f"{setting(name, value)} is not a number", what="option", option=name, value=value,
                                expected="a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImagesAsDataError(f"{setting(name, value)} is not a number", what="option", option=name,
                                value=value, expected="a number") from None
    if integer and not number.is_integer():
        raise option_error(name, value, "a whole number")
    if not (number >= low) or (high is not None and number > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise option_error(name, value, span)
    return number
