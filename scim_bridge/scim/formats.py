"""How SCIM writes a version (a weak ETag, RFC 7644 §3.14), a time (RFC 7643 §2.3.5) and the
case-insensitive key of a caseExact=false string."""

from __future__ import annotations

import datetime as dt

from werkzeug.http import parse_etags


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def etag(version: int) -> str:
    return f'W/"{version}"'


def etag_matches(header: str | None, version: int) -> bool:
    """Whether an If-Match or If-None-Match value names ``version``: strong or weak (``W/``)
    tags, lists and ``*``, compared weakly as SCIM's weak ETags require (RFC 7232 §2.3.2)."""
    return parse_etags(header).contains_weak(str(version))


def fold(text: str | None) -> str:
    """Case folding for caseExact=false keys; Python-side so every backend agrees."""
    return (text or "").lower()
