"""What an admin can do with users: see them with their groups and live sessions, and force
logout one user or many. Force logout revokes sessions through the choke point and nothing
else: ``active`` and group memberships are never touched (PRODUCT.md, "The rule")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import InvalidValue, NotFound
from ..events.record import FORCE_LOGOUT, Cause
from ..models import AppSession, Group, User
from ..parameters import integer
from ..revocation.choke import revoke_user_sessions
from ..scim.formats import iso
from ..store.user_search import (
    after_cursor,
    cursor_of,
    in_group,
    in_tenant,
    matching_prefix,
    scim_filter,
)
from . import Actor, audit, confirmations
from .common import missing_users, shown
from .users import groups_of

DEFAULT_COUNT = 50
_CHUNK = 5000


def list_users(
    db: Session, tenant_id: int, params: Mapping[str, Any], max_count: int
) -> dict[str, Any]:
    """Users of the tenant by userName, filtered by ``search`` (a prefix), ``group``,
    ``active`` and a SCIM ``filter``; paged by ``startIndex`` or by the cursor ``after``.

    Three queries a page whatever its size (users, their groups, their sessions), plus the
    total."""
    conditions = selection(tenant_id, params)
    count = integer("count", params.get("count"), DEFAULT_COUNT, high=max_count)
    after = _text(params, "after")
    page = select(User).where(*conditions).order_by(User.user_name_key, User.id)
    if after:
        if params.get("startIndex") not in (None, ""):
            raise InvalidValue("send 'after' or 'startIndex', not both")
        page, start = page.where(after_cursor(after)), 1
    else:
        start = integer("startIndex", params.get("startIndex"), 1, low=1)
        page = page.offset(start - 1)
    total = db.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    users = list(db.scalars(page.limit(count + 1))) if count else []
    more, users = len(users) > count, users[:count]
    ids = [user.id for user in users]
    groups, sessions = groups_of(db, ids), session_summaries(db, ids)
    return {
        "total_results": total,
        "start_index": start,
        "items_per_page": len(users),
        "next_cursor": cursor_of(users[-1]) if more else None,
        "users": [
            {
                **user_summary(user),
                "externalId": user.external_id,
                "groups": [{"id": gid, "displayName": name} for gid, name in groups[user.id]],
                **sessions.get(user.id, _NO_SESSIONS),
            }
            for user in users
        ],
    }


#: The selection parameters the list and Bulk User Logout share.
SELECTION = ("search", "group", "active", "filter")
_NO_SESSIONS: dict[str, Any] = {"active_sessions": 0, "sessions_by_client": {},
                                "last_session_at": None}


def _text(params: Mapping[str, Any], name: str) -> str:
    raw = params.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str) or "\x00" in raw:
        raise InvalidValue(f"'{name}' must be a string without NUL characters")
    return raw.strip()


def selection(tenant_id: int, params: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``search``, ``group``, ``active`` and ``filter``."""
    search, group = _text(params, "search"), _text(params, "group")
    conditions = [in_tenant(tenant_id, selective=bool(search or group))]
    if search:
        conditions.append(matching_prefix(tenant_id, search))
    if group:
        conditions.append(in_group(tenant_id, group))
    active = params.get("active")
    active = ("true" if active else "false") if isinstance(active, bool) else _text(
        params, "active").lower()
    if active:
        if active not in ("true", "false"):
            raise InvalidValue("'active' must be 'true' or 'false'")
        deactivated = User.active.is_(False)
        conditions.append(~deactivated if active == "true" else deactivated)
    text = _text(params, "filter")
    if text:
        conditions.append(scim_filter(text))
    return conditions


def user_summary(user: User) -> dict[str, Any]:
    return {"id": user.id, "userName": user.user_name, "displayName": user.display_name,
            "active": user.is_active}


