"""Text no database can store, and JSON nested too deep, in request bodies (issue 7 §3): a 400
``invalidSyntax`` on every surface that takes a body, never a 500, and nothing changes.

NUL (as the escape ``\\u0000``, or as a raw byte, which makes the JSON invalid) is refused by
PostgreSQL; a lone surrogate (``\\ud800``, as an escape or as its raw three bytes, which Python's
JSON decoder lets through) has no UTF-8 form at all. Bodies are sent as bytes built here, so
each travels exactly as a careless or hostile client would send it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from scim_bridge.services import tokens
from scim_bridge.storable import MAX_JSON_DEPTH

from .scimdata import create_group, create_user, patch, user_body
from .sessionkit import admin_client, is_active, start_session

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

#: Where a case puts its bad text: ``TEXT`` in any string, key or value, of the body.
TEXT = "\ue000"


class Bad:
    """One member of a class of unstorable text and how it travels on the wire."""

    def __init__(self, text: str, raw: bytes | None = None) -> None:
        self.text = text
        self.raw = raw  # bytes that replace the ASCII-JSON escape of ``text``, if any

    def encode(self, body: Any) -> bytes:
        encoded = json.dumps(body).replace(json.dumps(TEXT)[1:-1], json.dumps(self.text)[1:-1])
        data = encoded.encode("ascii")
        if self.raw is not None:
            data = data.replace(json.dumps(self.text)[1:-1].encode("ascii"), self.raw)
        return data


BAD = {
    "nul-escape": Bad("a\x00b"),
    "nul-raw-byte": Bad("a\x00b", raw=b"a\x00b"),
    "surrogate-d800": Bad("\ud800"),
    "surrogate-dfff": Bad("\udfff"),
    "surrogate-inside": Bad("a\udc80b"),
    "surrogate-raw-bytes": Bad("x\ud800", raw=b"x\xed\xa0\x80"),
}
#: The ones a JSON parser accepts: they reach the text check (a raw NUL is invalid JSON).
PARSEABLE = {name: bad for name, bad in BAD.items() if name != "nul-raw-byte"}


@pytest.fixture
def world(scim, api) -> dict[str, Any]:
    """A user with a live session, in a group: what a bad request must leave as it was."""
    user = create_user(scim, "ann@example.com", displayName="Ann")
    group = create_group(scim, "Nurses", [user["id"]])
    session = start_session(api, user_id=user["id"])
    return {"user": user, "group": group, "session": session}


@pytest.fixture
def admin(app) -> Iterator[httpx.Client]:
    with admin_client(app, "audit-console") as client:
        yield client


def _state(scim, admin, api, world) -> Any:
    """Everything a request could change: resources, events, live sessions."""
    events = admin.get("/events", params={"count": 1000})
    users = admin.get("/users")
    assert events.status_code == users.status_code == 200
    return (scim.get("/Users").json(), scim.get("/Groups").json(), events.json(), users.json(),
            is_active(api, world["session"]["token"]))


# --- SCIM: every request that takes a body ------------------------------------------------------

def _user_path(w: dict) -> str:
    return f"/Users/{w['user']['id']}"


def _group_path(w: dict) -> str:
    return f"/Groups/{w['group']['id']}"


SCIM_CASES: dict[str, Callable[[dict], tuple[str, str, Any]]] = {
    "POST-Users-value": lambda w: ("POST", "/Users", user_body("new@example.com",
                                                               displayName=TEXT)),
    "POST-Users-userName": lambda w: ("POST", "/Users", user_body(f"{TEXT}@example.com")),
    "POST-Users-nested-key": lambda w: (
        "POST", "/Users", user_body("new@example.com", name={"givenName": "N", TEXT: "x"})),
    "POST-Users-multi-valued": lambda w: (
        "POST", "/Users", user_body("new@example.com", phoneNumbers=[
            {"value": "+1 555 0100", "type": "work"}, {"value": TEXT, "type": "home"}])),
    "PUT-Users-value": lambda w: ("PUT", _user_path(w), user_body("ann@example.com",
                                                                  title=TEXT)),
    "PATCH-Users-op-value": lambda w: ("PATCH", _user_path(w), patch(
        {"op": "replace", "path": "displayName", "value": TEXT})),
    "PATCH-Users-op-path": lambda w: ("PATCH", _user_path(w), patch(
        {"op": "replace", "path": f'emails[type eq "{TEXT}"].value', "value": "x@example.com"})),
    "PATCH-Users-multi-valued-value": lambda w: ("PATCH", _user_path(w), patch(
        {"op": "add", "path": "emails", "value": [{"value": "b@example.com", "type": TEXT}]})),
    "PATCH-Users-pathless-key": lambda w: ("PATCH", _user_path(w), patch(
        {"op": "replace", "value": {TEXT: "x", "title": "Boss"}})),
    "POST-Groups-value": lambda w: ("POST", "/Groups", {"schemas": [GROUP], "displayName": TEXT}),
    "PUT-Groups-member": lambda w: ("PUT", _group_path(w), {
        "schemas": [GROUP], "displayName": "Nurses", "members": [{"value": TEXT}]}),
    "PATCH-Groups-op-value": lambda w: ("PATCH", _group_path(w), patch(
        {"op": "add", "path": "members", "value": [{"value": TEXT}]})),
    "PATCH-Groups-op-path": lambda w: ("PATCH", _group_path(w), patch(
        {"op": "remove", "path": f'members[value eq "{TEXT}"]'})),
    "POST-search": lambda w: ("POST", "/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": f'userName eq "{TEXT}"'}),
}


def _send_scim(scim, method: str, path: str, data: bytes) -> httpx.Response:
    return scim.request(method, path, content=data,
                        headers={"Content-Type": "application/scim+json"})


def _scim_error(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "400" and body["detail"]
    assert body["scimType"] == "invalidSyntax", body
    return body


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("case", SCIM_CASES.values(), ids=SCIM_CASES.keys())
def test_scim_bodies_with_unstorable_text_are_400_and_change_nothing(
    scim, admin, api, world, case, bad
):
    before = _state(scim, admin, api, world)
    method, path, body = case(world)
    _scim_error(_send_scim(scim, method, path, bad.encode(body)))
    assert _state(scim, admin, api, world) == before


@pytest.mark.parametrize("text, named", [
    ("\ud800", "'displayName' holds a lone surrogate U+D800"),
    ("a\x00b", "'displayName' holds a NUL character U+0000"),
])
def test_the_error_names_the_attribute_and_the_character(scim, text, named):
    body = Bad(text).encode(user_body("new@example.com", displayName=TEXT))
    assert named in _scim_error(_send_scim(scim, "POST", "/Users", body))["detail"]


def test_a_key_is_named_with_its_character_escaped(scim):
    body = Bad("\udfff").encode(user_body("new@example.com", name={TEXT: "x"}))
    detail = _scim_error(_send_scim(scim, "POST", "/Users", body))["detail"]
    assert "the key 'name.\\udfff' holds a lone surrogate U+DFFF" in detail


def test_paired_surrogates_are_one_character_and_stored(scim):
    """``\\ud83d\\ude00`` is the escape of one emoji, not two lone surrogates."""
    body = json.dumps(user_body("emoji@example.com", displayName="Ann \U0001f600")).encode()
    assert b"\\ud83d\\ude00" in body
    created = scim.post("/Users", content=body, headers={"Content-Type": "application/scim+json"})
    assert created.status_code == 201, created.text
    assert scim.get(f"/Users/{created.json()['id']}").json()["displayName"] == "Ann \U0001f600"


# --- Bulk: the bad operation fails alone -------------------------------------------------------

BULK_PLACES: dict[str, Callable[[dict], dict]] = {
    "data-value": lambda w: {"method": "POST", "path": "/Users", "bulkId": "bad",
                             "data": user_body("bad@example.com", displayName=TEXT)},
    "data-key": lambda w: {"method": "POST", "path": "/Users", "bulkId": "bad",
                           "data": user_body("bad@example.com", **{TEXT: "x"})},
    "patch-op-path": lambda w: {"method": "PATCH", "path": _user_path(w), "data": patch(
        {"op": "replace", "path": f'emails[type eq "{TEXT}"].value', "value": "x@example.com"})},
    "path": lambda w: {"method": "PATCH", "path": f"/Users/{TEXT}",
                       "data": patch({"op": "replace", "path": "title", "value": "Boss"})},
    "method": lambda w: {"method": f"PATCH{TEXT}", "path": _user_path(w),
                         "data": patch({"op": "replace", "path": "title", "value": "Boss"})},
    "bulkId": lambda w: {"method": "POST", "path": "/Users", "bulkId": TEXT,
                         "data": user_body("bad@example.com")},
    "version": lambda w: {"method": "PATCH", "path": _user_path(w), "version": TEXT,
                          "data": patch({"op": "replace", "path": "title", "value": "Boss"})},
}


@pytest.mark.parametrize("bad", PARSEABLE.values(), ids=PARSEABLE.keys())
@pytest.mark.parametrize("place", BULK_PLACES.values(), ids=BULK_PLACES.keys())
def test_a_bulk_operation_with_unstorable_text_fails_alone(scim, api, world, place, bad):
    leaver = create_user(scim, "leaver@example.com")
    leaver_session = start_session(api, user_id=leaver["id"])
    body = {"schemas": [BULK], "Operations": [
        place(world),
        {"method": "PATCH", "path": f"/Users/{leaver['id']}",
         "data": patch({"op": "replace", "path": "active", "value": False})},
    ]}
    response = _send_scim(scim, "POST", "/Bulk", bad.encode(body))
    assert response.status_code == 200, response.text
    failed, deactivation = response.json()["Operations"]
    assert failed["status"] == "400", failed
    assert failed["response"]["schemas"] == [ERROR]
    assert failed["response"]["scimType"] == "invalidSyntax"
    assert "cannot be stored" in failed["response"]["detail"]
    assert deactivation["status"] == "200", deactivation
    assert scim.get(f"/Users/{leaver['id']}").json()["active"] is False
    assert is_active(api, leaver_session["token"]) is False
    # The bad operation changed nothing.
    assert scim.get("/Users").json()["totalResults"] == 2
    assert "title" not in scim.get(_user_path(world)).json()


def test_a_bulk_request_with_a_raw_nul_byte_is_invalid_json_and_runs_nothing(scim, world):
    body = {"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body(f"{TEXT}@x.org")},
        {"method": "PATCH", "path": _user_path(world),
         "data": patch({"op": "replace", "path": "active", "value": False})},
    ]}
    _scim_error(_send_scim(scim, "POST", "/Bulk", BAD["nul-raw-byte"].encode(body)))
    assert scim.get(_user_path(world)).json()["active"] is True
    assert scim.get("/Users").json()["totalResults"] == 1


def test_a_bulk_operation_that_refers_to_a_refused_one_fails_too(scim):
    body = {"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u",
         "data": user_body("u@example.com", displayName=TEXT)},
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"schemas": [GROUP], "displayName": "G", "members": [{"value": "bulkId:u"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "ok", "data": user_body("ok@x.org")},
    ]}
    response = _send_scim(scim, "POST", "/Bulk", Bad("\ud800").encode(body))
    assert [r["status"] for r in response.json()["Operations"]] == ["400", "400", "201"]
    assert scim.get("/Groups").json()["totalResults"] == 0


# --- The sessions API, introspection and the admin API: JSON errors ----------------------------

JSON_CASES: dict[str, Callable[[dict], tuple[str, str, Any]]] = {
    "sessions-userName": lambda w: ("api", "/sessions", {"client": "web", "userName": TEXT}),
    "sessions-client": lambda w: ("api", "/sessions",
                                  {"client": TEXT, "user_id": w["user"]["id"]}),
    "sessions-key": lambda w: ("api", "/sessions",
                               {"client": "web", "user_id": w["user"]["id"], TEXT: 1}),
    "introspect-json": lambda w: ("api", "/sessions/introspect", {"token": TEXT}),
    "admin-force-logout-ids": lambda w: ("admin", "/force-logout",
                                         {"user_ids": [w["user"]["id"], TEXT]}),
    "admin-force-logout-filter": lambda w: ("admin", "/force-logout",
                                            {"filter": f'userName eq "{TEXT}"'}),
}


def _json_error(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == "invalid_syntax", body
    return body


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("case", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_api_bodies_with_unstorable_text_are_400_and_change_nothing(
    scim, admin, api, world, case, bad
):
    before = _state(scim, admin, api, world)
    client_name, path, body = case(world)
    client = {"api": api, "admin": admin}[client_name]
    response = client.post(path, content=bad.encode(body),
                           headers={"Content-Type": "application/json"})
    _json_error(response)
    assert _state(scim, admin, api, world) == before


@pytest.mark.parametrize("form", [b"token=a%00b", b"token=%00", b"token=a\x00b",
                                  b"client=web&token=" + b"x" * 40 + b"%00"],
                         ids=["escaped-inside", "escaped-alone", "raw-byte", "after-a-field"])
def test_an_introspection_form_with_nul_is_400(api, world, form):
    response = api.post("/sessions/introspect", content=form,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "NUL" in _json_error(response)["error_description"]
    assert is_active(api, world["session"]["token"]) is True


def test_a_multipart_introspection_form_with_nul_is_400(api):
    response = api.post("/sessions/introspect", data={"token": "a\x00b"},
                        files={"unused": ("unused.txt", b"")})
    _json_error(response)


# --- Depth ---------------------------------------------------------------------------------------

def _nested(levels: int) -> bytes:
    """A User whose unknown attribute ``x`` nests arrays so the body is ``levels`` deep."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return (f'{{"schemas": ["{USER}"], "userName": "deep@example.com", "x": {inner}}}').encode()


