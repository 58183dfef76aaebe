"""The operators' view of the outbox: each event's deliveries, and replaying dead letters
(the same delivery rows, so the same ``webhook-id`` goes out again)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import InvalidValue, NotFound
from ..events import outbox
from ..models import Delivery, Event, Receiver
from ..scim.formats import iso


def attach(db: Session, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each listed event (``event_json``) its ``deliveries``, in one query."""
    ids = [event["id"] for event in events]
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        rows = db.execute(
            select(Delivery, Receiver.kind)
            .join(Receiver, Receiver.id == Delivery.receiver_id)
            .where(Delivery.event_id.in_(ids)).order_by(Delivery.id)
        )
        for delivery, kind in rows:
            found[delivery.event_id].append({
                "id": delivery.id,
                "receiver": delivery.receiver_id,
                "kind": kind,
                "topic": delivery.topic,
                "state": delivery.state,
                "attempts": delivery.attempts,
                "next_attempt_at": (iso(delivery.next_attempt_at)
                                    if delivery.state in outbox.OPEN else None),
                "last_error": delivery.last_error,
            })
    for event in events:
        event["deliveries"] = found[event["id"]]
    return events


def replay_event(db: Session, tenant_id: int, event_id: str) -> dict[str, int]:
    """Send one event's dead deliveries again."""
    number = int(event_id) if event_id.isascii() and event_id.isdigit() else None
    if number is None or number > 2**31 - 1 or db.scalar(
        select(Event.id).where(Event.id == number, Event.tenant_id == tenant_id)
    ) is None:
        raise NotFound(f"no event with id '{event_id[:100]}'")
    return {"replayed": outbox.replay(db, tenant_id, utcnow(), number)}


def replay_all(db: Session, tenant_id: int, body: Any) -> dict[str, int]:
    """Send every dead delivery of the tenant again (``{"state": "dead"}``)."""
    if not isinstance(body, Mapping) or body.get("state") != outbox.DEAD or len(body) != 1:
        raise InvalidValue("send {\"state\": \"dead\"}: only dead deliveries are replayed")
    return {"replayed": outbox.replay(db, tenant_id, utcnow())}


def outbox_state(db: Session, now: dt.datetime) -> list[tuple[str, int, float, int]]:
    """(kind, open deliveries, oldest open age in seconds, dead deliveries), every tenant:
    what the outbox gauges report."""
    return outbox.state_by_kind(db, now)
