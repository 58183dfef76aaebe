"""Signed webhooks (Standard Webhooks): registration through the admin API, and what a real
loopback receiver gets, each delivery verified with the official ``standardwebhooks`` package."""

from __future__ import annotations

import base64

import pytest

from scim_bridge import create_app

from .conftest import admin_client
from .receivers import register
from .scimdata import create_group, create_user, patch
from .sessionkit import start_session

TOPICS = ["session.revoked", "user.deactivated", "user.reactivated", "user.deleted",
          "group.member_removed", "group.deleted"]


def test_registering_shows_the_secret_once(admin):
    created = register(admin, "http://127.0.0.1:9/hook", ["session.revoked", "user.deleted"])
    assert set(created) >= {"id", "url", "events", "secret"}
    assert created["url"] == "http://127.0.0.1:9/hook"
    assert created["events"] == ["session.revoked", "user.deleted"]
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    listed = admin.get("/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    one = admin.get(f"/webhooks/{created['id']}")
    assert one.status_code == 200
    assert created["secret"] not in admin.get("/webhooks").text + one.text
    assert "secret" not in listed[0] and "secret" not in one.json()


def test_without_events_a_webhook_gets_every_type(admin):
    assert register(admin, "https://hooks.example/in")["events"] == TOPICS


def test_removing_a_webhook(admin):
    created = register(admin, "http://127.0.0.1:9/hook")
    assert admin.delete(f"/webhooks/{created['id']}").status_code == 204
    assert admin.get(f"/webhooks/{created['id']}").status_code == 404
    assert admin.delete(f"/webhooks/{created['id']}").status_code == 404
    assert admin.get("/webhooks").json() == {"webhooks": []}


def test_another_tenants_webhook_is_not_found(app, admin):
    created = register(admin, "http://127.0.0.1:9/hook")
    with admin_client(app, "other-console", tenant="acme") as other:
        assert other.get(f"/webhooks/{created['id']}").status_code == 404
        assert other.delete(f"/webhooks/{created['id']}").status_code == 404
        assert other.get("/webhooks").json() == {"webhooks": []}
    assert admin.get(f"/webhooks/{created['id']}").status_code == 200


@pytest.mark.parametrize(("body", "named"), [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "http://user:pw@example.com/"}, "url"),
    ({"url": "http://example.com:99999/"}, "url"),
    ({"url": 5}, "url"),
    ({}, "url"),
    ({"url": "http://example.com/", "events": ["user.exploded"]}, "user.exploded"),
    ({"url": "http://example.com/", "events": []}, "events"),
    ({"url": "http://example.com/", "events": "session.revoked"}, "events"),
    ({"url": "http://example.com/", "events": [1]}, "events"),
    (["http://example.com/"], "JSON object"),
])
def test_a_bad_registration_is_a_400_naming_the_problem(admin, body, named):
    response = admin.post("/webhooks", json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error_description"]
    assert admin.get("/webhooks").json() == {"webhooks": []}


def test_a_removal_patch_sends_one_member_removed_and_one_session_revoked(
        scim, api, admin, receiver, worker):
    secret = register(admin, receiver.url)["secret"]
    alice = create_user(scim, "alice@example.com")
    nurses = create_group(scim, "Nurses", [alice["id"]])
    session = start_session(api, user_id=alice["id"])
    response = scim.patch(f"/Groups/{nurses['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}))
    assert response.status_code in (200, 204), response.text
    receiver.wait_for(2)
    payloads = receiver.verified(secret)
    assert sorted(p["type"] for p in payloads) == ["group.member_removed", "session.revoked"]
    for sent, request in zip(payloads, receiver.requests, strict=True):
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-timestamp"].isdigit()
        assert request.headers["webhook-signature"].startswith("v1,")
        assert sent["data"]["user_id"] == alice["id"]
        assert sent["data"]["group"] == {"id": nurses["id"], "name": "Nurses"}
        assert sent["data"]["session_ids"] == [session["session_id"]]
        assert sent["data"]["actor"] == "scim:okta-prod"
        assert sent["data"]["cause"]["type"] == "member_removed"
        assert sent["timestamp"].endswith("Z")
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2


def test_only_subscribed_types_are_sent(scim, admin, receiver, worker):
    secret = register(admin, receiver.url, ["user.deleted"])["secret"]
    alice = create_user(scim, "alice@example.com")
    assert scim.patch(f"/Users/{alice['id']}", json=patch(
        {"op": "replace", "path": "active", "value": False})).status_code == 200
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    receiver.wait_for(1)
    worker.stop(wait=15)
    assert [p["type"] for p in receiver.verified(secret)] == ["user.deleted"]


def test_a_removed_webhook_gets_nothing_more(scim, admin, receiver, worker):
    created = register(admin, receiver.url)
    admin.delete(f"/webhooks/{created['id']}")
    alice = create_user(scim, "alice@example.com")
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    assert admin.post(f"/users/{alice['id']}/force-logout").status_code == 404
    assert worker.run_once() == 0
    assert receiver.requests == []


def test_with_no_webhook_a_change_adds_no_delivery(settings, scim, admin):
    alice = create_user(scim, "alice@example.com")
    scim.delete(f"/Users/{alice['id']}")
    listed = admin.get("/events").json()["events"]
    assert listed and all(event["deliveries"] == [] for event in listed)
    application = create_app(settings)
    assert application.extensions["scim_bridge"].delivery_worker().run_once() == 0
