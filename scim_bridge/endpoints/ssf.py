"""The OpenID SSF 1.0 transmitter's HTTP surface: ``/.well-known/ssf-configuration`` (§7),
stream management under ``/api/v1/ssf`` (§8; token scope ``ssf``, the token's tenant) and each
poll stream's RFC 8936 endpoint ``/api/v1/ssf/poll/<stream_id>`` (services/streams.py).

A long poll (``returnImmediately`` false, RFC 8936's default) waits at most
``ssf_long_poll_seconds`` for a SET, woken by this process's commits that add deliveries and
looking again every second for other instances'; it holds no transaction while it waits.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, abort, g, jsonify, request

from ..auth import Principal, authenticate
from ..observability import request_id
from ..revocation.jose import EVENT_ALGORITHM, SESSION_ALGORITHM
from ..services import streams
from .context import base_url, bridge, json_body, settings
from .transaction import db, finish_transaction

bp = Blueprint("ssf", __name__)

_API = "/api/v1/ssf"
#: Seconds a long poll sleeps at most before it looks again (other instances' commits).
_LOOK_AGAIN = 1.0


def caller_of(principal: Principal) -> streams.Caller:
    return streams.Caller(
        tenant_id=principal.tenant_id, tenant_name=principal.tenant_name,
        token_name=principal.token_name, issuer=_issuer(), base=base_url(),
        min_verification_interval=settings().ssf_min_verification_interval)


def _issuer() -> str:
    return bridge().keys.issuer(db()) or base_url()


def _caller() -> streams.Caller:
    principal = authenticate(db(), request.headers.get("Authorization"), "ssf")
    g.principal = principal
    return caller_of(principal)


def _actor() -> str:
    return f"ssf:{g.principal.token_name}"


@bp.get("/.well-known/ssf-configuration")
@bp.get("/.well-known/ssf-configuration/<path:issuer_path>")
def configuration(issuer_path: str | None = None) -> Response:
    """§7.2: the metadata, at the issuer's path inserted after the well-known prefix."""
    issuer = _issuer()
    path = issuer.split("://", 1)[-1].partition("/")[2].strip("/")
    if (issuer_path or "").strip("/") != path:
        abort(404)
    return jsonify(streams.configuration(issuer, base_url()))


@bp.post(f"{_API}/streams")
def create_stream() -> tuple[Response, int]:
    caller = _caller()
    return jsonify(streams.create_stream(db(), caller, json_body())), 201


@bp.get(f"{_API}/streams")
def read_streams() -> Response:
    caller = _caller()
    return jsonify(streams.read_streams(db(), caller, request.args.get("stream_id")))


@bp.patch(f"{_API}/streams")
def update_stream() -> Response:
    caller = _caller()
    return jsonify(streams.update_stream(db(), caller, json_body(), replace=False))


@bp.put(f"{_API}/streams")
def replace_stream() -> Response:
    caller = _caller()
    return jsonify(streams.update_stream(db(), caller, json_body(), replace=True))


@bp.delete(f"{_API}/streams")
def delete_stream() -> Response:
    caller = _caller()
    streams.delete_stream(db(), caller, request.args.get("stream_id"))
    return Response(status=204)


@bp.get(f"{_API}/status")
def read_status() -> Response:
    caller = _caller()
    return jsonify(streams.get_status(db(), caller, request.args.get("stream_id")))


@bp.post(f"{_API}/status")
def update_status() -> Response:
    caller = _caller()
    return jsonify(streams.set_status(db(), caller, json_body(), now=settings().clock(),
                                      txn=request_id(), actor=_actor()))


@bp.post(f"{_API}/subjects/add")
def add_subject() -> Response:
    caller = _caller()
    streams.add_subject(db(), caller, json_body())
    return Response(status=200)


@bp.post(f"{_API}/subjects/remove")
def remove_subject() -> Response:
    caller = _caller()
    streams.remove_subject(db(), caller, json_body(), now=settings().clock())
    return Response(status=204)


@bp.post(f"{_API}/verify")
def verify() -> Response:
    caller = _caller()
    streams.request_verification(db(), caller, json_body(), now=settings().clock(),
                                 txn=request_id(), actor=_actor())
    return Response(status=204)


@bp.post(f"{_API}/poll/<stream_id>")
def poll(stream_id: str) -> Response:
    """RFC 8936 §2: acknowledge, then answer the unacknowledged SETs (waiting for one when
    the receiver long-polls)."""
    keys = bridge().keys
    for algorithm in (EVENT_ALGORITHM, SESSION_ALGORITHM):  # a stream may sign with either
        keys.prepare(algorithm)  # before the writing transaction (SQLite has one writer)
    caller = _caller()
    asked = streams.poll_request(json_body())
    streams.acknowledge(db(), caller, stream_id, asked, settings().clock(), caller.issuer)
    deadline = time.monotonic() + settings().ssf_long_poll_seconds
    bell = bridge().poll_bell
    while True:
        mark = bell.mark() if bell is not None else 0
        sets, more = streams.available(db(), caller, stream_id, asked.max_events, keys,
                                       caller.issuer, int(time.time()))
        left = deadline - time.monotonic()
        if sets or asked.return_immediately or asked.max_events == 0 or left <= 0:
            return jsonify({"sets": sets, "moreAvailable": more})
        finish_transaction(True)  # commit the acknowledgements; hold nothing while waiting
        if bell is not None:
            bell.wait(mark, min(_LOOK_AGAIN, left))
        else:
            time.sleep(min(_LOOK_AGAIN, left))