def group_choices(db: Session, tenant_id: int, limit: int = 1000) -> list[dict[str, str]]:
    """The tenant's groups by name, for the page's Group filter."""
    rows = db.execute(select(Group.id, Group.display_name).where(Group.tenant_id == tenant_id)
                      .order_by(Group.display_name_key, Group.id).limit(limit))
    return [{"id": group_id, "displayName": name} for group_id, name in rows]


def user_profile(db: Session, tenant_id: int, user_id: str) -> dict[str, Any] | None:
    """What the user page shows about a user of the tenant, with their groups; ``None`` for a
    deleted user (whose sessions and history stay readable)."""
    user = db.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    if user is None:
        return None
    return {
        **user_summary(user),
        "externalId": user.external_id,
        "givenName": user.name_given,
        "familyName": user.name_family,
        "title": user.title,
        "department": user.department,
        "created": iso(user.created_at),
        "groups": [{"id": gid, "displayName": name} for gid, name in groups_of(db, [user.id])[
            user.id]],
    }


def live_session_counts(db: Session, user_ids: Sequence[str]) -> dict[str, int]:
    if not user_ids:
        return {}
    rows = db.execute(
        select(AppSession.user_id, func.count())
        .where(AppSession.user_id.in_(user_ids), AppSession.revoked_at.is_(None),
               AppSession.expires_at > utcnow())
        .group_by(AppSession.user_id)
    )
    return {user_id: count for user_id, count in rows}


