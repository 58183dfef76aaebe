"""SSF 1.0 streams of a tenant (§8): create, read, update, replace, delete, status, subjects,
verification, and the RFC 8936 poll of a poll stream.

A stream is a receiver (events/ssf.py) whose ``config`` holds the stream configuration:
``aud`` (transmitter-supplied: the receiver may propose it at creation, else the ``ssf``
token's name; never changed afterwards), ``description``, ``events_requested``,
``events_delivered`` (supported ∩ requested; every supported event when nothing was
requested), ``delivery`` (push: the receiver's ``endpoint_url`` and optional
``authorization_header``; poll: the transmitter's own ``endpoint_url``, one per stream),
``format`` (how users are named: ``iss_sub`` by default, ``email``, or ``complex`` with the
user, session and tenant), ``alg`` (RS256 by default, or ES256), and the status ``reason``.
Subscriptions are the receiver's topics, so a stream gets every event of its tenant that it
asked for (``default_subjects`` ALL), but those of the users it removed (§8.1.3, kept apart from
the configuration: services/stream_subjects.py).

Status (§8.1.2): ``enabled`` delivers; ``paused`` holds everything (verification included) and
releases it in order when enabled; ``disabled`` delivers nothing and keeps nothing (disabling
drops what was held). When the transmitter's operator changes a status (not the receiver), a
stream-updated SET tells the receiver, sent even while the stream is stopped.

Bad input is a 400 that changes nothing; another tenant's stream is not found.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..errors import InvalidValue, NotFound, TooManyRequests
from ..events import outbox, ssf
from ..events.outbox import Signer
from ..events.record import DELIVERIES_ADDED
from ..events.sets import STREAM_STATUSES, SUBJECT_FORMATS
from ..events.subjects import named_user
from ..events.urls import check_url_syntax
from ..models import Delivery, Event, Receiver, ReceiverEventType
from . import stream_subjects

__all__ = [
    "Caller", "PollRequest", "acknowledge", "add_subject", "available", "configuration",
    "create_stream", "delete_stream", "get_status", "poll_request", "read_streams",
    "remove_subject", "request_verification", "set_status", "update_stream",
]

#: Receiver-supplied members of a stream configuration (§8.1.1).
_RECEIVER_SUPPLIED = ("events_requested", "delivery", "description", "format", "alg")
#: Transmitter-supplied members: present in an update, they must equal the stream's values.
_TRANSMITTER_SUPPLIED = ("stream_id", "iss", "aud", "events_supported", "events_delivered",
                         "min_verification_interval")
_DESCRIPTION_LENGTH = 1000
_HEADER_LENGTH = 4096
_STATE_LENGTH = 1000
#: SETs one poll answers at most when the receiver sets no ``maxEvents``.
_POLL_MOST = 1000


@dataclass(frozen=True)
class Caller:
    """Who manages streams: the ``ssf`` token's tenant and name, the transmitter's
    ``issuer``, the externally visible ``base`` URL (of the poll endpoints), and this
    deployment's ``min_verification_interval``."""

    tenant_id: int
    tenant_name: str
    token_name: str
    issuer: str
    base: str
    min_verification_interval: int


