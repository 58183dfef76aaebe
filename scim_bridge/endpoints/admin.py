"""The admin API under ``/api/v1/admin`` (token scope ``admin``): users with their groups and
live sessions, force logout, the event log with each event's deliveries, dead-letter replay,
webhook endpoints (and their secret rotation), back-channel logout clients and the SCIM
request log, all in the token's tenant.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from ..auth import authenticate
from ..errors import InvalidValue
from ..observability import request_id
from ..services import (
    Actor,
    admin,
    audit,
    deliveries,
    logout_clients,
    streams,
    tokens,
    webhooks,
)
from .context import bridge, json_body, settings
from .ssf import caller_of
from .transaction import db

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")


@bp.before_request
def _authenticate() -> None:
    if request.endpoint == "admin_api.list_requests":
        # Before this request's snapshot starts, so it sees every request logged so far.
        bridge().request_log.flush()
    principal = authenticate(db(), request.headers.get("Authorization"), "admin")
    g.principal = principal
    g.actor = Actor(tenant_id=principal.tenant_id, name=f"admin:{principal.token_name}",
                    txn=request_id())


def _max() -> int:
    return settings().max_page_size


@bp.get("/users")
def list_users() -> Response:
    return jsonify(admin.list_users(db(), g.actor.tenant_id, request.args, _max()))


@bp.get("/users/<user_id>/sessions")
def user_sessions(user_id: str) -> Response:
    return jsonify(admin.user_sessions(db(), g.actor.tenant_id, user_id, request.args, _max()))


@bp.get("/users/<user_id>/history")
def user_history(user_id: str) -> Response:
    return jsonify(audit.user_history(db(), g.actor.tenant_id, user_id, request.args, _max()))


@bp.post("/users/<user_id>/force-logout")
def force_logout_user(user_id: str) -> Response:
    revoked = admin.force_logout_user(db(), g.actor, user_id)
    return jsonify({"user_id": user_id, "revoked_sessions": revoked})


@bp.post("/force-logout")
def bulk_logout() -> Response:
    return jsonify(admin.bulk_logout(db(), g.actor, json_body()))


@bp.get("/events")
def list_events() -> Response:
    listing = audit.list_events(db(), g.actor.tenant_id, request.args, _max())
    deliveries.attach(db(), listing["events"])
    return jsonify(listing)


@bp.post("/events/<event_id>/replay")
def replay_event(event_id: str) -> Response:
    return jsonify(deliveries.replay_event(db(), g.actor.tenant_id, event_id))


@bp.post("/deliveries/replay")
def replay_deliveries() -> Response:
    return jsonify(deliveries.replay_all(db(), g.actor.tenant_id, json_body()))


@bp.post("/webhooks")
def create_webhook() -> tuple[Response, int]:
    return jsonify(webhooks.create_webhook(db(), g.actor.tenant_id, json_body(),
                                           settings())), 201


@bp.get("/webhooks")
def list_webhooks() -> Response:
    return jsonify(webhooks.list_webhooks(db(), g.actor.tenant_id))


@bp.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    return jsonify(webhooks.get_webhook(db(), g.actor.tenant_id, webhook_id))


@bp.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> tuple[str, int]:
    webhooks.delete_webhook(db(), g.actor.tenant_id, webhook_id)
    return "", 204


@bp.post("/webhooks/<webhook_id>/rotate-secret")
def rotate_webhook_secret(webhook_id: str) -> Response:
    return jsonify(webhooks.rotate_secret(db(), g.actor.tenant_id, webhook_id, settings()))


@bp.post("/logout-clients")
def create_logout_client() -> tuple[Response, int]:
    return jsonify(logout_clients.create_logout_client(
        db(), g.actor.tenant_id, json_body(), settings())), 201


@bp.get("/logout-clients")
def list_logout_clients() -> Response:
    return jsonify(logout_clients.list_logout_clients(db(), g.actor.tenant_id))


@bp.get("/logout-clients/<logout_client_id>")
def get_logout_client(logout_client_id: str) -> Response:
    return jsonify(logout_clients.get_logout_client(db(), g.actor.tenant_id, logout_client_id))


@bp.delete("/logout-clients/<logout_client_id>")
def delete_logout_client(logout_client_id: str) -> tuple[str, int]:
    logout_clients.delete_logout_client(db(), g.actor.tenant_id, logout_client_id)
    return "", 204


@bp.get("/requests")
def list_requests() -> Response:
    return jsonify(audit.list_requests(db(), g.actor.tenant_id, request.args, _max()))




@bp.get("/tokens")
def list_tokens() -> Response:
    return jsonify({"tokens": tokens.tenant_tokens(db(), g.actor.tenant_id)})


@bp.post("/tokens")
def create_token() -> tuple[Response, int]:
    return jsonify(tokens.mint_tenant_token(db(), g.principal.tenant_name, json_body())), 201


@bp.delete("/tokens/<name>")
def revoke_token(name: str) -> Response:
    allow_self = request.args.get("self", "false").strip().lower()
    if allow_self not in ("true", "false"):
        raise InvalidValue("'self' must be 'true' or 'false'")
    return jsonify(tokens.revoke_tenant_token(
        db(), g.principal.tenant_name, name,
        current=g.principal.token_name, allow_self=allow_self == "true",
    ))


@bp.post("/streams/<stream_id>/status")
def set_stream_status(stream_id: str) -> Response:
    """The transmitter's operator pauses, disables or enables an SSF stream: unlike the
    receiver's own status change, the stream is sent a stream-updated SET (SSF 1.0 §8.1.5)."""
    body = json_body()
    if isinstance(body, dict):
        body = {**body, "stream_id": stream_id}
    return jsonify(streams.set_status(db(), caller_of(g.principal), body,
                                      now=settings().clock(), txn=g.actor.txn,
                                      actor=g.actor.name, by_transmitter=True))
