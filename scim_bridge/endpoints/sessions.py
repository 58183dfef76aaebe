"""The application's sessions API under ``/api/v1/sessions`` (token scope ``sessions``).

The sessions token serves every tenant. Introspection (RFC 7662) reads outside any transaction
(the caller's token and the session row, single statements), so it never queues behind SCIM
writers and reads committed state only. A session token whose signature this process verified
before costs one round trip: both rows are read together. Any other signature is checked only
once the caller has authenticated.
Every answer under this prefix, errors included, is ``Cache-Control: no-store``: it carries
a token or a token's state (RFC 6749 §5.1, RFC 7662 §2.2).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, g, jsonify, request

from ..auth import authenticate, bearer_token, hash_token, principal_from, principal_of, token_read
from ..errors import BadRequest, BridgeError, InvalidSyntax
from ..metrics import INTROSPECTIONS
from ..observability import request_id
from ..revocation import sessions
from ..scim.formats import iso
from ..storable import unstorable
from .context import base_url, bridge, json_body, settings, url_encoded_text
from .rate_limits import charge_token
from .transaction import Reader, db, read_together, reads

PREFIX = "/api/v1/sessions"
bp = Blueprint("sessions", __name__, url_prefix=PREFIX)


@bp.after_app_request
def _never_cached(response: Response) -> Response:
    """App-wide, so routing errors (404, 405) and 413s under the prefix get it too."""
    if request.path == PREFIX or request.path.startswith(f"{PREFIX}/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def _authenticate() -> None:
    if request.endpoint == "sessions.introspect" and request.method == "POST":
        return  # the view authenticates, reading the token with the session
    if request.endpoint == "sessions.create_session":
        bridge().keys.prepare()  # before this request's writing transaction begins
    g.principal = authenticate(db(), request.headers.get("Authorization"), "sessions")


@bp.post("")
def create_session() -> tuple[Response, int]:
    config = settings()
    wanted = sessions.parse_request(
        json_body(), default_ttl=config.default_session_ttl, max_ttl=config.max_session_ttl
    )
    issued = sessions.create_session(db(), bridge().keys, wanted, _issuer(db()), config.clock())
    user = issued.user
    return jsonify({
        "session_id": issued.row.id,
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": iso(issued.row.expires_at),
        "user": {"id": user.id, "userName": user.user_name,
                 "displayName": user.display_name, "active": user.is_active},
        "groups": [{"id": gid, "displayName": name} for gid, name in issued.groups],
        "tenant": issued.tenant_name,
        "client": issued.row.client,
    }), 201


@bp.post("/introspect")
def introspect() -> Response:
    """The caller authenticates here, not before the view: a token verified before is judged
    with one round trip that reads the caller's token and the session together."""
    digest = hash_token(bearer_token(request.headers.get("Authorization")))
    try:
        token = _token_parameter()
    except BridgeError:
        _authenticate_caller(digest)  # an unknown caller learns only that
        raise
    keys, now = bridge().keys, settings().clock()
    issuer = _issuer(reads())
    claims = keys.remembered(reads(), token, issuer, now)
    if claims is None:
        _authenticate_caller(digest)
        state = sessions.introspect(reads(), keys, token, issuer, now)
    else:
        caller, live = read_together(reads(), token_read(digest),
                                     sessions.live_session_read(claims))
        g.principal = principal_from(caller, digest, "sessions")
        charge_token()
        state = sessions.session_state(claims, live, now)
    INTROSPECTIONS.labels(result="active" if state["active"] else "inactive").inc()
    return jsonify(state)


def _authenticate_caller(digest: str) -> None:
    g.principal = principal_of(reads(), digest, "sessions")
    charge_token()


def _issuer(reader: Reader) -> str:
    """The deployment's issuer (cached by the key ring); the request's host only for an app
    that ``scim-bridge serve`` did not start and that has no ``SCIM_BRIDGE_PUBLIC_URL``."""
    return bridge().keys.issuer(reader) or base_url()


def _token_parameter() -> Any:
    """RFC 7662 §2.1: the form field ``token``; a JSON ``{"token": ...}`` is accepted too."""
    if request.mimetype == "application/x-www-form-urlencoded":
        form = request.get_data(cache=True)
        url_encoded_text(form, "the form")  # every name and value: UTF-8 as sent, without NUL
        try:
            fields = parse_qs(form.decode("utf-8", "replace"),
                              keep_blank_values=True, max_num_fields=20)
        except ValueError:
            raise BadRequest("the form has too many fields") from None
        token = next(iter(fields.get("token", [])), None)
    elif request.mimetype == "multipart/form-data":
        token = request.form.get("token")
    else:
        body = json_body()
        token = body.get("token") if isinstance(body, dict) else None
    if token is None:
        raise BadRequest("send the token as form field 'token' (or JSON {\"token\": \"...\"})")
    if not isinstance(token, str):
        raise BadRequest("'token' must be a string")
    problem = unstorable(token, "token")  # a form is not checked as a JSON body is
    if problem is not None:
        raise InvalidSyntax(problem)
    return token


@bp.delete("/<sid>")
def logout(sid: str) -> Response:
    sessions.logout(db(), sid, f"sessions:{g.principal.token_name}", request_id())
    return Response(status=204)


