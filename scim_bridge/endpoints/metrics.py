"""``GET /metrics`` on the main port: the Prometheus text format, for a ``metrics``-scope token
only (any other token gets 403, none 401). ``serve --metrics-port`` offers the same text on
loopback without a token (server.py). The outbox gauges are read from the database at each
scrape."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from ..auth import authenticate
from ..metrics import OutboxGauges, exposition
from ..services import deliveries
from .context import settings
from .transaction import db

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    g.principal = authenticate(db(write=False), request.headers.get("Authorization"), "metrics")
    body, content_type = exposition(OutboxGauges(
        lambda: deliveries.outbox_state(db(write=False), settings().clock())))
    return Response(body, content_type=content_type)