def configuration(issuer: str, base: str) -> dict[str, Any]:
    """The transmitter configuration metadata (§7.1): no empty arrays (§7.2.3)."""
    api = f"{base}/api/v1/ssf"
    return {
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "delivery_methods_supported": list(ssf.DELIVERY_METHODS),
        "configuration_endpoint": f"{api}/streams",
        "status_endpoint": f"{api}/status",
        "add_subject_endpoint": f"{api}/subjects/add",
        "remove_subject_endpoint": f"{api}/subjects/remove",
        "verification_endpoint": f"{api}/verify",
        # OAuth 2.0 bearer tokens (RFC 6749 as the CAEP interoperability profile requires it
        # named, used as RFC 6750 says): the ssf-scope token in an Authorization header.
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"},
                                  {"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": "ALL",
    }


def poll_url(base: str, stream_id: str) -> str:
    return f"{base}/api/v1/ssf/poll/{stream_id}"


# --- configuration ---------------------------------------------------------------------


def create_stream(db: Session, caller: Caller, body: Any) -> dict[str, Any]:
    """§8.1.1.1: a new stream, enabled; without ``delivery`` a poll stream."""
    body = _object(body)
    _known(body, (*_RECEIVER_SUPPLIED, "aud"))
    config: dict[str, Any] = {"aud": _audience(body.get("aud", caller.token_name)),
                              "tenant": caller.tenant_name}
    _receiver_supplied(config, body, replace=True)
    receiver = Receiver(tenant_id=caller.tenant_id, kind=ssf.POLL_KIND, state="enabled")
    db.add(receiver)
    db.flush()
    _store(db, receiver, config, caller)
    return _shown(receiver, config, caller)


def read_streams(db: Session, caller: Caller, stream_id: str | None) -> Any:
    """§8.1.1.2: one stream (``stream_id``) or every stream of the tenant, as a list."""
    if stream_id is not None:
        receiver = _mine(db, caller, stream_id)
        return _shown(receiver, _config(receiver), caller)
    receivers = db.scalars(select(Receiver).where(
        Receiver.tenant_id == caller.tenant_id, Receiver.kind.in_(ssf.KINDS))
        .order_by(Receiver.created_at, Receiver.id))
    return [_shown(r, _config(r), caller) for r in receivers]


def update_stream(db: Session, caller: Caller, body: Any, *, replace: bool) -> dict[str, Any]:
    """§8.1.1.3 (PATCH: members present change, absent ones stay) and §8.1.1.4 (PUT: the
    receiver-supplied members absent are removed). Transmitter-supplied members may be sent
    but must equal the stream's."""
    body = _object(body)
    receiver = _mine(db, caller, _stream_id(body))
    _known(body, (*_RECEIVER_SUPPLIED, *_TRANSMITTER_SUPPLIED))
    config = _config(receiver)
    current = _shown(receiver, config, caller)
    for name in _TRANSMITTER_SUPPLIED:
        if name in body and body[name] != current[name]:
            raise InvalidValue(f"'{name}' is set by the transmitter and cannot be changed; "
                               f"it is {json.dumps(current[name])[:200]}")
    _receiver_supplied(config, body, replace=replace)
    _store(db, receiver, config, caller)
    return _shown(receiver, config, caller)


def delete_stream(db: Session, caller: Caller, stream_id: str | None) -> None:
    """§8.1.1.5: the stream goes with its held deliveries; nothing more is sent."""
    receiver = _mine(db, caller, _required_id(stream_id))
    db.execute(delete(Receiver).where(Receiver.id == receiver.id))
    db.expunge(receiver)


# --- status ----------------------------------------------------------------------------


def get_status(db: Session, caller: Caller, stream_id: str | None) -> dict[str, Any]:
    receiver = _mine(db, caller, _required_id(stream_id))
    return _status(receiver, _config(receiver))


def set_status(db: Session, caller: Caller, body: Any, *, now: dt.datetime, txn: str,
               actor: str, by_transmitter: bool = False) -> dict[str, Any]:
    """§8.1.2.2. Disabling drops every held delivery; enabling wakes the worker for the
    held ones. ``by_transmitter`` (an operator, not the receiver) also sends stream-updated."""
    body = _object(body)
    receiver = _mine(db, caller, _stream_id(body))
    _known(body, ("stream_id", "status", "reason"))
    status = body.get("status")
    if status not in STREAM_STATUSES:
        raise InvalidValue(f"'status' must be one of: {', '.join(STREAM_STATUSES)}")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _STATE_LENGTH):
        raise InvalidValue(f"'reason' must be a string of at most {_STATE_LENGTH} characters")
    config = _config(receiver)
    changed = receiver.state != status
    if status == "disabled":
        db.execute(delete(Delivery).where(Delivery.receiver_id == receiver.id,
                                          Delivery.state.in_(outbox.OPEN)))
    elif status == "enabled" and changed:
        db.info[DELIVERIES_ADDED] = True  # the held rows are due now: wake the worker
    receiver.state = status
    config.pop("reason", None)
    if reason is not None:
        config["reason"] = reason
    receiver.config = json.dumps(config)
    if by_transmitter and changed:
        _add_stream_event(db, receiver, ssf.STREAM_UPDATED_EVENT, ssf.STREAM_UPDATED_TOPIC,
                          {"status": status, "reason": reason}, now=now, txn=txn, actor=actor,
                          subject="")
    db.flush()
    return _status(receiver, config)


