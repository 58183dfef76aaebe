"""Webhook endpoints of a tenant: register (the secret is shown once), list, read, remove.

A URL is any absolute ``http``/``https`` URL; loopback and private addresses are accepted,
since the app's services are usually internal. ``events`` are topics (events/topics.py); left
out, the endpoint gets every topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import InvalidValue, NotFound
from ..events.topics import TOPICS
from ..events.webhooks import KIND, new_secret
from ..models import Receiver, ReceiverEventType
from ..scim.formats import iso

_URL_LENGTH = 2048


def create_webhook(db: Session, tenant_id: int, body: Any) -> dict[str, Any]:
    """Register an endpoint; the answer is the only place its secret ever appears."""
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object with 'url' and 'events'")
    url = check_url(body.get("url"))
    topics = check_topics(body.get("events", list(TOPICS)))
    secret = new_secret()
    receiver = Receiver(tenant_id=tenant_id, kind=KIND, url=url,
                        config=json.dumps({"secrets": [secret]}))
    db.add(receiver)
    db.flush()
    db.add_all(ReceiverEventType(receiver_id=receiver.id, event_type=t) for t in topics)
    db.flush()
    return {**_shown(receiver, topics), "secret": secret}


def check_url(raw: Any) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidValue("'url' must be an http or https URL")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidValue(f"'url' is not a valid URL: {raw[:200]!r}") from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment
            or parts.username is not None or len(raw) > _URL_LENGTH
            or any(c.isspace() or ord(c) < 32 for c in raw)):
        raise InvalidValue(f"'url' must be an absolute http or https URL without credentials "
                           f"or fragment, at most {_URL_LENGTH} characters: {raw[:200]!r}")
    return raw


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


def delete_webhook(db: Session, tenant_id: int, webhook_id: str) -> None:
    """Remove the endpoint with its subscriptions and deliveries (nothing more is sent)."""
    receiver = _mine(db, tenant_id, webhook_id)
    db.execute(delete(Receiver).where(Receiver.id == receiver.id))
    db.expunge(receiver)


def _mine(db: Session, tenant_id: int, webhook_id: str) -> Receiver:
    receiver = db.scalar(select(Receiver).where(
        Receiver.id == webhook_id, Receiver.tenant_id == tenant_id, Receiver.kind == KIND))
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
