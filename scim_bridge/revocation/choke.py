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
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from ..db import utcnow
from ..events.record import Cause, record
from ..metrics import REVOCATIONS, count_after_commit
from ..models import AppSession

_CHUNK = 500
_SESSIONS = cast(Table, AppSession.__table__)
# Built once and run on the connection: every membership removal passes through here.
_REVOKE = (
    update(_SESSIONS)
    .where(
        _SESSIONS.c.tenant_id == bindparam("in_tenant"),
        _SESSIONS.c.user_id.in_(bindparam("of_users", expanding=True)),
        _SESSIONS.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("now"))
    .returning(_SESSIONS.c.id, _SESSIONS.c.user_id)
)
_REVOKE_ONE = _REVOKE.where(_SESSIONS.c.id == bindparam("only_session"))


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
    db.flush()  # the statement runs on the connection: pending ORM changes go first
    connection = db.connection()
    statement = _REVOKE if session_id is None else _REVOKE_ONE
    for start in range(0, len(ids), _CHUNK):
        parameters = {"in_tenant": tenant_id, "of_users": ids[start : start + _CHUNK],
                      "now": now, "only_session": session_id}
        for sid, user_id in connection.execute(statement, parameters):
            revoked[user_id].append(sid)
    loaded = [obj for obj in db.identity_map.values() if isinstance(obj, AppSession)]
    if loaded and revoked:  # sessions this db has loaded read their new revoked_at again
        ended = {sid for sids in revoked.values() for sid in sids}
        for app_session in loaded:
            if app_session.id in ended:
                db.expire(app_session, ["revoked_at"])
    count_after_commit(db, REVOCATIONS.labels(cause=cause.type),
                       sum(len(sids) for sids in revoked.values()))
    affected = ids if record_without_sessions else [u for u in ids if revoked.get(u)]
    record(
        db,
        tenant_id=tenant_id,
        cause=cause,
        user_sessions=((user_id, sorted(revoked.get(user_id, []))) for user_id in affected),
        occurred_at=now,
    )
    return dict(revoked)
