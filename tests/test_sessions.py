"""The application's sessions API: create a session for an active user, introspect it
(RFC 7662), and log out."""

from __future__ import annotations

import pytest
from jose import jwt

from scim_bridge.db import begin_write
from scim_bridge.services import tokens

from .conftest import PUBLIC_URL, http_client, make_token, sessions_client
from .scimdata import create_group, create_user, patch
from .sessionkit import admin_client, events, introspect, is_active, start_session


@pytest.fixture
def settings(settings, clock):
    """The app's "now" is a clock these tests move: expiry without sleeping."""
    return settings.with_(clock=clock)


@pytest.fixture
def ann(scim):
    return create_user(scim, "Ann@Example.com", externalId="ext-ann", displayName="Ann A")


@pytest.mark.parametrize(
    "identifier",
    [
        lambda user: {"user_id": user["id"]},
        lambda user: {"userName": "ann@example.com"},
        lambda user: {"userName": "ANN@EXAMPLE.COM"},
        lambda user: {"externalId": "ext-ann"},
    ],
    ids=["user_id", "userName", "userName-any-case", "externalId"],
)
def test_a_session_starts_for_each_kind_of_identifier(api, scim, ann, identifier):
    group = create_group(scim, "Nurses", [ann["id"]])
    created = api.post("/sessions", json={"client": "mobile", **identifier(ann)})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token_type"] == "Bearer"
    assert body["user"] == {"id": ann["id"], "userName": "Ann@Example.com",
                            "displayName": "Ann A", "active": True}
    assert body["groups"] == [{"id": group["id"], "displayName": "Nurses"}]
    assert body["expires_at"].endswith("Z")
    assert is_active(api, body["token"])


def test_the_token_carries_the_documented_claims(api, scim, ann):
    create_group(scim, "Nurses", [ann["id"]])
    body = start_session(api, user_id=ann["id"])
    claims = jwt.get_unverified_claims(body["token"])
    assert claims["iss"] == PUBLIC_URL
    assert claims["sub"] == ann["id"]
    assert claims["sid"] == body["session_id"]
    assert claims["groups"] == ["Nurses"]
    assert claims["tenant"] == "default"
    assert claims["jti"] and claims["jti"] != claims["sid"]
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert jwt.get_unverified_header(body["token"])["alg"] == "ES256"


def test_introspection_answers_with_the_sessions_current_state(api, scim, ann):
    body = start_session(api, client="web", userName="ann@example.com")
    claims = jwt.get_unverified_claims(body["token"])
    create_group(scim, "Pharmacy", [ann["id"]])
    answer = introspect(api, body["token"])
    assert answer == {
        "active": True,
        "sub": ann["id"],
        "sid": body["session_id"],
        "username": "Ann@Example.com",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": PUBLIC_URL,
        "client": "web",
        "groups": ["Pharmacy"],
        "tenant": "default",
        "token_type": "Bearer",
    }
    again = api.post("/sessions/introspect", data={"token": body["token"]})
    assert again.headers["cache-control"] == "no-store"
    for name in ("night shift", "Bakery", "Zebra", "apron"):
        create_group(scim, name, [ann["id"]])
    # by name ignoring case, however the rows were read
    expected = ["apron", "Bakery", "night shift", "Pharmacy", "Zebra"]
    assert introspect(api, body["token"])["groups"] == expected
    assert introspect(api, body["token"])["groups"] == expected


def test_introspection_accepts_a_json_body(api, ann):
    token = start_session(api, user_id=ann["id"])["token"]
    response = api.post("/sessions/introspect", json={"token": token})
    assert response.status_code == 200
    assert response.json()["active"] is True


@pytest.mark.parametrize(
    "request_kwargs",
    [{"data": {"nottoken": "x"}}, {"json": {}}, {"json": {"token": 42}}, {"json": [1]},
     {"content": b"{not json", "headers": {"Content-Type": "application/json"}}],
    ids=["form-without-token", "json-without-token", "json-number", "json-array", "bad-json"],
)
def test_introspection_without_a_token_string_is_a_400(api, request_kwargs):
    response = api.post("/sessions/introspect", **request_kwargs)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "error_description"}


