"""The one choke point: every revocation of a user's sessions passes through here.

It runs inside the caller's transaction, so the revocation commits (or rolls back) with the
change that caused it: when the IdP sees the SCIM response, introspection already answers
``{"active": false}``. Revocation marks sessions (``revoked_at``), never deletes them, and
records one event per affected user with its cause and the sessions it ended, through the
event seam.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import utcnow
from ..events.record import Cause, record
from ..models import AppSession

_CHUNK = 500


def revoke_user_sessions(
    db: Session,
    *,
    tenant_id: int,
    user_ids: Iterable[str],
    cause: Cause,
    session_id: str | None = None,
    record_without_sessions: bool = True,
) -> dict[str, list[str]]:
    """Revoke every live session of ``user_ids`` (or just ``session_id``) and record it.

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
        for sid, user_id in db.execute(statement):
            revoked[user_id].append(sid)
    affected = ids if record_without_sessions else [u for u in ids if revoked.get(u)]
    record(
        db,
        tenant_id=tenant_id,
        cause=cause,
        user_sessions=((user_id, sorted(revoked.get(user_id, []))) for user_id in affected),
        occurred_at=now,
    )
    return dict(revoked)
