"""The outbox's SQL: claim due deliveries under a lease, finish them, replay dead letters.

A claim is one short transaction. PostgreSQL selects the due rows ``FOR UPDATE SKIP LOCKED``
(two workers never claim one row) and leases them; SQLite, whose writers are serialized by
``BEGIN IMMEDIATE``, leases them with one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING``.
A row is due when it is pending or retrying, its time has come, nobody holds a live lease on
it, its receiver is enabled, and no earlier row of the same receiver and subject is still
pending or retrying (order per subject; other subjects and receivers go on). Sending happens
outside any transaction; the finish is conditional on still holding the lease, so a worker
whose lease ran out never overwrites the row's newer state.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, Table, Update, bindparam, exists, insert, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from ..db import UTCDateTime
from ..models import Delivery, DeliveryAttempt, Event, Receiver
from .record import DELIVERIES_ADDED

PENDING, RETRYING, DELIVERED, DEAD = "pending", "retrying", "delivered", "dead"
OPEN = (PENDING, RETRYING)
_DELIVERIES = cast(Table, Delivery.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what its sender needs: the event and the receiver."""

    id: int
    topic: str
    subject: str
    attempts: int
    deadline_from: dt.datetime
    event: Event
    receiver: Receiver


@dataclass(frozen=True)
class Outcome:
    """What a sender reports: ``delivered``, ``retry`` (optionally ``after`` seconds the
    receiver asked for) or ``dead`` (the receiver says the configuration is wrong)."""

    result: str
    status: int | None = None
    error: str | None = None
    after: float | None = None
    latency_ms: float = 0.0


#: The PostgreSQL channel a commit that added deliveries notifies: other instances' workers
#: listen on it (worker.py), so they wake as promptly as the local one.
CHANNEL = "scim_bridge_deliveries"


def ring_on_commit(sessions: sessionmaker[Session], doorbell: threading.Event) -> None:
    """Wake the local worker when a transaction that added deliveries commits, and, on
    PostgreSQL, every instance's (``NOTIFY`` is delivered at commit, and only then)."""
    from sqlalchemy import event

    @event.listens_for(sessions, "before_commit")
    def _notify(session: Session) -> None:
        if session.info.get(DELIVERIES_ADDED):
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"NOTIFY {CHANNEL}")

    @event.listens_for(sessions, "after_commit")
    def _rang(session: Session) -> None:
        if session.info.pop(DELIVERIES_ADDED, False):
            doorbell.set()

    @event.listens_for(sessions, "after_rollback")
    def _forgotten(session: Session) -> None:
        session.info.pop(DELIVERIES_ADDED, None)


#: Literally the partial index's condition (models.py), so both planners pick that index.
_OPEN_ROW = text("deliveries.state IN ('pending', 'retrying')")


def _statements() -> tuple[Select[Any], Select[Any], Update, Update]:
    """The claim's statements, built once (a claim runs every round of a busy worker):
    what is due, PostgreSQL's locking select of it, and the lease on each backend."""
    rows, receivers = _DELIVERIES.c, cast(Table, Receiver.__table__)
    earlier = _DELIVERIES.alias("earlier")
    now = bindparam("now", type_=UTCDateTime())
    due = (
        select(rows.id)
        .where(
            _OPEN_ROW,
            rows.next_attempt_at <= now,
            or_(rows.lease_until.is_(None), rows.lease_until < now),
            exists().where(receivers.c.id == rows.receiver_id, receivers.c.state == "enabled"),
            ~exists().where(
                earlier.c.receiver_id == rows.receiver_id,
                earlier.c.subject == rows.subject,
                earlier.c.id < rows.id,
                earlier.c.state.in_(OPEN),
            ),
        )
        .order_by(rows.next_attempt_at, rows.id)
        .limit(bindparam("limit"))
    )
    lease = update(_DELIVERIES).values(
        lease_owner=bindparam("owner"), lease_until=bindparam("until", type_=UTCDateTime())
    ).returning(rows.id, rows.event_id, rows.receiver_id, rows.topic, rows.subject,
                rows.attempts, rows.created_at, rows.replayed_at, rows.next_attempt_at)
    anything = select(rows.id).where(_OPEN_ROW, rows.next_attempt_at <= now).limit(1)
    return (
        anything,
        due.with_for_update(skip_locked=True, of=_DELIVERIES),
        lease.where(rows.id.in_(bindparam("ids", expanding=True))),
        lease.where(rows.id.in_(due.correlate(None).scalar_subquery())),
    )


_ANYTHING_DUE, _LOCK_DUE, _LEASE_IDS, _LEASE_DUE = _statements()


def anything_due(db: Session, now: dt.datetime) -> bool:
    """Whether a claim would find work: a read, so an idle worker's poll never takes SQLite's
    write lock from the requests."""
    found = db.connection().execute(_ANYTHING_DUE, {"now": now}).first()
    db.rollback()
    return found is not None


