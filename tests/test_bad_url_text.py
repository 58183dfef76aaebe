"""Text that cannot be stored, sent in a URL or a filter, is a 400 and changes nothing (issue 7
§3): NUL, bytes that are not UTF-8, overlong forms and encoded surrogates, in paths and query
parameters on every surface, the filter escape ``\\u0000`` and the introspection form.

Werkzeug would decode bad bytes to U+FFFD, a value the client never sent, and PostgreSQL
refuses NUL in text. The test clients decode a path before the app sees it, so the bad paths
go in as the raw WSGI ``PATH_INFO`` (bytes as latin-1, as a server hands them over), and once
through a real server over a socket.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import pytest

from .conftest import make_token
from .live import ERROR
from .scimdata import create_group, create_user
from .sessionkit import events, is_active, start_session

#: Percent-escapes that no value may hold: NUL, a byte that starts no UTF-8 character, an
#: overlong "/", and the encoded surrogates U+D800 and U+DFFF.
BAD_ESCAPES = ["%00", "%FF", "%C0%AF", "%ED%A0%80", "%ED%BF%BF"]
#: Filters that hold NUL as the filter (JSON) escape, in a value and in a value path.
NUL_FILTERS = [r'userName eq "a\u0000"', r'emails[value eq "\u0000"]',
               r'userName eq "x" or displayName co "\u0000b"']


@pytest.fixture
def staff(scim, api) -> dict[str, Any]:
    """One user in one group with a live session: what a bad request must leave alone."""
    amy = create_user(scim, "amy@example.com", displayName="Amy Pond",
                      emails=[{"value": "amy@example.com", "primary": True}])
    group = create_group(scim, "Tardis", [amy["id"]])
    session = start_session(api, user_id=amy["id"])
    return {"user": amy, "group": group, "session": session}


def _state(scim, admin, api, staff) -> Any:
    """Everything a bad request could have changed: resources, events and the session."""
    sessions = admin.get(f"/users/{staff['user']['id']}/sessions").json()["sessions"]
    return (scim.get("/Users").json()["Resources"], scim.get("/Groups").json()["Resources"],
            events(admin), sessions, is_active(api, staff["session"]["token"]))


def _raw(app, method: str, url: str, token: str, **kwargs: Any) -> Any:
    """``url`` as sent on the wire: its path reaches the app as raw bytes, its query as is."""
    parts = urlsplit(url)
    path_info = unquote_to_bytes(parts.path).decode("latin-1")
    return app.test_client().open(
        parts.path, method=method, headers={"Authorization": f"Bearer {token}"},
        environ_overrides={"PATH_INFO": path_info, "QUERY_STRING": parts.query}, **kwargs,
    )


def _assert_scim_400(response: Any, scim_type: str, words: str) -> None:
    assert response.status_code == 400
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == "400"
    assert body["scimType"] == scim_type
    assert words in body["detail"]


def _assert_json_400(response: Any, error: str, words: str) -> None:
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error
    assert words in body["error_description"]


def _url_words(escape: str) -> str:
    return "NUL" if escape == "%00" else "not valid UTF-8"


@pytest.fixture
def admin_token(app) -> str:
    return make_token(app, "raw-console", "admin")


# --- SCIM paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("escape", BAD_ESCAPES)
@pytest.mark.parametrize(
    "method, template, body",
    [
        ("GET", "/scim/v2/Users/{user}{bad}", None),
        ("GET", "/scim/v2/Groups/{bad}", None),
        ("PATCH", "/scim/v2/Users/{user}{bad}",
         {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
          "Operations": [{"op": "replace", "path": "active", "value": False}]}),
        ("PUT", "/scim/v2/Groups/{group}{bad}", {"displayName": "Renamed"}),
        ("DELETE", "/scim/v2/Users/{user}{bad}", None),
        ("DELETE", "/scim/v2/Groups/{group}{bad}", None),
        ("GET", "/scim/v2/Schemas/urn:{bad}", None),
        ("GET", "/scim/v2/No{bad}Such", None),
    ],
)
def test_a_bad_scim_path_is_a_scim_400(app, scim, scim_token, admin, api, staff,
                                       method, template, body, escape):
    before = _state(scim, admin, api, staff)
    url = template.format(user=staff["user"]["id"], group=staff["group"]["id"], bad=escape)
    response = _raw(app, method, url, scim_token,
                    data=json.dumps(body) if body else None,
                    content_type="application/scim+json" if body else None)
    _assert_scim_400(response, "invalidSyntax", _url_words(escape))
    assert _state(scim, admin, api, staff) == before


# --- SCIM query parameters ----------------------------------------------------------------


@pytest.mark.parametrize("escape", BAD_ESCAPES)
@pytest.mark.parametrize(
    "query",
    [
        "/scim/v2/Users?filter=userName%20eq%20%22{bad}%22",
        "/scim/v2/Groups?filter=displayName%20eq%20%22Tardis{bad}%22",
        "/scim/v2/Users?attributes={bad}",
        "/scim/v2/Users?excludedAttributes=emails{bad}",
        "/scim/v2/Groups?startIndex=1{bad}",
        "/scim/v2/Users/{user}?attributes=userName{bad}",
        "/scim/v2/Users?count=1&sortBy={bad}",
        "/scim/v2/Users?{bad}=1",
    ],
)
def test_a_bad_scim_query_parameter_is_a_scim_400(app, scim, scim_token, admin, api, staff,
                                                  query, escape):
    before = _state(scim, admin, api, staff)
    response = _raw(app, "GET", query.format(bad=escape, user=staff["user"]["id"]), scim_token)
    _assert_scim_400(response, "invalidSyntax", _url_words(escape))
    assert _state(scim, admin, api, staff) == before


# --- Filters holding the escape \u0000 -----------------------------------------------------


@pytest.mark.parametrize("text", NUL_FILTERS)
def test_a_nul_escape_in_a_filter_is_invalid_filter(scim, staff, text):
    """On PostgreSQL the NUL reached the database as a bound parameter: a 500."""
    for response in (scim.get("/Users", params={"filter": text}),
                     scim.post("/Users/.search", json={"filter": text}),
                     scim.post("/.search", json={"filter": text})):
        assert response.status_code == 400
        body = response.json()
        assert body["scimType"] == "invalidFilter"
        assert "NUL" in body["detail"]


def test_a_nul_escape_in_a_group_filter_is_invalid_filter(scim, staff):
    response = scim.get("/Groups", params={"filter": r'displayName eq "Tardis\u0000"'})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidFilter"


@pytest.mark.parametrize("text", NUL_FILTERS)
def test_a_nul_escape_in_a_bulk_logout_filter_ends_no_session(scim, admin, api, staff, text):
    before = _state(scim, admin, api, staff)
    response = admin.post("/force-logout", json={"filter": text})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_filter"
    assert "NUL" in response.json()["error_description"]
    assert _state(scim, admin, api, staff) == before


@pytest.mark.parametrize("resource, operation", [
    ("Users", {"op": "replace", "path": r'emails[type eq "\u0000"].value', "value": "x@y.z"}),
    ("Users", {"op": "add", "path": r'addresses[type eq "wo\u0000rk"].locality',
               "value": "Cardiff"}),
    ("Users", {"op": "remove", "path": r'emails[value eq "amy@example.com\u0000"]'}),
    ("Groups", {"op": "remove", "path": r'members[value eq "\u0000"]'}),
])
def test_a_nul_escape_in_a_patch_path_filter_changes_nothing(scim, admin, api, staff,
                                                            resource, operation):
    """Entra's create-on-miss stored the filter's NUL as a value: a 500 on PostgreSQL, and on
    SQLite a NUL in the row. A bad PATCH path is invalidPath (RFC 7644 §3.5.2)."""
    before = _state(scim, admin, api, staff)
    target = staff["user" if resource == "Users" else "group"]["id"]
    response = scim.patch(f"/{resource}/{target}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [operation]})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidPath"
    assert "NUL" in response.json()["detail"]
    assert _state(scim, admin, api, staff) == before


def test_a_filter_escape_that_is_not_nul_still_finds_the_user(scim, staff):
    """Only NUL is refused: ``\\u0040`` is "@" and matches."""
    response = scim.get("/Users", params={"filter": r'userName eq "amy\u0040example.com"'})
    assert response.status_code == 200
    assert [u["id"] for u in response.json()["Resources"]] == [staff["user"]["id"]]


# --- The admin API, the sessions API and the rest -----------------------------------------


@pytest.mark.parametrize("escape", BAD_ESCAPES)
@pytest.mark.parametrize(
    "method, template",
    [
        ("GET", "/api/v1/admin/users?search={bad}"),
        ("GET", "/api/v1/admin/users?group=Tardis{bad}"),
        ("GET", "/api/v1/admin/users?active=true&count=5{bad}"),
        ("GET", "/api/v1/admin/events?user_id={user}{bad}"),
        ("GET", "/api/v1/admin/requests?status={bad}"),
        ("GET", "/api/v1/admin/users/{user}{bad}/sessions"),
        ("POST", "/api/v1/admin/users/{user}{bad}/force-logout"),
    ],
)
def test_a_bad_admin_url_is_a_json_400(app, scim, admin, admin_token, api, staff,
                                       method, template, escape):
    before = _state(scim, admin, api, staff)
    response = _raw(app, method, template.format(bad=escape, user=staff["user"]["id"]),
                    admin_token)
    _assert_json_400(response, "invalid_syntax", _url_words(escape))
    assert _state(scim, admin, api, staff) == before


@pytest.mark.parametrize("escape", BAD_ESCAPES)
@pytest.mark.parametrize(
    "method, template",
    [
        ("DELETE", "/api/v1/sessions/{sid}{bad}"),
        ("DELETE", "/api/v1/sessions/{sid}?reason={bad}"),
        ("POST", "/api/v1/sessions/introspect?token={bad}"),
        ("GET", "/.well-known/jwks.json?{bad}"),
        ("GET", "/.well-known/{bad}"),
        ("GET", "/healthz?probe={bad}"),
    ],
)
def test_a_bad_url_elsewhere_is_a_json_400(app, scim, admin, api, staff, method, template,
                                           escape):
    before = _state(scim, admin, api, staff)
    url = template.format(bad=escape, sid=staff["session"]["session_id"])
    response = _raw(app, method, url, make_token(app, "raw-app", "sessions"))
    _assert_json_400(response, "invalid_syntax", _url_words(escape))
    assert _state(scim, admin, api, staff) == before


@pytest.mark.parametrize("escape", BAD_ESCAPES)
def test_a_bad_query_on_a_session_request_starts_no_session(app, scim, admin, api, staff,
                                                          escape):
    before = _state(scim, admin, api, staff)
    response = _raw(app, "POST", f"/api/v1/sessions?client={escape}",
                    make_token(app, "raw-app", "sessions"),
                    data=json.dumps({"client": "web", "user_id": staff["user"]["id"]}),
                    content_type="application/json")
    _assert_json_400(response, "invalid_syntax", _url_words(escape))
    assert _state(scim, admin, api, staff) == before


@pytest.mark.parametrize("escape", ["%FF", "%ED%A0%80"])
def test_a_bulk_path_holding_escapes_fails_only_its_own_operation(scim, staff, escape):
    """A Bulk path is text in the body, not a URL: ``%FF`` there is an id no resource has."""
    user_id = staff["user"]["id"]
    change = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "path": "title", "value": "Companion"}]}
    response = scim.post("/Bulk", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "PATCH", "path": f"/Users/{user_id}{escape}", "data": change},
                       {"method": "PATCH", "path": f"/Users/{user_id}", "data": change}]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["Operations"]] == ["404", "200"]
    assert scim.get(f"/Users/{user_id}").json()["title"] == "Companion"


def test_a_good_non_ascii_url_still_works(app, scim, scim_token, staff):
    """The check refuses only what is not UTF-8: "é" sent as %C3%A9 is a value like any other."""
    scim.patch(f"/Users/{staff['user']['id']}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Amélie"}]})
    response = _raw(app, "GET", "/scim/v2/Users?filter=displayName%20eq%20%22Am%C3%A9lie%22"
                    "&attributes=display%4Eame+", scim_token)
    assert response.status_code == 200
    assert [u["displayName"] for u in response.get_json()["Resources"]] == ["Amélie"]


# --- The introspection form ---------------------------------------------------------------


@pytest.mark.parametrize("escape", BAD_ESCAPES)
@pytest.mark.parametrize("form", ["token={bad}", "token={token}{bad}", "token={token}&{bad}=1"])
def test_a_bad_introspection_form_is_a_json_400(api, staff, form, escape):
    token = staff["session"]["token"]
    response = api.post("/sessions/introspect",
                        content=form.format(bad=escape, token=token).encode("ascii"),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["error"] == "invalid_syntax"
    assert _url_words(escape).replace("URL", "form") in response.json()["error_description"]
    assert is_active(api, token)


def test_a_good_introspection_form_still_works(api, staff):
    response = api.post("/sessions/introspect",
                        content=f"token={staff['session']['token']}&x=%C3%A9+".encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert response.json()["active"] is True


# --- Through a real server ----------------------------------------------------------------


def _over_socket(base_url: str, target: str, token: str) -> tuple[int, dict[str, Any]]:
    """One request with ``target`` sent byte for byte (HTTP clients re-encode or refuse it)."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                     f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize("target", [
    "/scim/v2/Users/%ED%A0%80", "/scim/v2/Users/%FF",
    "/scim/v2/Users?filter=userName%20eq%20%22%C0%AF%22",
    "/scim/v2/Users?attributes=%ED%BF%BF",
])
def test_a_real_server_refuses_a_url_that_is_not_utf8(server, target):
    status, body = _over_socket(server.base_url, target, server.scim_token)
    assert (status, body["scimType"], body["detail"]) == (
        400, "invalidSyntax", "the URL is not valid UTF-8"
    )


def test_a_real_server_refuses_a_nul_filter_escape(server):
    """On PostgreSQL this was a 500: the NUL reached the database as a bound parameter."""
    status, body = _over_socket(server.base_url,
                                "/scim/v2/Users?filter=userName%20eq%20%22a%5Cu0000%22",
                                server.scim_token)
    assert (status, body["scimType"]) == (400, "invalidFilter")
