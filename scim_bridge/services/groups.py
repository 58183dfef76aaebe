"""Group lifecycle. Membership changes are SQL deltas: changing k members costs O(k) whatever
the group's size, and every removed member's sessions end through the choke point."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidValue, NotFound
from ..models import Group, Membership, User
from ..revocation.choke import (
    GROUP_DELETED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    Cause,
    revoke_user_sessions,
)
from ..scim.documents import normalize
from ..scim.patch import (
    MemberChange,
    apply_operations,
    parse_patch_request,
    split_group_operations,
)
from ..scim.resources import fold
from ..scim.schema import GROUP_TYPE
from . import Actor
from .common import check_if_match, flush_unique, require, touch

_CHUNK = 500


def get_group(
    session: Session, tenant_id: int, group_id: str, *, for_update: bool = False
) -> Group:
    statement = select(Group).where(Group.id == group_id, Group.tenant_id == tenant_id)
    if for_update:
        statement = statement.with_for_update()
    group = session.scalar(statement)
    if group is None:
        raise NotFound(f"no group with id '{group_id}'")
    return group


def members_of(session: Session, group_ids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """(user id, display as the IdP sent it) of each group's members, in one query."""
    result: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    if not group_ids:
        return result
    rows = session.execute(
        select(Membership.group_id, Membership.user_id, Membership.display)
        .where(Membership.group_id.in_(group_ids))
        .order_by(Membership.group_id, Membership.user_id)
    )
    for group_id, user_id, display in rows:
        result[group_id].append((user_id, display))
    return result


def create_group(session: Session, actor: Actor, body: Any) -> Group:
    document = normalize(body, GROUP_TYPE)
    group = Group(tenant_id=actor.tenant_id)
    _apply(group, document)
    _check_unique(session, group)
    session.add(group)
    flush_unique(session, _clashes(group))
    ids, displays = _members(document)
    _add_members(session, actor, group, ids, displays)
    return group


