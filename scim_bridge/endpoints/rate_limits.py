"""Request budgets: per token on each authenticated surface, and per client address for failed
authentication (flask-limiter, fixed windows).

A token's budget can only be looked up once the token is known, so the limits are checked by
flask-limiter's view decorator, which runs after the blueprints' ``before_request``
authentication; the key is the token's SHA-256 (never the token). Failed authentication is
counted per client address when the 401 is rendered: past the budget that address's failures
are answered 429, while a valid token from the same address still works (IdPs such as Entra
send from shared cloud addresses, so one tenant's stale token must not lock out another's).

Counters live in process memory, or in Redis when ``SCIM_BRIDGE_REDIS_URL`` is set so that
every instance shares one budget. If Redis stops answering, requests are not failed: one
warning is logged and the counters fall back to memory until Redis answers again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from ..errors import BridgeError, TooManyRequests, Unauthorized
from ..settings import RATE_LIMIT_OFF, Settings
from .responses import render_error

__all__ = ["init_app"]

log = logging.getLogger(__name__)

#: Seconds the bridge waits for Redis before counting in memory instead.
_REDIS_TIMEOUT = 0.5
#: Seconds failed authentications are counted in memory after Redis failed, before retrying it.
_REDIS_RETRY = 30.0


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered and after ``transaction.init_app``: it wraps
    the views then registered, outside the retry on conflict (a retried view is one request).
    """
    settings: Settings = app.extensions["scim_bridge"].settings
    limiter = Limiter(
        _token_key,
        app=app,
        strategy="fixed-window",
        storage_uri=settings.redis_url or "memory://",
        storage_options=_storage_options(settings),
        key_prefix=settings.rate_limit_key_prefix,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    # Unauthenticated requests have no token to count against: this also makes flask-limiter's
    # own before_request pass (which runs before authentication) a cheap no-op.
    limiter.request_filter(lambda: "principal" not in g)
    by_blueprint = {"scim": settings.rate_limit_scim, "admin_api": settings.rate_limit_admin,
                    "sessions": settings.rate_limit_sessions}
    for endpoint, view in list(app.view_functions.items()):
        budget = by_blueprint.get(endpoint.partition(".")[0], RATE_LIMIT_OFF)
        if budget.strip().lower() != RATE_LIMIT_OFF:
            limited = limiter.shared_limit(budget, scope="token", key_func=_token_key)
            app.view_functions[endpoint] = limited(view)  # type: ignore[assignment]
    app.register_error_handler(RateLimitExceeded, _token_throttled(limiter))
    app.register_error_handler(Unauthorized, _FailedAuthentication(limiter, settings))


def _storage_options(settings: Settings) -> dict[str, Any]:
    if not settings.redis_url:
        return {}
    # Errors as StorageError (what _FailedAuthentication catches); a Redis that does not answer
    # costs a request at most this long, never the operating system's connect timeout.
    return {"wrap_exceptions": True, "socket_timeout": _REDIS_TIMEOUT,
            "socket_connect_timeout": _REDIS_TIMEOUT}


def _token_key() -> str:
    """The budget's key: the hash of the token that authenticated this request."""
    return str(g.principal.token_hash)


def _token_throttled(limiter: Limiter) -> Callable[[RateLimitExceeded], Response]:
    def handle(error: RateLimitExceeded) -> Response:
        breached = limiter.current_limit
        try:
            reset_at = breached.window.reset_time if breached is not None else None
        except Exception:  # the storage went away since the hit: say the whole window
            reset_at = None
        window = error.limit.limit.get_expiry()
        retry_after = _seconds_until(reset_at) if reset_at is not None else window
        return _render(TooManyRequests(
            f"this token's rate limit ({error.limit.limit}) is used up; "
            f"retry after {retry_after} s", retry_after=retry_after))

    return handle


class _FailedAuthentication:
    """The 401 handler: counts the failure against the client address and answers 429 once
    the address's budget is used up."""

    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self._limiter = limiter
        self._prefix = settings.rate_limit_key_prefix
        text = settings.rate_limit_failed_auth
        self._budgets = [] if text.strip().lower() == RATE_LIMIT_OFF else parse_many(text)
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._storage_failed_at: float | None = None

    def __call__(self, error: Unauthorized) -> Response:
        address = request.remote_addr or "unknown"
        for budget in self._budgets:
            if not self._hit(budget, address):
                retry_after = self._retry_after(budget, address)
                return _render(TooManyRequests(
                    f"too many failed authentications from this address ({budget}); "
                    f"retry after {retry_after} s", retry_after=retry_after))
        return _render(error)

    def _counters(self) -> RateLimiter:
        """Memory for a while after Redis failed; else flask-limiter's strategy (itself its
        memory fallback once flask-limiter saw Redis fail)."""
        failed_at = self._storage_failed_at
        if failed_at is not None and time.monotonic() - failed_at < _REDIS_RETRY:
            return self._memory
        return self._limiter.limiter

    def _hit(self, budget: RateLimitItem, address: str) -> bool:
        counters = self._counters()
        try:
            allowed = counters.hit(budget, self._prefix, address, "failed-auth")
        except StorageError as exc:
            if self._storage_failed_at is None:  # once per outage
                log.warning("rate-limit storage unreachable (%s); counting failed "
                            "authentications in memory", exc)
            self._storage_failed_at = time.monotonic()
            return self._memory.hit(budget, self._prefix, address, "failed-auth")
        if counters is not self._memory:
            self._storage_failed_at = None
        return allowed

    def _retry_after(self, budget: RateLimitItem, address: str) -> int:
        try:
            reset_at, _ = self._counters().get_window_stats(
                budget, self._prefix, address, "failed-auth")
        except StorageError:
            return budget.get_expiry()
        return _seconds_until(reset_at)


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


def _render(failure: BridgeError) -> Response:
    g.failure = failure
    return render_error(failure)
