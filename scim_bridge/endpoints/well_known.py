"""``GET /.well-known/jwks.json``: the public keys that verify session tokens (RFC 7517)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..revocation.keys import KeyRing
from .edge import db, finish_transaction

bp = Blueprint("well_known", __name__)


def keyring() -> KeyRing:
    """The app's signing keys (built by the app factory)."""
    return current_app.extensions["scim_bridge.keys"]


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    keys = keyring()
    keys.prepare()
    try:
        body = keys.jwks(db())
    finally:
        finish_transaction(True)
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
