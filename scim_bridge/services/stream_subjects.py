"""The users an SSF stream removed (SSF 1.0 §8.1.3), kept per stream as rows of
``stream_removed_subjects``: the outbox's fan-out adds no delivery of their events for that
stream (events/record.py), until the stream adds them again.

A subject is mapped to users when it is added or removed (events/subjects.py): by id, or by
email among every address of the tenant's users, compared as SCIM compares them (caseExact
false, RFC 7643 §4.1.2), so an address shared by two users names both. A removal sticks to the
user, whatever their address becomes. It also drops what the stream still holds for the user
(held while paused, unacknowledged by a poll, waiting for a retry), as disabling a stream drops
what it held; events that happen while the user is removed are not sent when they are added
back.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..events import outbox
from ..events.subjects import Named
from ..models import ID, Delivery, RemovedSubject, User, UserValue
from ..scim.formats import fold
from .common import connection

__all__ = ["remove", "restore", "users_named"]

_REMOVED = cast(Table, RemovedSubject.__table__)
_ID_LENGTH = ID.length or 0  # a longer id names nobody
_INSERT = {  # a subject removed twice stays removed once
    "postgresql": postgresql.insert(_REMOVED).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_REMOVED).on_conflict_do_nothing(),
}


def users_named(db: Session, tenant_id: int, named: Named | None) -> list[str]:
    """The ids of the tenant's users ``named`` names (none, one, or several by email)."""
    if named is None or len(named.user_id or "") > _ID_LENGTH:
        return []
    if named.user_id is not None:
        query = select(User.id).where(User.id == named.user_id, User.tenant_id == tenant_id)
    else:
        query = (select(UserValue.user_id).distinct()
                 .join(User, User.id == UserValue.user_id)
                 .where(UserValue.attribute == "emails",
                        UserValue.value_key == fold(named.email), User.tenant_id == tenant_id))
    return sorted(db.scalars(query))


def remove(db: Session, stream_id: str, user_ids: list[str], now: dt.datetime) -> None:
    """The stream gets none of these users' events from now on, nor those it still holds
    (the rows of a receiver are ordered by subject: ``ix_deliveries_order`` finds them)."""
    if user_ids:
        core = connection(db)
        core.execute(_INSERT[core.dialect.name],
                     [{"receiver_id": stream_id, "user_id": u, "removed_at": now}
                      for u in user_ids])
        core.execute(delete(Delivery).where(Delivery.receiver_id == stream_id,
                                            Delivery.subject.in_(user_ids),
                                            Delivery.state.in_(outbox.OPEN)))


def restore(db: Session, stream_id: str, user_ids: list[str]) -> None:
    """The stream gets these users' events again (the removal is forgotten)."""
    if user_ids:
        db.execute(delete(_REMOVED).where(_REMOVED.c.receiver_id == stream_id,
                                          _REMOVED.c.user_id.in_(user_ids)))
