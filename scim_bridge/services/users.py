"""User lifecycle. Deactivation and deletion revoke sessions through the choke point; every
change is recorded through the event seam."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session, selectinload

from ..db import new_id, utcnow
from ..errors import NotFound
from ..events.record import (
    USER_CREATED,
    USER_DEACTIVATED,
    USER_DELETED,
    USER_REACTIVATED,
    USER_UPDATED,
    Cause,
    record,
)
from ..models import Group, Membership, User, UserValue
from ..prepared import PreparedInsert
from ..revocation.choke import revoke_user_sessions
from ..scim.documents import normalize
from ..scim.patch import apply_operations, parse_patch_request
from ..scim.schema import USER_TYPE
from ..store.listing import Snapshot
from ..store.resources import apply_user_document, user_columns, user_to_canonical, value_rows
from . import Actor
from .common import (
    check_if_match,
    connection,
    flush_unique,
    require,
    touch,
    unique_violations,
)


def get_user(db: Session, tenant_id: int, user_id: str, *, for_update: bool = False) -> User:
    statement = (
        select(User)
        .where(User.id == user_id, User.tenant_id == tenant_id)
        .options(selectinload(User.values))
    )
    if for_update:
        statement = statement.with_for_update()
    user = db.scalar(statement)
    if user is None:
        raise NotFound(f"no user with id '{user_id}'")
    return user


# Rendering a user reads its groups: built once, run on the connection.
_GROUPS_OF = (
    select(Membership.user_id, Group.id, Group.display_name)
    .join(Group, Group.id == Membership.group_id)
    .where(Membership.user_id.in_(bindparam("user_ids", expanding=True)))
    .order_by(Group.display_name_key, Group.id)
)


def groups_of(db: Session, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(group id, displayName) of each user's groups, in one query."""
    result: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if not user_ids:
        return result
    rows = connection(db).execute(_GROUPS_OF, {"user_ids": user_ids})
    for user_id, group_id, display_name in rows:
        result[user_id].append((group_id, display_name))
    return result


_USERS = cast(Table, User.__table__)
_USER_VALUES = cast(Table, UserValue.__table__)
_INSERT_USER = PreparedInsert(insert(_USERS))
_INSERT_VALUES = PreparedInsert(insert(_USER_VALUES))


def create_user(db: Session, actor: Actor, body: Any) -> Snapshot:
    """POST (RFC 7644 §3.3). Creation is the hot path of every IdP sync: plain INSERTs of
    column dicts instead of the unit of work, and no pre-check, since the unique constraints
    decide. The result is a snapshot of what was written, for rendering."""
    document = normalize(body, USER_TYPE)
    require(document, "userName", "User")
    now = utcnow()
    row = {
        **user_columns(document),
        "id": new_id(),
        "tenant_id": actor.tenant_id,
        "created_at": now,
        "last_modified": now,
        "version": 1,
    }
    row.setdefault("active", True)
    values = value_rows(document, row["id"])
    core = connection(db)
    with unique_violations(_clashes(row["user_name"], row["external_id"])):
        _INSERT_USER.run(core, [row])
        _INSERT_VALUES.run(core, values)
    _record(db, actor, row["id"], row["user_name"], USER_CREATED, "created", occurred_at=now)
    return Snapshot(**row, values=[Snapshot(**value) for value in values])


def replace_user(db: Session, actor: Actor, user_id: str, body: Any, if_match: str | None) -> User:
    """PUT (RFC 7644 §3.5.1): the body replaces every writable attribute. The body is read
    before the user is locked, so a bad one never holds the lock."""
    document = normalize(body, USER_TYPE)
    require(document, "userName", "User")
    user = get_user(db, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    _write(db, actor, user, document)
    return user


def patch_user(db: Session, actor: Actor, user_id: str, body: Any, if_match: str | None) -> User:
    """PATCH (RFC 7644 §3.5.2): every operation applies, in order, or none does."""
    operations = parse_patch_request(body, USER_TYPE)
    user = get_user(db, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    before = user_to_canonical(user)
    after = apply_operations(before, operations, USER_TYPE)
    if after == before:
        return user
    require(after, "userName", "User")
    _write(db, actor, user, after, keep_active=False, before=before)
    return user


def delete_user(db: Session, actor: Actor, user_id: str, if_match: str | None) -> None:
    """Hard delete (Entra sends DELETE only when it means it); sessions end first."""
    user = get_user(db, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    revoke_user_sessions(
        db,
        tenant_id=actor.tenant_id,
        user_ids=[user.id],
        cause=Cause(USER_DELETED, actor.name, detail=f"user '{user.user_name}' deleted",
                    txn=actor.txn),
    )
    db.execute(
        update(Group)
        .where(exists().where(Membership.group_id == Group.id, Membership.user_id == user.id))
        .values(version=Group.version + 1, last_modified=utcnow())
    )
    db.execute(
        update(User)
        .where(User.tenant_id == actor.tenant_id, User.manager_id == user.id)
        .values(manager_id=None, version=User.version + 1, last_modified=utcnow())
    )
    db.delete(user)
    db.flush()


def _write(
    db: Session,
    actor: Actor,
    user: User,
    document: dict[str, Any],
    *,
    keep_active: bool = True,
    before: dict[str, Any] | None = None,
) -> None:
    was_active = user.is_active
    if before is None:
        before = user_to_canonical(user)
    apply_user_document(user, document, keep_active=keep_active)
    touch(user)
    flush_unique(db, _clashes(user.user_name, user.external_id))
    if _without_active(user_to_canonical(user)) != _without_active(before):
        _record(db, actor, user.id, user.user_name, USER_UPDATED, "updated")
    if was_active and not user.is_active:
        revoke_user_sessions(
            db,
            tenant_id=actor.tenant_id,
            user_ids=[user.id],
            cause=Cause(
                USER_DEACTIVATED, actor.name, detail=f"user '{user.user_name}' deactivated",
                txn=actor.txn,
            ),
        )
    elif user.is_active and not was_active:
        # Reactivation restores access for new sessions only; revoked ones stay revoked.
        _record(db, actor, user.id, user.user_name, USER_REACTIVATED, "reactivated")


def _without_active(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "active"}


def _record(
    db: Session, actor: Actor, user_id: str, user_name: str, kind: str, verb: str, **when: Any
) -> None:
    cause = Cause(kind, actor.name, detail=f"user '{user_name}' {verb}", txn=actor.txn)
    record(db, tenant_id=actor.tenant_id, cause=cause, user_sessions=[(user_id, [])], **when)


def _clashes(user_name: str, external_id: str | None) -> dict[str, str]:
    return {
        "user_name": f"a user with userName '{user_name}' already exists in this tenant",
        "external_id": f"a user with externalId '{external_id}' already exists in this tenant",
    }
