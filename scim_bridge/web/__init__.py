"""The admin page at ``/admin/``: one blueprint of server-rendered HTML (Jinja templates and one
first-party script, no framework, no CDN) over the same services as the admin API.

Its session is a signed cookie (``__Host-``, Secure, HttpOnly, SameSite=Strict) keyed by a
deployment secret from key storage, so every gunicorn worker reads what another wrote; it holds
the admin token's SHA-256, which is checked against the token table on every request, so
revoking the token ends the session. CSRF (Flask-WTF) guards every change on this blueprint
only: the SCIM and API routes are untouched.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer

from ..endpoints.context import bridge
from . import pages, signin, words
from .blueprint import PREFIX, bp

__all__ = ["HTML_ROUTES", "init_app"]

COOKIE = "__Host-scim-bridge-admin"
_SECRET = "admin_page_session_secret"

#: Content-Security-Policy of every HTML response: nothing inline, nothing from elsewhere.
CSP = ("default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
       "object-src 'none'")

#: The page's routes that only ever answer HTML (openapi.yaml describes the rest).
HTML_ROUTES = frozenset({
    "admin_page.static", "admin_page.sign_in_form", "admin_page.sign_in", "admin_page.sign_out",
    "admin_page.users", "admin_page.user", "admin_page.events", "admin_page.replay",
})

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    settings = bridge_settings(app)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=settings.admin_session_lifetime),
        # Checked only where the page asks (signin.py): the API and SCIM routes have none.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The session's own expiry bounds the token; a page left open an hour still works.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = _PageSessions()
    csrf.init_app(app)
    signin.protect_with(csrf)
    assert pages and signin  # their routes are on bp
    for name in ("actor", "cause", "plural", "when"):
        app.add_template_filter(getattr(words, name), name)
    app.register_blueprint(bp)
    app.after_request(_page_headers)


def bridge_settings(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions["scim_bridge"].settings


class _PageSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, only under ``/admin``, keyed by the deployment's secret
    (read on the first page request of each process, never random per worker)."""

    def open_session(self, app: Flask, request: Request):  # type: ignore[no-untyped-def]
        if not _is_page(request.path):
            return None  # a null session: nothing is read or set outside the page
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            # CSRF tokens are signed with the same key (Flask-WTF reads app.secret_key).
            app.secret_key = bridge().deployment_secret(_SECRET)
        return super().get_signing_serializer(app)


def _is_page(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _page_headers(response: Response) -> Response:
    """Every HTML answer and everything under ``/admin``: a strict CSP, no framing, no
    sniffing, no referrer, and nothing cached."""
    if _is_page(request.path) or response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.endpoint != "admin_page.static":
            response.headers["Cache-Control"] = "no-store"
    return response
