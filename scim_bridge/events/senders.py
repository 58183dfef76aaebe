"""One sender per receiver kind behind one small interface, so a new way out (SSF push,
back-channel logout) is a module that registers itself, and the worker never changes.

A sender gets the worker's HTTP client (explicit timeouts, no redirects), the claimed delivery
(its stable id, topic, event and receiver) and answers an :class:`Outcome`. Helpers here turn
HTTP answers into outcomes the same way for every kind.
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from .outbox import Claimed, Outcome

if TYPE_CHECKING:  # httpx loads with the worker, not with every command
    import httpx

Sender = Callable[["httpx.Client", Claimed], Outcome]



_SENDERS: dict[str, Sender] = {}
#: Modules that register a sender when imported; a new kind adds its module here.
BUILTIN = ("scim_bridge.events.webhooks", "scim_bridge.events.ssf", "scim_bridge.events.logout")


def register(kind: str) -> Callable[[Sender], Sender]:
    """Decorator: ``@register("webhook")`` makes the function the sender of that kind."""

    def add(sender: Sender) -> Sender:
        _SENDERS[kind] = sender
        return sender

    return add


def sender_for(kind: str) -> Sender | None:
    if not _SENDERS:
        for module in BUILTIN:
            importlib.import_module(module)
    return _SENDERS.get(kind)


def delivered() -> Outcome:
    return Outcome("delivered")


def dead(reason: str) -> Outcome:
    return Outcome("dead", error=reason)


def retry(reason: str, after: float | None = None) -> Outcome:
    return Outcome("retry", error=reason, after=after)


def post(client: httpx.Client, url: str, *, content: bytes, headers: dict[str, str],
         judge: Callable[[httpx.Response], Outcome]) -> Outcome:
    """POST and judge the answer; a transport failure (refused, timeout) is a retry. The
    outcome carries the status and the latency of this attempt."""
    import httpx

    started = time.perf_counter()
    try:
        response = client.post(url, content=content, headers=headers)
    except httpx.HTTPError as error:
        outcome = retry(f"{type(error).__name__}: {error}"[:500] or type(error).__name__)
        status = None
    else:
        outcome = judge(response)
        status = response.status_code
    latency = (time.perf_counter() - started) * 1000
    return Outcome(outcome.result, status=status, error=outcome.error, after=outcome.after,
                   latency_ms=latency)


def retry_after(response: httpx.Response, now: dt.datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delay-seconds or an HTTP date
    (RFC 9110 §10.2.3); ``None`` when absent or unreadable."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - (now or dt.datetime.now(dt.UTC))).total_seconds())


def status_error(response: httpx.Response) -> str:
    """A short description of a refusal: the status and the start of the body."""
    body = response.text[:200].strip()
    return f"HTTP {response.status_code}" + (f": {body}" if body else "")