def claim(db: Session, owner: str, now: dt.datetime, lease_seconds: int, limit: int
          ) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries to ``owner`` in ``db``'s writing transaction (the
    caller commits at once); returns them, oldest due first, with event and receiver loaded."""
    connection = db.connection()
    lease = {"now": now, "limit": limit, "owner": owner,
             "until": now + dt.timedelta(seconds=lease_seconds)}
    if connection.dialect.name == "postgresql":
        ids = list(connection.scalars(_LOCK_DUE, lease))
        rows = list(connection.execute(_LEASE_IDS, {**lease, "ids": ids})) if ids else []
    else:
        rows = list(connection.execute(_LEASE_DUE, lease))
    if not rows:
        return []
    events = {e.id: e for e in db.scalars(select(Event).where(
        Event.id.in_({row.event_id for row in rows})))}
    receivers = {r.id: r for r in db.scalars(select(Receiver).where(
        Receiver.id.in_({row.receiver_id for row in rows})))}
    rows.sort(key=lambda row: (row.next_attempt_at, row.id))
    return [
        Claimed(id=row.id, topic=row.topic, subject=row.subject, attempts=row.attempts,
                deadline_from=row.replayed_at or row.created_at, event=events[row.event_id],
                receiver=receivers[row.receiver_id])
        for row in rows
    ]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; give up after ``give_up`` seconds."""

    base: float
    cap: float
    give_up: float

    def delay(self, attempts: int, asked: float | None) -> float:
        """Seconds before the next try after ``attempts`` failed ones; the receiver's
        ``Retry-After`` when it gave one (within the cap)."""
        if asked is not None:
            return min(self.cap, max(0.0, asked))
        return random.uniform(0, min(self.cap, self.base * 2 ** min(attempts, 62)))


def finish(db: Session, results: list[tuple[Claimed, Outcome]], owner: str, now: dt.datetime,
           policy: RetryPolicy) -> int:
    """Record each attempt and move each row on, where ``owner`` still holds it, in ``db``'s
    writing transaction: delivered rows in one statement, the others one each. Returns how
    many rows were no longer ours (their lease had run out and another worker took them)."""
    if not results:
        return 0
    # A receiver removed meanwhile took its rows with it: record attempts of the rows left
    # (locked against such a removal until commit, on PostgreSQL).
    kept = set(db.connection().scalars(
        select(_DELIVERIES.c.id).where(_DELIVERIES.c.id.in_([c.id for c, _ in results]))
        .with_for_update(key_share=True)
    ))
    attempts = [
        {"delivery_id": claimed.id, "at": now, "status": outcome.status, "error": outcome.error,
         "latency_ms": outcome.latency_ms}
        for claimed, outcome in results if claimed.id in kept
    ]
    if attempts:
        db.connection().execute(insert(_ATTEMPTS), attempts)
    ours = (_DELIVERIES.c.lease_owner == owner,)
    moved = {"attempts": _DELIVERIES.c.attempts + 1, "lease_owner": None, "lease_until": None}
    delivered = [claimed.id for claimed, outcome in results if outcome.result == "delivered"]
    done = 0
    if delivered:
        done += db.connection().execute(
            update(_DELIVERIES).where(_DELIVERIES.c.id.in_(delivered), *ours).values(
                state=DELIVERED, delivered_at=now, last_error=None, **moved)
        ).rowcount
    for claimed, outcome in results:
        if outcome.result != "delivered":
            done += db.connection().execute(
                update(_DELIVERIES).where(_DELIVERIES.c.id == claimed.id, *ours).values(
                    **_failed(claimed, outcome, now, policy), **moved)
            ).rowcount
    return len(results) - done


def _failed(claimed: Claimed, outcome: Outcome, now: dt.datetime, policy: RetryPolicy
            ) -> dict[str, Any]:
    """Dead when the receiver said so or the give-up period would pass; else retry later."""
    if outcome.result == "dead":
        return {"state": DEAD, "last_error": outcome.error}
    attempts = claimed.attempts + 1
    retry_at = now + dt.timedelta(seconds=policy.delay(claimed.attempts, outcome.after))
    if retry_at - claimed.deadline_from > dt.timedelta(seconds=policy.give_up):
        return {"state": DEAD, "last_error": f"gave up after {attempts} attempts: {outcome.error}"}
    return {"state": RETRYING, "next_attempt_at": retry_at, "last_error": outcome.error}


def replay(db: Session, tenant_id: int, now: dt.datetime, event_id: int | None = None) -> int:
    """Send the tenant's dead deliveries (of one event, or all) again, under their same ids;
    returns how many. Flushes only: the caller commits."""
    conditions = [
        _DELIVERIES.c.state == DEAD,
        _DELIVERIES.c.receiver_id.in_(
            select(Receiver.id).where(Receiver.tenant_id == tenant_id)),
    ]
    if event_id is not None:
        conditions.append(_DELIVERIES.c.event_id == event_id)
    changed = db.connection().execute(
        update(_DELIVERIES).where(*conditions).values(
            state=PENDING, next_attempt_at=now, replayed_at=now, lease_owner=None,
            lease_until=None,
        )
    ).rowcount
    if changed:
        db.info[DELIVERIES_ADDED] = True
    return int(changed)
