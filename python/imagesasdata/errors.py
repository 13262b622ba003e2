"""Errors written for people: what went wrong, which file, row or option, and what to do about it."""

from __future__ import annotations


class ImagesAsDataError(ValueError):
    """A problem with the user's input or options; the message says how to fix it.

    Besides the message, the parts an interface needs to say it in its own words travel as fields (all optional):
    what (the kind of problem: "option" for a bad value of an option, "unknown_option", "column" for a column that
    is not there, "missing_extra", "image", ...), option (the option's or column's name), value (what was given),
    expected (what an option's value must be, as in "must be {expected}": "above 0", "a whole number"), choices
    (what is allowed), path (a file), row (1-based), hint (what to do, or a short aside such as "the book uses
    0.001"), extra (the engine extra that provides a missing package: "stats", "inside", "beyond", ...). The R
    bridge passes them to R, which builds its condition from them (rpkg/R/engine.R) rather than from the message's
    wording. option_error(), unknown_option() and column_error() build the common kinds with their fields.
    """

    FIELDS = ("what", "option", "value", "expected", "choices", "path", "row", "hint", "extra")

    def __init__(self, message: str = "", *, what=None, option=None, value=None, expected=None, choices=None,
                 path=None, row=None, hint=None, extra=None):
        super().__init__(message)
        self.what, self.option, self.value, self.expected, self.choices = what, option, value, expected, choices
        self.path, self.row, self.hint, self.extra = path, row, hint, extra

    def fields(self) -> dict:
        """Return the fields that are set, as plain values: choices as strings; value as itself when a str, int, float or
        bool (or a list of those), else as its repr; path as a string."""
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
            out[name] = value
        return out


def option_error(option: str, value, expected: str | None = None, *, choices=None, hint: str | None = None,
                 suggest: bool = True) -> ImagesAsDataError:
    """The error for a bad value of an option, with its fields (what="option").

    With `choices`: "option='x': choose one of a, b, c. Did you mean 'b'?" (the suggestion when `suggest` and one is
    close); else
    "option=value must be {expected} ({hint})". Returns the error (the caller raises it).
    """
    shown = f"{option}={value!r}"
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
    return ImagesAsDataError(f"unknown option {name!r}.{did_you_mean(name, known)} Options: {', '.join(known)}",
                             what="unknown_option", option=name, choices=known)


def column_error(role: str, name, columns, where: str) -> ImagesAsDataError:
    """The error for a column named by option `role` that `where` (e.g. "the tag table") lacks (what="column";
    option is the role, value the name, choices the columns there)."""
    columns = [str(c) for c in columns]
    return ImagesAsDataError(f"{role}={name!r}: no such column in {where} (columns: {', '.join(columns)})."
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
    """A ' Did you mean …?' hint for a misspelt option or name, or ''."""
    import difflib

    unique = list(dict.fromkeys(str(c) for c in choices))   # a name offered by two libraries is suggested once
    close = difflib.get_close_matches(str(name), unique, n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_number(name: str, value, low, high=None, integer: bool = False) -> float:
    """`value` as a float within [low, high], or an ImagesAsDataError naming the option."""
    if isinstance(value, bool):
        raise ImagesAsDataError(f"{name}={value!r} is not a number", what="option", option=name, value=value,
                                expected="a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImagesAsDataError(f"{name}={value!r} is not a number", what="option", option=name, value=value,
                                expected="a number") from None
    if integer and not number.is_integer():
        raise option_error(name, value, "a whole number")
    if not (number >= low) or (high is not None and number > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise option_error(name, value, span)
    return number
