"""Numeric request parameters, read the same way on every surface: an integer clamped to the
range the service supports, or a 400 that names the parameter."""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidValue

#: Larger than any page offset or count anyone needs, and within every database's integers.
LARGEST = 2**31 - 1

#: Decimal digits only: Python's int() would also take "1_000" and "٥", and refuse 5,000 digits.
_DIGITS = re.compile(r"([+-]?)0*([0-9]+)")
#: Digit runs longer than this are beyond any bound; they are not given to int().
_LONGEST_RUN = 18


def integer(name: str, raw: Any, default: int, low: int = 0, high: int = LARGEST) -> int:
    """``raw`` (a query-string value or a JSON number) as an int in [low, high]; out-of-range
    values are clamped, as RFC 7644 §3.4.2.4 does for ``startIndex`` and ``count``."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise _not_an_integer(name, raw)
    if isinstance(raw, str):
        value = decimal(raw)
        if value is None:
            raise _not_an_integer(name, raw)
    elif isinstance(raw, int | float):
        value = int(raw)
    else:
        raise _not_an_integer(name, raw)
    return min(max(value, low), high)


def decimal(text: str) -> int | None:
    """``text`` as an int when it is ASCII decimal digits (a sign, spaces around), else None.
    A run too long to matter is read as ±10**19, beyond every bound, without int()."""
    digits = _DIGITS.fullmatch(text.strip())
    if digits is None:
        return None
    sign, run = digits.groups()
    if len(run) > _LONGEST_RUN:
        run = "1" + "0" * (_LONGEST_RUN + 1)
    return int(sign + run)


def _not_an_integer(name: str, raw: Any) -> InvalidValue:
    shown = raw if len(str(raw)) <= 40 else f"{str(raw)[:40]}..."
    return InvalidValue(f"'{name}' must be an integer, got {shown!r}")
