"""The event seam: every change a receiver could care about is recorded here, in the caller's
transaction, so it commits or rolls back with the change itself and no path can skip it.

One row per affected user (``user_id`` ``None`` for a change to a group alone), with its cause,
the actor (``scim:<token>``, ``admin:<token>``, ``sessions:<token>``) and the application
sessions the change ended, if any, and ``txn``: the request that caused it, shared by every
event (and so every SET) that one request caused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import Event

# What happened to a user's account or access.
USER_CREATED = "user_created"
USER_UPDATED = "user_updated"
USER_DEACTIVATED = "user_deactivated"
USER_REACTIVATED = "user_reactivated"
USER_DELETED = "user_deleted"
MEMBER_ADDED = "member_added"
MEMBER_REMOVED = "member_removed"
GROUP_DELETED = "group_deleted"
# Session resets that change no access.
FORCE_LOGOUT = "force_logout"
LOGOUT = "logout"

TYPES = (
    USER_CREATED, USER_UPDATED, USER_DEACTIVATED, USER_REACTIVATED, USER_DELETED,
    MEMBER_ADDED, MEMBER_REMOVED, GROUP_DELETED, FORCE_LOGOUT, LOGOUT,
)


# Built once and run on the session's connection: every create and membership change records,
# and the ORM's bulk-insert path costs more than the INSERT itself.
_INSERT_EVENTS = insert(cast(Table, Event.__table__))


@dataclass(frozen=True)
class Cause:
    """What happened and who did it; ``group_*`` name the group of a membership change,
    ``txn`` the request (or CLI action) it happened in."""

    type: str
    actor: str
    group_id: str | None = None
    group_name: str | None = None
    detail: str | None = None
    txn: str | None = None


def record(
    db: Session,
    *,
    tenant_id: int,
    cause: Cause,
    user_sessions: Iterable[tuple[str | None, list[str]]],
    occurred_at: dt.datetime | None = None,
) -> None:
    """Append one event per (user id, ended session ids) pair in the caller's transaction."""
    moment = occurred_at or utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "type": cause.type,
            "user_id": user_id,
            "group_id": cause.group_id,
            "group_name": cause.group_name,
            "actor": cause.actor,
            "detail": cause.detail,
            "session_ids": session_ids,
            "occurred_at": moment,
            "txn": cause.txn,
        }
        for user_id, session_ids in user_sessions
    ]
    if rows:
        db.connection().execute(_INSERT_EVENTS, rows)
