"""OpenID Connect Back-Channel Logout 1.0 clients: registration through the admin API and the
CLI, and what a real loopback relying party receives: one form POST per ended session whose
``logout_token`` passes idpyoidc's own LogoutToken check; 200/204 deliver, 400 dead-letters,
anything else retries with the same ``jti``."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import jwt
import pytest
from cryptojwt.key_jar import KeyJar
from idpyoidc.message.oidc.session import LogoutToken

from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, admin_client
from .harness import UNTHROTTLED
from .independent_jose import published_keys
from .receivers import deliveries_of, wait_until
from .scimdata import create_group, create_user, patch
from .sessionkit import start_session

CLIENT_ID = "frontline-web"
BACKCHANNEL_LOGOUT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Short backoff and poll, so retries take milliseconds."""
    return Settings(database_url=database_url, public_url=PUBLIC_URL,
                    delivery_backoff_base_ms=20, delivery_poll_ms=100, delivery_timeout=2,
                    delivery_lease=5, **UNTHROTTLED)


def register(admin, url: str, client_id: str = CLIENT_ID) -> dict:
    response = admin.post("/logout-clients",
                          json={"client_id": client_id, "backchannel_logout_uri": url})
    assert response.status_code == 201, response.text
    return dict(response.json())


def logout_token(request) -> str:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body.decode("ascii"), strict_parsing=True)
    assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1
    return form["logout_token"][0]


def rp_check(anonymous, token: str, client_id: str = CLIENT_ID) -> LogoutToken:
    """The relying party's own validation (idpyoidc): signature by the published keys, iss,
    aud, iat, events, sub/sid, no nonce."""
    keyjar = KeyJar()
    keyjar.import_jwks({"keys": list(published_keys(anonymous).values())}, PUBLIC_URL)
    message = LogoutToken().from_jwt(token, keyjar=keyjar, sigalg="RS256")
    assert message.verify(iss=PUBLIC_URL, aud=client_id, allowed_sign_alg="RS256")
    return message


def test_registering_reading_listing_and_removing_a_client(admin):
    created = register(admin, "http://127.0.0.1:9/logout")
    assert created["client_id"] == CLIENT_ID
    assert created["backchannel_logout_uri"] == "http://127.0.0.1:9/logout"
    assert created["state"] == "enabled"
    assert admin.get(f"/logout-clients/{created['id']}").json() == created
    assert admin.get("/logout-clients").json() == {"logout_clients": [created]}
    assert admin.delete(f"/logout-clients/{created['id']}").status_code == 204
    assert admin.get(f"/logout-clients/{created['id']}").status_code == 404
    assert admin.delete(f"/logout-clients/{created['id']}").status_code == 404
    assert admin.get("/logout-clients").json() == {"logout_clients": []}


def test_another_tenants_client_is_not_found(app, admin):
    created = register(admin, "http://127.0.0.1:9/logout")
    with admin_client(app, "other-console", tenant="acme") as other:
        assert other.get(f"/logout-clients/{created['id']}").status_code == 404
        assert other.delete(f"/logout-clients/{created['id']}").status_code == 404
        assert other.get("/logout-clients").json() == {"logout_clients": []}
        # The same client id may be registered in another tenant.
        register(other, "http://127.0.0.1:9/logout")
    assert admin.get(f"/logout-clients/{created['id']}").status_code == 200


@pytest.mark.parametrize(("body", "named"), [
    ({"backchannel_logout_uri": "http://example.com/l"}, "client_id"),
    ({"client_id": "", "backchannel_logout_uri": "http://example.com/l"}, "client_id"),
    ({"client_id": 7, "backchannel_logout_uri": "http://example.com/l"}, "client_id"),
    ({"client_id": "x" * 201, "backchannel_logout_uri": "http://example.com/l"}, "client_id"),
    ({"client_id": "a\nb", "backchannel_logout_uri": "http://example.com/l"}, "client_id"),
    ({"client_id": "web"}, "backchannel_logout_uri"),
    ({"client_id": "web", "backchannel_logout_uri": "ftp://example.com/l"},
     "backchannel_logout_uri"),
    ({"client_id": "web", "backchannel_logout_uri": "http://example.com/l#x"},
     "backchannel_logout_uri"),
    ({"client_id": "web", "backchannel_logout_uri": "http://u:p@example.com/"},
     "backchannel_logout_uri"),
    ({"client_id": "web", "backchannel_logout_uri": ["http://example.com/l"]},
     "backchannel_logout_uri"),
    ({"client_id": "web", "backchannel_logout_uri": "http://example.com/", "nonce": 1}, "nonce"),
    (["web", "http://example.com/"], "JSON object"),
])
def test_a_bad_registration_is_a_400_naming_the_problem(admin, body, named):
    response = admin.post("/logout-clients", json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error_description"]
    assert admin.get("/logout-clients").json() == {"logout_clients": []}


def test_a_client_id_is_registered_once_per_tenant(admin):
    register(admin, "http://127.0.0.1:9/a")
    response = admin.post("/logout-clients", json={"client_id": CLIENT_ID,
                                                   "backchannel_logout_uri": "http://x.test/"})
    assert response.status_code == 409, response.text
    assert len(admin.get("/logout-clients").json()["logout_clients"]) == 1


def test_each_ended_session_gets_its_own_logout_token_that_the_rp_library_accepts(
        scim, api, admin, anonymous, receiver, worker):
    register(admin, receiver.url)
    omar = create_user(scim, "omar@example.com")
    sessions = [start_session(api, user_id=omar["id"]) for _ in range(3)]
    before = int(time.time())
    assert admin.post(f"/users/{omar['id']}/force-logout").status_code == 200
    received = receiver.wait_for(3)
    tokens = [logout_token(r) for r in received]
    messages = [rp_check(anonymous, token) for token in tokens]
    assert sorted(m["sid"] for m in messages) == sorted(s["session_id"] for s in sessions)
    for token in tokens:
        assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "sid", "sub", "events"}
        assert claims["events"] == {BACKCHANNEL_LOGOUT: {}}
        assert claims["sub"] == omar["id"] and claims["aud"] == CLIENT_ID
        assert before <= claims["iat"] and 0 < claims["exp"] - claims["iat"] <= 120
    assert len({m["jti"] for m in messages}) == 3
    wait_until(lambda: [d["state"] for d in deliveries_of(admin)] == ["delivered"] * 3)


