"""What every blueprint reads from the request and the app: the extension object, settings,
the parsed JSON body, URL text checked to be storable and the externally visible base URL."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote_to_bytes

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


def reject_unstorable_url() -> None:
    """Refuse a path or query that is not UTF-8 as sent, or that holds NUL, before anything
    reads them: werkzeug would decode bad bytes to U+FFFD, a value the client never sent, and
    no database stores NUL. WSGI hands both over as latin-1-decoded bytes (PEP 3333)."""
    environ = request.environ
    try:
        path = environ.get("PATH_INFO", "").encode("latin-1")
        query = environ.get("QUERY_STRING", "").encode("latin-1")
    except UnicodeEncodeError:  # not bytes at all: a transport that decoded them already
        raise InvalidSyntax("the URL is not valid UTF-8") from None
    _checked_text(path, "the URL")
    url_encoded_text(query, "the URL")


def url_encoded_text(encoded: bytes, where: str) -> str:
    """Percent-encoded form or query bytes ("+" is a space) as the text they stand for, which
    must be strict UTF-8 (no overlong forms, no surrogates) without NUL; ``where`` names the
    part of the request in the error."""
    return _checked_text(unquote_to_bytes(encoded.replace(b"+", b" ")), where)


def _checked_text(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSyntax(f"{where} is not valid UTF-8") from None
    if "\x00" in text:
        raise InvalidSyntax(f"{where} contains a NUL character, which no value may hold")
    return text


def base_url() -> str:
    public = settings().public_url
    return (public or request.host_url).rstrip("/")
