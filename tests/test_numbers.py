"""Numbers out of range or of the wrong kind, on every surface that reads one: paging is clamped
as RFC 7644 §3.4.2.4 says, every other number is a 400 naming the field, and nothing changes.
NaN, Infinity and numbers too large for a float (1e400) are not JSON numbers: 400
invalidSyntax wherever a body is read."""

from __future__ import annotations

import json

import pytest

from scim_bridge.parameters import LARGEST

from .scimdata import create_user, patch, user_body

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_JSON = {"Content-Type": "application/scim+json"}
JSON = {"Content-Type": "application/json"}

#: (test id, the value as JSON text, as query-string text)
VALUES = [
    ("2**31", "2147483648", "2147483648"),
    ("2**63", "9223372036854775808", "9223372036854775808"),
    ("10**30", "1" + "0" * 30, "1" + "0" * 30),
    ("-10**30", "-1" + "0" * 30, "-1" + "0" * 30),
    ("1e400", "1e400", "1e400"),
    ("1.5", "1.5", "1.5"),
    ("'12abc'", '"12abc"', "12abc"),
    ("true", "true", "true"),
]
HUGE = {"2**31", "2**63", "10**30"}
NOT_INTEGERS = {"1e400", "1.5", "'12abc'", "true"}


#: Where a test's literal goes in a document, since json.dumps cannot write 1e400 or NaN.
HERE = "@literal@"


def _with(document, literal: str) -> str:
    """``document`` as JSON text with the literal number text in place of ``HERE``."""
    return json.dumps(document).replace(json.dumps(HERE), literal)


def _ids(values):
    return [value[0] for value in values]