def _status(receiver: Receiver, config: Mapping[str, Any]) -> dict[str, Any]:
    shown = {"stream_id": receiver.id, "status": receiver.state}
    if config.get("reason") is not None:
        shown["reason"] = config["reason"]
    return shown


# --- subjects and verification ---------------------------------------------------------


def add_subject(db: Session, caller: Caller, body: Any) -> None:
    """§8.1.3.2: the stream receives the subject's events again, if it had removed them
    (every stream receives every subject of its tenant otherwise: ``default_subjects`` ALL).
    A subject naming no user of the tenant changes nothing, silently (§9.1)."""
    receiver, users = _subject_request(db, caller, body, ("stream_id", "subject", "verified"))
    if "verified" in body and not isinstance(body["verified"], bool):
        raise InvalidValue("'verified' must be true or false")
    stream_subjects.restore(db, receiver.id, users)


def remove_subject(db: Session, caller: Caller, body: Any, *, now: dt.datetime) -> None:
    """§8.1.3.3: the stream receives none of the subject's events from now until it adds
    the subject again. A subject naming no user of the tenant changes nothing, silently."""
    receiver, users = _subject_request(db, caller, body, ("stream_id", "subject"))
    stream_subjects.remove(db, receiver.id, users, now)


def _subject_request(db: Session, caller: Caller, body: Any, members: tuple[str, ...]
                     ) -> tuple[Receiver, list[str]]:
    """The stream and the ids of the users the request's ``subject`` names."""
    body = _object(body)
    receiver = _mine(db, caller, _stream_id(body))
    _known(body, members)
    named = named_user(body.get("subject"), issuer=caller.issuer, tenant=caller.tenant_name)
    return receiver, stream_subjects.users_named(db, caller.tenant_id, named)


def request_verification(db: Session, caller: Caller, body: Any, *, now: dt.datetime,
                         txn: str, actor: str) -> None:
    """§8.1.4.2: queue a verification SET echoing ``state``; 429 when the stream asked less
    than ``min_verification_interval`` seconds ago. A paused stream holds it; a disabled one
    drops it."""
    body = _object(body)
    receiver = _mine(db, caller, _stream_id(body))
    _known(body, ("stream_id", "state"))
    state = body.get("state")
    if state is not None and (not isinstance(state, str) or len(state) > _STATE_LENGTH):
        raise InvalidValue(f"'state' must be a string of at most {_STATE_LENGTH} characters")
    config = _config(receiver)
    last = config.get("verified_at")
    wait = caller.min_verification_interval
    if last is not None and now.timestamp() - last < wait:
        left = max(1, int(last + wait - now.timestamp() + 0.999))
        raise TooManyRequests(f"verification was requested less than {wait} seconds ago "
                              f"(min_verification_interval)", retry_after=left)
    config["verified_at"] = now.timestamp()
    receiver.config = json.dumps(config)
    if receiver.state != "disabled":
        detail = {"state": state} if state is not None else {}
        _add_stream_event(db, receiver, ssf.VERIFICATION_EVENT, ssf.VERIFICATION_TOPIC, detail,
                          now=now, txn=txn, actor=actor, subject=receiver.id)
    db.flush()


