"""Numeric request parameters, read the same way on every surface: an integer clamped to the
range the service supports, or a 400 that names the parameter."""

from __future__ import annotations

from typing import Any

from .errors import InvalidValue

#: Larger than any page offset or count anyone needs, and within every database's integers.
LARGEST = 2**31 - 1


def integer(name: str, raw: Any, default: int, low: int = 0, high: int = LARGEST) -> int:
    """``raw`` (a query-string value or a JSON number) as an int in [low, high]; out-of-range
    values are clamped, as RFC 7644 §3.4.2.4 does for ``startIndex`` and ``count``."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise InvalidValue(f"'{name}' must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        shown = raw if len(str(raw)) <= 40 else f"{str(raw)[:40]}..."
        raise InvalidValue(f"'{name}' must be an integer, got {shown!r}") from None
    return min(max(value, low), high)