def test_a_body_at_the_depth_limit_is_accepted(scim):
    assert MAX_JSON_DEPTH == 64
    response = _send_scim(scim, "POST", "/Users", _nested(MAX_JSON_DEPTH))
    assert response.status_code == 201, response.text


def test_a_body_one_level_deeper_is_invalid_syntax_and_stores_nothing(scim):
    detail = _scim_error(_send_scim(scim, "POST", "/Users", _nested(MAX_JSON_DEPTH + 1)))
    assert "64 levels" in detail["detail"]
    assert scim.get("/Users").json()["totalResults"] == 0


def test_brackets_inside_strings_do_not_count(scim):
    text = '[{"\\"' * 60  # 120 brackets deep if they counted; 300 characters
    response = scim.post("/Users", json=user_body("brackets@example.com", displayName=text))
    assert response.status_code == 201, response.text
    assert response.json()["displayName"] == text


HUGE = 100_000
DEEP_BODIES = {
    "arrays": b"[" * HUGE + b"]" * HUGE,
    "objects": b'{"a":' * HUGE + b"1" + b"}" * HUGE,
    "unclosed": b"[" * HUGE,
    "mixed": b'[{"a":' * (HUGE // 2) + b"0" + b"}]" * (HUGE // 2),
}
SURFACES = {
    "scim-users": ("scim", "/Users"),
    "scim-bulk": ("scim", "/Bulk"),
    "scim-patch": ("scim", "/Users/any-id"),
    "sessions": ("api", "/sessions"),
    "introspect": ("api", "/sessions/introspect"),
    "admin-force-logout": ("admin", "/force-logout"),
}


@pytest.mark.parametrize("surface", SURFACES.values(), ids=SURFACES.keys())
@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_a_100000_deep_body_is_400_without_a_traceback(scim, api, admin, caplog, surface, body):
    client_name, path = surface
    method = "PATCH" if path == "/Users/any-id" else "POST"
    client = {"scim": scim, "api": api, "admin": admin}[client_name]
    with caplog.at_level(logging.INFO):
        response = client.request(method, path, content=body,
                                  headers={"Content-Type": "application/json"})
    if client_name == "scim":
        _scim_error(response)
    else:
        _json_error(response)
    assert "levels deep" in response.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "Traceback" not in caplog.text


# --- The request log: an entry that holds unstorable text never fails its batch ----------------

def _log(admin) -> list[dict]:
    response = admin.get("/requests", params={"count": 500})
    assert response.status_code == 200, response.text
    return response.json()["requests"]


def test_a_request_with_a_surrogate_in_its_body_is_logged_beside_the_good_ones(scim, admin):
    create_user(scim, "before@example.com")
    _send_scim(scim, "POST", "/Users",
               Bad("\ud800").encode(user_body("bad@example.com", displayName=TEXT)))
    create_user(scim, "after@example.com")
    entries = _log(admin)
    assert [(e["method"], e["status"]) for e in entries] == [
        ("POST", 201), ("POST", 400), ("POST", 201)
    ]
    assert "U+D800" in entries[1]["reason"]


def test_a_log_entry_holding_unstorable_text_is_stored_escaped_with_its_batch(app, scim, admin):
    """What the log is handed is stored as escapes: a lone surrogate or a NUL in one entry
    would otherwise fail every flush and lose the good entries queued beside it."""
    bridge = app.extensions["scim_bridge"]
    with bridge.sessions() as db:
        tenant_id = tokens.get_tenant(db, None).id
    create_user(scim, "before@example.com")
    bridge.request_log.add({
        "tenant_id": tenant_id, "token_name": "odd\x00token", "method": "PATCH",
        "path": "/scim/v2/Users/\ud800", "status": 400, "duration_ms": 1.0,
        "reason": "invalid path: 'a\udc80b'", "created_at": dt.datetime.now(dt.UTC),
    })
    create_user(scim, "after@example.com")
    entries = _log(admin)
    assert [(e["method"], e["status"]) for e in entries] == [
        ("POST", 201), ("PATCH", 400), ("POST", 201)
    ]
    odd = entries[1]
    assert odd["path"] == "/scim/v2/Users/\\ud800"
    assert odd["reason"] == "invalid path: 'a\\udc80b'"
    assert odd["token_name"] == "odd\\x00token"


def test_a_path_whose_escapes_outgrow_its_column_does_not_fail_its_batch(scim, admin):
    """1,000 NULs are 4,000 characters once escaped, more than the path column takes: the
    entry is cut to fit, so the good entry queued beside it is stored (PostgreSQL refused the
    whole batch). The NUL request is refused before its token is read, so it has no tenant
    and only the good entry is the admin's to see."""
    assert scim.get("/Users/" + "%00" * 1000).status_code == 400
    create_user(scim, "after@example.com")
    assert [(e["method"], e["status"]) for e in _log(admin)] == [("POST", 201)]