def replace_group(
    session: Session, actor: Actor, group_id: str, body: Any, if_match: str | None
) -> Group:
    """PUT: name and the full member list; members left out lose their sessions."""
    group = get_group(session, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    document = normalize(body, GROUP_TYPE)
    _apply(group, document)
    _check_unique(session, group)
    _replace_members(session, actor, group, *_members(document))
    touch(group)
    flush_unique(session, _clashes(group))
    return group


def patch_group(
    session: Session, actor: Actor, group_id: str, body: Any, if_match: str | None
) -> Group:
    operations = parse_patch_request(body, GROUP_TYPE)
    group = get_group(session, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    before = _canonical(group)
    document = before
    changed = False
    for step in split_group_operations(operations):
        if isinstance(step, MemberChange):
            changed |= _apply_member_change(session, actor, group, step)
        else:
            document = apply_operations(document, [step], GROUP_TYPE)
    if document != before:
        _apply(group, document)
        _check_unique(session, group)
        changed = True
    if changed:
        touch(group)
        flush_unique(session, _clashes(group))
    return group


def delete_group(session: Session, actor: Actor, group_id: str, if_match: str | None) -> None:
    group = get_group(session, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    removed = list(
        session.scalars(
            delete(Membership).where(Membership.group_id == group.id).returning(Membership.user_id)
        )
    )
    _revoke(session, actor, group, removed, GROUP_DELETED, "deleted")
    session.delete(group)
    session.flush()


def _canonical(group: Group) -> dict[str, Any]:
    document: dict[str, Any] = {"displayName": group.display_name}
    if group.external_id is not None:
        document["externalId"] = group.external_id
    return document


def _apply(group: Group, document: dict[str, Any]) -> None:
    group.display_name = require(document, "displayName", "Group")
    group.display_name_key = fold(group.display_name)
    group.external_id = document.get("externalId")


def _members(document: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Member ids of a Group body, and the ``display`` the IdP gave each (if any)."""
    ids = []
    displays = {}
    for member in document.get("members") or []:
        if "value" not in member:
            raise InvalidValue("every member needs a 'value' (the user's id)")
        ids.append(member["value"])
        if member.get("display"):
            displays[member["value"]] = member["display"]
    return list(dict.fromkeys(ids)), displays


def _apply_member_change(
    session: Session, actor: Actor, group: Group, change: MemberChange
) -> bool:
    ids = list(dict.fromkeys(change.user_ids))
    displays = dict(change.displays)
    if change.kind == "add":
        return bool(_add_members(session, actor, group, ids, displays))
    if change.kind == "remove":
        return bool(_remove_members(session, actor, group, ids))
    if change.kind == "remove_all":
        removed = list(
            session.scalars(
                delete(Membership)
                .where(Membership.group_id == group.id)
                .returning(Membership.user_id)
            )
        )
        _revoke(session, actor, group, removed, MEMBER_REMOVED, "removed from")
        return bool(removed)
    if change.kind == "replace":
        return _replace_members(session, actor, group, ids, displays)
    raise InvalidValue(f"unknown member change '{change.kind}'")


def _add_members(
    session: Session,
    actor: Actor,
    group: Group,
    ids: Sequence[str],
    displays: dict[str, str] | None = None,
) -> list[str]:
    """Insert memberships that do not exist yet; returns the users actually added."""
    if not ids:
        return []
    _require_users(session, group.tenant_id, ids)
    added: list[str] = []
    for start in range(0, len(ids), _CHUNK):
        rows = [
            {"group_id": group.id, "user_id": uid, "display": (displays or {}).get(uid)}
            for uid in ids[start : start + _CHUNK]
        ]
        statement = _insert_ignore(session).values(rows).returning(Membership.user_id)
        added.extend(session.scalars(statement))
    if added and actor.revoke_on_group_add:
        _revoke(session, actor, group, added, MEMBER_ADDED, "added to")
    return added


def _remove_members(session: Session, actor: Actor, group: Group, ids: Sequence[str]) -> list[str]:
    removed: list[str] = []
    for start in range(0, len(ids), _CHUNK):
        removed.extend(
            session.scalars(
                delete(Membership)
                .where(
                    Membership.group_id == group.id,
                    Membership.user_id.in_(ids[start : start + _CHUNK]),
                )
                .returning(Membership.user_id)
            )
        )
    _revoke(session, actor, group, removed, MEMBER_REMOVED, "removed from")
    return removed


def _replace_members(
    session: Session,
    actor: Actor,
    group: Group,
    ids: Sequence[str],
    displays: dict[str, str] | None = None,
) -> bool:
    """A full member list: O(group size) by nature; only the difference is written."""
    wanted = set(ids)
    current = set(
        session.scalars(select(Membership.user_id).where(Membership.group_id == group.id))
    )
    removed = _remove_members(session, actor, group, sorted(current - wanted))
    added = _add_members(
        session, actor, group, [uid for uid in ids if uid not in current], displays
    )
    return bool(removed or added)


def _require_users(session: Session, tenant_id: int, ids: Sequence[str]) -> None:
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(
            session.scalars(select(User.id).where(User.tenant_id == tenant_id, User.id.in_(chunk)))
        )
    missing = [uid for uid in ids if uid not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidValue(f"no user with id {shown} in this tenant; members must be users")


def _insert_ignore(session: Session) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the dialect at hand."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Membership).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(Membership).on_conflict_do_nothing()


def _revoke(
    session: Session,
    actor: Actor,
    group: Group,
    user_ids: Iterable[str],
    event_type: str,
    verb: str,
) -> None:
    ids = list(user_ids)
    if not ids:
        return
    revoke_user_sessions(
        session,
        tenant_id=actor.tenant_id,
        user_ids=ids,
        cause=Cause(
            event_type,
            actor.name,
            group_id=group.id,
            group_name=group.display_name,
            detail=f"{verb} group '{group.display_name}'",
        ),
    )


def _clashes(group: Group) -> dict[str, str]:
    return {
        "display_name": f"a group with displayName '{group.display_name}' already exists",
        "external_id": f"a group with externalId '{group.external_id}' already exists",
    }


def _check_unique(session: Session, group: Group) -> None:
    others = [Group.tenant_id == group.tenant_id]
    if group.id is not None:
        others.append(Group.id != group.id)
    with session.no_autoflush:
        if session.scalar(
            select(Group.id).where(*others, Group.display_name_key == group.display_name_key)
        ):
            raise Conflict(
                f"a group with displayName '{group.display_name}' already exists in this tenant"
            )
        if group.external_id is not None and session.scalar(
            select(Group.id).where(*others, Group.external_id == group.external_id)
        ):
            raise Conflict(
                f"a group with externalId '{group.external_id}' already exists in this tenant"
            )
