"""The SCIM request log's hook: every request under ``/scim/v2`` is logged with its final
status and, for failures, the reason in plain words (requestlog.RequestLog buffers and writes)."""

from __future__ import annotations

import datetime as dt

from flask import Flask, Response, g, request

from ..errors import BridgeError
from ..observability import elapsed_ms
from .context import bridge
from .responses import is_scim


def init_app(app: Flask) -> None:
    app.after_request(_log_scim_request)


def _log_scim_request(response: Response) -> Response:
    if not is_scim():
        return response
    principal = g.get("principal")
    failure: BridgeError | None = g.get("failure")
    reason = None
    if failure is not None and response.status_code >= 400:
        reason = f"{failure.reason}: {failure.detail}"
    bridge().request_log.add(
        {
            "tenant_id": principal.tenant_id if principal else None,
            "token_name": principal.token_name if principal else None,
            "method": request.method,
            "path": request.full_path.rstrip("?")[:2048],
            "status": response.status_code,
            "duration_ms": elapsed_ms(),
            "reason": reason,
            "created_at": dt.datetime.now(dt.UTC),
        }
    )
    return response