def test_sessions_look_up_users_in_the_named_tenant(app, api, scim, ann):
    with http_client(app, make_token(app, "acme-okta", "scim", tenant="acme"), "/scim/v2") as acme:
        twin = create_user(acme, "ann@example.com", externalId="ext-ann")
    for identifier in ({"userName": "ann@example.com"}, {"externalId": "ext-ann"}):
        assert start_session(api, **identifier)["user"]["id"] == ann["id"]
        acme_session = start_session(api, tenant="acme", **identifier)
        assert acme_session["user"]["id"] == twin["id"]
        assert acme_session["tenant"] == "acme"
        assert introspect(api, acme_session["token"])["tenant"] == "acme"
    assert start_session(api, user_id=twin["id"])["tenant"] == "acme"
    assert api.post("/sessions", json={"client": "web", "user_id": twin["id"],
                              "tenant": "default"}).status_code == 404


def test_an_unknown_tenant_is_a_404(api, ann):
    response = api.post("/sessions", json={"client": "web", "userName": "ann@example.com",
                                  "tenant": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["error_description"]


@pytest.mark.parametrize("identifier", [{"user_id": "no-such-id"}, {"userName": "ghost@x.com"},
                                        {"externalId": "ghost"}])
def test_an_unknown_user_is_a_404_with_a_clear_body(api, identifier):
    response = api.post("/sessions", json={"client": "web", **identifier})
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found"
    assert list(identifier.values())[0] in body["error_description"]


def test_an_inactive_user_gets_no_session(api, scim, ann):
    scim.patch(f"/Users/{ann['id']}", json=patch({"op": "replace", "path": "active",
                                                   "value": False}))
    response = api.post("/sessions", json={"client": "web", "user_id": ann["id"]})
    assert response.status_code == 403
    assert response.json()["error"] == "user_inactive"
    assert "not active" in response.json()["error_description"]


@pytest.mark.parametrize("ttl", [1, 3600, 30 * 24 * 3600])
def test_ttl_within_bounds_sets_the_expiry(api, ann, ttl):
    body = start_session(api, user_id=ann["id"], ttl_seconds=ttl)
    claims = jwt.get_unverified_claims(body["token"])
    assert claims["exp"] - claims["iat"] == ttl


def test_a_null_ttl_means_the_default(api, ann):
    body = start_session(api, user_id=ann["id"], ttl_seconds=None)
    claims = jwt.get_unverified_claims(body["token"])
    assert claims["exp"] - claims["iat"] == 8 * 3600


@pytest.mark.parametrize("ttl", [0, -5, 30 * 24 * 3600 + 1, "60", 1.5, True])
def test_ttl_out_of_bounds_is_a_400(api, ann, ttl):
    response = api.post("/sessions", json={"client": "web", "user_id": ann["id"],
                                           "ttl_seconds": ttl})
    assert response.status_code == 400
    assert "ttl_seconds" in response.json()["error_description"]


@pytest.mark.parametrize(
    "body",
    [{"client": "web"}, {"client": "web", "user_id": "a", "userName": "b"},
     {"user_id": "x"}, {"client": "", "user_id": "x"}, {"client": "web", "userName": ""},
     {"client": "web", "userName": "a\x00b"}, {"client": "web", "user_id": "x" * 600},
     [], "text"],
    ids=["no-identifier", "two-identifiers", "no-client", "empty-client", "empty-userName",
         "nul-in-userName", "overlong-id", "array", "string"],
)
def test_a_malformed_request_is_a_400(api, body):
    response = api.post("/sessions", json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "error_description"}


def test_bad_json_is_a_400(api):
    response = api.post("/sessions", content=b'{"client": ',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_syntax"


def test_a_session_is_active_until_the_moment_it_expires(api, ann, clock):
    body = start_session(api, user_id=ann["id"], ttl_seconds=60)
    assert jwt.get_unverified_claims(body["token"])["iat"] == clock.timestamp()
    clock.advance(59)
    assert is_active(api, body["token"])
    clock.advance(1)
    assert introspect(api, body["token"]) == {"active": False}
    assert introspect(api, body["token"]) == {"active": False}


def _no_store(response) -> None:
    assert response.headers.get("cache-control") == "no-store", (
        response.status_code, dict(response.headers))


def test_every_sessions_answer_is_never_cached(app, api, anonymous, scim_token, ann):
    """RFC 6749 §5.1, RFC 7662 §2.2: a token, or its state, in any answer and any error."""
    created = api.post("/sessions", json={"client": "web", "user_id": ann["id"]})
    assert created.status_code == 201
    token, sid = created.json()["token"], created.json()["session_id"]
    with http_client(app, scim_token, "/api/v1") as wrong_scope:
        answers = {
            201: created,
            200: api.post("/sessions/introspect", data={"token": token}),
            204: api.delete(f"/sessions/{sid}"),
            400: api.post("/sessions", json={"client": "web"}),
            401: anonymous.post("/api/v1/sessions/introspect", data={"token": token}),
            403: wrong_scope.post("/sessions/introspect", data={"token": token}),
            404: api.delete("/sessions/no-such-session"),
            405: api.get("/sessions"),
            413: api.post("/sessions/introspect", content=b"x" * 2_000_000,
                          headers={"Content-Type": "application/json"}),
        }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        _no_store(response)
    _no_store(api.post("/sessions/introspect", data={"token": "not-a-token"}))
    _no_store(api.post("/sessions/introspect", json={"token": 42}))
    _no_store(api.post("/sessions/", json={"client": "web", "user_id": "nobody"}))


def test_logout_ends_the_session_and_is_recorded(app, api, ann):
    first = start_session(api, user_id=ann["id"])
    second = start_session(api, user_id=ann["id"], client="mobile")
    response = api.delete(f"/sessions/{first['session_id']}")
    assert response.status_code == 204
    assert not is_active(api, first["token"])
    assert is_active(api, second["token"])
    assert api.delete(f"/sessions/{first['session_id']}").status_code == 204
    with admin_client(app) as admin:
        logouts = events(admin, type="logout")
    assert [(e["user_id"], e["session_ids"], e["actor"]) for e in logouts] == [
        (ann["id"], [first["session_id"]], "sessions:frontline-app")
    ]


def test_logout_of_an_unknown_session_is_a_404(api):
    assert api.delete("/sessions/no-such-session").status_code == 404
    assert api.delete("/sessions/bad%00id").status_code == 400


def test_the_api_needs_a_sessions_token(app, anonymous, scim_token, ann):
    assert anonymous.post("/api/v1/sessions", json={"client": "web",
                                                    "user_id": ann["id"]}).status_code == 401
    with http_client(app, scim_token, "/api/v1") as wrong_scope:
        response = wrong_scope.post("/sessions/introspect", data={"token": "x"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_a_session_verified_before_is_still_judged_on_its_callers_token(app, api, ann):
    token = start_session(api, user_id=ann["id"])["token"]
    assert is_active(api, token)  # this process now remembers the token's signature
    with sessions_client(app, "second-app") as second:
        assert is_active(second, token)
        bridge = app.extensions["scim_bridge"]
        with bridge.sessions() as session:
            begin_write(session)
            tokens.revoke_token(session, "second-app")
            session.commit()
        refused = second.post("/sessions/introspect", data={"token": token})
    assert refused.status_code == 401 and "active" not in refused.json(), refused.text
    with http_client(app, make_token(app, "okta", "scim"), "/api/v1") as wrong_scope:
        forbidden = wrong_scope.post("/sessions/introspect", data={"token": token})
    assert forbidden.status_code == 403 and "active" not in forbidden.json()
    assert is_active(api, token)


@pytest.mark.parametrize("form", [{}, {"token": "a\x00b"}], ids=["no-token", "nul"])
def test_an_unknown_caller_with_a_bad_form_is_a_401(app, form):
    with http_client(app, "sb_not-a-token", "/api/v1") as stranger:
        response = stranger.post("/sessions/introspect", data=form)
    assert response.status_code == 401, response.text
