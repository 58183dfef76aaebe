"""Group lifecycle. Membership changes are SQL deltas: changing k members costs O(k) whatever
the group's size; every removed member's sessions end through the choke point, and every
membership change is recorded through the event seam and gives the user a new version."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..errors import InvalidValue, NotFound
from ..events.record import GROUP_DELETED, MEMBER_ADDED, MEMBER_REMOVED, Cause, record
from ..models import Group, Membership
from ..revocation.choke import revoke_user_sessions
from ..scim.documents import normalize
from ..scim.formats import fold
from ..scim.patch import (
    MemberChange,
    apply_operations,
    parse_patch_request,
    split_group_operations,
)
from ..scim.schema import GROUP_TYPE
from . import Actor
from .common import (
    CHUNK,
    check_if_match,
    connection,
    flush_unique,
    missing_users,
    require,
    shown,
    touch,
    touch_members_only,
    touch_users,
)

# The statements of the hot path (a PATCH that adds or removes a member), built once: building
# a statement costs more than running it on SQLite.
_GROUP = select(Group).where(Group.id == bindparam("group_id"),
                             Group.tenant_id == bindparam("tenant_id"))
_GROUP_FOR_UPDATE = _GROUP.with_for_update()
_MEMBERSHIPS = cast(Table, Membership.__table__)
_MEMBER_ID = _MEMBERSHIPS.c.user_id
_ADD_MEMBERS = {  # INSERT ... ON CONFLICT DO NOTHING RETURNING: the rows actually added
    "postgresql": postgresql.insert(_MEMBERSHIPS).on_conflict_do_nothing().returning(_MEMBER_ID),
    "sqlite": sqlite.insert(_MEMBERSHIPS).on_conflict_do_nothing().returning(_MEMBER_ID),
}
_REMOVE_MEMBERS = (
    delete(_MEMBERSHIPS)
    .where(_MEMBERSHIPS.c.group_id == bindparam("group_id"),
           _MEMBERSHIPS.c.user_id.in_(bindparam("ids", expanding=True)))
    .returning(_MEMBER_ID)
)
_MEMBERS_OF = (
    select(_MEMBERSHIPS.c.group_id, _MEMBER_ID, _MEMBERSHIPS.c.display)
    .where(_MEMBERSHIPS.c.group_id.in_(bindparam("group_ids", expanding=True)))
    .order_by(_MEMBERSHIPS.c.group_id, _MEMBER_ID)
)


def get_group(
    db: Session, tenant_id: int, group_id: str, *, for_update: bool = False
) -> Group:
    statement = _GROUP_FOR_UPDATE if for_update else _GROUP
    group = db.scalar(statement, {"group_id": group_id, "tenant_id": tenant_id})
    if group is None:
        raise NotFound(f"no group with id '{group_id}'")
    return group


def members_of(db: Session, group_ids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """(user id, display as the IdP sent it) of each group's members, in one query."""
    result: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    if not group_ids:
        return result
    rows = connection(db).execute(_MEMBERS_OF, {"group_ids": group_ids})
    for group_id, user_id, display in rows:
        result[group_id].append((user_id, display))
    return result


def create_group(db: Session, actor: Actor, body: Any) -> Group:
    document = normalize(body, GROUP_TYPE)
    group = Group(tenant_id=actor.tenant_id)
    _apply(group, document)
    db.add(group)
    flush_unique(db, _clashes(group))
    ids, displays = _members(document)
    _add_members(db, actor, group, ids, displays)
    return group


