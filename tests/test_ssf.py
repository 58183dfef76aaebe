"""The OpenID SSF 1.0 transmitter as a receiver written from the specifications meets it: the
configuration document, stream management with its status codes, RFC 8935 push to a real
loopback receiver (every SET verified with PyJWT against the published JWKS), RFC 8936 poll
with acknowledgement and long poll, and what paused and disabled streams do."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import jwt
import pytest

from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, admin_client, http_client, make_token
from .harness import UNTHROTTLED
from .independent_jose import verified
from .receivers import Answer, deliveries_of
from .scimdata import create_group, create_user, patch
from .sessionkit import start_session

API = "/api/v1/ssf"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
DISABLED, ENABLED = RISC + "account-disabled", RISC + "account-enabled"
PURGED = RISC + "account-purged"
VERIFICATION, STREAM_UPDATED = SSF + "verification", SSF + "stream-updated"
SUPPORTED = [SESSION_REVOKED, DISABLED, PURGED, ENABLED, VERIFICATION, STREAM_UPDATED]
PUSH, POLL = "urn:ietf:rfc:8935", "urn:ietf:rfc:8936"
LONG_POLL = 2


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Short backoff and poll, a short long poll, verification allowed every 5 s."""
    return Settings(database_url=database_url, public_url=PUBLIC_URL,
                    delivery_backoff_base_ms=20, delivery_poll_ms=100, delivery_timeout=2,
                    delivery_lease=5, ssf_long_poll_seconds=LONG_POLL,
                    ssf_min_verification_interval=5, rate_limit_failed_auth="1000/second",
                    **UNTHROTTLED)


@pytest.fixture
def rp(app: Any) -> Any:
    """A receiver's client with an ``ssf`` token: ``rp.post("/streams")``."""
    with http_client(app, make_token(app, "rp-receiver", "ssf"), API) as client:
        yield client


