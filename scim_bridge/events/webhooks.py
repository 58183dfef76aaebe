"""Signed webhooks in the Standard Webhooks convention: the payload ``{type, timestamp, data}``,
and the headers ``webhook-id`` (the delivery's id: the same on every retry and replay),
``webhook-timestamp`` (integer seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, space-separated, one per secret:
the current one, and during a rotation's grace period the previous one too).

A 2xx answer delivers; 410 Gone means the endpoint is gone and dead-letters at once; anything
else (3xx included: redirects are never followed) is retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from ..models import Event
from ..scim.formats import iso
from .outbox import Claimed, Outcome
from .senders import dead, delivered, post, register, retry, retry_after, status_error

if TYPE_CHECKING:
    import httpx

KIND = "webhook"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes; shown to the operator once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def rotated_config(config: dict[str, Any], secret: str, now: dt.datetime, until: dt.datetime
                   ) -> dict[str, Any]:
    """The receiver config after a rotation to ``secret``: the current secrets retire at
    ``until`` (epoch seconds in ``retiring``); retired ones whose time has passed are dropped."""
    kept = [r for r in config.get("retiring", []) if r["until"] > now.timestamp()]
    retiring = kept + [{"secret": old, "until": until.timestamp()}
                       for old in config.get("secrets", [])]
    return {**config, "secrets": [secret], "retiring": retiring}


def signing_secrets(config: dict[str, Any], now: float) -> list[str]:
    """The secrets that sign a delivery sent at ``now``: the current one(s) first, then each
    retiring one whose grace period has not ended."""
    return list(config.get("secrets", [])) + [
        r["secret"] for r in config.get("retiring", []) if r["until"] > now]


def message_id(delivery_id: int) -> str:
    return f"msg_{delivery_id}"


def payload(topic: str, event: Event) -> dict[str, Any]:
    """What the receiver reads: the topic, when it happened, and who did what to whom."""
    group = ({"id": event.group_id, "name": event.group_name}
             if event.group_id is not None else None)
    return {
        "type": topic,
        "timestamp": iso(event.occurred_at),
        "data": {
            "event_id": event.id,
            "user_id": event.user_id,
            "group": group,
            "session_ids": list(event.session_ids or []),
            "cause": {"type": event.type, "detail": event.detail},
            "actor": event.actor,
            "txn": event.txn,
        },
    }


def signature(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,`` entry per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    entries = []
    for secret in secrets_:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        entries.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(entries)


def _judge(response: httpx.Response) -> Outcome:
    if 200 <= response.status_code < 300:
        return delivered()
    if response.status_code == 410:
        return dead(f"{status_error(response)} (the endpoint is gone)")
    return retry(status_error(response), retry_after(response))


@register(KIND)
def send(client: httpx.Client, claimed: Claimed) -> Outcome:
    config = json.loads(claimed.receiver.config or "{}")
    body = json.dumps(payload(claimed.topic, claimed.event), separators=(",", ":")).encode()
    now = time.time()
    msg_id, timestamp = message_id(claimed.id), int(now)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(signing_secrets(config, now), msg_id, timestamp,
                                       body),
    }
    return post(client, claimed.receiver.url or "", content=body, headers=headers, judge=_judge)
