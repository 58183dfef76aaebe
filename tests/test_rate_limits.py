"""Request budgets: a token past its budget gets 429 with Retry-After in its surface's format,
other tokens and other addresses keep theirs, the budget refills, several instances share it
through Redis, and a Redis that stops answering fails no request."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from scim_bridge import create_app
from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, admin_client, http_client, make_token, sessions_client
from .harness import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
#: Small budgets, so a test uses one up in a few requests.
TIGHT = {"rate_limit_scim": "5/minute", "rate_limit_admin": "5/minute",
         "rate_limit_sessions": "5/minute", "rate_limit_failed_auth": "3/minute"}


@pytest.fixture
def limits() -> dict[str, str]:
    """The rate-limit settings of the test's app; a test parametrizes it to change them."""
    return TIGHT


@pytest.fixture
def settings(database_url: str, limits: dict[str, str]) -> Settings:
    return Settings(database_url=database_url, public_url=PUBLIC_URL, **limits)


def redis_url() -> str:
    """The real Redis; skipped when it does not answer, failed where CI requires it."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        reason = f"Redis is not answering on {REDIS_URL}: {exc}"
        if os.environ.get("SCIM_BRIDGE_REQUIRE_REDIS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_URL


def use_up(client: httpx.Client, path: str, budget: int) -> httpx.Response:
    """Spend ``budget`` requests, each answered normally; return the next answer."""
    for _ in range(budget):
        assert client.get(path).status_code == 200
    return client.get(path)


def assert_throttled(response: httpx.Response, *, scim: bool, longest: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= longest
    body = response.json()
    if scim:
        assert response.headers["Content-Type"].startswith("application/scim+json")
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == "429"
        assert "rate limit" in body["detail"]
    else:
        assert body["error"] == "rate_limited"
        assert "rate limit" in body["error_description"]


def test_the_sixth_scim_request_of_a_token_is_a_scim_429_with_retry_after(scim):
    assert_throttled(use_up(scim, "/Users", 5), scim=True)


def test_the_sixth_admin_request_of_a_token_is_a_json_429_with_retry_after(app, admin):
    assert_throttled(use_up(admin, "/users", 5), scim=False)


def test_the_sixth_introspection_of_the_sessions_token_is_a_429(api):
    for _ in range(5):
        assert api.post("/sessions/introspect", data={"token": "x"}).json() == {"active": False}
    assert_throttled(api.post("/sessions/introspect", data={"token": "x"}), scim=False)


def test_introspecting_a_token_verified_before_is_charged_too(api, scim):
    user = scim.post("/Users", json={"userName": "ann@example.com"}).json()
    token = api.post("/sessions", json={"user_id": user["id"], "client": "web"}).json()["token"]
    for _ in range(4):  # the first verifies the signature, the others remember it
        assert api.post("/sessions/introspect", data={"token": token}).json()["active"] is True
    assert_throttled(api.post("/sessions/introspect", data={"token": token}), scim=False)


def test_a_throttled_create_changes_nothing(scim):
    for number in range(5):
        assert scim.post("/Users", json={"userName": f"u{number}@example.com"}).status_code == 201
    assert_throttled(scim.post("/Users", json={"userName": "late@example.com"}), scim=True)
    with http_client(scim._transport.app, make_token(scim._transport.app, "other", "scim"),
                     "/scim/v2") as other:
        listing = other.get("/Users", params={"filter": 'userName eq "late@example.com"'})
    assert listing.json()["totalResults"] == 0


def test_another_token_of_the_same_tenant_keeps_its_own_budget(app, scim):
    assert_throttled(use_up(scim, "/Users", 5), scim=True)
    with http_client(app, make_token(app, "entra", "scim"), "/scim/v2") as entra:
        assert entra.get("/Users").status_code == 200
    with admin_client(app) as admin:  # another surface, another budget
        assert admin.get("/users").status_code == 200


@pytest.mark.parametrize("limits", [{"rate_limit_scim": "3/second"}])
def test_the_budget_refills_after_its_window(scim):
    response = use_up(scim, "/Users", 3)
    assert_throttled(response, scim=True, longest=1)
    time.sleep(1.1)
    assert scim.get("/Users").status_code == 200


@pytest.mark.parametrize("limits", [{}])
def test_the_defaults_let_25_requests_a_second_for_3_seconds_through(scim, app):
    """Entra sends up to about 25 requests per second per tenant; here 75 arrive at once."""
    statuses = {scim.get("/Users").status_code for _ in range(75)}
    with sessions_client(app) as api:  # the application's introspections are not limited
        statuses |= {api.post("/sessions/introspect", data={"token": "x"}).status_code
                     for _ in range(75)}
    assert statuses == {200}


@pytest.mark.parametrize("limits", [{"rate_limit_scim": "off", "rate_limit_admin": "off"}])
def test_off_turns_a_limit_off(scim, admin):
    assert use_up(scim, "/Users", 10).status_code == 200
    assert use_up(admin, "/users", 10).status_code == 200


# -- failed authentication ---------------------------------------------------------------------


def client_from(app: object, address: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.WSGITransport(app=app, remote_addr=address)  # type: ignore[arg-type]
    return httpx.Client(transport=transport, base_url=f"{PUBLIC_URL}/scim/v2", headers=headers)


def test_failed_authentication_is_throttled_per_address(app, scim_token):
    with client_from(app, "192.0.2.1", "sb_guessed") as guesser:
        assert [guesser.get("/Users").status_code for _ in range(3)] == [401, 401, 401]
        throttled = guesser.get("/Users")
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["status"] == "429"
    assert "failed authentications" in throttled.json()["detail"]
    with client_from(app, "192.0.2.2", "sb_stale") as neighbour:  # another address: a 401
        assert neighbour.get("/Users").status_code == 401
    with client_from(app, "192.0.2.1", scim_token) as idp:  # a valid token still works
        assert idp.get("/Users").status_code == 200
    with client_from(app, "192.0.2.1", None) as anonymous:
        assert anonymous.get("/Users").status_code == 429


def test_failed_authentication_outside_scim_is_a_json_429(app):
    with client_from(app, "192.0.2.9", "sb_guessed") as guesser:
        for _ in range(3):
            assert guesser.get(f"{PUBLIC_URL}/api/v1/admin/users").status_code == 401
        throttled = guesser.get(f"{PUBLIC_URL}/api/v1/admin/users")
    assert throttled.status_code == 429 and throttled.json()["error"] == "rate_limited"
    assert "Retry-After" in throttled.headers


# -- Redis -------------------------------------------------------------------------------------


@pytest.fixture
def shared(settings: Settings) -> Settings:
    """The test's settings with counters in the real Redis, under a key prefix of their own."""
    return settings.with_(redis_url=redis_url(),
                          rate_limit_key_prefix=f"scim-bridge-test-{uuid.uuid4().hex}")


