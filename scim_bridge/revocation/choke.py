"""The one choke point: every revocation of a user's sessions passes through here.

It runs inside the caller's transaction, so the revocation commits (or rolls back) with the
change that caused it: when the IdP sees the SCIM response, introspection already answers
``{"active": false}``. Revocation marks sessions (``revoked_at``), never deletes them, and
records one audit event per affected user with its cause and the sessions it ended.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import AppSession, Event

# Event types: why sessions ended, or what happened to access.
MEMBER_REMOVED = "member_removed"
MEMBER_ADDED = "member_added"
USER_DEACTIVATED = "user_deactivated"
USER_REACTIVATED = "user_reactivated"
USER_DELETED = "user_deleted"
GROUP_DELETED = "group_deleted"
FORCE_LOGOUT = "force_logout"
LOGOUT = "logout"

_CHUNK = 500


@dataclass(frozen=True)
class Cause:
    """What caused a revocation and who did it (``scim:<token>``, ``admin:<token>``, ...)."""

    type: str
    actor: str
    group_id: str | None = None
    group_name: str | None = None
    detail: str | None = None


def revoke_user_sessions(
    session: Session,
    *,
    tenant_id: int,
    user_ids: Iterable[str],
    cause: Cause,
    session_id: str | None = None,
    record_without_sessions: bool = True,
) -> dict[str, list[str]]:
    """Revoke every live session of ``user_ids`` (or just ``session_id``) and audit it.

    Returns the revoked session ids per user. An event is recorded per user whose access
    changed; ``record_without_sessions=False`` (force logout) records only users who had some.
    """
    ids = list(dict.fromkeys(user_ids))
    now = utcnow()
    revoked: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        statement = (
            update(AppSession)
            .where(
                AppSession.tenant_id == tenant_id,
                AppSession.user_id.in_(chunk),
                AppSession.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(AppSession.id, AppSession.user_id)
        )
        if session_id is not None:
            statement = statement.where(AppSession.id == session_id)
        for sid, user_id in session.execute(statement):
            revoked[user_id].append(sid)
    affected = ids if record_without_sessions else [u for u in ids if revoked.get(u)]
    record_events(session, tenant_id=tenant_id, cause=cause, user_sessions=(
        (user_id, sorted(revoked.get(user_id, []))) for user_id in affected
    ), occurred_at=now)
    return dict(revoked)


def record_events(
    session: Session,
    *,
    tenant_id: int,
    cause: Cause,
    user_sessions: Iterable[tuple[str | None, list[str]]],
    occurred_at: object | None = None,
) -> None:
    """Append audit events (one per user) in the caller's transaction."""
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
            "occurred_at": occurred_at or utcnow(),
        }
        for user_id, session_ids in user_sessions
    ]
    if rows:
        session.execute(insert(Event), rows)
