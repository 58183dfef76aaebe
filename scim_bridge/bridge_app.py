"""The Flask class the factory builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask


class BridgeApp(Flask):
    """Every view and hook of the bridge is a plain function (tests/test_architecture.py checks
    it), so none needs Flask's per-call check for a coroutine, a dozen of which would otherwise
    run on every request."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func
