"""Rotating a webhook's secret: the new ``whsec_`` secret is shown once; during the grace period
every delivery carries two signatures, so the official ``standardwebhooks`` package verifies it
with the old secret and with the new one; after it, only the new secret's."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, admin_client
from .harness import UNTHROTTLED
from .receivers import register
from .scimdata import create_user

GRACE = 2


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url=PUBLIC_URL, delivery_poll_ms=100,
                    webhook_secret_grace=GRACE, **UNTHROTTLED)


def delete_a_user(scim, name: str) -> None:
    user = create_user(scim, f"{name}@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204


def test_rotation_signs_with_both_secrets_then_only_the_new_one(scim, admin, receiver, worker):
    created = register(admin, receiver.url, ["user.deleted"])
    old = created["secret"]
    response = admin.post(f"/webhooks/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated["id"] == created["id"] and rotated["previous_secret_until"].endswith("Z")
    listed = admin.get("/webhooks").text + admin.get(f"/webhooks/{created['id']}").text
    assert new not in listed and old not in listed

    delete_a_user(scim, "during")
    [during] = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert all(s.startswith("v1,") for s in during.headers["webhook-signature"].split(" "))
    assert Webhook(old).verify(during.body, during.headers)["type"] == "user.deleted"
    assert Webhook(new).verify(during.body, during.headers)["type"] == "user.deleted"

    time.sleep(GRACE + 0.2)
    delete_a_user(scim, "after")
    after = receiver.wait_for(2)[1]
    assert after.headers["webhook-signature"].count("v1,") == 1
    assert Webhook(new).verify(after.body, after.headers)["type"] == "user.deleted"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_before_any_rotation_one_signature(scim, admin, receiver, worker):
    secret = register(admin, receiver.url, ["user.deleted"])["secret"]
    delete_a_user(scim, "one")
    [request] = receiver.wait_for(1)
    assert request.headers["webhook-signature"].count("v1,") == 1
    Webhook(secret).verify(request.body, request.headers)


def test_rotating_another_tenants_or_an_unknown_webhook_is_a_404(app, admin):
    created = register(admin, "http://127.0.0.1:9/hook")
    with admin_client(app, "other-console", tenant="acme") as other:
        assert other.post(f"/webhooks/{created['id']}/rotate-secret").status_code == 404
    assert admin.post("/webhooks/nope/rotate-secret").status_code == 404
