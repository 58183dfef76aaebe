"""The admin API under ``/api/v1/admin`` (token scope ``admin``): users with their groups and
live sessions, force logout, the event log with each event's deliveries, dead-letter replay,
webhook endpoints and the SCIM request log, all in the token's tenant.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from ..auth import authenticate
from ..observability import request_id
from ..services import Actor, admin, audit, deliveries, webhooks
from .context import bridge, json_body, settings
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
    return jsonify(webhooks.create_webhook(db(), g.actor.tenant_id, json_body())), 201


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


@bp.get("/requests")
def list_requests() -> Response:
    return jsonify(audit.list_requests(db(), g.actor.tenant_id, request.args, _max()))


