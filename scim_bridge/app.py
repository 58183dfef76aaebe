"""The application factory: no app at import time; tests pass their own settings. Each concern
registers itself with its own ``init_app``."""

from __future__ import annotations

from flask import Flask

from . import observability, web
from .bridge_app import BridgeApp
from .endpoints import (
    admin,
    errors,
    feed,
    health,
    limits,
    metrics,
    rate_limits,
    request_log,
    scim,
    sessions,
    ssf,
    transaction,
    well_known,
)
from .endpoints.context import reject_unstorable_url
from .extension import Bridge
from .settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = BridgeApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    # A tenant URL saved with a trailing slash must not turn into an HTML redirect.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["scim_bridge"] = Bridge.build(settings)

    observability.init_app(app)  # first: every later hook and error sees the request id
    app.before_request(reject_unstorable_url)
    errors.init_app(app)
    limits.init_app(app)
    for blueprint in (scim.bp, health.bp, sessions.bp, admin.bp, feed.bp,
                      well_known.bp, ssf.bp, metrics.bp):
        app.register_blueprint(blueprint)
    web.init_app(app)  # the admin page: its blueprint, cookie session and CSRF
    # after_request hooks run last-registered first: commit, then log the final status, then
    # the blueprints' app-wide hooks (headers) and the request id see the final response.
    request_log.init_app(app)
    transaction.init_app(app)
    rate_limits.init_app(app)  # after the transaction: it wraps the views outside its retry
    return app
