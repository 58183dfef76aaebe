"""``GET /healthz``: 200 without a token when the database answers."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..errors import ServiceUnavailable
from ..services.health import database_answers
from .transaction import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        database_answers(db())
    except Exception as exc:
        raise ServiceUnavailable("the database is not reachable") from exc
    return jsonify({"status": "ok"})
