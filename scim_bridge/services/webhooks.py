"""Webhook endpoints of a tenant: register (the secret is shown once), list, read, remove,
rotate the secret.

A URL is any absolute ``http``/``https`` URL that the ``receiver_urls`` setting allows
(events/urls.py; by default loopback and private addresses too, since the app's services are
usually internal). ``events`` are topics (events/topics.py); left out, the endpoint gets every
topic. A rotation makes a new secret, shown once, and keeps the previous one signing beside it
for ``webhook_secret_grace`` seconds, so receivers can switch without missing a delivery.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import InvalidValue, NotFound
from ..events.topics import TOPICS
from ..events.urls import check_receiver_url
from ..events.webhooks import KIND, new_secret, rotated_config
from ..models import Receiver, ReceiverEventType
from ..scim.formats import iso
from ..settings import Settings


def create_webhook(db: Session, tenant_id: int, body: Any, settings: Settings
                   ) -> dict[str, Any]:
    """Register an endpoint; the answer is the only place its secret ever appears."""
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object with 'url' and 'events'")
    url = check_receiver_url(body.get("url"), settings)
    topics = check_topics(body.get("events", list(TOPICS)))
    secret = new_secret()
    receiver = Receiver(tenant_id=tenant_id, kind=KIND, url=url,
                        config=json.dumps({"secrets": [secret]}))
    db.add(receiver)
    db.flush()
    db.add_all(ReceiverEventType(receiver_id=receiver.id, event_type=t) for t in topics)
    db.flush()
    return {**_shown(receiver, topics), "secret": secret}


def check_topics(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise InvalidValue(f"'events' must be a non-empty list of: {', '.join(TOPICS)}")
    unknown = [t for t in raw if t not in TOPICS]
    if unknown:
        raise InvalidValue(f"unknown event type {unknown[0][:100]!r}; "
                           f"known types: {', '.join(TOPICS)}")
    return list(dict.fromkeys(raw))


def list_webhooks(db: Session, tenant_id: int) -> dict[str, Any]:
    receivers = list(db.scalars(
        select(Receiver).where(Receiver.tenant_id == tenant_id, Receiver.kind == KIND)
        .order_by(Receiver.created_at, Receiver.id)
    ))
    topics = _topics(db, [r.id for r in receivers])
    return {"webhooks": [_shown(r, topics.get(r.id, [])) for r in receivers]}


def get_webhook(db: Session, tenant_id: int, webhook_id: str) -> dict[str, Any]:
    receiver = _mine(db, tenant_id, webhook_id)
    return _shown(receiver, _topics(db, [receiver.id]).get(receiver.id, []))


def rotate_secret(db: Session, tenant_id: int, webhook_id: str, settings: Settings
                  ) -> dict[str, Any]:
    """A new secret for the endpoint, shown once in the answer; the current one keeps signing
    beside it until ``retiring_until`` (then only the new one signs)."""
    receiver = _mine(db, tenant_id, webhook_id, lock=True)
    secret = new_secret()
    now = settings.clock()
    until = now + dt.timedelta(seconds=settings.webhook_secret_grace)
    receiver.config = json.dumps(rotated_config(json.loads(receiver.config or "{}"), secret,
                                                now, until))
    db.flush()
    return {**_shown(receiver, _topics(db, [receiver.id]).get(receiver.id, [])),
            "secret": secret, "previous_secret_until": iso(until)}


def delete_webhook(db: Session, tenant_id: int, webhook_id: str) -> None:
    """Remove the endpoint with its subscriptions and deliveries (nothing more is sent)."""
    receiver = _mine(db, tenant_id, webhook_id)
    db.execute(delete(Receiver).where(Receiver.id == receiver.id))
    db.expunge(receiver)


def _mine(db: Session, tenant_id: int, webhook_id: str, lock: bool = False) -> Receiver:
    query = select(Receiver).where(
        Receiver.id == webhook_id, Receiver.tenant_id == tenant_id, Receiver.kind == KIND)
    receiver = db.scalar(query.with_for_update() if lock else query)
    if receiver is None:
        raise NotFound(f"no webhook with id '{webhook_id[:100]}'")
    return receiver


def _topics(db: Session, receiver_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if receiver_ids:
        for receiver_id, topic in db.execute(
            select(ReceiverEventType.receiver_id, ReceiverEventType.event_type)
            .where(ReceiverEventType.receiver_id.in_(receiver_ids))
        ):
            found.setdefault(receiver_id, []).append(topic)
    order = {t: i for i, t in enumerate(TOPICS)}
    return {rid: sorted(ts, key=lambda t: order.get(t, len(order))) for rid, ts in found.items()}


def _shown(receiver: Receiver, topics: list[str]) -> dict[str, Any]:
    """A webhook as the API shows it: never its secret."""
    return {"id": receiver.id, "url": receiver.url, "events": topics, "state": receiver.state,
            "created_at": iso(receiver.created_at)}