def session_summaries(db: Session, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per user: live sessions in all and by client, and when the latest session started
    (live or not), in one grouped query."""
    if not user_ids:
        return {}
    now = utcnow()
    live = case((and_(AppSession.revoked_at.is_(None), AppSession.expires_at > now), 1), else_=0)
    rows = db.execute(
        select(AppSession.user_id, AppSession.client, func.sum(live),
               func.max(AppSession.created_at))
        .where(AppSession.user_id.in_(user_ids))
        .group_by(AppSession.user_id, AppSession.client)
    )
    summaries: dict[str, dict[str, Any]] = {}
    for user_id, client, live_count, started in rows:
        summary = summaries.setdefault(user_id, {"active_sessions": 0, "sessions_by_client": {},
                                                 "last_session_at": None})
        if live_count:
            summary["sessions_by_client"][client] = int(live_count)
            summary["active_sessions"] += int(live_count)
        latest = iso(started)
        if summary["last_session_at"] is None or latest > summary["last_session_at"]:
            summary["last_session_at"] = latest
    return summaries


def user_sessions(
    db: Session, tenant_id: int, user_id: str, params: Mapping[str, Any], max_count: int
) -> dict[str, Any]:
    """A user's sessions, newest first, live and ended (a deleted user's history included),
    each ended one with the event that ended it (``revocation``: type, actor, detail, time)."""
    user = db.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    mine = [AppSession.tenant_id == tenant_id, AppSession.user_id == user_id]
    if user is None and db.scalar(select(AppSession.id).where(*mine).limit(1)) is None:
        raise NotFound(f"no user with id '{user_id}'")
    count = integer("count", params.get("count"), 100, high=max_count)
    now = utcnow()
    rows = list(db.scalars(
        select(AppSession).where(*mine)
        .order_by(AppSession.created_at.desc(), AppSession.id).limit(count)
    ))
    causes = audit.revocation_causes(db, tenant_id, user_id, rows[-1].created_at) if any(
        row.revoked_at for row in rows) else {}
    sessions = [
        {
            "session_id": row.id,
            "client": row.client,
            "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at),
            "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
            "active": row.revoked_at is None and row.expires_at > now,
            "revocation": causes.get(row.id),
        }
        for row in rows
    ]
    return {
        "user": user_summary(user) if user is not None else None,
        "user_id": user_id,
        "active_sessions": live_session_counts(db, [user_id]).get(user_id, 0),
        "sessions": sessions,
    }


def force_logout_user(db: Session, actor: Actor, user_id: str) -> int:
    """Revoke every live session of one user; returns how many ended."""
    if db.scalar(
        select(User.id).where(User.id == user_id, User.tenant_id == actor.tenant_id)
    ) is None:
        raise NotFound(f"no user with id '{user_id}'")
    return sum(len(ids) for ids in _force_logout(db, actor, [user_id]).values())


def bulk_logout(db: Session, actor: Actor, body: Any) -> dict[str, Any]:
    """Bulk User Logout by ``user_ids`` or by the list's selection (``search``, ``group``,
    ``active``, ``filter``). ``dry_run`` ends nothing and returns the counts with a ``confirm``
    value; a call with ``confirm`` ends sessions only if the same users and sessions still
    match (else 409 and nothing ends); without it, whatever matches now is ended."""
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object")
    selected = [name for name in SELECTION if name in body]
    if ("user_ids" in body) == bool(selected):
        raise InvalidValue("send either 'user_ids' (a list of ids) or a selection: "
                           f"{', '.join(repr(name) for name in SELECTION)}")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidValue("'dry_run' must be true or false")
    if dry_run and "confirm" in body:
        raise InvalidValue("'confirm' goes with the real call, not with 'dry_run'")
    if "filter" in body and (not isinstance(body["filter"], str) or not body["filter"].strip()):
        raise InvalidValue("'filter' must be a SCIM filter, e.g. 'title eq \"Nurse\"'")
    if selected:
        user_ids = list(db.scalars(
            select(User.id).where(*selection(actor.tenant_id, body)).order_by(User.id)))
    else:
        user_ids = _existing(db, actor.tenant_id, body["user_ids"])
    if dry_run:
        unrevoked, live = _unrevoked_sessions(db, actor.tenant_id, user_ids)
        return {"users": len(user_ids), "sessions": live, "active_sessions": live,
                "revoked_sessions": 0,
                "confirm": confirmations.issue(db, actor.tenant_id, user_ids, unrevoked)}
    revoked = _force_logout(db, actor, user_ids)
    if "confirm" in body:
        # Checked against what was just ended, in this transaction: a 409 rolls it all back.
        ended = [sid for sids in revoked.values() for sid in sids]
        confirmations.check(db, actor.tenant_id, body["confirm"], user_ids, ended)
    return {"users": len(user_ids), "revoked_sessions": sum(len(s) for s in revoked.values())}


def _unrevoked_sessions(db: Session, tenant_id: int, user_ids: list[str]) -> tuple[list[str], int]:
    """The ids of the users' unrevoked sessions (what a logout would mark) and how many of
    them are live (not yet expired)."""
    now, ids, live = utcnow(), [], 0
    for start in range(0, len(user_ids), _CHUNK):
        rows = db.execute(select(AppSession.id, AppSession.expires_at).where(
            AppSession.tenant_id == tenant_id, AppSession.revoked_at.is_(None),
            AppSession.user_id.in_(user_ids[start : start + _CHUNK])))
        for session_id, expires_at in rows:
            ids.append(session_id)
            live += expires_at > now
    return ids, live


def _existing(db: Session, tenant_id: int, raw: Any) -> list[str]:
    """The ids, all of which must be users of this tenant (else 404 and nothing changes)."""
    if not isinstance(raw, list) or not all(
        isinstance(i, str) and i and "\x00" not in i for i in raw
    ):
        raise InvalidValue("'user_ids' must be a list of user ids")
    ids = list(dict.fromkeys(raw))
    missing = missing_users(db, tenant_id, ids)
    if missing:
        raise NotFound(f"no user with id {shown(missing)} in this tenant; nobody was logged out")
    return ids


def _force_logout(db: Session, actor: Actor, user_ids: list[str]) -> dict[str, list[str]]:
    return revoke_user_sessions(
        db,
        tenant_id=actor.tenant_id,
        user_ids=user_ids,
        cause=Cause(FORCE_LOGOUT, actor.name, detail="forced logout by an admin",
                    txn=actor.txn),
        record_without_sessions=False,
    )
