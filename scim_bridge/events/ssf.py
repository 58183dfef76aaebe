"""OpenID SSF 1.0 streams on the outbox: which SETs one delivery row carries, the RFC 8935 push
sender, and the bell that wakes RFC 8936 long polls.

A stream is a receiver of kind ``ssf_stream`` (push: the worker sends its rows) or ``ssf_poll``
(poll: the receiver fetches its rows, which stay pending until it acknowledges them; the worker
never claims them, outbox.PULLED_KINDS). Its configuration is the receiver's ``config`` JSON
(services/streams.py writes it). A row becomes its SETs when it is sent or polled, never
stored signed: each SET's ``jti`` is ``"<delivery id>.<n>"``, so a retry, a replay or a second
poll repeats the same ``jti`` and the same claims (only ``iat`` moves on).

Push (RFC 8935 §2): ``POST`` of the compact SET alone, ``Content-Type: application/secevent+jwt``,
``Accept: application/json``, and ``Authorization`` exactly the stream's
``authorization_header``, absent when it has none. 2xx delivers; a 400 whose ``err`` says the
SET or the stream's configuration is wrong (``invalid_request``, ``invalid_issuer``,
``invalid_audience``, ``invalid_state``) dead-letters at once, as a retry would repeat it; any
other answer (``invalid_key``: a stale JWKS cache; ``authentication_failed``/``access_denied``:
the receiver may PATCH a new header) is retried under the outbox's policy, ``Retry-After``
honoured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker

from ..models import Event
from . import topics
from .outbox import Claimed, Outcome, Signer
from .record import DELIVERIES_ADDED
from .senders import dead, delivered, post, register, retry, retry_after, status_error
from .sets import (
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ACCOUNT_PURGED,
    SESSION_REVOKED,
    STREAM_UPDATED,
    TYP,
    VERIFICATION,
    Envelope,
    sets_for_event,
    stream_updated,
    verification,
)

if TYPE_CHECKING:
    import httpx

PUSH_KIND = "ssf_stream"
POLL_KIND = "ssf_poll"
KINDS = (PUSH_KIND, POLL_KIND)
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)

#: The outbox topic of each CAEP/RISC event a stream can ask for (events/topics.py).
TOPIC_OF_EVENT = {
    SESSION_REVOKED: topics.SESSION_REVOKED,
    ACCOUNT_DISABLED: topics.USER_DEACTIVATED,
    ACCOUNT_PURGED: topics.USER_DELETED,
    ACCOUNT_ENABLED: topics.USER_REACTIVATED,
}
#: Topics of the stream's own events; outbox.SENT_WHILE_STOPPED names the second.
VERIFICATION_TOPIC = "ssf.verification"
STREAM_UPDATED_TOPIC = "ssf.stream_updated"
#: What the transmitter can send (the stream's ``events_supported``): the SSF events go out
#: whatever a stream asked for (SSF 1.0 §8.1.4.1, §8.1.5).
EVENTS_SUPPORTED = (*TOPIC_OF_EVENT, VERIFICATION, STREAM_UPDATED)
#: Event types recorded for the stream's own events (their ``detail`` is JSON).
VERIFICATION_EVENT = "ssf_verification"
STREAM_UPDATED_EVENT = "ssf_stream_updated"
#: 400 ``err`` codes that say the SET or the stream is wrong: a retry would be refused alike.
PERMANENT_ERRORS = frozenset({"invalid_request", "invalid_issuer", "invalid_audience",
                              "invalid_state"})
CONTENT_TYPE = "application/secevent+jwt"
DEFAULT_FORMAT = "iss_sub"
#: How a stream's SETs may be signed: RS256 (the default: the CAEP interoperability profile and
#: the OpenID conformance suite accept nothing else) or ES256, both keys in the JWKS.
ALGORITHMS = ("RS256", "ES256")


def claims_for(delivery_id: int, topic: str, event: Event, stream_id: str,
               config: Mapping[str, Any], issuer: str, issued_at: int) -> list[dict[str, Any]]:
    """The claims of the SETs one delivery row carries to one stream, in order: a verification
    or stream-updated SET, or the stream's share of a recorded event's CAEP/RISC SETs."""
    audience = config["aud"]
    txn = event.txn or f"event-{event.id}"
    if topic in (VERIFICATION_TOPIC, STREAM_UPDATED_TOPIC):
        detail = json.loads(event.detail or "{}")
        envelope = Envelope(issuer, audience, f"{delivery_id}.0", txn, issued_at)
        if topic == VERIFICATION_TOPIC:
            return [verification(envelope, stream_id, detail.get("state"))]
        return [stream_updated(envelope, stream_id, detail["status"], detail.get("reason"))]
    wanted = [uri for uri, t in TOPIC_OF_EVENT.items() if t == topic]
    every = sets_for_event(event, issuer=issuer, audience=audience, jti=str(delivery_id),
                           txn=txn, issued_at=issued_at,
                           subject_format=config.get("format", DEFAULT_FORMAT),
                           email=event.user_email, tenant=config.get("tenant"))
    return [claims for claims in every if any(uri in claims["events"] for uri in wanted)]


def sign(signer: Signer, claims: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The compact SET, signed with the stream's algorithm."""
    return signer.sign_event(claims, alg=config.get("alg", ALGORITHMS[0]), typ=TYP)