@pytest.fixture
def two_instances(app, shared: Settings) -> Iterator[tuple[object, object]]:
    first, second = create_app(shared), create_app(shared)
    yield first, second
    for instance in (first, second):
        instance.extensions["scim_bridge"].engine.dispose()


def test_two_instances_share_one_budget_through_redis(app, two_instances):
    token = make_token(app, "okta", "scim")
    first, second = (http_client(instance, token, "/scim/v2") for instance in two_instances)
    with first, second:
        assert [first.get("/Users").status_code for _ in range(3)] == [200] * 3
        assert [second.get("/Users").status_code for _ in range(2)] == [200] * 2
        assert_throttled(first.get("/Users"), scim=True)
        assert_throttled(second.get("/Users"), scim=True)


def test_two_instances_share_failed_authentications_through_redis(two_instances):
    first, second = (client_from(instance, "192.0.2.7", "sb_guessed") for instance in
                     two_instances)
    with first, second:
        assert [first.get("/Users").status_code for _ in range(2)] == [401, 401]
        assert second.get("/Users").status_code == 401
        assert second.get("/Users").status_code == 429
        assert first.get("/Users").status_code == 429


def test_an_unreachable_redis_fails_no_request_and_counts_in_memory(app, settings, caplog):
    unreachable = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    instance = create_app(unreachable)
    token = make_token(app, "okta", "scim")
    caplog.set_level(logging.WARNING)
    try:
        with client_from(instance, "192.0.2.3", "sb_guessed") as guesser:
            assert [guesser.get("/Users").status_code for _ in range(5)] == [401] * 3 + [429] * 2
        with http_client(instance, token, "/scim/v2") as idp:
            assert_throttled(use_up(idp, "/Users", 5), scim=True)
            assert_throttled(idp.get("/Users"), scim=True)
    finally:
        instance.extensions["scim_bridge"].engine.dispose()
    warnings = [record.getMessage() for record in caplog.records
                if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # once per outage, for tokens and addresses alike
    assert all("unreachable" in message for message in warnings), warnings
    assert not [record for record in caplog.records if record.exc_info], "no traceback"
