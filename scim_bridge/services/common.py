"""Helpers shared by the resource services: versions, preconditions, uniqueness errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def unique_violations(clashes: dict[str, str]) -> Iterator[None]:
    """Turn a unique-constraint violation inside the block into 409 ``uniqueness``.

    ``clashes`` maps a column name to the message for a clash on it; both SQLite and
    PostgreSQL name the violated column or constraint in the error.
    """
    try:
        yield
    except IntegrityError as error:
        text = str(error.orig)
        for column, message in clashes.items():
            if column in text:
                raise Conflict(message) from None
        raise Conflict("the resource clashes with one that already exists") from None


def flush_unique(session: Session, clashes: dict[str, str]) -> None:
    with unique_violations(clashes):
        session.flush()


def row_values(row: Any) -> dict[str, Any]:
    """Every column value of a mapped object, for a Core INSERT of it (an unset
    autoincrement key is left to the database)."""
    return {
        column.key: getattr(row, column.key)
        for column in row.__table__.columns
        if not (column.primary_key and getattr(row, column.key) is None)
    }