def test_a_group_removal_logs_the_user_out_at_every_client(
        scim, api, admin, anonymous, receiver, worker):
    register(admin, receiver.url, "web")
    register(admin, receiver.url, "mobile")
    alice = create_user(scim, "alice@example.com")
    nurses = create_group(scim, "Nurses", [alice["id"]])
    session = start_session(api, user_id=alice["id"])
    assert scim.patch(f"/Groups/{nurses['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'})).status_code in (200, 204)
    received = receiver.wait_for(2)
    audiences = set()
    for request in received:
        token = logout_token(request)
        audience = jwt.decode(token, options={"verify_signature": False})["aud"]
        assert rp_check(anonymous, token, audience)["sid"] == session["session_id"]
        audiences.add(audience)
    assert audiences == {"web", "mobile"}
    time.sleep(0.3)
    assert len(receiver.requests) == 2  # a member removal is not a second logout


def test_a_failing_rp_gets_the_same_jti_with_a_fresh_expiry(
        scim, api, admin, anonymous, receiver, worker):
    register(admin, receiver.url)
    receiver.answer_first(2, 503)
    omar = create_user(scim, "omar@example.com")
    start_session(api, user_id=omar["id"])
    admin.post(f"/users/{omar['id']}/force-logout")
    received = receiver.wait_for(3)
    claims = [jwt.decode(logout_token(r), options={"verify_signature": False})
              for r in received]
    assert len({c["jti"] for c in claims}) == 1
    assert all(c["exp"] - c["iat"] <= 120 for c in claims)
    rp_check(anonymous, logout_token(received[-1]))
    [delivery] = wait_until(lambda: [d for d in deliveries_of(admin) if d["state"] == "delivered"])
    assert delivery["attempts"] == 3 and delivery["kind"] == "logout_client"


@pytest.mark.parametrize("status", [200, 204])
def test_200_and_204_deliver(scim, api, admin, receiver, worker, status):
    register(admin, receiver.url)
    receiver.default.status = status
    omar = create_user(scim, "omar@example.com")
    start_session(api, user_id=omar["id"])
    admin.post(f"/users/{omar['id']}/force-logout")
    wait_until(lambda: [d["state"] for d in deliveries_of(admin)] == ["delivered"])
    assert len(receiver.requests) == 1


def test_a_400_dead_letters_one_session_and_replay_resends_its_jti(
        scim, api, admin, receiver, worker):
    register(admin, receiver.url)
    receiver.answer_first(1, 400)
    omar = create_user(scim, "omar@example.com")
    start_session(api, user_id=omar["id"])
    start_session(api, user_id=omar["id"])
    admin.post(f"/users/{omar['id']}/force-logout")
    first, second = receiver.wait_for(2)
    states = wait_until(lambda: sorted(
        d["state"] for d in deliveries_of(admin) if d["state"] in ("dead", "delivered")
    ) if len([d for d in deliveries_of(admin) if d["state"] in ("dead", "delivered")]) == 2
        else None)
    assert states == ["dead", "delivered"]  # the other session was not held back
    [dead] = [d for d in deliveries_of(admin) if d["state"] == "dead"]
    assert "HTTP 400" in dead["last_error"]
    time.sleep(0.3)
    assert len(receiver.requests) == 2  # a 400 is not retried
    [event] = [e for e in admin.get("/events").json()["events"] if e["deliveries"]]
    assert admin.post(f"/events/{event['id']}/replay").json()["replayed"] == 1
    replayed = receiver.wait_for(3)[2]
    refused_jti = jwt.decode(logout_token(first), options={"verify_signature": False})["jti"]
    assert jwt.decode(logout_token(replayed), options={"verify_signature": False})["jti"] \
        == refused_jti
    wait_until(lambda: [d["state"] for d in deliveries_of(admin)] == ["delivered"] * 2)


def test_a_change_that_ends_no_session_sends_nothing(scim, admin, receiver, worker):
    register(admin, receiver.url)
    omar = create_user(scim, "omar@example.com")
    assert scim.delete(f"/Users/{omar['id']}").status_code == 204
    assert worker.run_once() == 0
    assert receiver.requests == [] and deliveries_of(admin) == []
