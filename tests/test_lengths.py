"""Text longer than its column (issue 7 §3): the limit of each attribute is defined once
(scim/schema.py) and checked before the database, so SQLite, which stores any length, and
PostgreSQL give the same answer: exactly the limit is stored intact, one more character is a
400 ``invalidValue`` naming the attribute, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .scimdata import ENTERPRISE, create_group, create_user, patch, user_body
from .sessionkit import is_active, start_session
from .test_cli import run

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def text(length: int) -> str:
    """``length`` characters, not bytes: "é" is two bytes in UTF-8, one character."""
    return ("é" * length)[:length]


@dataclass(frozen=True)
class Write:
    """One way to write ``text`` into an attribute of an existing resource, and read it back."""

    attribute: str  # as the error names it
    limit: int
    request: Callable[[dict[str, Any], str], tuple[str, str, dict[str, Any]]]
    read: Callable[[dict[str, Any]], Any]


def _patch_user(*operations: dict[str, Any]) -> Callable[..., tuple[str, str, dict]]:
    return lambda user, value: (
        "PATCH", f"/Users/{user['id']}", patch(*_fill(list(operations), value))
    )


def _put_user(**fields: Any) -> Callable[..., tuple[str, str, dict]]:
    def build(user: dict[str, Any], value: str) -> tuple[str, str, dict]:
        filled = {key: _fill(item, value) for key, item in fields.items()}
        return "PUT", f"/Users/{user['id']}", user_body(user["userName"], **filled)
    return build


def _fill(item: Any, value: str) -> Any:
    """``item`` with every "TEXT" replaced by ``value``."""
    if item == "TEXT":
        return value
    if isinstance(item, dict):
        return {key: _fill(sub, value) for key, sub in item.items()}
    if isinstance(item, list):
        return [_fill(sub, value) for sub in item]
    return item


def _given(user: dict[str, Any]) -> Any:
    return user["name"]["givenName"]


def _department(user: dict[str, Any]) -> Any:
    return user[ENTERPRISE]["department"]


def _work_email(user: dict[str, Any]) -> Any:
    return next(e["value"] for e in user["emails"] if e.get("type") == "work")


def _postal_codes(user: dict[str, Any]) -> Any:
    return [address.get("postalCode") for address in user.get("addresses", [])]


DEPARTMENT = f"{ENTERPRISE}:department"

USER_WRITES = {
    "PUT name.givenName": Write("name.givenName", 512, _put_user(name={"givenName": "TEXT"}),
                                _given),
    "PUT emails[0].value": Write("emails.value", 512,
                                 _put_user(emails=[{"value": "TEXT", "type": "work"}]),
                                 _work_email),
    "PUT addresses[0].postalCode": Write("addresses.postalCode", 64,
                                         _put_user(addresses=[{"postalCode": "TEXT"}]),
                                         _postal_codes),
    "PUT enterprise department": Write(DEPARTMENT, 512,
                                       _put_user(**{ENTERPRISE: {"department": "TEXT"}}),
                                       _department),
    "PATCH replace path name.givenName": Write(
        "name.givenName", 512,
        _patch_user({"op": "replace", "path": "name.givenName", "value": "TEXT"}), _given),
    "PATCH replace path with a value filter": Write(
        "emails.value", 512,
        _patch_user({"op": "replace", "path": 'emails[type eq "work"].value', "value": "TEXT"}),
        _work_email),
    "PATCH replace path urn department": Write(
        DEPARTMENT, 512,
        _patch_user({"op": "replace", "path": DEPARTMENT, "value": "TEXT"}), _department),
    "PATCH add addresses": Write(
        "addresses.postalCode", 64,
        _patch_user({"op": "add", "path": "addresses", "value": [{"postalCode": "TEXT"}]}),
        _postal_codes),
    "PATCH without path, name": Write(
        "name.givenName", 512,
        _patch_user({"op": "replace", "value": {"name": {"givenName": "TEXT"}}}), _given),
    "PATCH without path, extension": Write(
        DEPARTMENT, 512,
        _patch_user({"op": "add", "value": {ENTERPRISE: {"department": "TEXT"}}}), _department),
    "PATCH replace path profileUrl": Write(
        "profileUrl", 2048,
        _patch_user({"op": "replace", "path": "profileUrl", "value": "TEXT"}),
        lambda user: user["profileUrl"]),
}


def assert_too_long(response: Any, attribute: str, limit: int) -> None:
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["schemas"] == [SCIM_ERROR]
    assert error["scimType"] == "invalidValue"
    assert error["detail"] == (
        f"'{attribute}' may be at most {limit} characters, got {limit + 1}"
    )


@pytest.mark.parametrize("write", USER_WRITES.values(), ids=USER_WRITES.keys())
def test_a_user_attribute_holds_exactly_its_limit(scim, write):
    user = create_user(scim, "target@example.com")
    method, path, body = write.request(user, text(write.limit))
    response = scim.request(method, path, json=body)
    assert response.status_code == 200, response.text
    stored = scim.get(f"/Users/{user['id']}").json()
    expected = text(write.limit)
    assert write.read(stored) in (expected, [expected])


@pytest.mark.parametrize("write", USER_WRITES.values(), ids=USER_WRITES.keys())
def test_one_character_more_is_refused_and_changes_nothing(scim, write):
    user = create_user(scim, "target@example.com")
    before = scim.get(f"/Users/{user['id']}").json()
    method, path, body = write.request(user, text(write.limit + 1))
    assert_too_long(scim.request(method, path, json=body), write.attribute, write.limit)
    assert scim.get(f"/Users/{user['id']}").json() == before


NEW_USERS = {
    "userName": ("userName", 512, lambda value: user_body(value), lambda u: u["userName"]),
    "name.givenName": ("name.givenName", 512,
                       lambda value: user_body("new@example.com", name={"givenName": value}),
                       _given),
    "emails[0].value": ("emails.value", 512,
                        lambda value: user_body("new@example.com", emails=[{"value": value}]),
                        lambda u: u["emails"][0]["value"]),
    "addresses[0].postalCode": (
        "addresses.postalCode", 64,
        lambda value: user_body("new@example.com", addresses=[{"postalCode": value}]),
        lambda u: u["addresses"][0]["postalCode"]),
    "enterprise department": (
        DEPARTMENT, 512,
        lambda value: user_body("new@example.com", **{ENTERPRISE: {"department": value}}),
        _department),
    "locale": ("locale", 64, lambda value: user_body("new@example.com", locale=value),
               lambda u: u["locale"]),
    "externalId": ("externalId", 512,
                   lambda value: user_body("new@example.com", externalId=value),
                   lambda u: u["externalId"]),
}


@pytest.mark.parametrize(("attribute", "limit", "body", "read"), NEW_USERS.values(),
                         ids=NEW_USERS.keys())
def test_a_new_user_is_created_at_the_limit_and_refused_past_it(
    scim, attribute, limit, body, read
):
    refused = scim.post("/Users", json=body(text(limit + 1)))
    assert_too_long(refused, attribute, limit)
    assert scim.get("/Users").json()["totalResults"] == 0
    created = scim.post("/Users", json=body(text(limit)))
    assert created.status_code == 201, created.text
    assert read(scim.get(f"/Users/{created.json()['id']}").json()) == text(limit)


def _group_body(**fields: Any) -> dict[str, Any]:
    return {"schemas": [GROUP_SCHEMA], "displayName": "Staff", **fields}


def _display_name(group: dict[str, Any]) -> Any:
    return group["displayName"]


def _member_display(group: dict[str, Any]) -> Any:
    return group["members"][0]["display"]


def _put_group(group: dict, user: dict, **fields: Any) -> tuple[str, str, dict]:
    return "PUT", f"/Groups/{group['id']}", _group_body(**fields)


def _patch_group(group: dict, user: dict, *operations: dict) -> tuple[str, str, dict]:
    return "PATCH", f"/Groups/{group['id']}", patch(*operations)


GROUP_WRITES = {
    "PUT displayName": (
        "displayName", 512, _display_name,
        lambda group, user, value: _put_group(group, user, displayName=value)),
    "PUT externalId": (
        "externalId", 512, lambda group: group["externalId"],
        lambda group, user, value: _put_group(group, user, externalId=value)),
    "PATCH replace displayName": (
        "displayName", 512, _display_name,
        lambda group, user, value: _patch_group(
            group, user, {"op": "replace", "path": "displayName", "value": value})),
    "PATCH without path, displayName": (
        "displayName", 512, _display_name,
        lambda group, user, value: _patch_group(
            group, user, {"op": "replace", "value": {"displayName": value}})),
    "PATCH add a member's display": (
        "members.display", 512, _member_display,
        lambda group, user, value: _patch_group(group, user, {
            "op": "add", "path": "members",
            "value": [{"value": user["id"], "display": value}]})),
    "PUT a member's display": (
        "members.display", 512, _member_display,
        lambda group, user, value: _put_group(
            group, user, members=[{"value": user["id"], "display": value}])),
}


@pytest.mark.parametrize(("attribute", "limit", "read", "build"), GROUP_WRITES.values(),
                         ids=GROUP_WRITES.keys())
def test_a_group_attribute_holds_exactly_its_limit_and_no_more(
    scim, attribute, limit, read, build
):
    user = create_user(scim, "member@example.com")
    group = create_group(scim, "Staff")
    before = scim.get(f"/Groups/{group['id']}").json()
    method, path, body = build(group, user, text(limit + 1))
    assert_too_long(scim.request(method, path, json=body), attribute, limit)
    assert scim.get(f"/Groups/{group['id']}").json() == before
    method, path, body = build(group, user, text(limit))
    response = scim.request(method, path, json=body)
    assert response.status_code in (200, 204), response.text
    assert read(scim.get(f"/Groups/{group['id']}").json()) == text(limit)


@pytest.mark.parametrize("limit_plus", [0, 1], ids=["at-the-limit", "one-more"])
def test_a_new_group_display_name(scim, limit_plus):
    response = scim.post("/Groups", json=_group_body(displayName=text(512 + limit_plus)))
    if limit_plus:
        assert_too_long(response, "displayName", 512)
        assert scim.get("/Groups").json()["totalResults"] == 0
    else:
        assert response.status_code == 201, response.text
        stored = scim.get(f"/Groups/{response.json()['id']}").json()
        assert stored["displayName"] == text(512)


def test_a_member_value_longer_than_a_user_id_is_refused(scim):
    response = scim.post("/Groups", json=_group_body(members=[{"value": text(65)}]))
    assert_too_long(response, "members.value", 64)
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_a_member_value_longer_than_a_user_id_is_refused_by_patch(scim):
    group = create_group(scim, "Staff")
    response = scim.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "add", "path": "members", "value": [{"value": text(65)}]}))
    assert_too_long(response, "members.value", 64)


def test_in_a_bulk_an_over_long_value_fails_alone_and_the_deactivation_applies(scim, api):
    target = create_user(scim, "target@example.com")
    leaver = create_user(scim, "leaver@example.com")
    session = start_session(api, user_id=leaver["id"])
    response = scim.post("/Bulk", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": f"/Users/{target['id']}", "data": patch(
                {"op": "add", "path": "addresses", "value": [{"postalCode": text(65)}]})},
            {"method": "PATCH", "path": f"/Users/{leaver['id']}", "data": patch(
                {"op": "replace", "path": "active", "value": False})},
        ],
    })
    assert response.status_code == 200, response.text
    too_long, deactivation = response.json()["Operations"]
    assert too_long["status"] == "400"
    assert too_long["response"]["scimType"] == "invalidValue"
    assert too_long["response"]["detail"] == (
        "'addresses.postalCode' may be at most 64 characters, got 65"
    )
    assert deactivation["status"] == "200"
    assert scim.get(f"/Users/{leaver['id']}").json()["active"] is False
    assert not is_active(api, session["token"])
    assert "addresses" not in scim.get(f"/Users/{target['id']}").json()


# --- the sessions API ------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "limit"), [("client", 64), ("userName", 512),
                                              ("tenant", 200)])
def test_a_sessions_field_past_its_limit_is_a_json_400_naming_it(scim, api, field, limit):
    create_user(scim, "ann@example.com")
    body = {"client": "web", "userName": "ann@example.com", field: text(limit + 1)}
    response = api.post("/sessions", json=body)
    assert response.status_code == 400, response.text
    assert f"'{field}'" in response.json()["error_description"]
    assert f"at most {limit} characters" in response.json()["error_description"]


def test_a_session_starts_with_every_field_at_its_limit(scim, api):
    user = create_user(scim, text(512))
    session = start_session(api, client=text(64), userName=text(512))
    assert session["client"] == text(64)
    assert session["user"]["id"] == user["id"]


@pytest.mark.parametrize(("path", "body"), [
    ("/Users", user_body("İ" * 300)),
    ("/Users", user_body("ann@example.com", emails=[{"value": "İ" * 300}])),
    ("/Groups", _group_body(displayName="İ" * 300)),
], ids=["userName", "emails.value", "group displayName"])
def test_text_whose_case_folded_key_is_too_long_is_refused(scim, path, body):
    """"İ" lower-cases to two characters: 300 of them need 600 in the folded key column."""
    response = scim.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    assert response.json()["detail"].endswith("got 600 once case-folded")
    assert scim.get(path).json()["totalResults"] == 0


# --- tenant and token names (the CLI: the admin API stores no text of its own) ---------------


@pytest.mark.parametrize("args", [
    ("tenant", "create", text(201)),
    ("token", "create", "--name", text(201), "--scope", "scim"),
], ids=["tenant", "token"])
def test_a_name_past_200_characters_is_one_line_and_stores_nothing(database_url, args):
    refused = run(*args, url=database_url)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "name may be at most 200 characters, got 201" in refused.stderr
    listed = run(args[0], "list", url=database_url)
    assert text(201)[:200] not in listed.stdout


def test_names_of_exactly_200_characters_are_stored(database_url):
    assert run("tenant", "create", text(200), url=database_url).returncode == 0
    created = run("token", "create", "--name", text(200), "--scope", "scim",
                  "--tenant", text(200), url=database_url)
    assert created.returncode == 0, created.stderr
    listed = run("token", "list", url=database_url).stdout.splitlines()
    assert f"{text(200)}\tscim\t{text(200)}\tactive" in listed