def create(rp: Any, **body: Any) -> dict[str, Any]:
    response = rp.post("/streams", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def push_stream(rp: Any, url: str, header: str | None = "Bearer push_token_1",
                **body: Any) -> dict[str, Any]:
    delivery = {"method": PUSH, "endpoint_url": url}
    if header is not None:
        delivery["authorization_header"] = header
    return create(rp, delivery=delivery, **body)


def set_status(rp: Any, stream_id: str, status: str, **extra: Any) -> dict[str, Any]:
    response = rp.post("/status", json={"stream_id": stream_id, "status": status, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def polled(rp: Any, stream: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = rp.post(stream["delivery"]["endpoint_url"],
                       json={"returnImmediately": True, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def checked(anonymous: Any, token: str, stream: dict[str, Any]) -> dict[str, Any]:
    """The claims of a SET, verified as SSF 1.0 §4 profiles it."""
    _, claims = verified(anonymous, token, typ="secevent+jwt", audience=stream["aud"])
    assert claims["iss"] == PUBLIC_URL == stream["iss"]
    assert "sub" not in claims and "exp" not in claims
    assert isinstance(claims["txn"], str) and claims["txn"]
    assert claims["iat"] <= time.time() + 1
    assert len(claims["events"]) == 1
    (uri, event), = claims["events"].items()
    if uri in (VERIFICATION, STREAM_UPDATED):
        assert claims["sub_id"] == {"format": "opaque", "id": stream["stream_id"]}
        assert "subject" not in event
    else:
        assert event["subject"] == claims["sub_id"]
    return claims


def event_type(claims: dict[str, Any]) -> str:
    return next(iter(claims["events"]))


def revoke_by_group_removal(scim: Any, api: Any, name: str = "alice@example.com"
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A user with a live session removed from a group: one session-revoked SET."""
    user = create_user(scim, name)
    group = create_group(scim, "Sales", [user["id"]])
    session = start_session(api, user_id=user["id"])
    response = scim.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert response.status_code in (200, 204), response.text
    return user, session


def set_active(scim: Any, user: dict[str, Any], active: bool) -> None:
    response = scim.patch(f"/Users/{user['id']}", json=patch(
        {"op": "replace", "path": "active", "value": active}))
    assert response.status_code == 200, response.text


# --- the configuration document --------------------------------------------------------


def test_the_configuration_document_describes_the_transmitter(anonymous):
    response = anonymous.get("/.well-known/ssf-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["spec_version"] == "1_0"
    assert doc["issuer"] == PUBLIC_URL
    assert doc["jwks_uri"] == f"{PUBLIC_URL}/.well-known/jwks.json"
    assert doc["delivery_methods_supported"] == [PUSH, POLL]
    assert doc["configuration_endpoint"] == f"{PUBLIC_URL}{API}/streams"
    assert doc["status_endpoint"] == f"{PUBLIC_URL}{API}/status"
    assert doc["add_subject_endpoint"] == f"{PUBLIC_URL}{API}/subjects/add"
    assert doc["remove_subject_endpoint"] == f"{PUBLIC_URL}{API}/subjects/remove"
    assert doc["verification_endpoint"] == f"{PUBLIC_URL}{API}/verify"
    assert doc["authorization_schemes"] and all("spec_urn" in s
                                                for s in doc["authorization_schemes"])
    # The CAEP interoperability profile and the conformance suite require RFC 6749 listed.
    assert {"spec_urn": "urn:ietf:rfc:6749"} in doc["authorization_schemes"]
    assert "events_supported" not in doc
    assert all(value != [] for value in doc.values())
    assert anonymous.get(doc["jwks_uri"]).json()["keys"]
    assert anonymous.get("/.well-known/ssf-configuration/elsewhere").status_code == 404


# --- stream management -----------------------------------------------------------------


def test_a_stream_created_without_delivery_is_an_enabled_poll_stream_of_its_own(rp):
    first, second = create(rp), create(rp, description="second")
    assert first["iss"] == PUBLIC_URL
    assert first["aud"] == "rp-receiver"
    assert first["events_supported"] == SUPPORTED
    assert first["events_delivered"] == SUPPORTED
    assert first["delivery"]["method"] == POLL
    urls = {first["delivery"]["endpoint_url"], second["delivery"]["endpoint_url"]}
    assert len(urls) == 2 and all(u.startswith(PUBLIC_URL) for u in urls)
    assert first["stream_id"] != second["stream_id"]
    assert rp.get("/status", params={"stream_id": first["stream_id"]}).json() == {
        "stream_id": first["stream_id"], "status": "enabled"}


def test_events_delivered_are_the_supported_ones_requested(rp):
    stream = create(rp, events_requested=[SESSION_REVOKED, "urn:example:unknown", PURGED],
                    aud=["https://rp.example", "https://rp2.example"])
    assert stream["events_requested"] == [SESSION_REVOKED, "urn:example:unknown", PURGED]
    assert stream["events_delivered"] == [SESSION_REVOKED, PURGED]
    assert stream["aud"] == ["https://rp.example", "https://rp2.example"]


def test_reading_one_stream_or_all_of_them(app, rp):
    assert rp.get("/streams").json() == []
    first, second = create(rp), create(rp)
    assert rp.get("/streams", params={"stream_id": first["stream_id"]}).json() == first
    assert rp.get("/streams").json() == [first, second]
    assert rp.get("/streams", params={"stream_id": "nope"}).status_code == 404


def test_patch_changes_what_it_names_and_put_replaces_everything(rp, receiver):
    stream = create(rp, description="mine", events_requested=[SESSION_REVOKED])
    sid = stream["stream_id"]
    patched = rp.patch("/streams", json={"stream_id": sid, "description": "renamed"})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**stream, "description": "renamed"}
    pushed = rp.patch("/streams", json={
        "stream_id": sid, "iss": PUBLIC_URL, "events_delivered": [SESSION_REVOKED],
        "delivery": {"method": PUSH, "endpoint_url": receiver.url}})
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["delivery"] == {"method": PUSH, "endpoint_url": receiver.url}
    replaced = rp.put("/streams", json={"stream_id": sid})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert "description" not in body and "events_requested" not in body
    assert body["events_delivered"] == SUPPORTED
    assert body["delivery"]["method"] == POLL
    assert rp.get("/streams", params={"stream_id": sid}).json() == body


@pytest.mark.parametrize(("change", "named"), [
    ({"aud": "someone-else"}, "aud"),
    ({"iss": "https://other.example"}, "iss"),
    ({"events_delivered": [PURGED]}, "events_delivered"),
    ({"events_supported": []}, "events_supported"),
    ({"min_verification_interval": 1}, "min_verification_interval"),
])
def test_an_update_may_not_change_what_the_transmitter_supplies(rp, change, named):
    stream = create(rp)
    for method in (rp.patch, rp.put):
        response = method("/streams", json={"stream_id": stream["stream_id"], **change})
        assert response.status_code == 400, response.text
        assert named in response.json()["error_description"]
    assert rp.get("/streams").json() == [stream]


def test_deleting_a_stream(rp):
    stream = create(rp)
    response = rp.delete("/streams", params={"stream_id": stream["stream_id"]})
    assert response.status_code == 204 and response.content == b""
    assert rp.get("/streams", params={"stream_id": stream["stream_id"]}).status_code == 404
    assert rp.delete("/streams", params={"stream_id": stream["stream_id"]}).status_code == 404
    assert rp.delete("/streams").status_code == 400
    assert rp.get("/streams").json() == []


_BAD_CREATES = [
    (["not", "an", "object"], "JSON object"),
    ({"delivery": {"method": "https://schemas.openid.net/secevent/risc/delivery-method/push",
                   "url": "http://127.0.0.1:9/"}}, "method"),
    ({"delivery": {"method": PUSH}}, "endpoint_url"),
    ({"delivery": {"method": PUSH, "endpoint_url": "ftp://example.com/"}}, "endpoint_url"),
    ({"delivery": {"method": PUSH, "endpoint_url": "http://example.com/",
                   "authorization_header": "Bearer a\r\nX-Injected: 1"}}, "authorization_header"),
    ({"delivery": {"method": PUSH, "endpoint_url": "http://example.com/", "extra": 1}}, "extra"),
    ({"delivery": {"method": POLL, "endpoint_url": "http://example.com/mine"}}, "endpoint_url"),
    ({"delivery": "push"}, "delivery"),
    ({"events_requested": SESSION_REVOKED}, "events_requested"),
    ({"events_requested": [1]}, "events_requested"),
    ({"description": 5}, "description"),
    ({"description": "x" * 1001}, "description"),
    ({"aud": []}, "aud"),
    ({"aud": 7}, "aud"),
    ({"format": "phone"}, "format"),
    ({"alg": "HS256"}, "alg"),
    ({"alg": "none"}, "alg"),
    ({"stream_id": "chosen-by-me"}, "stream_id"),
    ({"unheard_of": True}, "unheard_of"),
]


@pytest.mark.parametrize(("body", "named"), _BAD_CREATES)
def test_a_bad_create_is_a_400_that_makes_nothing(rp, body, named):
    response = rp.post("/streams", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert named in response.json()["error_description"]
    assert rp.get("/streams").json() == []


def test_a_body_that_is_not_json_is_a_400(rp):
    for method, path in (("POST", "/streams"), ("PATCH", "/streams"), ("POST", "/status"),
                         ("POST", "/verify"), ("POST", "/subjects/add")):
        response = rp.request(method, path, content=b"{broken",
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (method, path, response.text)
        assert "error" in response.json()
    assert rp.get("/streams").json() == []


@pytest.mark.parametrize(("path", "body", "named"), [
    ("/status", {"stream_id": None, "status": "paused"}, "stream_id"),
    ("/status", {"status": "asleep"}, "status"),
    ("/status", {"status": "paused", "reason": 5}, "reason"),
    ("/verify", {"state": 5}, "state"),
    ("/verify", {"stream_id": 5}, "stream_id"),
    ("/subjects/add", {"subject": "alice"}, "subject"),
    ("/subjects/add", {"subject": {"format": "email", "email": "a@example.com"},
                       "verified": "yes"}, "verified"),
    ("/subjects/remove", {"subject": {"email": "a@example.com"}}, "subject"),
])
def test_bad_status_verification_and_subject_requests_are_400s(rp, path, body, named):
    stream = create(rp)
    full = {"stream_id": stream["stream_id"], **body} if "stream_id" not in body else body
    response = rp.post(path, json=full)
    assert response.status_code == 400, response.text
    assert named in response.json()["error_description"]
    assert rp.get("/status", params={"stream_id": stream["stream_id"]}).json()["status"] == \
        "enabled"
    assert polled(rp, stream)["sets"] == {}


def test_status_is_read_and_set_with_a_reason(rp):
    sid = create(rp)["stream_id"]
    for status in ("paused", "disabled", "enabled"):
        assert set_status(rp, sid, status, reason=f"now {status}") == {
            "stream_id": sid, "status": status, "reason": f"now {status}"}
        assert rp.get("/status", params={"stream_id": sid}).json() == {
            "stream_id": sid, "status": status, "reason": f"now {status}"}
    assert set_status(rp, sid, "enabled") == {"stream_id": sid, "status": "enabled"}
    assert rp.get("/status").status_code == 400
    assert rp.get("/status", params={"stream_id": "nope"}).status_code == 404


def test_subjects_are_added_with_200_and_removed_with_204(rp):
    sid = create(rp)["stream_id"]
    subject = {"format": "email", "email": "example.user@example.com"}
    added = rp.post("/subjects/add", json={"stream_id": sid, "subject": subject,
                                           "verified": True})
    assert added.status_code == 200 and added.content == b""
    removed = rp.post("/subjects/remove", json={"stream_id": sid, "subject": subject})
    assert removed.status_code == 204 and removed.content == b""
    assert rp.post("/subjects/add", json={"stream_id": "nope", "subject": subject}
                   ).status_code == 404


_ROUTES = [("POST", "/streams"), ("GET", "/streams"), ("PATCH", "/streams"),
           ("PUT", "/streams"), ("DELETE", "/streams"), ("GET", "/status"),
           ("POST", "/status"), ("POST", "/subjects/add"), ("POST", "/subjects/remove"),
           ("POST", "/verify")]


def test_a_bad_token_is_401_with_www_authenticate_and_a_wrong_scope_403(app, rp):
    stream = create(rp)
    poll_url = stream["delivery"]["endpoint_url"].removeprefix(PUBLIC_URL + API)
    body = {"stream_id": stream["stream_id"]}
    for token in (None, "sb_not-a-real-token"):
        with http_client(app, token, API) as stranger:
            for method, path in [*_ROUTES, ("POST", poll_url)]:
                response = stranger.request(method, path, json=body,
                                            params={"stream_id": stream["stream_id"]})
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["error"] == "invalid_token"
    with http_client(app, make_token(app, "idp", "scim"), API) as idp:
        for method, path in [*_ROUTES, ("POST", poll_url)]:
            response = idp.request(method, path, json=body,
                                   params={"stream_id": stream["stream_id"]})
            assert response.status_code == 403, (method, path, response.text)
    assert rp.get("/streams").json() == [stream]


def test_another_tenants_stream_is_not_found(app, rp):
    stream = create(rp)
    sid = stream["stream_id"]
    poll_url = stream["delivery"]["endpoint_url"].removeprefix(PUBLIC_URL + API)
    with http_client(app, make_token(app, "acme-rp", "ssf", tenant="acme"), API) as other:
        assert other.get("/streams").json() == []
        assert other.get("/streams", params={"stream_id": sid}).status_code == 404
        assert other.patch("/streams", json={"stream_id": sid, "description": "x"}
                           ).status_code == 404
        assert other.put("/streams", json={"stream_id": sid}).status_code == 404
        assert other.delete("/streams", params={"stream_id": sid}).status_code == 404
        assert other.get("/status", params={"stream_id": sid}).status_code == 404
        assert other.post("/status", json={"stream_id": sid, "status": "disabled"}
                          ).status_code == 404
        assert other.post("/verify", json={"stream_id": sid}).status_code == 404
        assert other.post(poll_url, json={"returnImmediately": True}).status_code == 404
    assert rp.get("/streams").json() == [stream]


# --- verification ----------------------------------------------------------------------


def test_verification_is_204_then_429_until_the_interval_has_passed(rp, anonymous):
    stream = create(rp)
    sid = stream["stream_id"]
    response = rp.post("/verify", json={"stream_id": sid, "state": "abc-123"})
    assert response.status_code == 204 and response.content == b""
    again = rp.post("/verify", json={"stream_id": sid, "state": "second"})
    assert again.status_code == 429, again.text
    assert 1 <= int(again.headers["retry-after"]) <= 5
    sets = polled(rp, stream)["sets"]
    assert len(sets) == 1
    (jti, token), = sets.items()
    claims = checked(anonymous, token, stream)
    assert claims["jti"] == jti
    assert claims["events"] == {VERIFICATION: {"state": "abc-123"}}


def test_a_verification_without_state_has_none(rp, anonymous):
    stream = create(rp)
    assert rp.post("/verify", json={"stream_id": stream["stream_id"]}).status_code == 204
    (token,) = polled(rp, stream)["sets"].values()
    assert checked(anonymous, token, stream)["events"] == {VERIFICATION: {}}


# --- push (RFC 8935) -------------------------------------------------------------------


def test_a_pushed_set_verifies_and_carries_the_authorization_header_byte_for_byte(
        rp, scim, api, anonymous, receiver, worker):
    stream = push_stream(rp, receiver.url, "Bearer push_token_8f2e Ab==")
    user, session = revoke_by_group_removal(scim, api)
    (request,) = receiver.wait_for(1)
    assert request.headers["content-type"] == "application/secevent+jwt"
    assert request.headers["accept"] == "application/json"
    assert request.headers["authorization"] == "Bearer push_token_8f2e Ab=="
    token = request.body.decode("ascii")
    assert token.count(".") == 2 and token == request.body.decode().strip()
    claims = checked(anonymous, token, stream)
    assert claims["aud"] == "rp-receiver"
    assert claims["sub_id"] == {"format": "iss_sub", "iss": PUBLIC_URL, "sub": user["id"]}
    event = claims["events"][SESSION_REVOKED]
    assert event["initiating_entity"] == "policy"
    assert event["reason_admin"] == {"en": "removed from group 'Sales'"}
    assert isinstance(event["event_timestamp"], int) and event["event_timestamp"] <= claims["iat"]
    assert session["session_id"]


def test_a_stream_without_authorization_header_sends_none(rp, scim, receiver, worker):
    push_stream(rp, receiver.url, header=None)
    user = create_user(scim, "bob@example.com")
    set_active(scim, user, False)
    (request,) = receiver.wait_for(1)
    assert "authorization" not in request.headers
    assert event_type(jwt.decode(request.body, options={"verify_signature": False})) == DISABLED


def test_one_scim_request_shares_one_txn_across_its_sets(rp, scim, api, anonymous, receiver,
                                                          worker):
    stream = push_stream(rp, receiver.url)
    user = create_user(scim, "carol@example.com")
    start_session(api, user_id=user["id"])
    start_session(api, user_id=user["id"])
    set_active(scim, user, False)
    requests = receiver.wait_for(3)
    time.sleep(0.2)
    assert len(receiver.requests) == 3
    sets = [checked(anonymous, r.body.decode(), stream) for r in requests]
    assert sorted(event_type(c) for c in sets) == sorted([DISABLED] + [SESSION_REVOKED] * 2)
    assert len({c["txn"] for c in sets}) == 1
    assert len({c["jti"] for c in sets}) == 3


def _wait_for_state(admin: Any, state: str, seconds: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = deliveries_of(admin)
        if found and all(d["state"] == state for d in found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"deliveries did not become {state}: {deliveries_of(admin)}")


@pytest.mark.parametrize("err", ["invalid_request", "invalid_issuer", "invalid_audience"])
def test_a_400_saying_the_configuration_is_wrong_dead_letters_at_once(
        rp, scim, admin, receiver, worker, err):
    push_stream(rp, receiver.url)
    receiver.default = Answer(400, {"Content-Type": "application/json"},
                              body=json.dumps({"err": err, "description": "no"}).encode())
    user = create_user(scim, "dave@example.com")
    set_active(scim, user, False)
    (delivery,) = _wait_for_state(admin, "dead")
    assert delivery["attempts"] == 1 and err in delivery["last_error"]
    time.sleep(0.3)
    assert len(receiver.requests) == 1


def test_other_refusals_are_retried_with_the_same_jti(rp, scim, admin, receiver, worker):
    push_stream(rp, receiver.url)
    auth_failed = json.dumps({"err": "authentication_failed", "description": "x"}).encode()
    receiver.script = [Answer(400, {"Content-Type": "application/json"}, body=auth_failed),
                       Answer(500), Answer(429, {"Retry-After": "0"}), Answer(202)]
    user = create_user(scim, "erin@example.com")
    set_active(scim, user, False)
    requests = receiver.wait_for(4)
    (delivery,) = _wait_for_state(admin, "delivered")
    assert delivery["attempts"] == 4
    sent = [jwt.decode(r.body, options={"verify_signature": False}) for r in requests]
    assert len({c["jti"] for c in sent}) == 1
    assert all({k: v for k, v in c.items() if k != "iat"} ==
               {k: v for k, v in sent[0].items() if k != "iat"} for c in sent)


def test_a_complex_subject_names_user_session_and_tenant(rp, scim, api, anonymous, receiver,
                                                           worker):
    stream = push_stream(rp, receiver.url, format="complex")
    user, session = revoke_by_group_removal(scim, api)
    (request,) = receiver.wait_for(1)
    claims = checked(anonymous, request.body.decode(), stream)
    assert claims["sub_id"] == {
        "format": "complex",
        "user": {"format": "iss_sub", "iss": PUBLIC_URL, "sub": user["id"]},
        "session": {"format": "opaque", "id": session["session_id"]},
        "tenant": {"format": "opaque", "id": "default"},
    }


def test_a_stream_may_ask_for_es256(rp, scim, anonymous):
    stream = create(rp, alg="ES256")
    assert stream["alg"] == "ES256"
    set_active(scim, create_user(scim, "ed@example.com"), False)
    (token,) = polled(rp, stream)["sets"].values()
    _, claims = verified(anonymous, token, typ="secevent+jwt", audience=stream["aud"],
                         algorithm="ES256")
    assert event_type(claims) == DISABLED
    assert create(rp)["alg"] == "RS256"


# --- poll (RFC 8936) -------------------------------------------------------------------


def test_unacknowledged_sets_come_back_and_acknowledged_ones_never(rp, scim, anonymous):
    stream = create(rp)
    users = [create_user(scim, f"u{n}@example.com") for n in range(3)]
    for user in users:
        set_active(scim, user, False)
    first = polled(rp, stream, maxEvents=2)
    assert len(first["sets"]) == 2 and first["moreAvailable"] is True
    for token in first["sets"].values():
        assert event_type(checked(anonymous, token, stream)) == DISABLED
    again = polled(rp, stream, maxEvents=2)
    assert again["sets"] == first["sets"] or set(again["sets"]) == set(first["sets"])
    acked = list(first["sets"])
    only_ack = polled(rp, stream, ack=acked, maxEvents=0)
    assert only_ack["sets"] == {}
    rest = polled(rp, stream)
    assert len(rest["sets"]) == 1 and not set(rest["sets"]) & set(acked)
    assert rest["moreAvailable"] is False
    (last,) = rest["sets"]
    errors = {last: {"err": "invalid_key", "description": "unknown kid"}}
    assert polled(rp, stream, setErrs=errors, maxEvents=0)["sets"] == {}
    assert polled(rp, stream)["sets"] == {}


def test_one_row_of_several_sets_is_acknowledged_one_jti_at_a_time(rp, scim, api):
    stream = create(rp, events_requested=[SESSION_REVOKED])
    user = create_user(scim, "frank@example.com")
    start_session(api, user_id=user["id"])
    start_session(api, user_id=user["id"])
    set_active(scim, user, False)
    sets = polled(rp, stream)["sets"]
    assert len(sets) == 2
    one, other = sorted(sets)
    assert set(polled(rp, stream, ack=[one])["sets"]) == {other}
    assert polled(rp, stream, ack=[other])["sets"] == {}


@pytest.mark.parametrize(("body", "named"), [
    ({"ack": "1.0"}, "ack"),
    ({"ack": [1]}, "ack"),
    ({"maxEvents": -1}, "maxEvents"),
    ({"maxEvents": "10"}, "maxEvents"),
    ({"returnImmediately": "yes"}, "returnImmediately"),
    ({"setErrs": {"1.0": "bad"}}, "setErrs"),
    ([], "JSON object"),
])
def test_a_bad_poll_is_a_400(rp, scim, body, named):
    stream = create(rp)
    set_active(scim, create_user(scim, "gina@example.com"), False)
    response = rp.post(stream["delivery"]["endpoint_url"], json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error_description"]
    assert len(polled(rp, stream)["sets"]) == 1


def test_a_push_stream_has_no_poll_endpoint(rp, receiver):
    stream = push_stream(rp, receiver.url)
    response = rp.post(f"/poll/{stream['stream_id']}", json={"returnImmediately": True})
    assert response.status_code == 404


def test_a_long_poll_answers_when_a_set_arrives(app, rp, scim):
    stream = create(rp)
    answers: list[httpx.Response] = []
    token = make_token(app, "rp-long-poller", "ssf")

    def long_poll() -> None:
        with http_client(app, token) as client:
            answers.append(client.post(stream["delivery"]["endpoint_url"], json={}))

    waiting = threading.Thread(target=long_poll)
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    assert not answers  # still waiting: nothing to deliver yet
    set_active(scim, create_user(scim, "hank@example.com"), False)
    waiting.join(10)
    took = time.monotonic() - started
    (answer,) = answers
    assert answer.status_code == 200
    assert len(answer.json()["sets"]) == 1
    assert took < LONG_POLL, f"the long poll took {took:.2f}s: it was not woken"


def test_an_empty_long_poll_ends_after_its_bound(rp):
    stream = create(rp)
    started = time.monotonic()
    response = rp.post(stream["delivery"]["endpoint_url"], json={"returnImmediately": False})
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["sets"] == {}
    assert LONG_POLL - 0.2 <= took < LONG_POLL + 2


# --- paused, disabled, stream-updated --------------------------------------------------


def test_a_paused_stream_holds_everything_and_releases_it_in_order(
        rp, scim, anonymous, receiver, worker):
    stream = push_stream(rp, receiver.url)
    sid = stream["stream_id"]
    set_status(rp, sid, "paused")
    user = create_user(scim, "ida@example.com")
    for active in (False, True, False, True):
        set_active(scim, user, active)
    assert rp.post("/verify", json={"stream_id": sid, "state": "held"}).status_code == 204
    time.sleep(0.5)
    assert receiver.requests == []
    set_status(rp, sid, "enabled")
    requests = receiver.wait_for(5)
    sets = [checked(anonymous, r.body.decode(), stream) for r in requests]
    user_sets = [event_type(c) for c in sets if c["sub_id"].get("sub") == user["id"]]
    assert user_sets == [DISABLED, ENABLED, DISABLED, ENABLED]
    assert [c["events"][VERIFICATION] for c in sets if VERIFICATION in c["events"]] == [
        {"state": "held"}]


def test_a_paused_poll_stream_answers_nothing_until_enabled(rp, scim):
    stream = create(rp)
    set_status(rp, stream["stream_id"], "paused")
    set_active(scim, create_user(scim, "jack@example.com"), False)
    assert polled(rp, stream)["sets"] == {}
    set_status(rp, stream["stream_id"], "enabled")
    assert len(polled(rp, stream)["sets"]) == 1


def test_disabling_drops_what_was_held_and_a_disabled_stream_keeps_nothing(
        rp, scim, receiver, worker):
    stream = push_stream(rp, receiver.url)
    sid = stream["stream_id"]
    set_status(rp, sid, "paused")
    user = create_user(scim, "kim@example.com")
    set_active(scim, user, False)
    set_status(rp, sid, "disabled")
    set_active(scim, user, True)
    assert rp.post("/verify", json={"stream_id": sid, "state": "dropped"}).status_code == 204
    set_status(rp, sid, "enabled")
    time.sleep(0.5)
    assert receiver.requests == []
    set_active(scim, user, False)
    (request,) = receiver.wait_for(1)
    assert event_type(jwt.decode(request.body, options={"verify_signature": False})) == DISABLED


def test_the_transmitter_pausing_a_stream_sends_stream_updated(
        app, rp, scim, anonymous, receiver, worker):
    stream = push_stream(rp, receiver.url)
    sid = stream["stream_id"]
    with admin_client(app) as admin:
        paused = admin.post(f"/streams/{sid}/status",
                            json={"status": "paused", "reason": "maintenance"})
        assert paused.status_code == 200, paused.text
        assert paused.json() == {"stream_id": sid, "status": "paused", "reason": "maintenance"}
        (request,) = receiver.wait_for(1)
        claims = checked(anonymous, request.body.decode(), stream)
        assert claims["events"] == {STREAM_UPDATED: {"status": "paused",
                                                     "reason": "maintenance"}}
        set_active(scim, create_user(scim, "lee@example.com"), False)
        time.sleep(0.4)
        assert len(receiver.requests) == 1
        assert admin.post(f"/streams/{sid}/status", json={"status": "enabled"}
                          ).status_code == 200
        requests = receiver.wait_for(3)
        types = sorted(event_type(checked(anonymous, r.body.decode(), stream))
                       for r in requests[1:])
        assert types == sorted([DISABLED, STREAM_UPDATED])
        assert admin.post("/streams/nope/status", json={"status": "enabled"}).status_code == 404
        assert admin.post(f"/streams/{sid}/status", json={"status": "off"}).status_code == 400
    assert rp.get("/status", params={"stream_id": sid}).json() == {
        "stream_id": sid, "status": "enabled"}


def test_a_receiver_changing_its_own_status_gets_no_stream_updated(rp, receiver, worker):
    sid = push_stream(rp, receiver.url)["stream_id"]
    set_status(rp, sid, "paused")
    set_status(rp, sid, "enabled")
    time.sleep(0.4)
    assert receiver.requests == []
