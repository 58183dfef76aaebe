"""Can this text be stored? Neither database takes every Python string: PostgreSQL refuses NUL
in text, and no UTF-8 database takes a lone surrogate ("\\ud800", which JSON can spell but no
encoding can hold). Bodies are checked here before anything reads them, so such text is a 400
and never a 500 halfway through a transaction.

Nesting is bounded too: ``json.loads`` recurses once per level, so a body of 100,000 ``[`` would
end in a RecursionError; ``json_depth`` counts the levels before the parser sees them.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "json_depth", "storable_text", "unstorable"]

#: Deepest nesting of arrays and objects a JSON body may have (a SCIM PATCH needs 4 or 5).
MAX_JSON_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: A JSON string, possibly unterminated (so a scan never restarts inside one: linear time).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
#: Each bracket as a signed byte: +1 opens a level, -1 closes one.
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text``, brackets inside strings not counted.

    Runs on the text before ``json.loads`` does, so it works on anything, valid JSON or not.
    """
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = array("b", brackets.encode("ascii").translate(_STEP))
    return max(accumulate(steps), default=0)


def unstorable(value: Any, path: str = "") -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, naming the first key path that holds
    a NUL or a lone surrogate; None if every key and string in it can be stored.

    ``value`` comes from a body whose depth ``json_depth`` bounded, so recursion is shallow.
    """
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return None if found is None else _problem(f"'{path}'" if path else "a value", found)
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            found = _UNSTORABLE.search(key) if isinstance(key, str) else None
            if found is not None:
                return _problem(f"the key '{storable_text(inner)}'", found)
            problem = unstorable(item, inner)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = unstorable(item, f"{path}[{index}]")
            if problem is not None:
                return problem
    return None


def _problem(where: str, found: re.Match[str]) -> str:
    character = found.group()
    what = "a NUL character" if character == "\x00" else "a lone surrogate"
    return f"{where} holds {what} U+{ord(character):04X}, which cannot be stored"


def storable_text(text: str) -> str:
    """``text`` with what cannot be stored written as escapes (``\\ud800``, ``\\x00``): for
    logs and messages that must keep what arrived without failing to store it."""
    if _UNSTORABLE.search(text) is None:
        return text
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped.replace("\x00", "\\x00")
