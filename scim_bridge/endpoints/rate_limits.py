"""Request budgets: per token on each authenticated surface, and per client address for failed
authentication (fixed windows, with the ``limits`` library's parser and Redis counters).

A token's budget can only be looked up once the token is known, so each limited view is wrapped:
the wrapper runs after the blueprints' ``before_request`` authentication, and its key is the
token's SHA-256 (never the token). Failed authentication is counted per client address when the
401 is rendered: past the budget that address's failures are answered 429, while a valid token
from the same address still works (IdPs such as Entra send from shared cloud addresses, so one
tenant's stale token must not lock out another's).

Counters live in process memory, or in Redis when ``SCIM_BRIDGE_REDIS_URL`` is set so that
every instance shares one budget. If Redis stops answering, requests are not failed: one
warning is logged and the counters fall back to memory until Redis answers again.

Why not flask-limiter's decorator: it cost 150-190 µs of CPU per request here (and its memory
store starts a timer thread per request), more than a whole SCIM lookup's own work; this
check costs a dictionary update.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ..errors import BridgeError, TooManyRequests, Unauthorized
from ..settings import RATE_LIMIT_OFF, Settings
from .responses import render_error

__all__ = ["charge_token", "failed_sign_in", "init_app"]

log = logging.getLogger(__name__)

#: Seconds the bridge waits for Redis before counting in memory instead.
_REDIS_TIMEOUT = 0.5
#: Seconds counters stay in memory after Redis failed, before Redis is tried again.
_REDIS_RETRY = 30.0
#: Counters kept in memory before the windows that have passed are dropped.
_PRUNE_AT = 10_000


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered and after ``transaction.init_app``: it wraps
    the views then registered, outside the retry on conflict (a retried view is one request).
    """
    settings: Settings = app.extensions["scim_bridge"].settings
    counters = _Counters(settings)
    by_blueprint = {blueprint: _budgets(text) for blueprint, text in (
        ("scim", settings.rate_limit_scim), ("admin_api", settings.rate_limit_admin),
        ("sessions", settings.rate_limit_sessions))}
    for endpoint, view in list(app.view_functions.items()):
        budgets = by_blueprint.get(endpoint.partition(".")[0])
        if budgets:
            app.view_functions[endpoint] = _limited(view, budgets, counters)
    app.register_error_handler(Unauthorized, _FailedAuthentication(counters, settings))
    app.extensions[_SIGN_IN] = (counters, _budgets(settings.rate_limit_sign_in))
    app.extensions[_TOKENS] = (counters, by_blueprint)


_SIGN_IN = "scim_bridge.sign_in_budgets"
_TOKENS = "scim_bridge.token_budgets"


def charge_token() -> None:
    """Charge this request to the budget of the token a view authenticated itself (one that
    reads the token together with its own rows); raises ``TooManyRequests`` past it."""
    counters, by_blueprint = current_app.extensions[_TOKENS]
    _charge(by_blueprint.get(request.blueprint, []), counters, g.principal.token_hash)


def failed_sign_in() -> int | None:
    """Count a failed admin page sign-in against the client address; past the address's
    budget (``rate_limit_sign_in``), the seconds until it may try again."""
    counters, budgets = current_app.extensions[_SIGN_IN]
    address = request.remote_addr or "unknown"
    for budget in budgets:
        if not counters.hit(budget, "sign-in", address):
            return int(counters.retry_after(budget, "sign-in", address))
    return None


def _budgets(text: str) -> list[RateLimitItem]:
    return [] if text.strip().lower() == RATE_LIMIT_OFF else parse_many(text)


def _limited(
    view: Callable[..., Any], budgets: list[RateLimitItem], counters: _Counters
) -> Callable[..., Any]:
    @wraps(view)
    def run(**kwargs: Any) -> Any:
        principal = g.get("principal")
        if principal is not None:  # a view that needs no token has no budget
            _charge(budgets, counters, principal.token_hash)
        return view(**kwargs)

    return run


def _charge(budgets: list[RateLimitItem], counters: _Counters, token_hash: str) -> None:
    for budget in budgets:
        if not counters.hit(budget, "token", token_hash):
            retry_after = counters.retry_after(budget, "token", token_hash)
            raise TooManyRequests(f"this token's rate limit ({budget}) is used up; "
                                  f"retry after {retry_after} s", retry_after=retry_after)


class _MemoryWindows:
    """Fixed windows in this process: a count per key since its window opened."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, budget: RateLimitItem, *key: str) -> bool:
        now, length, name = time.time(), budget.get_expiry(), (str(budget), *key)
        with self._lock:
            if len(self._windows) >= _PRUNE_AT:  # many addresses: forget the windows gone by
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now - 3600}
            opened, count = self._windows.get(name, (now, 0))
            if now - opened >= length:
                opened, count = now, 0
            self._windows[name] = (opened, count + 1)
        return count + 1 <= budget.amount

    def reset_at(self, budget: RateLimitItem, *key: str) -> float:
        opened, _ = self._windows.get((str(budget), *key), (time.time(), 0))
        return opened + budget.get_expiry()


class _Counters:
    """Redis when configured (memory for a while after it failed), else memory."""

    def __init__(self, settings: Settings) -> None:
        self._prefix = settings.rate_limit_key_prefix
        self._memory = _MemoryWindows()
        self._shared: FixedWindowRateLimiter | None = None
        if settings.redis_url:
            # Errors as StorageError; a Redis that does not answer costs a request at most
            # this long, never the operating system's connect timeout.
            storage = storage_from_string(
                settings.redis_url, wrap_exceptions=True, socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT)
            self._shared = FixedWindowRateLimiter(storage)
        self._failed_at: float | None = None

    def _redis(self) -> FixedWindowRateLimiter | None:
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < _REDIS_RETRY:
            return None
        return self._shared

    def hit(self, budget: RateLimitItem, *key: str) -> bool:
        shared = self._redis()
        if shared is None:
            return self._memory.hit(budget, *key)
        try:
            allowed = shared.hit(budget, self._prefix, *key)
        except StorageError as exc:
            if self._failed_at is None:  # once per outage
                log.warning("rate-limit storage unreachable (%s); counting in memory", exc)
            self._failed_at = time.monotonic()
            return self._memory.hit(budget, *key)
        self._failed_at = None
        return allowed

    def retry_after(self, budget: RateLimitItem, *key: str) -> int:
        shared = self._redis()
        if shared is None:
            return _seconds_until(self._memory.reset_at(budget, *key))
        try:
            reset_at, _ = shared.get_window_stats(budget, self._prefix, *key)
        except StorageError:
            return budget.get_expiry()
        return _seconds_until(reset_at)


class _FailedAuthentication:
    """The 401 handler: counts the failure against the client address and answers 429 once
    the address's budget is used up."""

    def __init__(self, counters: _Counters, settings: Settings) -> None:
        self._counters = counters
        self._budgets = _budgets(settings.rate_limit_failed_auth)

    def __call__(self, error: Unauthorized) -> Response:
        address = request.remote_addr or "unknown"
        for budget in self._budgets:
            if not self._counters.hit(budget, "failed-auth", address):
                retry_after = self._counters.retry_after(budget, "failed-auth", address)
                return _render(TooManyRequests(
                    f"too many failed authentications from this address ({budget}); "
                    f"retry after {retry_after} s", retry_after=retry_after))
        return _render(error)


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


def _render(failure: BridgeError) -> Response:
    g.failure = failure
    return render_error(failure)