def _judge(response: httpx.Response) -> Outcome:
    if 200 <= response.status_code < 300:
        return delivered()
    if response.status_code == 400:
        try:
            err = response.json().get("err")
        except (ValueError, AttributeError):
            err = None
        if err in PERMANENT_ERRORS:
            return dead(f"{status_error(response)} (the receiver refuses this SET: {err})")
    return retry(status_error(response), retry_after(response))


@register(PUSH_KIND)
def send(client: httpx.Client, claimed: Claimed) -> Outcome:
    """Push every SET of the row, in order; the first that fails decides the outcome (the
    whole row is retried: the receiver drops the SETs it has by ``jti``)."""
    issuer = claimed.signer.current_issuer() if claimed.signer is not None else None
    if claimed.signer is None or issuer is None:
        return retry("this worker has no signing key or issuer")
    config = json.loads(claimed.receiver.config or "{}")
    delivery = config.get("delivery", {})
    headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
    if delivery.get("authorization_header"):
        headers["Authorization"] = delivery["authorization_header"]
    outcome = delivered()
    for claims in claims_for(claimed.id, claimed.topic, claimed.event, claimed.receiver.id,
                             config, issuer, int(time.time())):
        token = sign(claimed.signer, claims, config)
        outcome = post(client, delivery.get("endpoint_url", ""), content=token.encode("ascii"),
                       headers=headers, judge=_judge)
        if outcome.result != "delivered":
            return outcome
    return outcome


class PollBell:
    """Wakes the long polls of this process when a transaction that added deliveries
    commits; a waiter also wakes on its own timeout, so other instances' commits are seen
    within ``tick`` seconds."""

    _FLAG = "scim_bridge.ssf_poll_bell"

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._changed = threading.Condition()
        self._rung = 0

        @sa_event.listens_for(sessions, "before_commit")
        def _noted(session: Session) -> None:
            if session.info.get(DELIVERIES_ADDED):
                session.info[self._FLAG] = True

        @sa_event.listens_for(sessions, "after_commit")
        def _ring(session: Session) -> None:
            if session.info.pop(self._FLAG, False):
                with self._changed:
                    self._rung += 1
                    self._changed.notify_all()

        @sa_event.listens_for(sessions, "after_rollback")
        def _forgotten(session: Session) -> None:
            session.info.pop(self._FLAG, None)

    def mark(self) -> int:
        """The bell's count now: take it before looking, then :meth:`wait` for a later one."""
        return self._rung

    def wait(self, since: int, seconds: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._rung != since, timeout=seconds)
