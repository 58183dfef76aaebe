"""The outbox's SQL: claim due deliveries under a lease, finish them, replay dead letters.

A claim is one short transaction and one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING``:
on PostgreSQL the select locks the due rows ``FOR UPDATE SKIP LOCKED`` (two workers never claim
one row); SQLite's writers are serialized by ``BEGIN IMMEDIATE``.
A row is due when it is pending or retrying, its time has come, nobody holds a live lease on
it, its receiver is enabled (or the row tells the receiver it is not: SSF stream-updated)
and pushed to (not polled), and no earlier row of the same receiver and subject is still
pending or retrying (order per subject; other subjects and receivers go on). Sending happens
outside any transaction; the finish is conditional on still holding the lease, so a worker
whose lease ran out never overwrites the row's newer state.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import (
    Select,
    Table,
    Update,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from ..db import UTCDateTime
from ..models import Delivery, DeliveryAttempt, Event, Receiver
from .record import DELIVERIES_ADDED

PENDING, RETRYING, DELIVERED, DEAD = "pending", "retrying", "delivered", "dead"
#: The outcome of a claimed row handed back unsent (:class:`Outcome`).
RELEASED = "released"
OPEN = (PENDING, RETRYING)
#: Receiver kinds that fetch their deliveries themselves (an RFC 8936 poll stream): the worker
#: never claims their rows; they stay pending until the receiver acknowledges them.
PULLED_KINDS = ("ssf_poll",)
#: Topics sent even while their receiver is paused or disabled: the SSF stream-updated event
#: that tells the receiver so (SSF 1.0 §8.1.5).
SENT_WHILE_STOPPED = ("ssf.stream_updated",)
_DELIVERIES = cast(Table, Delivery.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)


class Signer(Protocol):
    """What signs the tokens a sender sends (the key ring, revocation/keys.py, handed in by
    whoever builds the worker): the one JOSE module, and the issuer they name."""

    def sign_event(self, claims: Mapping[str, Any], *, alg: str = ..., typ: str) -> str: ...

    def current_issuer(self) -> str | None: ...


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what its sender needs: the event, the receiver, and the worker's
    signer (``None`` for a worker built without one; signing senders then retry)."""

    id: int
    topic: str
    subject: str
    attempts: int
    deadline_from: dt.datetime
    event: Event
    receiver: Receiver
    signer: Signer | None = None
    #: When the claim's lease runs out (another worker may claim the row from then on).
    lease_until: dt.datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What a sender reports: ``delivered``, ``retry`` (optionally ``after`` seconds the
    receiver asked for) or ``dead`` (the receiver says the configuration is wrong); or, from
    the worker, ``released``: never sent, its lease too short to send on (no attempt)."""

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


def _statements() -> tuple[Select[Any], Update, Update]:
    """The claim's statements, built once (a claim runs every round of a busy worker): what
    is due, and the lease of it on each backend (on PostgreSQL, of rows locked ``SKIP
    LOCKED``)."""
    rows, receivers = _DELIVERIES.c, cast(Table, Receiver.__table__)
    earlier = _DELIVERIES.alias("earlier")
    now = bindparam("now", type_=UTCDateTime())
    sendable = exists().where(
        receivers.c.id == rows.receiver_id,
        receivers.c.kind.not_in(PULLED_KINDS),
        or_(receivers.c.state == "enabled", rows.topic.in_(SENT_WHILE_STOPPED)),
    )
    due = (
        select(rows.id)
        .where(
            _OPEN_ROW,
            rows.next_attempt_at <= now,
            or_(rows.lease_until.is_(None), rows.lease_until < now),
            sendable,
            # A subquery per candidate, not NOT EXISTS: PostgreSQL turns that into an anti-join
            # which, planned on no statistics, scans every open row for each row it takes.
            select(earlier.c.id).where(
                earlier.c.receiver_id == rows.receiver_id,
                earlier.c.subject == rows.subject,
                earlier.c.id < rows.id,
                earlier.c.state.in_(OPEN),
            ).limit(1).scalar_subquery().is_(None),
        )
        .order_by(rows.next_attempt_at, rows.id)
        .limit(bindparam("limit"))
    )
    lease = update(_DELIVERIES).values(
        lease_owner=bindparam("owner"), lease_until=bindparam("until", type_=UTCDateTime())
    ).returning(rows.id, rows.event_id, rows.receiver_id, rows.topic, rows.subject,
                rows.attempts, rows.created_at, rows.replayed_at, rows.next_attempt_at)
    anything = select(rows.id).where(_OPEN_ROW, rows.next_attempt_at <= now, sendable).limit(1)
    locked = due.with_for_update(skip_locked=True, of=_DELIVERIES)
    return (
        anything,
        lease.where(rows.id.in_(locked.correlate(None).scalar_subquery())),
        lease.where(rows.id.in_(due.correlate(None).scalar_subquery())),
    )


_ANYTHING_DUE, _LEASE_LOCKED, _LEASE_DUE = _statements()
#: The claim must walk ix_deliveries_due in order and stop at ``limit``. PostgreSQL's estimate of
#: open rows comes from statistics that lag a backlog (a table never analysed yet): believing
#: there are a few, it sorts every open row, so each claim costs O(backlog) and a drain
#: O(backlog²). Without sorts for this transaction, the in-order walk is the only plan left.
_WALK_IN_ORDER = "SELECT set_config('enable_sort', 'off', true)"


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
    until = now + dt.timedelta(seconds=lease_seconds)
    lease = {"now": now, "limit": limit, "owner": owner, "until": until}
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_WALK_IN_ORDER)
        rows = list(connection.execute(_LEASE_LOCKED, lease))
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
                receiver=receivers[row.receiver_id], lease_until=until)
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
    writing transaction: delivered rows in one statement, released ones (unsent: no attempt,
    due again at once, in their same order) in another, the others one each. Returns how
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
        for claimed, outcome in results if claimed.id in kept and outcome.result != RELEASED
    ]
    if attempts:
        db.connection().execute(insert(_ATTEMPTS), attempts)
    ours = (_DELIVERIES.c.lease_owner == owner,)
    unleased = {"lease_owner": None, "lease_until": None}
    moved = {"attempts": _DELIVERIES.c.attempts + 1, **unleased}
    done = 0
    for result, values in ((DELIVERED, {"state": DELIVERED, "delivered_at": now,
                                        "last_error": None, **moved}),
                           (RELEASED, unleased)):
        ids = [claimed.id for claimed, outcome in results if outcome.result == result]
        if ids:
            done += db.connection().execute(
                update(_DELIVERIES).where(_DELIVERIES.c.id.in_(ids), *ours).values(**values)
            ).rowcount
    for claimed, outcome in results:
        if outcome.result not in (DELIVERED, RELEASED):
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


def state_by_kind(db: Session, now: dt.datetime) -> list[tuple[str, int, float, int]]:
    """Per receiver kind: open rows, seconds since the oldest open row was created (or
    replayed), and dead rows, for the metrics. The open rows are read through their partial
    index; the dead ones are counted from the table."""
    receivers, rows = cast(Table, Receiver.__table__), _DELIVERIES.c
    kinds = {kind: [0, 0.0, 0] for kind in db.scalars(select(receivers.c.kind).distinct())}
    opened = func.min(func.coalesce(rows.replayed_at, rows.created_at), type_=UTCDateTime())
    for kind, count, oldest in db.execute(
        select(receivers.c.kind, func.count(), opened)
        .select_from(_DELIVERIES.join(receivers, receivers.c.id == rows.receiver_id))
        .where(_OPEN_ROW).group_by(receivers.c.kind)
    ):
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        kinds.setdefault(kind, [0, 0.0, 0])[:2] = [count, age]
    for kind, count in db.execute(
        select(receivers.c.kind, func.count())
        .select_from(_DELIVERIES.join(receivers, receivers.c.id == rows.receiver_id))
        .where(rows.state == DEAD).group_by(receivers.c.kind)
    ):
        kinds.setdefault(kind, [0, 0.0, 0])[2] = count
    return [(kind, int(v[0]), float(v[1]), int(v[2])) for kind, v in sorted(kinds.items())]
