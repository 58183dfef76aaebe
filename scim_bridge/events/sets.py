"""Security Event Tokens (RFC 8417) as SSF 1.0 §4 profiles them: the claims of the CAEP, RISC
and SSF events this bridge transmits, and which SETs one stored event produces.

Pure: plain values in, claims dictionaries out. Signing is the key ring's
(``KeyRing.sign_event(claims, alg=..., typ=TYP)``), so the one JOSE module signs every token.

Every SET has ``iss``, ``aud``, ``iat``, ``jti`` (the delivery's stable id, so a retry repeats
it), a string ``txn`` shared by the SETs of one cause, exactly one event, and a top-level
``sub_id`` (SSF §3.1); never ``sub`` or ``exp`` (§4.1.2, §4.1.7). CAEP and RISC events also
carry the same subject inside the event as ``subject``, which Okta's receiver requires and
§3.1.1 allows for those existing event types; the SSF stream events must not (§3.1.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import Any, Protocol

from .record import (
    FORCE_LOGOUT,
    GROUP_DELETED,
    LOGOUT,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    USER_DEACTIVATED,
    USER_DELETED,
    USER_REACTIVATED,
    USER_UPDATED,
)

__all__ = [
    "ACCOUNT_DISABLED", "ACCOUNT_ENABLED", "ACCOUNT_PURGED", "Envelope", "SESSION_REVOKED",
    "STREAM_UPDATED", "SUBJECT_FORMATS", "StoredEvent", "TYP", "VERIFICATION",
    "account_disabled", "account_enabled", "account_purged", "session_revoked",
    "sets_for_event", "stream_subject", "stream_updated", "user_subject", "verification",
]

#: The JOSE header ``typ`` of every SET (RFC 8417 §2.3, SSF §4.1.1).
TYP = "secevent+jwt"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
ACCOUNT_PURGED = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
ACCOUNT_ENABLED = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
STREAM_UPDATED = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"

#: How a stream may ask users to be named: RFC 9493 ``iss_sub`` (the default) or ``email``,
#: or SSF §3.3 ``complex`` with ``user``, ``session`` and ``tenant`` members.
SUBJECT_FORMATS = ("iss_sub", "email", "complex")
#: SSF §8.1.5 stream statuses.
STREAM_STATUSES = ("enabled", "paused", "disabled")
#: CAEP 1.0 §2 ``initiating_entity`` values.
INITIATING_ENTITIES = ("admin", "user", "policy", "system")


@dataclass(frozen=True)
class Envelope:
    """The claims every SET has: who sends it (``issuer``, the SSF metadata ``issuer``
    exactly), to whom (the stream's ``audience``, a string or a list), when (``issued_at``,
    POSIX seconds), and what ties it to its delivery (``jti``) and its cause (``txn``)."""

    issuer: str
    audience: str | Sequence[str]
    jti: str
    txn: str
    issued_at: int

    def claims(self) -> dict[str, Any]:
        audience = self.audience
        if not isinstance(audience, str):
            audience = list(audience)
            if not audience or not all(isinstance(one, str) and one for one in audience):
                raise ValueError("a SET's aud is a string or a non-empty list of strings")
        elif not audience:
            raise ValueError("a SET's aud must not be empty")
        if not (self.jti and isinstance(self.txn, str) and self.txn):
            raise ValueError("a SET needs a jti and a string txn")
        return {"iss": self.issuer, "aud": audience, "iat": int(self.issued_at),
                "jti": self.jti, "txn": self.txn}


def user_subject(
    issuer: str,
    user_id: str,
    *,
    subject_format: str = "iss_sub",
    email: str | None = None,
    tenant: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """A user as an RFC 9493 subject identifier (``iss_sub``, or ``email``), or as an
    SSF §3.3 complex subject of the user (``iss_sub``), the session and the tenant (both
    ``opaque``; absent members are wildcards). ``email`` without an address falls back to
    ``iss_sub`` (a deleted user's address may be gone), so the SET still names the user."""
    if subject_format not in SUBJECT_FORMATS:
        raise ValueError(f"subject format {subject_format!r} is not one of {SUBJECT_FORMATS}")
    user = {"format": "iss_sub", "iss": issuer, "sub": user_id}
    if subject_format == "email" and email:
        return {"format": "email", "email": email}
    if subject_format != "complex":
        return user
    subject: dict[str, Any] = {"format": "complex", "user": user}
    if session_id is not None:
        subject["session"] = {"format": "opaque", "id": session_id}
    if tenant is not None:
        subject["tenant"] = {"format": "opaque", "id": tenant}
    return subject


def stream_subject(stream_id: str) -> dict[str, str]:
    """The subject of the SSF stream events: the stream itself (SSF §8.1.4.1, §8.1.5)."""
    return {"format": "opaque", "id": stream_id}


def _set(envelope: Envelope, event_type: str, event: dict[str, Any], subject: dict[str, Any],
         *, subject_in_event: bool) -> dict[str, Any]:
    body = {**event, "subject": subject} if subject_in_event else event
    return {**envelope.claims(), "sub_id": subject, "events": {event_type: body}}


def session_revoked(
    envelope: Envelope,
    subject: dict[str, Any],
    *,
    revoked_at: int,
    initiating_entity: str,
    reason_admin: str,
    language: str = "en",
) -> dict[str, Any]:
    """CAEP 1.0 §3.1: one session ended. ``event_timestamp`` is the revocation time in whole
    seconds (Okta requires an integer); ``reason_admin`` a non-empty language-tagged object
    (CAEP interoperability profile §3.1)."""
    if initiating_entity not in INITIATING_ENTITIES:
        raise ValueError(f"initiating_entity {initiating_entity!r} is not one of "
                         f"{INITIATING_ENTITIES}")
    if not reason_admin:
        raise ValueError("session-revoked needs a reason_admin")
    event = {"event_timestamp": int(revoked_at), "initiating_entity": initiating_entity,
             "reason_admin": {language: reason_admin}}
    return _set(envelope, SESSION_REVOKED, event, subject, subject_in_event=True)


def account_disabled(envelope: Envelope, subject: dict[str, Any]) -> dict[str, Any]:
    """RISC 1.0 §2.3. No ``reason``: its only values (``hijacking``, ``bulk-account``) do not
    say "the IdP deactivated the account"."""
    return _set(envelope, ACCOUNT_DISABLED, {}, subject, subject_in_event=True)


def account_purged(envelope: Envelope, subject: dict[str, Any]) -> dict[str, Any]:
    """RISC 1.0 §2.2: the account was deleted for good."""
    return _set(envelope, ACCOUNT_PURGED, {}, subject, subject_in_event=True)


def account_enabled(envelope: Envelope, subject: dict[str, Any]) -> dict[str, Any]:
    """RISC 1.0 §2.4: a disabled account was enabled again."""
    return _set(envelope, ACCOUNT_ENABLED, {}, subject, subject_in_event=True)


def verification(envelope: Envelope, stream_id: str, state: str | None = None) -> dict[str, Any]:
    """SSF §8.1.4.1: echoes the receiver's ``state``; one the transmitter sends on its own
    has none."""
    event = {} if state is None else {"state": state}
    return _set(envelope, VERIFICATION, event, stream_subject(stream_id), subject_in_event=False)


def stream_updated(
    envelope: Envelope, stream_id: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    """SSF §8.1.5: the transmitter changed the stream's status itself."""
    if status not in STREAM_STATUSES:
        raise ValueError(f"stream status {status!r} is not one of {STREAM_STATUSES}")
    event: dict[str, Any] = {"status": status}
    if reason is not None:
        event["reason"] = reason
    return _set(envelope, STREAM_UPDATED, event, stream_subject(stream_id),
                subject_in_event=False)


class StoredEvent(Protocol):
    """What :func:`sets_for_event` reads of an event row (``models.Event``)."""

    type: str
    user_id: str | None
    group_name: str | None
    actor: str
    session_ids: list[str]
    occurred_at: dt.datetime


#: The RISC event an account change produces before its sessions' session-revoked SETs.
_ACCOUNT_EVENTS = {
    USER_DEACTIVATED: account_disabled,
    USER_DELETED: account_purged,
    USER_REACTIVATED: account_enabled,
}


def sets_for_event(
    event: StoredEvent,
    *,
    issuer: str,
    audience: str | Sequence[str],
    jti: str,
    txn: str,
    issued_at: int,
    subject_format: str = "iss_sub",
    email: str | None = None,
    tenant: str | None = None,
) -> list[dict[str, Any]]:
    """The SETs one stored event produces for one stream, in the order to deliver them: its
    RISC account event, if any, then one session-revoked per ended session. The ``n``-th
    SET's ``jti`` is ``f"{jti}.{n}"``: stable, as the event's sessions never change."""
    if event.user_id is None:  # a change to a group alone names no subject
        return []
    subject = partial(user_subject, issuer, event.user_id, subject_format=subject_format,
                      email=email, tenant=tenant)
    envelopes = (Envelope(issuer, audience, f"{jti}.{n}", txn, issued_at) for n in count())
    sets = []
    account = _ACCOUNT_EVENTS.get(event.type)
    if account is not None:
        sets.append(account(next(envelopes), subject()))
    entity, reason = _cause(event)
    revoked_at = int(event.occurred_at.timestamp())
    for session_id in event.session_ids:
        sets.append(session_revoked(next(envelopes), subject(session_id=session_id),
                                    revoked_at=revoked_at, initiating_entity=entity,
                                    reason_admin=reason))
    return sets


def _cause(event: StoredEvent) -> tuple[str, str]:
    """(``initiating_entity``, ``reason_admin`` text) of an event: a logout is the user's, a
    forced logout or an admin API change the admin's, an IdP's SCIM change policy."""
    group = f"'{event.group_name}'" if event.group_name else "a group"
    reasons = {
        LOGOUT: "signed out",
        FORCE_LOGOUT: "signed out by an administrator",
        MEMBER_REMOVED: f"removed from group {group}",
        MEMBER_ADDED: f"added to group {group}",
        GROUP_DELETED: f"group {group} was deleted",
        USER_DEACTIVATED: "account deactivated",
        USER_DELETED: "account deleted",
        USER_UPDATED: "account updated",
    }
    if event.type == LOGOUT:
        entity = "user"
    elif event.type == FORCE_LOGOUT or event.actor.startswith("admin:"):
        entity = "admin"
    elif event.actor.startswith("scim:"):
        entity = "policy"
    else:
        entity = "system"
    return entity, reasons.get(event.type, "access changed")
