"""Every route, every outcome, carries ``X-Request-Id``: the caller's when it is a plain token,
else a fresh one."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/healthz"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/scim/v2/Users"),             # 401 without a token
    ("GET", "/scim/v2/NoSuchThing"),       # routing 404 under SCIM
    ("GET", "/no/such/route"),             # routing 404 elsewhere
    ("DELETE", "/healthz"),                # 405
    ("POST", "/api/v1/sessions/introspect"),
    ("GET", "/api/v1/admin/users"),
])
def test_every_response_has_a_request_id(anonymous, method, path):
    response = anonymous.request(method, path)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"]), response.headers


def test_ids_differ_per_request(anonymous):
    ids = {anonymous.get("/healthz").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


def test_a_plain_incoming_id_is_kept(scim):
    response = scim.get("/Users", headers={"X-Request-Id": "okta-req.42:abc"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "okta-req.42:abc"


@pytest.mark.parametrize("incoming", ["x" * 200, "a b", "a\"b", "<script>", ""])
def test_an_unusable_incoming_id_is_replaced(anonymous, incoming):
    response = anonymous.get("/healthz", headers={"X-Request-Id": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


def test_errors_render_in_the_surface_format_with_the_id(scim, anonymous):
    scim_404 = scim.get("/Users/does-not-exist")
    assert scim_404.status_code == 404
    assert scim_404.headers["Content-Type"].startswith("application/scim+json")
    assert scim_404.json()["status"] == "404"
    json_405 = anonymous.delete("/healthz")
    assert json_405.status_code == 405
    assert json_405.json()["error"] == "method_not_allowed"
    assert "GET" in json_405.headers["Allow"]
    assert scim_404.headers["X-Request-Id"] != json_405.headers["X-Request-Id"]
