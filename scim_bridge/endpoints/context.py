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
from ..storable import MAX_JSON_DEPTH, json_depth, unstorable


def bridge() -> Bridge:
    return current_app.extensions["scim_bridge"]


def settings() -> Settings:
    return bridge().settings


def json_body(*, allow_unstorable: bool = False) -> Any:
    """The parsed body, nested at most ``MAX_JSON_DEPTH`` deep and holding only text a database
    can store; with ``allow_unstorable`` the caller checks the text itself (Bulk, per operation).
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidSyntax("the request body is empty; send a JSON object")
    try:
        # What json.loads does with bytes, done here so the depth is known before it parses.
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise InvalidSyntax(
            f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        body = json.loads(text, parse_constant=_non_finite, parse_float=_finite_float)
    except ValueError as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None
    problem = None if allow_unstorable else unstorable(body)
    if problem is not None:
        raise InvalidSyntax(f"in the request body, {problem}")
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


def reject_nul_in_url() -> None:
    """No database stores NUL: refuse it in the path or query before anything reads them."""
    if "\x00" in request.path or "\x00" in request.query_string.decode("latin-1"):
        raise InvalidSyntax("the URL contains a NUL character")
    if any("\x00" in key + value for key, value in request.args.items(multi=True)):
        raise InvalidSyntax("the URL contains a NUL character")


def base_url() -> str:
    public = settings().public_url
    return (public or request.host_url).rstrip("/")
