"""List, filter, sort, page and project (RFC 7644 §3.4.2), and .search (§3.4.3)."""

from __future__ import annotations

import pytest

from .scimdata import ENTERPRISE, create_group, create_user


@pytest.fixture
def people(scim):
    names = ["carol@example.com", "alice@example.com", "bob@test.org", "dave@example.com"]
    return {name: create_user(scim, name, title=name[0].upper())["id"] for name in names}


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["userName"] for r in response.json()["Resources"]]


def test_totals_are_integers_and_start_index_echoes(scim, people):
    body = scim.get("/Users", params={"startIndex": 2, "count": 2}).json()
    assert body["totalResults"] == 4 and body["startIndex"] == 2 and body["itemsPerPage"] == 2
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]


def test_pages_walk_every_user_once_in_a_stable_order(scim, people):
    seen = []
    for start in (1, 3, 5):
        seen += _names(scim.get("/Users", params={"startIndex": start, "count": 2}))
    assert sorted(seen) == sorted(people)
    assert seen == _names(scim.get("/Users"))


@pytest.mark.parametrize("params,expected", [
    ({"startIndex": 0, "count": 1}, 1),
    ({"startIndex": -5, "count": 1}, 1),
    ({"count": -1}, 0),
    ({"count": 0}, 0),
    ({"startIndex": 99}, 0),
])
def test_out_of_range_paging_is_clamped(scim, people, params, expected):
    body = scim.get("/Users", params=params).json()
    assert len(body["Resources"]) == expected
    assert body["totalResults"] == 4


def test_sort_by_username_both_ways(scim, people):
    ascending = _names(scim.get("/Users", params={"sortBy": "userName"}))
    assert ascending == sorted(people)
    descending = _names(scim.get("/Users", params={"sortBy": "userName",
                                                   "sortOrder": "descending"}))
    assert descending == sorted(people, reverse=True)


@pytest.mark.parametrize("filter_text,expected", [
    ('userName eq "ALICE@example.com"', ["alice@example.com"]),
    ('userName sw "b"', ["bob@test.org"]),
    ('userName ew "test.org"', ["bob@test.org"]),
    ('emails co "example"', ["alice@example.com", "carol@example.com", "dave@example.com"]),
    ('emails[type eq "work" and value co "@test.org"]', ["bob@test.org"]),
    ('title eq "C" or title eq "D"', ["carol@example.com", "dave@example.com"]),
    ('not (userName co "example")', ["bob@test.org"]),
    ('userName gt "c"', ["carol@example.com", "dave@example.com"]),
    ('active eq true and userName sw "a"', ["alice@example.com"]),
    ('userName eq "nobody@example.com"', []),
])
def test_filters_over_http(scim, people, filter_text, expected):
    response = scim.get("/Users", params={"filter": filter_text, "sortBy": "userName"})
    assert _names(response) == expected


def test_filter_on_enterprise_extension(scim):
    create_user(scim, "e@example.com", **{ENTERPRISE: {"department": "Ops"}})
    create_user(scim, "f@example.com", **{ENTERPRISE: {"department": "Sales"}})
    response = scim.get("/Users", params={"filter": f'{ENTERPRISE}:department eq "ops"'})
    assert _names(response) == ["e@example.com"]


def test_attributes_returns_only_what_was_asked_plus_id(scim, people):
    body = scim.get("/Users", params={"attributes": "userName,name.givenName"}).json()
    resource = body["Resources"][0]
    assert set(resource) == {"schemas", "id", "userName", "name"}
    assert resource["name"] == {"givenName": "Given"}


def test_excluded_attributes_drops_them(scim, people):
    resource = scim.get("/Users", params={"excludedAttributes": "emails,meta"}).json()
    assert all("emails" not in r and "meta" not in r for r in resource["Resources"])


def test_attributes_id_only(scim, people):
    resource = scim.get("/Users", params={"attributes": "id"}).json()["Resources"][0]
    assert set(resource) == {"schemas", "id"}


def test_search_per_type_takes_a_body(scim, people):
    response = scim.post("/Users/.search", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "a"', "attributes": ["userName"], "count": 10})
    assert _names(response) == ["alice@example.com"]


def test_root_search_returns_users_and_groups(scim, people):
    create_group(scim, "Ops")
    body = scim.post("/.search", json={"count": 50}).json()
    types = sorted(r["meta"]["resourceType"] for r in body["Resources"])
    assert types == ["Group", "User", "User", "User", "User"]
    assert body["totalResults"] == 5


def test_groups_filter_by_display_name_ignoring_case(scim):
    create_group(scim, "Night Shift")
    body = scim.get("/Groups", params={"filter": 'displayName eq "night shift"'}).json()
    assert [g["displayName"] for g in body["Resources"]] == ["Night Shift"]


def test_groups_filter_by_member(scim, people):
    group = create_group(scim, "Ops", [people["bob@test.org"]])
    create_group(scim, "Other")
    body = scim.get("/Groups", params={"filter": f'members eq "{people["bob@test.org"]}"'}).json()
    assert [g["id"] for g in body["Resources"]] == [group["id"]]
