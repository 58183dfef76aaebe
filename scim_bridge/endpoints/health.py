"""``GET /healthz`` (liveness: the database answers) and ``GET /readyz`` (readiness: the
database answers at the newest migration, and Redis when configured), both without a token."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from ..errors import ServiceUnavailable, error_document
from ..services.health import OK, database_answers, readiness
from .context import bridge
from .transaction import RETRY_AFTER, db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        database_answers(db())
    except Exception as exc:
        raise ServiceUnavailable("the database is not reachable") from exc
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 only when every check passes; else 503 naming the failing checks, with the JSON
    error fields every 503 has and ``Retry-After``, so a load balancer waits and retries."""
    # getattr: the Redis setting arrives with shared rate limits; until then nothing to check
    checks = readiness(db(), bridge().settings.redis_url)
    failing = [name for name, state in checks.items() if state != OK]
    if not failing:
        return jsonify({"status": "ready", "checks": checks})
    failure = ServiceUnavailable(f"not ready: {', '.join(failing)}")
    g.failure = failure
    body = {"status": "not ready", "checks": checks, **error_document(failure, scim=False)}
    return jsonify(body), 503, {"Retry-After": RETRY_AFTER}
