"""Helpers shared by the resource services: versions, preconditions, uniqueness errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import Conflict, InvalidValue, PreconditionFailed
from ..models import Group, User
from ..scim.resources import etag


def check_if_match(row: User | Group, if_match: str | None) -> None:
    """RFC 7644 §3.14: a stale ``If-Match`` is 412 and changes nothing."""
    if not if_match:
        return
    candidates = {tag.strip() for tag in if_match.split(",")}
    current = etag(row.version)
    if "*" in candidates or current in candidates or current.removeprefix("W/") in candidates:
        return
    raise PreconditionFailed(f"the resource has changed: current version is {current}")


def touch(row: User | Group) -> None:
    row.version = (row.version or 0) + 1
    row.last_modified = utcnow()


def require(document: dict[str, Any], attribute: str, resource: str) -> str:
    value = document.get(attribute)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"'{attribute}' is required for a {resource}")
    return value


def flush_unique(session: Session, what: str) -> None:
    """Flush, turning a uniqueness violation (a concurrent create) into 409 ``uniqueness``."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists in this tenant") from None
