"""TLS ends at a reverse proxy: only the proxies of ``SCIM_BRIDGE_FORWARDED_ALLOW_IPS`` may set
the scheme (``X-Forwarded-Proto``, answered by gunicorn) and the client address
(``X-Forwarded-For``); from any other peer those headers change nothing."""

from __future__ import annotations

import os

import httpx
import pytest
from flask import request

from scim_bridge import create_app
from scim_bridge.proxy import TrustedProxy

from .harness import BridgeServer
from .live import fresh_database
from .scimdata import user_body

PROXY = "10.0.0.5"
FORWARDED = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}


def _client_address(settings, allowed: str, peer: str, headers: dict[str, str]) -> str:
    """The client address the app sees for a request from ``peer``, served as gunicorn does."""
    app = create_app(settings.with_(forwarded_allow_ips=allowed))
    app.add_url_rule("/_client_address", "client_address", lambda: request.remote_addr or "")
    try:
        transport = httpx.WSGITransport(app=TrustedProxy(app, allowed), remote_addr=peer)
        with httpx.Client(transport=transport, base_url="http://bridge.test") as client:
            response = client.get("/_client_address", headers=headers)
        assert response.status_code == 200, response.text
        return response.text
    finally:
        app.extensions["scim_bridge"].engine.dispose()


@pytest.mark.parametrize(("allowed", "peer", "seen"), [
    ("10.0.0.5", PROXY, "203.0.113.7"),       # the entry the trusted proxy appended
    ("10.0.0.0/8,::1", PROXY, "203.0.113.7"),
    ("*", PROXY, "203.0.113.7"),
    ("127.0.0.1,::1", PROXY, PROXY),          # not a trusted proxy: its headers are ignored
    ("10.0.0.0/8", "192.0.2.9", "192.0.2.9"),
])
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(settings, allowed, peer, seen):
    assert _client_address(settings, allowed, peer, FORWARDED) == seen


def test_a_trusted_proxy_without_a_client_address_keeps_the_peer(settings):
    assert _client_address(settings, "*", PROXY, {"X-Forwarded-For": "unknown"}) == PROXY


def _location_scheme(allowed: str) -> str:
    """The scheme of ``meta.location`` a live server (no public URL) answers a proxied create."""
    with fresh_database() as database_url:
        env = {**{k: v for k, v in os.environ.items()
                  if k != "SCIM_BRIDGE_PUBLIC_URL"},
               "SCIM_BRIDGE_FORWARDED_ALLOW_IPS": allowed}
        server = BridgeServer(database_url, env=env, serve_args=("--workers", "1"))
        try:
            token = server.wait_for_line(r"^SCIM token:\s+(\S+)\s*$").group(1)
            server.wait_healthy()
            response = httpx.post(f"{server.base_url}/scim/v2/Users", json=user_body(
                "proxied@example.com"), headers={"Authorization": f"Bearer {token}", **FORWARDED})
            assert response.status_code == 201, response.text
            return response.json()["meta"]["location"].split("://")[0]
        finally:
            server.stop()


def test_x_forwarded_proto_from_the_trusted_proxy_makes_locations_https():
    assert _location_scheme("127.0.0.1") == "https"  # the test talks from loopback


def test_x_forwarded_proto_from_another_peer_is_ignored():
    assert _location_scheme("192.0.2.1") == "http"
