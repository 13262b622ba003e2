"""Errors written for people: what went wrong, which file, row or option, and what to do about it."""

from __future__ import annotations


class ImagesAsDataError(ValueError):
    """A problem with the user's input or options; the message says how to fix it.

    Besides the message, the parts an interface needs to say it in its own words travel as fields (all optional):
    what (the kind of problem: "option", "missing_extra", "file", ...), option (the option's name), value (what was
    given), choices (what is allowed), path (a file), row (1-based), hint (what to do), extra (the engine extra that
    provides a missing package: "stats", "inside", "beyond", ...). The R bridge passes them to R, which builds its
    condition from them (rpkg/R/engine.R) rather than from the message's wording.
    """

    FIELDS = ("what", "option", "value", "choices", "path", "row", "hint", "extra")

    def __init__(self, message: str = "", *, what=None, option=None, value=None, choices=None, path=None, row=None,
                 hint=None, extra=None):
        super().__init__(message)
        self.what, self.option, self.value, self.choices = what, option, value, choices
        self.path, self.row, self.hint, self.extra = path, row, hint, extra

    def fields(self) -> dict:
        """The fields that are set, as plain values (value as its repr when not a str, int, float or bool)."""
        out = {}
        for name in self.FIELDS:
            value = getattr(self, name, None)
            if value is None:
                continue
            if name == "choices":
                value = [str(c) for c in value]
            elif name == "value" and not isinstance(value, (str, int, float, bool)):
                value = repr(value)
            elif name == "path":
                value = str(value)
            out[name] = value
        return out


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
        raise ImagesAsDataError(f"{name}={value!r} is not a number", what="option", option=name, value=value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImagesAsDataError(f"{name}={value!r} is not a number", what="option", option=name, value=value) from None
    if integer and not number.is_integer():
        raise ImagesAsDataError(f"{name}={value!r} must be a whole number", what="option", option=name, value=value)
    if not (number >= low) or (high is not None and number > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ImagesAsDataError(f"{name}={value!r} must be {span}", what="option", option=name, value=value)
    return number
