"""The event feed ``GET /api/v1/events`` (token scope ``ssf`` or ``admin``, the token's tenant):
what a consumer that was down replays, from the cursor it kept (services/feed.py)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..auth import authenticate
from ..services import feed
from .transaction import db

bp = Blueprint("feed", __name__, url_prefix="/api/v1")


@bp.get("/events")
def read_events() -> Response:
    principal = authenticate(db(), request.headers.get("Authorization"), "ssf", "admin")
    return jsonify(feed.read_feed(db(), principal.tenant_id, request.args))
