"""The admin page over HTTP, without a browser: its cookie, sign-in (scopes, throttling,
revocation, expiry), CSRF on every change, the security headers of every HTML answer, the
forms that work without script, bad input and tenant isolation."""

from __future__ import annotations

import re

import pytest

from scim_bridge import create_app
from scim_bridge.db import begin_write
from scim_bridge.services import tokens

from .conftest import make_token, sessions_client
from .live import unique
from .pagekit import page_csrf, sign_in
from .scimdata import create_group, create_user
from .sessionkit import is_active, start_session

COOKIE = "__Host-scim-bridge-admin"


@pytest.fixture
def page(app):
    return app.test_client()


@pytest.fixture
def admin_token(app) -> str:
    return make_token(app, "console", "admin")


@pytest.fixture
def signed_in(page, admin_token):
    assert sign_in(page, admin_token).status_code == 303
    return page


def _cookie_header(response) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE)]
    return header


def test_sign_in_sets_a_host_cookie_that_is_secure_httponly_strict_and_expiring(page, admin_token):
    response = sign_in(page, admin_token)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/")
    cookie = _cookie_header(response)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "expires", "path"} <= attributes
    assert "SameSite=Strict" in cookie and "Path=/" in cookie and "domain" not in attributes
    assert admin_token not in cookie
    assert page.get("/admin/").status_code == 200


def test_without_a_session_every_page_sends_the_admin_to_sign_in(page):
    for path in ("/admin/", "/admin/events", "/admin/users/some-id"):
        response = page.get(path)
        assert response.status_code == 303 and response.headers["Location"].endswith(
            "/admin/sign-in")


@pytest.mark.parametrize("scope", ["scim", "sessions", "ssf", "metrics"])
def test_a_token_of_another_scope_cannot_sign_in(app, page, scope):
    response = sign_in(page, make_token(app, f"not-admin-{scope}", scope))
    assert response.status_code == 403
    assert "scope &#39;admin&#39;" in response.text or "scope 'admin'" in response.text
    assert page.get("/admin/").status_code == 303


@pytest.mark.parametrize("token", ["", "sb_unknown", "x" * 600])
def test_an_unknown_or_empty_token_cannot_sign_in(page, token):
    response = sign_in(page, token)
    assert response.status_code == 401 and 'role="alert"' in response.text
    assert page.get("/admin/").status_code == 303


def test_failed_sign_ins_are_throttled_per_address_after_the_budget(settings, admin_token):
    app = create_app(settings.with_(rate_limit_sign_in="5/minute"))
    with app.extensions["scim_bridge"].sessions() as db:  # the same database: the token works
        begin_write(db)
        tokens.ensure_default_tenant(db)
        db.commit()
    page = app.test_client()
    statuses = [sign_in(page, f"sb_wrong{i}").status_code for i in range(6)]
    assert statuses == [401] * 5 + [429]
    refused = sign_in(page, "sb_wrong")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in refused.text
    assert sign_in(page, admin_token).status_code == 303, "a valid token still signs in"
    app.extensions["scim_bridge"].engine.dispose()


def test_revoking_the_admin_token_ends_the_page_session(app, signed_in):
    assert signed_in.get("/admin/").status_code == 200
    with app.extensions["scim_bridge"].sessions() as db:
        begin_write(db)
        tokens.revoke_token(db, "console")
        db.commit()
    response = signed_in.get("/admin/")
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/sign-in")
    assert "revoked" in signed_in.get("/admin/sign-in").text


def test_the_page_session_expires_after_its_lifetime(settings, clock, database_url):
    app = create_app(settings.with_(clock=clock, admin_session_lifetime=600))
    token = make_token(app, "console", "admin")
    page = app.test_client()
    assert sign_in(page, token).status_code == 303
    clock.advance(seconds=599)
    assert page.get("/admin/").status_code == 200
    clock.advance(seconds=2)
    assert page.get("/admin/").status_code == 303
    app.extensions["scim_bridge"].engine.dispose()


def test_the_session_key_is_persisted_so_every_worker_accepts_the_cookie(settings, signed_in):
    other_worker = create_app(settings).test_client()
    other_worker.set_cookie(COOKIE, signed_in.get_cookie(COOKIE).value)
    assert other_worker.get("/admin/").status_code == 200