def _add_stream_event(db: Session, receiver: Receiver, event_type: str, topic: str,
                      detail: dict[str, Any], *, now: dt.datetime, txn: str, actor: str,
                      subject: str) -> None:
    """One event of the stream itself, and its one delivery, in the caller's transaction."""
    event = Event(tenant_id=receiver.tenant_id, type=event_type, actor=actor,
                  detail=json.dumps({"stream_id": receiver.id, **detail}), session_ids=[],
                  occurred_at=now, txn=txn)
    db.add(event)
    db.flush()
    db.add(Delivery(event_id=event.id, receiver_id=receiver.id, topic=topic, subject=subject,
                    state=outbox.PENDING, attempts=0, next_attempt_at=now, created_at=now))
    db.info[DELIVERIES_ADDED] = True


# --- poll (RFC 8936) -------------------------------------------------------------------


@dataclass(frozen=True)
class PollRequest:
    ack: list[str]
    errors: dict[str, Mapping[str, Any]]
    max_events: int | None
    return_immediately: bool


def poll_request(body: Any) -> PollRequest:
    """The members of a poll request (RFC 8936 §2.1), checked; unknown members ignored."""
    body = _object(body)
    ack = body.get("ack", [])
    if not isinstance(ack, list) or not all(isinstance(j, str) for j in ack):
        raise InvalidValue("'ack' must be a list of jti strings")
    errors = body.get("setErrs", {})
    if not isinstance(errors, Mapping) or not all(
            isinstance(e, Mapping) and isinstance(e.get("err"), str) for e in errors.values()):
        raise InvalidValue("'setErrs' must map each jti to an object with 'err'")
    most = body.get("maxEvents")
    if most is not None and (type(most) is not int or most < 0):
        raise InvalidValue("'maxEvents' must be a whole number of 0 or more")
    immediately = body.get("returnImmediately", False)
    if not isinstance(immediately, bool):
        raise InvalidValue("'returnImmediately' must be true or false")
    return PollRequest(list(ack), dict(errors), most, immediately)


def poll_stream(db: Session, caller: Caller, stream_id: str) -> Receiver:
    receiver = _mine(db, caller, stream_id)
    if receiver.kind != ssf.POLL_KIND:
        raise NotFound(f"stream '{stream_id[:100]}' is a push stream; it has no poll endpoint")
    return receiver


def acknowledge(db: Session, caller: Caller, stream_id: str, request: PollRequest,
                now: dt.datetime, signer_issuer: str) -> None:
    """Release the acknowledged SETs (and those the receiver reported errors for): a row
    whose SETs are all answered is delivered, or dead if any had an error."""
    receiver = poll_stream(db, caller, stream_id)
    answered: dict[int, dict[str, str | None]] = {}
    for jti in request.ack:
        answered.setdefault(_row_of(jti), {})[jti] = None
    for jti, error in request.errors.items():
        err = f"{error.get('err')}: {error.get('description', '')}".strip(": ")
        answered.setdefault(_row_of(jti), {})[jti] = f"receiver reported {err}"[:500]
    answered.pop(-1, None)
    if not answered:
        return
    rows = db.execute(select(Delivery, Event).join(Event, Event.id == Delivery.event_id).where(
        Delivery.receiver_id == receiver.id, Delivery.id.in_(answered),
        Delivery.state.in_(outbox.OPEN)))
    config = _config(receiver)
    for delivery, event in rows:
        jtis = [c["jti"] for c in ssf.claims_for(delivery.id, delivery.topic, event,
                                                  receiver.id, config, signer_issuer, 0)]
        mine = answered[delivery.id]
        acked = [j for j in dict.fromkeys([*(delivery.acked or []), *mine]) if j in jtis]
        errors = [e for j, e in mine.items() if e is not None and j in jtis]
        values: dict[str, Any] = {"acked": acked}
        if errors:
            values["last_error"] = errors[-1]
        if set(acked) >= set(jtis):
            failed = errors or delivery.last_error
            values.update(state=outbox.DEAD if failed else outbox.DELIVERED, acked=None,
                          delivered_at=None if failed else now)
        db.execute(update(Delivery).where(Delivery.id == delivery.id).values(**values))


