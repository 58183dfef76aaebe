"""Response bodies every surface shares: SCIM JSON, and errors rendered once, in the format
of the surface (a SCIM Error under ``/scim/v2``, JSON ``{"error", "error_description"}``
elsewhere)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request

from ..errors import BridgeError, error_document

SCIM_JSON = "application/scim+json"


def is_scim() -> bool:
    return request.path.startswith("/scim/v2")


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype=SCIM_JSON)


def render_error(error: BridgeError) -> Response:
    """The one renderer of every error, SCIM or JSON by the request's surface."""
    if is_scim():
        response = scim_response(error_document(error, scim=True), error.status)
    else:
        response = jsonify(error_document(error, scim=False))
        response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="scim-bridge", error="invalid_token"' if is_scim()
            else f'Bearer error="{error.error}"'
        )
    return response
