"""What every blueprint reads from the request and the app: the extension object, settings,
the parsed JSON body, URL text checked to be storable and the externally visible base URL."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None
    if not allow_nul and _has_nul(body):
        raise InvalidSyntax("the request body contains a NUL character, which no value may hold")
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


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