def _row_of(jti: str) -> int:
    number, dot, _ = jti.partition(".")
    return int(number) if dot and number.isascii() and number.isdigit() and len(number) < 10 \
        else -1


def available(db: Session, caller: Caller, stream_id: str, most: int | None, signer: Signer,
              issuer: str, issued_at: int) -> tuple[dict[str, str], bool]:
    """The unacknowledged SETs of a poll stream, oldest first, signed: (jti -> SET, whether
    more are waiting). A stopped stream has none but its stream-updated SETs."""
    receiver = poll_stream(db, caller, stream_id)
    limit = _POLL_MOST if most is None else min(most, _POLL_MOST)
    if limit == 0:
        return {}, False
    query = select(Delivery, Event).join(Event, Event.id == Delivery.event_id).where(
        Delivery.receiver_id == receiver.id, Delivery.state.in_(outbox.OPEN))
    if receiver.state != "enabled":
        query = query.where(Delivery.topic.in_(outbox.SENT_WHILE_STOPPED))
    config = _config(receiver)
    sets: dict[str, str] = {}
    for delivery, event in db.execute(query.order_by(Delivery.id).limit(limit + 1)):
        acked = set(delivery.acked or [])
        for claims in ssf.claims_for(delivery.id, delivery.topic, event, receiver.id, config,
                                     issuer, issued_at):
            if claims["jti"] in acked:
                continue
            if len(sets) == limit:
                return sets, True
            sets[claims["jti"]] = ssf.sign(signer, claims, config)
    return sets, False


# --- shared ----------------------------------------------------------------------------


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object")
    return body


def _known(body: Mapping[str, Any], names: tuple[str, ...]) -> None:
    unknown = [name for name in body if name not in names]
    if unknown:
        raise InvalidValue(f"unknown member '{unknown[0][:100]}'; known members: "
                           f"{', '.join(names)}")


def _stream_id(body: Mapping[str, Any]) -> str:
    return _required_id(body.get("stream_id"))


def _required_id(stream_id: Any) -> str:
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidValue("'stream_id' is required: the id of one of your streams")
    return stream_id


def _mine(db: Session, caller: Caller, stream_id: str) -> Receiver:
    receiver = db.scalar(select(Receiver).where(
        Receiver.id == stream_id[:64], Receiver.tenant_id == caller.tenant_id,
        Receiver.kind.in_(ssf.KINDS)))
    if receiver is None:
        raise NotFound(f"no stream with id '{stream_id[:100]}'")
    return receiver


def _config(receiver: Receiver) -> dict[str, Any]:
    return dict(json.loads(receiver.config or "{}"))


def _audience(raw: Any) -> str | list[str]:
    if isinstance(raw, str) and raw and len(raw) <= _URL_MOST:
        return raw
    if (isinstance(raw, list) and raw and len(raw) <= 10
            and all(isinstance(a, str) and a and len(a) <= _URL_MOST for a in raw)):
        return list(dict.fromkeys(raw))
    raise InvalidValue("'aud' must be a non-empty string or list of strings")


_URL_MOST = 2048


def _receiver_supplied(config: dict[str, Any], body: Mapping[str, Any], *, replace: bool
                       ) -> None:
    """Check every receiver-supplied member first, then apply them (nothing half-applied)."""
    checked: dict[str, Any] = {}
    if "description" in body:
        description = body["description"]
        if not isinstance(description, str) or len(description) > _DESCRIPTION_LENGTH:
            raise InvalidValue(f"'description' must be a string of at most "
                               f"{_DESCRIPTION_LENGTH} characters")
        checked["description"] = description
    if "events_requested" in body:
        requested = body["events_requested"]
        if not isinstance(requested, list) or not all(isinstance(e, str) for e in requested):
            raise InvalidValue("'events_requested' must be a list of event type URIs")
        checked["events_requested"] = list(dict.fromkeys(requested))
    if "format" in body:
        if body["format"] not in SUBJECT_FORMATS:
            raise InvalidValue(f"'format' must be one of: {', '.join(SUBJECT_FORMATS)}")
        checked["format"] = body["format"]
    if "alg" in body:
        if body["alg"] not in ssf.ALGORITHMS:
            raise InvalidValue(f"'alg' must be one of: {', '.join(ssf.ALGORITHMS)}")
        checked["alg"] = body["alg"]
    if "delivery" in body:
        checked["delivery"] = _delivery(body["delivery"], config.get("delivery"))
    for name in _RECEIVER_SUPPLIED:
        if name in checked:
            config[name] = checked[name]
        elif replace:
            config.pop(name, None)
    config.setdefault("delivery", {"method": ssf.POLL})
    requested = config.get("events_requested")
    config["events_delivered"] = [e for e in ssf.EVENTS_SUPPORTED
                                  if requested is None or e in requested]


