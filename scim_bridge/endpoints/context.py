"""What every blueprint reads from the request and the app: the extension object, settings,
the parsed JSON body and the externally visible base URL."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import current_app, request

from ..errors import InvalidSyntax
from ..extension import Bridge
from ..settings import Settings


def bridge() -> Bridge:
    return current_app.extensions["scim_bridge"]


def settings() -> Settings:
    return bridge().settings


def json_body(*, allow_nul: bool = False) -> Any:
    """The parsed body; with ``allow_nul`` the caller rejects NUL itself (Bulk, per operation)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidSyntax("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_non_finite, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None
    if not allow_nul and _has_nul(body):
        raise InvalidSyntax("the request body contains a NUL character, which no value may hold")
    return body


def _non_finite(literal: str) -> float:
    """NaN and Infinity are not JSON (RFC 8259 §6); Python's parser would take them."""
    raise ValueError(f"{literal} is not a JSON number")


def _finite_float(literal: str) -> float:
    """A number too large for a float (1e400) would become inf: refused like Infinity."""
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"the number {literal[:40]} is too large")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def reject_nul_in_url() -> None:
    """No database stores NUL: refuse it in the path or query before anything reads them."""
    if "\x00" in request.path or "\x00" in request.query_string.decode("latin-1"):
        raise InvalidSyntax("the URL contains a NUL character")
    if any("\x00" in key + value for key, value in request.args.items(multi=True)):
        raise InvalidSyntax("the URL contains a NUL character")


def base_url() -> str:
    public = settings().public_url
    return (public or request.host_url).rstrip("/")
