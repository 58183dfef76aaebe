"""Helpers shared by the resource services: versions, preconditions, uniqueness, user ids."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import utcnow
from ..errors import Conflict, InvalidValue, PreconditionFailed
from ..models import Group, User
from ..scim.formats import etag, etag_matches

CHUNK = 500


def check_if_match(row: User | Group, if_match: str | None) -> None:
    """RFC 7644 §3.14: a stale ``If-Match`` is 412 and changes nothing."""
    if if_match and not etag_matches(if_match, row.version):
        current = etag(row.version)
        raise PreconditionFailed(f"the resource has changed: current version is {current}")


def touch(row: User | Group) -> None:
    row.version = (row.version or 0) + 1
    row.last_modified = utcnow()


# Membership changes run these on every call: built once, run on the connection (the ORM's
# UPDATE path re-evaluates the WHERE against every loaded object first).
_USERS = cast(Table, User.__table__)
_TOUCH_USERS = (
    update(_USERS)
    .where(_USERS.c.id.in_(bindparam("ids", expanding=True)))
    .values(version=_USERS.c.version + 1, last_modified=bindparam("now"))
)
_TENANT_USER_IDS = select(_USERS.c.id).where(
    _USERS.c.tenant_id == bindparam("tenant_id"), _USERS.c.id.in_(bindparam("ids", expanding=True))
)


def connection(db: Session) -> Connection:
    """The session's connection for a prebuilt Core statement, after flushing pending ORM
    changes first, as ``db.execute`` would (a no-op when nothing is pending)."""
    db.flush()
    return db.connection()


_GROUPS = cast(Table, Group.__table__)
_TOUCH_GROUP = (
    update(_GROUPS)
    .where(_GROUPS.c.id == bindparam("group_id"))
    .values(version=_GROUPS.c.version + 1, last_modified=bindparam("now"))
    .returning(_GROUPS.c.version, _GROUPS.c.last_modified)
)


def touch_members_only(db: Session, group: Group) -> None:
    """``touch(group)`` for a change to its members alone: one prebuilt UPDATE instead of the
    unit of work's flush, with the new version set on the loaded group as committed."""
    version, last_modified = connection(db).execute(
        _TOUCH_GROUP, {"group_id": group.id, "now": utcnow()}
    ).one()
    set_committed_value(group, "version", version)
    set_committed_value(group, "last_modified", last_modified)


def touch_users(db: Session, user_ids: Sequence[str]) -> None:
    """New versions for users whose ``groups`` changed (``groups`` is part of the User)."""
    if not user_ids:
        return
    now, core = utcnow(), connection(db)
    for start in range(0, len(user_ids), CHUNK):
        core.execute(_TOUCH_USERS, {"ids": list(user_ids[start : start + CHUNK]), "now": now})
    expire_loaded(db, User, user_ids, ["version", "last_modified"])


def expire_loaded(db: Session, model: type[Any], ids: Sequence[Any], attributes: list[str]) -> None:
    """After a Core UPDATE: ``attributes`` of the rows among ``ids`` that this session has
    loaded are read again on next access, so nothing renders a stale version."""
    loaded = [obj for obj in db.identity_map.values() if isinstance(obj, model)]
    if loaded:
        wanted = set(ids)
        for obj in loaded:
            if obj.id in wanted:
                db.expire(obj, attributes)


def require(document: dict[str, Any], attribute: str, resource: str) -> str:
    value = document.get(attribute)
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"'{attribute}' is required for a {resource}")
    return value


@contextmanager
def unique_violations(clashes: dict[str, str]) -> Iterator[None]:
    """Turn a unique-constraint violation inside the block into 409 ``uniqueness``.

    ``clashes`` maps a column name to the message for a clash on it; both SQLite and
    PostgreSQL name the violated column or constraint in the error. The constraints decide,
    so concurrent creates of one name get one 201 and one 409.
    """
    try:
        yield
    except IntegrityError as error:
        text = str(error.orig)
        for column, message in clashes.items():
            if column in text:
                raise Conflict(message) from None
        raise Conflict("the resource clashes with one that already exists") from None


def flush_unique(db: Session, clashes: dict[str, str]) -> None:
    with unique_violations(clashes):
        db.flush()


def missing_users(db: Session, tenant_id: int, ids: Sequence[str]) -> list[str]:
    """The ids among ``ids`` that are no user of the tenant, in the order given."""
    found: set[str] = set()
    core = connection(db)
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        found.update(core.scalars(_TENANT_USER_IDS, {"tenant_id": tenant_id, "ids": chunk}))
    return [user_id for user_id in ids if user_id not in found]


def shown(ids: Sequence[str]) -> str:
    """A few ids for an error message."""
    return ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
