"""User lifecycle. Deactivation and deletion revoke sessions through the choke point."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from sqlalchemy import Table, exists, insert, select, update
from sqlalchemy.orm import Session, selectinload

from ..db import new_id, utcnow
from ..errors import Conflict, NotFound
from ..models import Group, Membership, User, UserValue
from ..revocation.choke import (
    USER_DEACTIVATED,
    USER_DELETED,
    USER_REACTIVATED,
    Cause,
    record_events,
    revoke_user_sessions,
)
from ..scim.documents import normalize
from ..scim.patch import apply_operations, parse_patch_request
from ..scim.resources import apply_user_document, user_to_canonical
from ..scim.schema import USER_TYPE
from . import Actor
from .common import check_if_match, flush_unique, require, row_values, touch, unique_violations


def get_user(session: Session, tenant_id: int, user_id: str, *, for_update: bool = False) -> User:
    statement = (
        select(User)
        .where(User.id == user_id, User.tenant_id == tenant_id)
        .options(selectinload(User.values))
    )
    if for_update:
        statement = statement.with_for_update()
    user = session.scalar(statement)
    if user is None:
        raise NotFound(f"no user with id '{user_id}'")
    return user


def groups_of(session: Session, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(group id, displayName) of each user's groups, in one query."""
    result: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if not user_ids:
        return result
    rows = session.execute(
        select(Membership.user_id, Group.id, Group.display_name)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.user_id.in_(user_ids))
        .order_by(Group.display_name_key, Group.id)
    )
    for user_id, group_id, display_name in rows:
        result[user_id].append((group_id, display_name))
    return result


_USERS = cast(Table, User.__table__)
_USER_VALUES = cast(Table, UserValue.__table__)


def create_user(session: Session, actor: Actor, body: Any) -> User:
    document = normalize(body, USER_TYPE)
    require(document, "userName", "User")
    now = utcnow()
    user = User(
        id=new_id(),
        tenant_id=actor.tenant_id,
        active=True,
        created_at=now,
        last_modified=now,
        version=1,
    )
    apply_user_document(user, document)
    # Creation is the hot path of every IdP sync: plain INSERTs instead of the unit of work,
    # and no pre-check, since the unique constraints decide. The returned user is transient.
    connection = session.connection()
    with unique_violations(_clashes(user)):
        connection.execute(insert(_USERS), [row_values(user)])
        if user.values:
            connection.execute(
                insert(_USER_VALUES),
                [{**row_values(value), "user_id": user.id} for value in user.values],
            )
    return user


def replace_user(
    session: Session, actor: Actor, user_id: str, body: Any, if_match: str | None
) -> User:
    """PUT (RFC 7644 §3.5.1): the body replaces every writable attribute."""
    user = get_user(session, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    document = normalize(body, USER_TYPE)
    require(document, "userName", "User")
    _write(session, actor, user, document)
    return user


def patch_user(
    session: Session, actor: Actor, user_id: str, body: Any, if_match: str | None
) -> User:
    """PATCH (RFC 7644 §3.5.2): every operation applies, in order, or none does."""
    operations = parse_patch_request(body, USER_TYPE)
    user = get_user(session, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    before = user_to_canonical(user)
    after = apply_operations(before, operations, USER_TYPE)
    if after == before:
        return user
    require(after, "userName", "User")
    _write(session, actor, user, after, keep_active=False)
    return user


def delete_user(session: Session, actor: Actor, user_id: str, if_match: str | None) -> None:
    """Hard delete (Entra sends DELETE only when it means it); sessions end first."""
    user = get_user(session, actor.tenant_id, user_id, for_update=True)
    check_if_match(user, if_match)
    revoke_user_sessions(
        session,
        tenant_id=actor.tenant_id,
        user_ids=[user.id],
        cause=Cause(USER_DELETED, actor.name, detail=f"user '{user.user_name}' deleted"),
    )
    session.execute(
        update(Group)
        .where(exists().where(Membership.group_id == Group.id, Membership.user_id == user.id))
        .values(version=Group.version + 1, last_modified=utcnow())
    )
    session.execute(
        update(User)
        .where(User.tenant_id == actor.tenant_id, User.manager_id == user.id)
        .values(manager_id=None, version=User.version + 1, last_modified=utcnow())
    )
    session.delete(user)
    session.flush()


def _write(
    session: Session,
    actor: Actor,
    user: User,
    document: dict[str, Any],
    *,
    keep_active: bool = True,
) -> None:
    was_active = user.is_active
    apply_user_document(user, document, keep_active=keep_active)
    _check_unique(session, user)
    touch(user)
    flush_unique(session, _clashes(user))
    if was_active and not user.is_active:
        revoke_user_sessions(
            session,
            tenant_id=actor.tenant_id,
            user_ids=[user.id],
            cause=Cause(
                USER_DEACTIVATED, actor.name, detail=f"user '{user.user_name}' deactivated"
            ),
        )
    elif user.is_active and not was_active:
        # Reactivation restores access for new sessions only; revoked ones stay revoked.
        record_events(
            session,
            tenant_id=actor.tenant_id,
            cause=Cause(
                USER_REACTIVATED, actor.name, detail=f"user '{user.user_name}' reactivated"
            ),
            user_sessions=[(user.id, [])],
        )


def _clashes(user: User) -> dict[str, str]:
    return {
        "user_name": f"a user with userName '{user.user_name}' already exists in this tenant",
        "external_id": f"a user with externalId '{user.external_id}' already exists in this tenant",
    }


def _check_unique(session: Session, user: User) -> None:
    """Friendly 409s for the common case; the unique constraints catch concurrent creates."""
    others = [User.tenant_id == user.tenant_id]
    if user.id is not None:
        others.append(User.id != user.id)
    with session.no_autoflush:
        if session.scalar(select(User.id).where(*others, User.user_name_key == user.user_name_key)):
            raise Conflict(f"a user with userName '{user.user_name}' already exists in this tenant")
        if user.external_id is not None and session.scalar(
            select(User.id).where(*others, User.external_id == user.external_id)
        ):
            raise Conflict(
                f"a user with externalId '{user.external_id}' already exists in this tenant"
            )