def _delivery(raw: Any, current: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or raw.get("method") not in ssf.DELIVERY_METHODS:
        raise InvalidValue(f"'delivery' must be an object whose 'method' is one of: "
                           f"{', '.join(ssf.DELIVERY_METHODS)}")
    if raw["method"] == ssf.POLL:
        _known(raw, ("method", "endpoint_url"))
        if "endpoint_url" in raw and (current or {}).get("method") != ssf.POLL:
            raise InvalidValue("a poll stream's 'endpoint_url' is set by the transmitter")
        return {"method": ssf.POLL}
    _known(raw, ("method", "endpoint_url", "authorization_header"))
    # The SCIM_BRIDGE_RECEIVER_URLS rule applies before every send (events/worker.py).
    url = check_url_syntax(raw.get("endpoint_url"), "delivery.endpoint_url")
    delivery = {"method": ssf.PUSH, "endpoint_url": url}
    header = raw.get("authorization_header")
    if header is not None:
        if (not isinstance(header, str) or not header or len(header) > _HEADER_LENGTH
                or not header.isascii() or not header.isprintable()):
            raise InvalidValue(f"'delivery.authorization_header' must be printable ASCII of "
                               f"at most {_HEADER_LENGTH} characters")
        delivery["authorization_header"] = header
    return delivery


def _store(db: Session, receiver: Receiver, config: dict[str, Any], caller: Caller) -> None:
    """Write the configuration, the kind its delivery method picks, and the topics."""
    method = config["delivery"]["method"]
    receiver.kind = ssf.PUSH_KIND if method == ssf.PUSH else ssf.POLL_KIND
    receiver.url = config["delivery"].get("endpoint_url") if method == ssf.PUSH else None
    receiver.config = json.dumps(config)
    wanted = {ssf.TOPIC_OF_EVENT[e] for e in config["events_delivered"]
              if e in ssf.TOPIC_OF_EVENT}
    db.execute(delete(ReceiverEventType).where(ReceiverEventType.receiver_id == receiver.id))
    db.add_all(ReceiverEventType(receiver_id=receiver.id, event_type=t) for t in sorted(wanted))
    db.flush()


def _shown(receiver: Receiver, config: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
    """The stream configuration object (§8.1.1)."""
    delivery = dict(config.get("delivery", {"method": ssf.POLL}))
    if delivery["method"] == ssf.POLL:
        delivery["endpoint_url"] = poll_url(caller.base, receiver.id)
    shown: dict[str, Any] = {
        "stream_id": receiver.id,
        "iss": caller.issuer,
        "aud": config["aud"],
        "events_supported": list(ssf.EVENTS_SUPPORTED),
    }
    if "events_requested" in config:
        shown["events_requested"] = config["events_requested"]
    shown["events_delivered"] = config["events_delivered"]
    shown["delivery"] = delivery
    shown["min_verification_interval"] = caller.min_verification_interval
    if "description" in config:
        shown["description"] = config["description"]
    shown["format"] = config.get("format", ssf.DEFAULT_FORMAT)
    shown["alg"] = config.get("alg", ssf.ALGORITHMS[0])
    return shown
