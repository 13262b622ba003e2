"""Errors written for people: what went wrong, which file, row or option, and what to do about it."""

from __future__ import annotations


class ImagesAsDataError(ValueError):
    """A problem with the user's input or options; the message says how to fix it."""


class BadImageError(ImagesAsDataError):
    """One image that cannot be used. Long runs record it and carry on; only a direct call raises it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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
        raise ImagesAsDataError(f"{name}={value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImagesAsDataError(f"{name}={value!r} is not a number") from None
    if integer and not number.is_integer():
        raise ImagesAsDataError(f"{name}={value!r} must be a whole number")
    if not (number >= low) or (high is not None and number > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ImagesAsDataError(f"{name}={value!r} must be {span}")
    return number
