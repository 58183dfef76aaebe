"""One exception tree for every surface; each endpoint family renders it in its own format.

``scim_type`` values are the ones RFC 7644 §3.12 defines.
"""

from __future__ import annotations

from typing import Any

from .scim.schema import ERROR


class BridgeError(Exception):
    status = 400
    scim_type: str | None = None
    #: Short machine word for the JSON ``error`` field.
    error = "invalid_request"
    #: The cause in plain words, as the request log shows it.
    reason = "bad request"
    #: Seconds after which a retry may succeed, sent as ``Retry-After``; ``None``: not sent.
    retry_after: int | None = None

    def __init__(self, detail: str, *, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if scim_type is not None:
            self.scim_type = scim_type


class BadRequest(BridgeError):
    status = 400


class InvalidFilter(BadRequest):
    scim_type = "invalidFilter"
    error = "invalid_filter"
    reason = "invalid filter"


class InvalidSyntax(BadRequest):
    scim_type = "invalidSyntax"
    error = "invalid_syntax"
    reason = "malformed request"


class InvalidPath(BadRequest):
    scim_type = "invalidPath"
    error = "invalid_path"
    reason = "unknown attribute or bad path"


class NoTarget(BadRequest):
    scim_type = "noTarget"
    error = "no_target"
    reason = "no matching value"


class InvalidValue(BadRequest):
    scim_type = "invalidValue"
    error = "invalid_value"
    reason = "invalid value"


class Mutability(BadRequest):
    scim_type = "mutability"
    error = "mutability"
    reason = "read-only or required attribute"


class Unauthorized(BridgeError):
    status = 401
    error = "invalid_token"
    reason = "bad token"


class Forbidden(BridgeError):
    status = 403
    error = "forbidden"
    reason = "wrong token scope"


class NotFound(BridgeError):
    status = 404
    error = "not_found"
    reason = "not found"


class Conflict(BridgeError):
    status = 409
    scim_type = "uniqueness"
    error = "uniqueness"
    reason = "uniqueness"


class PreconditionFailed(BridgeError):
    status = 412
    error = "precondition_failed"
    reason = "version mismatch"


class PayloadTooLarge(BridgeError):
    status = 413
    error = "payload_too_large"
    reason = "request too large"


class TooManyRequests(BridgeError):
    """A rate limit is used up (RFC 6585 §4); ``Retry-After`` says when it refills."""

    status = 429
    error = "rate_limited"
    reason = "rate limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(BridgeError):
    status = 503
    error = "temporarily_unavailable"
    reason = "database unavailable"


def error_document(error: BridgeError, *, scim: bool) -> dict[str, Any]:
    """The body of an error: a SCIM Error (RFC 7644 §3.12) under ``/scim/v2``, else JSON
    ``{"error", "error_description"}``. The app and the server's own errors share it."""
    if not scim:
        return {"error": error.error, "error_description": error.detail}
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(error.status),
                            "detail": error.detail}
    if error.scim_type:
        body["scimType"] = error.scim_type
    return body


class ConcurrentChange(ServiceUnavailable):
    """PostgreSQL could not serialize the change with a concurrent one (a deadlock or a
    serialization failure), even on a second try: the client may simply retry."""

    error = "concurrent_change"
    reason = "conflict with a concurrent change"
