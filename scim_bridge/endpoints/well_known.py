"""``GET /.well-known/jwks.json``: the public keys that verify session tokens (ES256), security
event tokens and logout tokens (RS256) (RFC 7517)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .context import bridge
from .transaction import db, finish_transaction

bp = Blueprint("well_known", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    keys = bridge().keys
    keys.prepare()
    try:
        body = keys.jwks(db())
    finally:
        finish_transaction(True)
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
