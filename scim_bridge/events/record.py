"""The event seam: every change a receiver could care about is recorded here, in the caller's
transaction, so it commits or rolls back with the change itself and no path can skip it.

One row per affected user (``user_id`` ``None`` for a change to a group alone), with its cause,
the actor (``scim:<token>``, ``admin:<token>``, ``sessions:<token>``) and the application
sessions the change ended, if any, and ``txn``: the request that caused it, shared by every
event (and so every SET) that one request caused.

It is also the outbox's entry: in the same transaction, one statement adds a delivery row per
receiver subscribed to the events' topics (events/topics.py), but none for an SSF stream that
removed the event's user, so an event is never committed without its deliveries, nor a
delivery without its event. Each event keeps the user's email of that moment, which SSF
streams of format ``email`` name the user by.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import (
    Insert,
    ScalarSelect,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..db import UTCDateTime, utcnow
from ..models import Delivery, Event, Receiver, ReceiverEventType, RemovedSubject, UserValue
from ..prepared import PreparedInsert
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

#: The receiver kind of back-channel logout clients (events/logout.py), delivered per session.
LOGOUT_CLIENT = "logout_client"

#: Set in ``db.info`` when the transaction added deliveries: its commit wakes the worker.
DELIVERIES_ADDED = "scim_bridge.deliveries_added"


def _email_of_user() -> ScalarSelect[str]:
    """The user's primary email, else their first (a subquery of the event INSERT: SSF
    streams of format ``email`` name the user by it, as it was when the event happened)."""
    values = cast(Table, UserValue.__table__).c
    return (
        select(values.value)
        .where(values.user_id == bindparam("email_of"), values.attribute == "emails",
               values.value.is_not(None))
        .order_by(case((values.primary.is_(True), 0), else_=1), values.position, values.id)
        .limit(1)
        .scalar_subquery()
    )


# Built once and run on the session's connection: every create and membership change records,
# and the ORM's bulk-insert path costs more than the INSERT itself.
_EVENTS = cast(Table, Event.__table__)
_INSERT_EVENTS = insert(_EVENTS).values(user_email=_email_of_user())
_INSERT_EVENTS_RETURNING_IDS = _INSERT_EVENTS.returning(_EVENTS.c.id,
                                                        sort_by_parameter_order=True)
#: The same INSERTs on the driver's cursor, for the events nobody subscribes to (every create).
_PREPARED_INSERT_EVENTS = PreparedInsert(_INSERT_EVENTS)
# Many events at once carry their emails, read in one SELECT: PostgreSQL plans a VALUES list
# of a thousand subqueries for longer than it takes to insert ten thousand plain rows.
_INSERT_EVENT_ROWS = insert(_EVENTS)
_PREPARED_INSERT_EVENT_ROWS = PreparedInsert(_INSERT_EVENT_ROWS)
_INSERT_EVENT_ROWS_RETURNING_IDS = _INSERT_EVENT_ROWS.returning(_EVENTS.c.id,
                                                                sort_by_parameter_order=True)
_VALUES = cast(Table, UserValue.__table__)
_EMAILS_OF_USERS = (
    select(_VALUES.c.user_id, _VALUES.c.value, _VALUES.c.primary, _VALUES.c.position,
           _VALUES.c.id)
    .where(_VALUES.c.user_id.in_(bindparam("user_ids", expanding=True)),
           _VALUES.c.attribute == "emails", _VALUES.c.value.is_not(None))
)
_CHUNK = 500


def _emails_of(connection: Connection, user_ids: Iterable[str]) -> dict[str, str]:
    """Each user's primary email, else their first: what ``_email_of_user`` picks, for many
    users in one query per chunk."""
    ids = list(dict.fromkeys(user_ids))
    chosen: dict[str, tuple[tuple[int, int, int], str]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = connection.execute(_EMAILS_OF_USERS, {"user_ids": ids[start : start + _CHUNK]})
        for user_id, value, primary, position, value_id in rows:
            rank = (0 if primary is True else 1, position, value_id)
            if user_id not in chosen or rank < chosen[user_id][0]:
                chosen[user_id] = (rank, value)
    return {user_id: value for user_id, (_, value) in chosen.items()}


def _insert_deliveries() -> Insert:
    """``INSERT INTO deliveries SELECT`` the (event, subscribed receiver, topic) triples of the
    events just inserted: one statement however many events and receivers. A stream that
    removed the event's user (SSF subjects) gets none: one primary-key lookup per pair."""
    events, receivers = _EVENTS, cast(Table, Receiver.__table__)
    subscriptions = cast(Table, ReceiverEventType.__table__)
    removed = cast(Table, RemovedSubject.__table__)
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
            receivers.c.kind != LOGOUT_CLIENT,  # one row per session, below
            ~exists().where(removed.c.receiver_id == receivers.c.id,
                            removed.c.user_id == events.c.user_id),
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

