"""Back-channel logout clients of a tenant (OpenID Connect Back-Channel Logout 1.0): register a
relying party's ``client_id`` with its ``backchannel_logout_uri``, list, read, remove.

A client is a receiver of kind ``logout_client`` subscribed to ``session.revoked``: every
session the bridge ends becomes one delivery to it, sending one logout token (events/logout.py).
A ``client_id`` is registered once per tenant (it is the tokens' ``aud``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidValue, NotFound
from ..events.logout import KIND
from ..events.topics import SESSION_REVOKED
from ..events.urls import check_receiver_url
from ..models import NAME_LENGTH, Receiver, ReceiverEventType
from ..scim.formats import iso
from ..settings import Settings


def create_logout_client(db: Session, tenant_id: int, body: Any, settings: Settings
                         ) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object with 'client_id' and "
                           "'backchannel_logout_uri'")
    unknown = sorted(set(body) - {"client_id", "backchannel_logout_uri"})
    if unknown:
        raise InvalidValue(f"unknown member {str(unknown[0])[:100]!r}; a logout client has "
                           "'client_id' and 'backchannel_logout_uri'")
    client_id = body.get("client_id")
    if (not isinstance(client_id, str) or not client_id.strip() or len(client_id) > NAME_LENGTH
            or any(ord(c) < 32 for c in client_id)):
        raise InvalidValue(f"'client_id' must be a non-empty string of at most {NAME_LENGTH} "
                           "printable characters")
    url = check_receiver_url(body.get("backchannel_logout_uri"), settings,
                             "backchannel_logout_uri")
    if db.scalar(select(Receiver.id).where(
            Receiver.tenant_id == tenant_id, Receiver.kind == KIND, Receiver.name == client_id)):
        raise Conflict(f"a logout client '{client_id[:100]}' is registered already")
    receiver = Receiver(tenant_id=tenant_id, kind=KIND, url=url, name=client_id)
    db.add(receiver)
    db.flush()
    db.add(ReceiverEventType(receiver_id=receiver.id, event_type=SESSION_REVOKED))
    db.flush()
    return _shown(receiver)


def list_logout_clients(db: Session, tenant_id: int) -> dict[str, Any]:
    receivers = db.scalars(
        select(Receiver).where(Receiver.tenant_id == tenant_id, Receiver.kind == KIND)
        .order_by(Receiver.created_at, Receiver.id)
    )
    return {"logout_clients": [_shown(r) for r in receivers]}


def get_logout_client(db: Session, tenant_id: int, client_ref: str) -> dict[str, Any]:
    return _shown(_mine(db, tenant_id, client_ref))


def delete_logout_client(db: Session, tenant_id: int, client_ref: str) -> None:
    """Remove the client with its pending deliveries (nothing more is sent to it)."""
    receiver = _mine(db, tenant_id, client_ref)
    db.execute(delete(Receiver).where(Receiver.id == receiver.id))
    db.expunge(receiver)


def _mine(db: Session, tenant_id: int, client_ref: str) -> Receiver:
    receiver = db.scalar(select(Receiver).where(
        Receiver.id == client_ref, Receiver.tenant_id == tenant_id, Receiver.kind == KIND))
    if receiver is None:
        raise NotFound(f"no logout client with id '{client_ref[:100]}'")
    return receiver


def _shown(receiver: Receiver) -> dict[str, Any]:
    return {"id": receiver.id, "client_id": receiver.name,
            "backchannel_logout_uri": receiver.url, "state": receiver.state,
            "created_at": iso(receiver.created_at)}