def test_sign_out_ends_the_session(signed_in):
    csrf = page_csrf(signed_in)
    response = signed_in.post("/admin/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert signed_in.get("/admin/").status_code == 303


@pytest.fixture
def user_with_sessions(app, scim):
    user = create_user(scim, "nurse@example.com")
    create_group(scim, "Ward 7", [user["id"]])
    with sessions_client(app) as api:
        sessions = [start_session(api, user_id=user["id"])["token"] for _ in range(2)]
    return user, sessions


def _still_active(app, session_tokens) -> bool:
    with sessions_client(app, unique("checker")) as api:
        return all(is_active(api, token) for token in session_tokens)


@pytest.mark.parametrize("path", ["/admin/logout/preview", "/admin/logout", "/admin/sign-out",
                                  "/admin/events/1/replay", "/admin/sign-in"])
@pytest.mark.parametrize("csrf", [None, "forged-token"])
def test_a_change_without_a_valid_csrf_token_is_refused_and_changes_nothing(
        app, signed_in, user_with_sessions, path, csrf):
    user, session_tokens = user_with_sessions
    form = {"only": user["id"], "confirm": "1.x", "token": "sb_x"}
    if csrf:
        form["csrf_token"] = csrf
    response = signed_in.post(path, data=form, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["error"] == "csrf_failed"
    assert _still_active(app, session_tokens)
    assert signed_in.get("/admin/").status_code == 200, "still signed in"


def test_the_api_routes_need_no_csrf_token(admin, user_with_sessions):
    user, _ = user_with_sessions
    response = admin.post(f"/users/{user['id']}/force-logout")
    assert response.status_code == 200 and response.json()["revoked_sessions"] == 2


def test_without_script_the_forms_preview_then_log_out(app, signed_in, user_with_sessions):
    user, session_tokens = user_with_sessions
    csrf = page_csrf(signed_in)
    preview = signed_in.post("/admin/logout/preview",
                             data={"csrf_token": csrf, "user_ids": [user["id"]]})
    assert preview.status_code == 200
    assert "Log out 1 user and end 2 sessions?" in preview.text
    assert "Access and group\nmemberships do not change" in preview.text
    confirm = re.search(r'name="confirm" value="([^"]+)"', preview.text).group(1)
    assert _still_active(app, session_tokens), "a preview ends nothing"
    done = signed_in.post("/admin/logout", data={"csrf_token": csrf, "user_ids": [user["id"]],
                                                 "confirm": confirm})
    assert done.status_code == 303
    landing = signed_in.get(done.headers["Location"])
    assert "Logged out 1 user, 2 sessions ended" in landing.text
    assert not _still_active(app, session_tokens)


def test_the_json_flow_refuses_a_stale_confirmation_with_409(app, signed_in, user_with_sessions):
    user, session_tokens = user_with_sessions
    csrf = page_csrf(signed_in)
    json_ = {"Accept": "application/json", "X-CSRFToken": csrf}
    preview = signed_in.post("/admin/logout/preview", data={"all_matching": "1"}, headers=json_)
    assert preview.status_code == 200
    assert {k: preview.json[k] for k in ("users", "sessions")} == {"users": 1, "sessions": 2}
    with sessions_client(app, "late") as api:  # a new session since the preview
        start_session(api, user_id=user["id"])
    refused = signed_in.post("/admin/logout", headers=json_,
                             data={"all_matching": "1", "confirm": preview.json["confirm"]})
    assert refused.status_code == 409 and "nobody was logged out" in refused.json[
        "error_description"]
    assert _still_active(app, session_tokens)


@pytest.mark.parametrize(("method", "path", "form", "status"), [
    ("GET", "/admin/?status=bogus", None, 400),
    ("GET", "/admin/?after=not-a-cursor", None, 400),
    ("GET", "/admin/events?status=teapot", None, 400),
    ("GET", "/admin/users/no-such-user", None, 404),
    ("POST", "/admin/logout/preview", {}, 400),
    ("POST", "/admin/logout/preview", {"user_ids": ["no-such-user"]}, 404),
    ("POST", "/admin/logout", {"all_matching": "1"}, 400),
    ("POST", "/admin/logout", {"all_matching": "1", "confirm": "garbage"}, 400),
    ("POST", "/admin/events/99999/replay", {}, 404),
    ("POST", "/admin/events/abc/replay", {}, 404),
])
def test_bad_input_is_a_clear_4xx_page_that_changes_nothing(
        app, signed_in, user_with_sessions, method, path, form, status):
    _, session_tokens = user_with_sessions
    if method == "GET":
        response = signed_in.get(path)
    else:
        response = signed_in.post(path, data={**form, "csrf_token": page_csrf(signed_in)})
    assert response.status_code == status, response.text
    assert response.mimetype == "text/html" and 'role="alert"' in response.text
    assert _still_active(app, session_tokens)


def test_an_admin_of_one_tenant_never_sees_another_tenants_users(app, user_with_sessions):
    user, session_tokens = user_with_sessions
    other = app.test_client()
    assert sign_in(other, make_token(app, "other-console", "admin", "clinic-b")).status_code == 303
    listing = other.get("/admin/?search=nurse")
    assert listing.status_code == 200 and "nurse@example.com" not in listing.text
    assert "Ward 7" not in listing.text
    assert other.get(f"/admin/users/{user['id']}").status_code == 404
    csrf = page_csrf(other)
    assert other.post("/admin/logout/preview", data={"csrf_token": csrf,
                                                     "only": user["id"]}).status_code == 404
    assert _still_active(app, session_tokens)


_INLINE_STYLE = re.compile(r"<style|\sstyle=", re.IGNORECASE)
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
_INLINE_HANDLER = re.compile(r"\son[a-z]+=", re.IGNORECASE)


def test_every_html_answer_has_the_csp_and_nothing_inline(app, page, admin_token,
                                                          user_with_sessions):
    user, _ = user_with_sessions
    answers = [page.get("/admin/sign-in"), sign_in(page, "sb_wrong")]
    sign_in(page, admin_token)
    answers += [page.get(path) for path in ("/admin/", "/admin/?search=nurse",
                                            f"/admin/users/{user['id']}", "/admin/events",
                                            "/admin/users/missing")]
    answers.append(page.post("/admin/logout/preview", data={
        "csrf_token": page_csrf(page), "only": user["id"]}))
    for response in answers:
        assert response.mimetype == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        html = response.text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert not _INLINE_STYLE.search(html), "inline style"
        assert not _INLINE_SCRIPT.search(html), "inline script"
        assert not _INLINE_HANDLER.search(html), "inline event handler"


def test_the_page_assets_are_first_party_files(page):
    for name, kind in (("admin.js", "javascript"), ("admin.css", "css")):
        response = page.get(f"/admin/static/{name}")
        assert response.status_code == 200 and kind in response.mimetype
    assert "http" not in page.get("/admin/static/admin.js").text.replace("https://", "")
