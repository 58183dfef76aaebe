"""Signing in to the page with an admin token, staying signed in, and signing out.

The session keeps the token's SHA-256 and an absolute expiry; every request looks the token up
again (``auth.principal_of``), so a revoked or expired token ends the session at once. Failed
sign-ins count against the client address (``rate_limit_sign_in``); past it they answer 429.
"""

from __future__ import annotations

from flask import Response, current_app, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from ..auth import hash_token, principal_of
from ..endpoints.context import settings
from ..endpoints.rate_limits import failed_sign_in
from ..endpoints.transaction import db
from ..errors import BridgeError, Forbidden, Unauthorized
from ..observability import request_id
from ..services import Actor
from .blueprint import answer, bp, page

_OPEN = {"admin_page.sign_in_form", "admin_page.sign_in", "admin_page.static"}
#: Longer than any token this bridge makes; longer input is not looked up at all.
_MAX_TOKEN = 512
_csrf: CSRFProtect | None = None


def protect_with(csrf: CSRFProtect) -> None:
    global _csrf
    _csrf = csrf


@bp.before_request
def _signed_in_and_csrf_checked() -> ResponseReturnValue | None:
    if request.method not in ("GET", "HEAD") and _csrf is not None:
        _csrf.protect()  # raises CSRFError (400) before anything reads the form
    if request.endpoint in _OPEN:
        return None
    digest, until = session.get("token"), session.get("until")
    if not isinstance(digest, str) or not isinstance(until, int | float) or until < _now():
        return _to_sign_in("Your session has ended; sign in again.")
    try:
        principal = principal_of(db(), digest, "admin")
    except (Unauthorized, Forbidden):
        return _to_sign_in("The admin token of this session was revoked; sign in again.")
    g.principal = principal
    g.actor = Actor(tenant_id=principal.tenant_id, name=f"admin:{principal.token_name}",
                    txn=request_id())
    return None


def _now() -> float:
    return settings().clock().timestamp()


def _to_sign_in(message: str) -> ResponseReturnValue:
    session.clear()
    if request.method == "GET" and not request.accept_mimetypes.best == "application/json":
        session["notice"] = message
        return redirect(url_for("admin_page.sign_in_form"), 303)
    return answer(401, message, "invalid_token")


@bp.get("/sign-in")
def sign_in_form() -> tuple[str, int]:
    return page("sign_in.html", notice=session.pop("notice", None))


@bp.post("/sign-in")
def sign_in() -> ResponseReturnValue:
    token = request.form.get("token", "").strip()
    refusal: Unauthorized | Forbidden | None = None
    if not token or len(token) > _MAX_TOKEN:
        refusal = Unauthorized("enter an admin token")
    else:
        try:
            principal = principal_of(db(), hash_token(token), "admin")
        except (Unauthorized, Forbidden) as error:
            refusal = error
    if refusal is not None:
        retry_after = failed_sign_in()
        if retry_after is not None:
            body, status = page("sign_in.html", 429, error=(
                f"Too many failed sign-ins from this address; try again in {retry_after} s."))
            return Response(body, status, headers={"Retry-After": str(retry_after)})
        message = ("This token cannot sign in here: the page needs a token with scope 'admin'."
                   if isinstance(refusal, Forbidden) else
                   "That token is unknown or revoked." if token else "Enter an admin token.")
        return page("sign_in.html", refusal.status, error=message)
    session.clear()  # a fresh session (and CSRF token) for the signed-in admin
    session.permanent = True
    session["token"] = principal.token_hash
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    session["until"] = int(_now() + lifetime)
    return redirect(url_for("admin_page.users"), 303)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    session.clear()
    session["notice"] = "You are signed out."
    return redirect(url_for("admin_page.sign_in_form"), 303)


@bp.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> Response:
    return answer(400, f"The form expired or was not sent by this page ({error.description}); "
                  "reload the page and try again. Nothing was changed.", "csrf_failed")


@bp.errorhandler(BridgeError)
def _refused(error: BridgeError) -> Response:
    g.failure = error
    return answer(error.status, error.detail, error.error)


@bp.errorhandler(HTTPException)
def _http_refused(error: HTTPException) -> Response:
    return answer(error.code or 500, error.description or error.name)