def _scim_error(response, scim_type: str, word: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["scimType"] == scim_type and word in body["detail"], body


def _json_error(response, error: str, word: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error and word in body["error_description"], body


# --- SCIM paging: clamped (§3.4.2.4), or 400 when not an integer -------------------------------


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
@pytest.mark.parametrize("resource", ["/Users", "/Groups"])
def test_scim_start_index_in_the_query(scim, resource, name, json_text, query):
    create_user(scim, "ann@example.com")
    response = scim.get(resource, params={"startIndex": query})
    if name in NOT_INTEGERS:
        _scim_error(response, "invalidValue", "'startIndex'")
    else:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["startIndex"] == (LARGEST if name in HUGE else 1)
        assert body["itemsPerPage"] == len(body["Resources"])


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
def test_scim_count_in_the_query(scim, name, json_text, query):
    create_user(scim, "ann@example.com")
    response = scim.get("/Users", params={"count": query})
    if name in NOT_INTEGERS:
        _scim_error(response, "invalidValue", "'count'")
    else:
        assert response.status_code == 200, response.text
        assert response.json()["itemsPerPage"] == (1 if name in HUGE else 0)


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
@pytest.mark.parametrize("field", ["startIndex", "count"])
def test_scim_paging_in_a_search_body(scim, field, name, json_text, query):
    create_user(scim, "ann@example.com")
    body = _with({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                  field: HERE}, json_text)
    response = scim.post("/Users/.search", content=body, headers=SCIM_JSON)
    if name == "1e400":
        _scim_error(response, "invalidSyntax", "1e400")
    elif name in NOT_INTEGERS:
        _scim_error(response, "invalidValue", f"'{field}'")
    else:
        assert response.status_code == 200, response.text
        listed = response.json()
        if field == "count":
            assert listed["itemsPerPage"] == (1 if name in HUGE else 0)
        else:
            assert listed["startIndex"] == (LARGEST if name in HUGE else 1)


@pytest.mark.parametrize("query", ["1_000", "\u0665", "0x10", " ", "9" * 5000])
def test_only_ascii_decimal_digits_are_integers(scim, query):
    response = scim.get("/Users", params={"count": query})
    if query == "9" * 5000:  # an integer, just beyond any bound: clamped like 10**30
        assert response.status_code == 200, response.text
    else:
        _scim_error(response, "invalidValue", "'count'")


# --- Bulk failOnErrors: a positive integer (§3.7.3), any size --------------------------------

BULK_VALUES = [*VALUES, ("0", "0", ""), ("-1", "-1", ""), ("'3'", '"3"', ""),
               ("1.0", "1.0", ""), ("null", "null", "")]


@pytest.mark.parametrize(("name", "json_text", "query"), BULK_VALUES, ids=_ids(BULK_VALUES))
def test_bulk_fail_on_errors(scim, name, json_text, query):
    operation = {"method": "POST", "path": "/Users", "bulkId": "a",
                 "data": user_body("ann@example.com")}
    body = _with({"schemas": [BULK], "failOnErrors": HERE, "Operations": [operation]}, json_text)
    response = scim.post("/Bulk", content=body, headers=SCIM_JSON)
    created = scim.get("/Users").json()["totalResults"]
    if name in HUGE or name == "null":
        assert response.status_code == 200, response.text
        assert response.json()["Operations"][0]["status"] == "201"
        assert created == 1
        return
    if name == "1e400":
        _scim_error(response, "invalidSyntax", "1e400")
    else:
        _scim_error(response, "invalidValue", "'failOnErrors' must be a positive integer")
    assert created == 0


# --- The sessions API: ttl_seconds is an integer from 1 to the maximum --------------------------


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
def test_session_ttl(app, scim, api, admin, name, json_text, query):
    user_id = create_user(scim, "ann@example.com")["id"]
    body = _with({"userName": "ann@example.com", "client": "web", "ttl_seconds": HERE}, json_text)
    response = api.post("/sessions", content=body, headers=JSON)
    if name == "1e400":
        _json_error(response, "invalid_syntax", "1e400")
    else:
        _json_error(response, "invalid_value", "'ttl_seconds' must be an integer from 1 to")
    assert admin.get(f"/users/{user_id}/sessions").json()["sessions"] == []


# --- The admin API: paging clamped, cursors and status codes exact -----------------------------


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
@pytest.mark.parametrize("path", ["/users?startIndex=", "/users?count=", "/events?count=",
                                  "/requests?count=", "/users/{id}/sessions?count="])
def test_admin_paging(scim, admin, path, name, json_text, query):
    user_id = create_user(scim, "ann@example.com")["id"]
    response = admin.get(path.format(id=user_id) + query)
    field = path.split("?")[1].rstrip("=")
    if name in NOT_INTEGERS:
        _json_error(response, "invalid_value", f"'{field}' must be an integer")
    else:
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
@pytest.mark.parametrize("path", ["/events?after=", "/requests?before="])
def test_admin_cursors_beyond_the_id_column_are_400(admin, path, name, json_text, query):
    field = path.split("?")[1].rstrip("=")
    _json_error(admin.get(path + query), "invalid_value", f"'{field}' must be a cursor")


@pytest.mark.parametrize("query", ["1_000", "\u0665", "9" * 5000, "0x10"])
@pytest.mark.parametrize("path", ["/events?after=", "/requests?before="])
def test_admin_cursors_are_ascii_decimal_digits(admin, path, query):
    field = path.split("?")[1].rstrip("=")
    _json_error(admin.get(path + query), "invalid_value", f"'{field}' must be a cursor")


@pytest.mark.parametrize("path", ["/events?after=", "/requests?before="])
def test_admin_cursors_up_to_the_largest_id_are_read(admin, path):
    response = admin.get(f"{path}{LARGEST}")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("name", "json_text", "query"), VALUES, ids=_ids(VALUES))
def test_admin_request_status(admin, name, json_text, query):
    _json_error(admin.get("/requests", params={"status": query}), "invalid_value", "'status'")


# --- Non-finite numbers in bodies, and huge numbers in filters --------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_in_a_user_are_400_and_create_nothing(scim, literal):
    body = _with(user_body("ann@example.com", displayName=HERE), literal)
    response = scim.post("/Users", content=body, headers=SCIM_JSON)
    _scim_error(response, "invalidSyntax", literal.lstrip("-"))
    assert scim.get("/Users").json()["totalResults"] == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_non_finite_numbers_in_a_patch_change_nothing(scim, literal):
    user = create_user(scim, "ann@example.com", displayName="Ann")
    body = _with(patch({"op": "replace", "path": "displayName", "value": HERE}), literal)
    response = scim.patch(f"/Users/{user['id']}", content=body, headers=SCIM_JSON)
    _scim_error(response, "invalidSyntax", literal)
    assert scim.get(f"/Users/{user['id']}").json()["displayName"] == "Ann"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_non_finite_numbers_outside_scim_are_json_400s(api, literal):
    response = api.post("/sessions/introspect", content=_with({"token": HERE}, literal),
                        headers=JSON)
    _json_error(response, "invalid_syntax", literal)


@pytest.mark.parametrize(("text", "status"), [
    ("userName gt 99999999999999999999999", 200),
    ("emails[value gt 1" + "0" * 40 + "]", 200),
    ("meta.version gt 99999999999999999999999", 400),
    ("meta.lastModified gt 99999999999999999999999", 400),
    ("userName eq 1e400", 400),
])
def test_huge_numbers_in_filters(scim, text, status):
    create_user(scim, "ann@example.com")
    response = scim.get("/Users", params={"filter": text})
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        _scim_error(response, "invalidFilter", "")


@pytest.mark.parametrize("query", ["2147483648", "1e400", "-1"])
def test_numbers_as_attribute_names_are_ignored(scim, query):
    create_user(scim, "ann@example.com")
    response = scim.get("/Users", params={"excludedAttributes": query})
    assert response.status_code == 200, response.text
    assert response.json()["Resources"][0]["userName"] == "ann@example.com"