def replace_group(
    db: Session, actor: Actor, group_id: str, body: Any, if_match: str | None
) -> Group:
    """PUT: name and the full member list; members left out lose their sessions."""
    group = get_group(db, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    document = normalize(body, GROUP_TYPE)
    _apply(group, document)
    _replace_members(db, actor, group, *_members(document))
    touch(group)
    flush_unique(db, _clashes(group))
    return group


def patch_group(
    db: Session, actor: Actor, group_id: str, body: Any, if_match: str | None
) -> Group:
    operations = parse_patch_request(body, GROUP_TYPE)
    group = get_group(db, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    before = _canonical(group)
    document = before
    changed = False
    for step in split_group_operations(operations):
        if isinstance(step, MemberChange):
            changed |= _apply_member_change(db, actor, group, step)
        else:
            document = apply_operations(document, [step], GROUP_TYPE)
    if document != before:
        _apply(group, document)
        touch(group)
        flush_unique(db, _clashes(group))
    elif changed:  # members alone (the common PATCH): no name can clash
        touch_members_only(db, group)
    return group


def delete_group(db: Session, actor: Actor, group_id: str, if_match: str | None) -> None:
    group = get_group(db, actor.tenant_id, group_id, for_update=True)
    check_if_match(group, if_match)
    removed = list(
        db.scalars(
            delete(Membership).where(Membership.group_id == group.id).returning(Membership.user_id)
        )
    )
    if removed:
        _changed(db, actor, group, removed, GROUP_DELETED, "deleted", revoke=True)
    else:  # nobody's access changed, but receivers still learn that the group is gone
        record(db, tenant_id=actor.tenant_id, cause=_cause(actor, group, GROUP_DELETED, "deleted"),
               user_sessions=[(None, [])])
    db.delete(group)
    db.flush()


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
    db: Session, actor: Actor, group: Group, change: MemberChange
) -> bool:
    ids = list(dict.fromkeys(change.user_ids))
    displays = dict(change.displays)
    if change.kind == "add":
        return bool(_add_members(db, actor, group, ids, displays))
    if change.kind == "remove":
        return bool(_remove_members(db, actor, group, ids))
    if change.kind == "remove_all":
        removed = list(
            db.scalars(
                delete(Membership)
                .where(Membership.group_id == group.id)
                .returning(Membership.user_id)
            )
        )
        _changed(db, actor, group, removed, MEMBER_REMOVED, "removed from", revoke=True)
        return bool(removed)
    if change.kind == "replace":
        return _replace_members(db, actor, group, ids, displays)
    raise InvalidValue(f"unknown member change '{change.kind}'")


def _add_members(
    db: Session,
    actor: Actor,
    group: Group,
    ids: Sequence[str],
    displays: dict[str, str] | None = None,
) -> list[str]:
    """Insert memberships that do not exist yet; returns the users actually added."""
    if not ids:
        return []
    _require_users(db, group.tenant_id, ids)
    core = connection(db)
    statement = _ADD_MEMBERS[core.dialect.name]
    added: list[str] = []
    for start in range(0, len(ids), CHUNK):
        rows = [
            {"group_id": group.id, "user_id": uid, "display": (displays or {}).get(uid)}
            for uid in ids[start : start + CHUNK]
        ]
        added.extend(core.execute(statement, rows[0] if len(rows) == 1 else rows).scalars())
    _changed(db, actor, group, added, MEMBER_ADDED, "added to", revoke=actor.revoke_on_group_add)
    return added


def _remove_members(db: Session, actor: Actor, group: Group, ids: Sequence[str]) -> list[str]:
    removed: list[str] = []
    core = connection(db)
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        removed.extend(core.scalars(_REMOVE_MEMBERS, {"group_id": group.id, "ids": chunk}))
    _changed(db, actor, group, removed, MEMBER_REMOVED, "removed from", revoke=True)
    return removed


def _replace_members(
    db: Session,
    actor: Actor,
    group: Group,
    ids: Sequence[str],
    displays: dict[str, str] | None = None,
) -> bool:
    """A full member list: O(group size) by nature; only the difference is written."""
    wanted = set(ids)
    current = set(
        db.scalars(select(Membership.user_id).where(Membership.group_id == group.id))
    )
    removed = _remove_members(db, actor, group, sorted(current - wanted))
    added = _add_members(
        db, actor, group, [uid for uid in ids if uid not in current], displays
    )
    return bool(removed or added)


def _require_users(db: Session, tenant_id: int, ids: Sequence[str]) -> None:
    missing = missing_users(db, tenant_id, ids)
    if missing:
        raise InvalidValue(
            f"no user with id {shown(missing)} in this tenant; members must be users"
        )


def _changed(
    db: Session,
    actor: Actor,
    group: Group,
    user_ids: Iterable[str],
    kind: str,
    verb: str,
    *,
    revoke: bool,
) -> None:
    """Membership of ``user_ids`` changed: new user versions, an event each, and (``revoke``)
    their sessions end through the choke point."""
    ids = list(user_ids)
    if not ids:
        return
    touch_users(db, ids)
    cause = _cause(actor, group, kind, verb)
    if revoke:
        revoke_user_sessions(db, tenant_id=actor.tenant_id, user_ids=ids, cause=cause)
    else:
        record(db, tenant_id=actor.tenant_id, cause=cause,
               user_sessions=[(user_id, []) for user_id in ids])


def _cause(actor: Actor, group: Group, kind: str, verb: str) -> Cause:
    return Cause(kind, actor.name, group_id=group.id, group_name=group.display_name,
                 detail=f"{verb} group '{group.display_name}'", txn=actor.txn)


def _clashes(group: Group) -> dict[str, str]:
    return {
        "display_name": (
            f"a group with displayName '{group.display_name}' already exists in this tenant"
        ),
        "external_id": (
            f"a group with externalId '{group.external_id}' already exists in this tenant"
        ),
    }
