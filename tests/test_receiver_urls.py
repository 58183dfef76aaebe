"""``SCIM_BRIDGE_RECEIVER_URLS``: by default a receiver may be on loopback or a private network;
with ``public``, registering a webhook or logout client on a loopback, private or link-local
address (or a name resolving to one) is a 400 naming the rule, and a delivery whose host
resolves to such an address by send time is refused (dead-lettered, nothing sent)."""

from __future__ import annotations

import pytest

from scim_bridge import create_app
from scim_bridge.events.worker import DeliveryWorker
from scim_bridge.settings import Settings, SettingsError

from .conftest import PUBLIC_URL, admin_client
from .harness import UNTHROTTLED
from .receivers import register
from .scimdata import create_user

INTERNAL = [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook",
    "http://172.16.0.9/hook", "http://192.168.1.1/hook", "http://169.254.169.254/latest",
    "http://[::1]/hook", "http://[fe80::1]/hook", "http://[fd00::5]/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0/hook", "http://100.64.0.1/hook",
    "http://224.0.0.1/hook", "http://no-such-host.invalid/hook",
]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url=PUBLIC_URL, receiver_urls="public",
                    **UNTHROTTLED)


@pytest.mark.parametrize("url", INTERNAL)
def test_a_webhook_on_an_internal_address_is_refused_naming_the_rule(admin, url):
    response = admin.post("/webhooks", json={"url": url})
    assert response.status_code == 400, response.text
    assert "SCIM_BRIDGE_RECEIVER_URLS=public" in response.json()["error_description"] \
        or "does not resolve" in response.json()["error_description"]
    assert admin.get("/webhooks").json() == {"webhooks": []}


@pytest.mark.parametrize("url", INTERNAL[:4])
def test_a_logout_client_on_an_internal_address_is_refused(admin, url):
    response = admin.post("/logout-clients",
                          json={"client_id": "web", "backchannel_logout_uri": url})
    assert response.status_code == 400, response.text
    assert "backchannel_logout_uri" in response.json()["error_description"]
    assert admin.get("/logout-clients").json() == {"logout_clients": []}


@pytest.mark.parametrize("url", ["https://93.184.215.14/hook", "http://[2606:4700::1111]/x"])
def test_a_public_address_is_accepted(admin, url):
    assert register(admin, url)["url"] == url


def test_by_default_loopback_is_accepted(app, database_url):
    assert Settings(database_url=database_url).receiver_urls == "any"


def test_an_unknown_rule_is_a_settings_error(database_url):
    with pytest.raises(SettingsError, match="SCIM_BRIDGE_RECEIVER_URLS"):
        Settings(database_url=database_url, receiver_urls="internal")
    assert Settings.from_env({"SCIM_BRIDGE_RECEIVER_URLS": "public",
                              "SCIM_BRIDGE_DATABASE_URL": database_url}).receiver_urls == "public"


def test_the_rule_is_checked_again_at_send_time(app, settings, scim, admin, receiver):
    """A webhook registered while loopback was allowed gets nothing once the worker runs
    restricted: its row dead-letters, naming the rule."""
    bridge = app.extensions["scim_bridge"]
    with admin_client(create_app(settings.with_(receiver_urls="any")), "open") as open_admin:
        register(open_admin, receiver.url, ["user.deleted"])
    alice = create_user(scim, "alice@example.com")
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    restricted = DeliveryWorker(bridge.sessions, settings, signer=bridge.keys)
    assert restricted.run_once() == 1
    assert receiver.requests == []
    [delivery] = [d for e in admin.get("/events").json()["events"] for d in e["deliveries"]]
    assert delivery["state"] == "dead"
    assert "SCIM_BRIDGE_RECEIVER_URLS=public" in delivery["last_error"]
