"""The event seam: every change a receiver could care about is recorded here, in the caller's
transaction, so it commits or rolls back with the change itself and no path can skip it.

One row per affected user (``user_id`` ``None`` for a change to a group alone), with its cause,
the actor (``scim:<token>``, ``admin:<token>``, ``sessions:<token>``) and the application
sessions the change ended, if any, and ``txn``: the request that caused it, shared by every
event (and so every SET) that one request caused.

It is also the outbox's entry: in the same transaction, one statement adds a delivery row per
receiver subscribed to the events' topics (events/topics.py), so an event is never committed
without its deliveries, nor a delivery without its event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Insert, Table, bindparam, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from ..db import UTCDateTime, utcnow
from ..models import Delivery, Event, Receiver, ReceiverEventType
from . import topics

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

#: The outbound topic of each event type that has one; any event that ended sessions is also
#: ``session.revoked``.
TOPIC_OF = {
    USER_DEACTIVATED: topics.USER_DEACTIVATED,
    USER_REACTIVATED: topics.USER_REACTIVATED,
    USER_DELETED: topics.USER_DELETED,
    MEMBER_REMOVED: topics.GROUP_MEMBER_REMOVED,
    GROUP_DELETED: topics.GROUP_DELETED,
}

#: Set in ``db.info`` when the transaction added deliveries: its commit wakes the worker.
DELIVERIES_ADDED = "scim_bridge.deliveries_added"


# Built once and run on the session's connection: every create and membership change records,
# and the ORM's bulk-insert path costs more than the INSERT itself.
_EVENTS = cast(Table, Event.__table__)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_EVENTS_RETURNING_IDS = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


def _insert_deliveries() -> Insert:
    """``INSERT INTO deliveries SELECT`` the (event, subscribed receiver, topic) triples of the
    events just inserted: one statement however many events and receivers."""
    events, receivers = _EVENTS, cast(Table, Receiver.__table__)
    subscriptions = cast(Table, ReceiverEventType.__table__)
    now = bindparam("now", type_=UTCDateTime())
    chosen = (
        select(
            events.c.id,
            receivers.c.id,
            subscriptions.c.event_type,
            func.coalesce(events.c.user_id, events.c.group_id, literal("")),
            literal("pending"),
            literal(0),
            now,
            now,
        )
        .select_from(events)
        .join(receivers, receivers.c.tenant_id == events.c.tenant_id)
        .join(subscriptions, subscriptions.c.receiver_id == receivers.c.id)
        .where(
            events.c.id.in_(bindparam("event_ids", expanding=True)),
            receivers.c.state != "disabled",
            or_(
                subscriptions.c.event_type == bindparam("topic"),
                (subscriptions.c.event_type == topics.SESSION_REVOKED)
                & events.c.id.in_(bindparam("revoking_ids", expanding=True)),
            ),
        )
        .order_by(events.c.id, subscriptions.c.event_type)
    )
    table = cast(Table, Delivery.__table__)
    return insert(table).from_select(
        ["event_id", "receiver_id", "topic", "subject", "state", "attempts", "next_attempt_at",
         "created_at"],
        chosen,
    )


_INSERT_DELIVERIES = _insert_deliveries()


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
    if not rows:
        return
    connection = db.connection()
    topic = TOPIC_OF.get(cause.type)
    if topic is None and not any(row["session_ids"] for row in rows):
        connection.execute(_INSERT_EVENTS, rows)  # nothing a receiver subscribes to
        return
    event_ids = list(connection.scalars(_INSERT_EVENTS_RETURNING_IDS, rows))
    revoking = [eid for eid, row in zip(event_ids, rows, strict=True) if row["session_ids"]]
    added = connection.execute(
        _INSERT_DELIVERIES,
        {"event_ids": event_ids, "topic": topic or "", "revoking_ids": revoking, "now": moment},
    )
    if added.rowcount:
        db.info[DELIVERIES_ADDED] = True
