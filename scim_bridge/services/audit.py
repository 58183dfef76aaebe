"""What an admin reads: the revocation and audit log (ordered by event id, the cursor), one
user's history and what ended each session, and the SCIM request log ("why did my sync
fail?"). All are scoped to the admin's tenant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidValue, NotFound
from ..models import Event, RequestLogEntry, User
from ..parameters import LARGEST, decimal, integer
from ..scim.formats import iso

DEFAULT_COUNT = 100
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _cursor(params: Mapping[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = decimal(str(raw))
    # Beyond LARGEST no id exists, and PostgreSQL would answer "integer out of range".
    if value is None or not 0 <= value <= LARGEST:
        raise InvalidValue(f"'{name}' must be a cursor returned by this API")
    return value


def _moment(params: Mapping[str, Any], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"'{name}' must be an ISO 8601 time, got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def list_events(
    db: Session, tenant_id: int, params: Mapping[str, Any], max_count: int
) -> dict[str, Any]:
    """Events after the cursor ``after``, oldest first; filters ``user_id``, ``type``
    (comma-separated), ``since`` and ``until`` (ISO 8601)."""
    conditions = [Event.tenant_id == tenant_id]
    after = _cursor(params, "after")
    if after is not None:
        conditions.append(Event.id > after)
    if params.get("user_id"):
        conditions.append(Event.user_id == params["user_id"])
    if params.get("type"):
        conditions.append(Event.type.in_([t.strip() for t in str(params["type"]).split(",")]))
    since, until = _moment(params, "since"), _moment(params, "until")
    if since is not None:
        conditions.append(Event.occurred_at >= since)
    if until is not None:
        conditions.append(Event.occurred_at < until)
    count = integer("count", params.get("count"), DEFAULT_COUNT, low=1, high=max_count)
    rows = list(
        db.scalars(select(Event).where(*conditions).order_by(Event.id).limit(count + 1))
    )
    has_more = len(rows) > count
    rows = rows[:count]
    last = rows[-1].id if rows else after
    return {
        "events": [event_json(row) for row in rows],
        "next_cursor": str(last) if last is not None else None,
        "has_more": has_more,
    }


def recent_events(
    db: Session, tenant_id: int, types: list[str], count: int
) -> list[dict[str, Any]]:
    """The tenant's latest events of ``types`` (all when empty), newest first."""
    conditions = [Event.tenant_id == tenant_id]
    if types:
        conditions.append(Event.type.in_(types))
    rows = db.scalars(select(Event).where(*conditions).order_by(Event.id.desc()).limit(count))
    return [event_json(row) for row in rows]


def user_history(
    db: Session, tenant_id: int, user_id: str, params: Mapping[str, Any], max_count: int
) -> dict[str, Any]:
    """Every event recorded for one user of the tenant, newest first, before the cursor
    ``before``: memberships, deactivation, re-activation, revocations with cause and actor.
    A deleted user's history stays readable; another tenant's user is a 404."""
    mine = [Event.tenant_id == tenant_id, Event.user_id == user_id]
    if db.scalar(select(User.id).where(User.id == user_id, User.tenant_id == tenant_id)) is None \
            and db.scalar(select(Event.id).where(*mine).limit(1)) is None:
        raise NotFound(f"no user with id '{user_id}'")
    before = _cursor(params, "before")
    if before is not None:
        mine.append(Event.id < before)
    count = integer("count", params.get("count"), DEFAULT_COUNT, low=1, high=max_count)
    rows = list(db.scalars(select(Event).where(*mine).order_by(Event.id.desc()).limit(count + 1)))
    has_more = len(rows) > count
    rows = rows[:count]
    return {
        "user_id": user_id,
        "events": [event_json(row) for row in rows],
        "next_cursor": str(rows[-1].id) if has_more else None,
    }


def revocation_causes(
    db: Session, tenant_id: int, user_id: str, since: dt.datetime
) -> dict[str, dict[str, Any]]:
    """For each session of the user ended since ``since``, the event that ended it."""
    rows = db.execute(
        select(Event.id, Event.type, Event.actor, Event.detail, Event.occurred_at,
               Event.session_ids)
        .where(Event.tenant_id == tenant_id, Event.user_id == user_id,
               Event.occurred_at >= since)
        .order_by(Event.id)
    )
    causes: dict[str, dict[str, Any]] = {}
    for event_id, type_, actor, detail, occurred_at, session_ids in rows:
        for session_id in session_ids or ():
            causes.setdefault(session_id, {"event_id": event_id, "type": type_, "actor": actor,
                                           "detail": detail, "occurred_at": iso(occurred_at)})
    return causes


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": iso(event.occurred_at),
        "user_id": event.user_id,
        "actor": event.actor,
        "group_id": event.group_id,
        "group_name": event.group_name,
        "detail": event.detail,
        "session_ids": list(event.session_ids or []),
    }


def list_requests(
    db: Session, tenant_id: int, params: Mapping[str, Any], max_count: int
) -> dict[str, Any]:
    """SCIM requests, newest first; ``status`` (404, 4xx, or ``error`` for every failure),
    ``method`` and the cursor ``before``."""
    conditions = [RequestLogEntry.tenant_id == tenant_id]
    status = str(params.get("status") or "").strip().lower()
    if status == "error":
        conditions.append(RequestLogEntry.status >= 400)
    elif len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
        low = int(status[0]) * 100
        conditions.append(RequestLogEntry.status.between(low, low + 99))
    elif status:
        if not (len(status) == 3 and status.isascii() and status.isdigit()):
            raise InvalidValue("'status' must be a status code, a class such as '4xx', or 'error'")
        conditions.append(RequestLogEntry.status == int(status))
    method = str(params.get("method") or "").strip().upper()
    if method:
        if method not in _METHODS:
            raise InvalidValue(f"'method' must be one of {', '.join(sorted(_METHODS))}")
        conditions.append(RequestLogEntry.method == method)
    before = _cursor(params, "before")
    if before is not None:
        conditions.append(RequestLogEntry.id < before)
    count = integer("count", params.get("count"), DEFAULT_COUNT, low=1, high=max_count)
    rows = list(db.scalars(
        select(RequestLogEntry).where(*conditions)
        .order_by(RequestLogEntry.id.desc()).limit(count + 1)
    ))
    has_more = len(rows) > count
    rows = rows[:count]
    return {
        "requests": [
            {
                "id": row.id,
                "created_at": iso(row.created_at),
                "method": row.method,
                "path": row.path,
                "status": row.status,
                "duration_ms": row.duration_ms,
                "reason": row.reason,
                "token_name": row.token_name,
            }
            for row in rows
        ],
        "next_cursor": str(rows[-1].id) if has_more else None,
    }