#: Back-channel logout clients get one delivery per ended session (events/logout.py), whose
#: ``subject`` is the session id: each session retried and dead-lettered on its own.
_RECEIVERS = cast(Table, Receiver.__table__)
_SUBSCRIPTIONS = cast(Table, ReceiverEventType.__table__)
#: The tenant's receivers subscribed to the events' topics: with none (most tenants), the
#: events are inserted alone and the deliveries statement, which costs as much, never runs.
_SUBSCRIBED = (
    select(_RECEIVERS.c.id, _RECEIVERS.c.kind, _SUBSCRIPTIONS.c.event_type)
    .join(_SUBSCRIPTIONS, _SUBSCRIPTIONS.c.receiver_id == _RECEIVERS.c.id)
    .where(_RECEIVERS.c.tenant_id == bindparam("tenant_id"), _RECEIVERS.c.state != "disabled",
           _SUBSCRIPTIONS.c.event_type.in_(bindparam("topics", expanding=True)))
    .order_by(_RECEIVERS.c.id)
)
_INSERT_DELIVERY_ROWS = insert(cast(Table, Delivery.__table__))


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
    ended = [(user_id, list(session_ids)) for user_id, session_ids in user_sessions]
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
            "email_of": user_id,
        }
        for user_id, session_ids in ended
    ]
    if not rows:
        return
    connection = db.connection()
    if len(rows) > 1:
        emails = _emails_of(connection, (user_id for user_id, _ in ended if user_id))
        for row, (user_id, _) in zip(rows, ended, strict=True):
            del row["email_of"]
            row["user_email"] = emails.get(user_id) if user_id else None
    insert_rows, insert_returning = (
        (_PREPARED_INSERT_EVENTS, _INSERT_EVENTS_RETURNING_IDS) if len(rows) == 1 else
        (_PREPARED_INSERT_EVENT_ROWS, _INSERT_EVENT_ROWS_RETURNING_IDS))
    topic = TOPIC_OF.get(cause.type)
    any_revoking = any(row["session_ids"] for row in rows)
    wanted = ([topic] if topic else []) + ([topics.SESSION_REVOKED] if any_revoking else [])
    subscribed = (list(connection.execute(_SUBSCRIBED, {"tenant_id": tenant_id,
                                                        "topics": wanted}))
                  if wanted else [])
    if not subscribed:  # nothing a receiver subscribes to
        insert_rows.run(connection, rows)
        return
    event_ids = list(connection.scalars(insert_returning, rows))
    revoking = [eid for eid, row in zip(event_ids, rows, strict=True) if row["session_ids"]]
    added_rows = 0
    if any(kind != LOGOUT_CLIENT for _, kind, _ in subscribed):
        added = connection.execute(
            _INSERT_DELIVERIES,
            {"event_ids": event_ids, "topic": topic or "", "revoking_ids": revoking,
             "now": moment},
        )
        added_rows += added.rowcount
    clients = [receiver_id for receiver_id, kind, event_type in subscribed
               if kind == LOGOUT_CLIENT and event_type == topics.SESSION_REVOKED]
    per_session = [
        {"event_id": event_id, "receiver_id": client, "topic": topics.SESSION_REVOKED,
         "subject": session_id, "state": "pending", "attempts": 0,
         "next_attempt_at": moment, "created_at": moment}
        for event_id, (_, session_ids) in zip(event_ids, ended, strict=True)
        for session_id in session_ids
        for client in clients
    ]
    if per_session:
        connection.execute(_INSERT_DELIVERY_ROWS, per_session)
        added_rows += len(per_session)
    if added_rows:
        db.info[DELIVERIES_ADDED] = True
