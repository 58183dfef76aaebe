"""Multi-valued User attributes: at most MAX_VALUES values each, advertised in /Schemas and
enforced on POST, PUT, PATCH and Bulk; and a write keeps the value rows it does not change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from scim_bridge.models import UserValue
from scim_bridge.scim.patch import apply_operations, parse_patch_request
from scim_bridge.scim.schema import CORE_USER, MAX_VALUES, USER_TYPE, USER_VALUE_ATTRIBUTES

from .scimdata import create_group, create_user, patch, user_body

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def elements(attribute: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct elements of ``attribute`` (addresses have no ``value``)."""
    if attribute == "addresses":
        return [{"formatted": f"{n} Main Street", "type": "work"} for n in range(start, count)]
    return [{"value": f"v{n}@example.com", "type": "work"} for n in range(start, count)]


def emails(count: int, start: int = 0) -> list[dict[str, Any]]:
    return elements("emails", count, start)


def assert_too_many(response: Any, attribute: str, count: int) -> None:
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["schemas"] == [ERROR]
    assert error["scimType"] == "invalidValue"
    assert f"'{attribute}'" in error["detail"]
    assert f"at most {MAX_VALUES}" in error["detail"]
    assert str(count) in error["detail"]


def value_rows(app: Any, user_id: str, attribute: str = "emails") -> list[tuple[int, str]]:
    """(row id, value) of a user's value rows, in position order, read from the database."""
    with app.extensions["scim_bridge"].sessions() as db:
        rows = db.execute(
            select(UserValue.id, UserValue.value, UserValue.formatted)
            .where(UserValue.user_id == user_id, UserValue.attribute == attribute)
            .order_by(UserValue.position)
        )
        return [(row_id, value or formatted) for row_id, value, formatted in rows]


def user_names(scim: Any, user_name: str) -> int:
    listing = scim.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    return int(listing.json()["totalResults"])


# -- the limit ---------------------------------------------------------------------------------


def test_every_limited_attribute_advertises_the_limit_in_schemas(scim):
    user_schema = scim.get(f"/Schemas/{CORE_USER}").json()
    descriptions = {a["name"]: a["description"] for a in user_schema["attributes"]}
    for attribute in USER_VALUE_ATTRIBUTES:
        assert f"at most {MAX_VALUES} values" in descriptions[attribute]
    assert "at most" not in descriptions["groups"]


@pytest.mark.parametrize("attribute", USER_VALUE_ATTRIBUTES)
def test_post_with_one_value_too_many_is_refused_and_creates_nothing(scim, attribute):
    body = user_body("many@example.com", **{attribute: elements(attribute, MAX_VALUES + 1)})
    if attribute != "emails":
        body.pop("emails")
    assert_too_many(scim.post("/Users", json=body), attribute, MAX_VALUES + 1)
    assert user_names(scim, "many@example.com") == 0


@pytest.mark.parametrize("attribute", ["emails", "addresses", "phoneNumbers"])
def test_post_with_exactly_the_limit_keeps_every_value_in_order(scim, attribute):
    wanted = elements(attribute, MAX_VALUES)
    body = user_body("full@example.com", **{attribute: wanted})
    response = scim.post("/Users", json=body)
    assert response.status_code == 201, response.text
    assert response.json()[attribute] == wanted
    assert scim.get(f"/Users/{response.json()['id']}").json()[attribute] == wanted


def test_a_huge_list_of_values_is_refused_on_post_put_and_patch(scim):
    user = create_user(scim, "huge@example.com")
    huge = emails(10_000)
    assert_too_many(
        scim.post("/Users", json=user_body("other@example.com", emails=huge)), "emails", 10_000
    )
    assert_too_many(
        scim.put(f"/Users/{user['id']}", json=user_body("huge@example.com", emails=huge)),
        "emails",
        10_000,
    )
    for operation in (
        {"op": "add", "path": "emails", "value": huge},
        {"op": "replace", "path": "emails", "value": huge},
        {"op": "add", "value": {"emails": huge}},
        {"op": "replace", "value": {"EMAILS": huge}},
    ):
        assert_too_many(scim.patch(f"/Users/{user['id']}", json=patch(operation)), "emails", 10_000)
    assert scim.get(f"/Users/{user['id']}").json() == user


def test_put_with_one_value_too_many_changes_nothing(scim):
    user = create_user(scim, "put@example.com", phoneNumbers=elements("phoneNumbers", 3))
    body = user_body("put@example.com", phoneNumbers=elements("phoneNumbers", MAX_VALUES + 1))
    response = scim.put(f"/Users/{user['id']}", json=body)
    assert_too_many(response, "phoneNumbers", MAX_VALUES + 1)
    assert scim.get(f"/Users/{user['id']}").json() == user


def test_put_of_an_unknown_user_with_too_many_values_is_refused_as_a_bad_body(scim):
    body = user_body("nobody@example.com", emails=emails(MAX_VALUES + 1))
    assert_too_many(scim.put("/Users/no-such-user", json=body), "emails", MAX_VALUES + 1)


def test_patch_adding_one_value_past_the_limit_is_refused_and_changes_nothing(scim):
    user = create_user(scim, "patch@example.com", emails=emails(MAX_VALUES))
    for operation in (
        {"op": "add", "path": "emails", "value": [{"value": "one-more@example.com"}]},
        {"op": "add", "value": {"emails": [{"value": "one-more@example.com"}]}},
        {"op": "add", "path": 'emails[type eq "home"].value', "value": "home@example.com"},
    ):
        response = scim.patch(f"/Users/{user['id']}", json=patch(operation))
        assert_too_many(response, "emails", MAX_VALUES + 1)
    assert scim.get(f"/Users/{user['id']}").json() == user


def test_patch_that_stays_within_the_limit_is_applied(scim):
    user = create_user(scim, "within@example.com", emails=emails(MAX_VALUES))
    again = {"value": "v7@example.com", "type": "work", "primary": True}  # updates, no growth
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch(
            {"op": "remove", "path": 'emails[value eq "v0@example.com"]'},
            {"op": "add", "path": "emails", "value": [{"value": "new@example.com"}, again]},
        ),
    )
    assert response.status_code == 200, response.text
    values = [email["value"] for email in response.json()["emails"]]
    assert len(values) == MAX_VALUES
    assert values[-1] == "new@example.com"
    assert response.json()["emails"][6] == again


def test_bulk_operation_with_too_many_values_fails_alone(scim):
    operations = [
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "many",
            "data": user_body("bulk-many@example.com", emails=emails(MAX_VALUES + 1)),
        },
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "fine",
            "data": user_body("bulk-fine@example.com", emails=emails(MAX_VALUES)),
        },
    ]
    response = scim.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    assert response.status_code == 200, response.text
    too_many, fine = response.json()["Operations"]
    assert too_many["status"] == "400"
    assert too_many["response"]["scimType"] == "invalidValue"
    assert f"at most {MAX_VALUES}" in too_many["response"]["detail"]
    assert fine["status"] == "201"
    assert user_names(scim, "bulk-many@example.com") == 0
    assert user_names(scim, "bulk-fine@example.com") == 1


def test_group_members_are_not_limited(scim):
    member_ids = [
        create_user(scim, f"member{n}@example.com")["id"] for n in range(MAX_VALUES + 20)
    ]
    group = create_group(scim, "Big", member_ids)
    response = scim.patch(
        f"/Groups/{group['id']}",
        json=patch({"op": "add", "path": "members", "value": [{"value": i} for i in member_ids]}),
    )
    assert response.status_code in (200, 204), response.text
    members = scim.get(f"/Groups/{group['id']}").json()["members"]
    assert {member["value"] for member in members} == set(member_ids)


# -- a write keeps the rows it does not change -------------------------------------------------


def test_patch_add_one_email_keeps_the_rows_of_the_others(app, scim):
    user = create_user(scim, "keep@example.com", emails=emails(5))
    before = value_rows(app, user["id"])
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch({"op": "add", "path": "emails", "value": [{"value": "added@example.com"}]}),
    )
    assert response.status_code == 200, response.text
    after = value_rows(app, user["id"])
    assert after[:5] == before
    assert after[5][1] == "added@example.com"
    assert [e["value"] for e in response.json()["emails"]] == [v for _, v in after]


def test_put_with_one_changed_value_updates_only_that_row_in_place(app, scim):
    user = create_user(scim, "put-one@example.com", emails=emails(5))
    before = value_rows(app, user["id"])
    changed = emails(5)
    changed[2] = {"value": "changed@example.com", "type": "work"}
    response = scim.put(
        f"/Users/{user['id']}", json=user_body("put-one@example.com", emails=changed)
    )
    assert response.status_code == 200, response.text
    after = value_rows(app, user["id"])
    assert [row_id for row_id, _ in after] == [row_id for row_id, _ in before]
    assert [value for _, value in after] == [email["value"] for email in changed]
    assert response.json()["emails"] == changed


def test_replace_all_in_another_order_keeps_the_rows_and_the_new_order(app, scim):
    user = create_user(scim, "order@example.com", emails=emails(4))
    ids = {value: row_id for row_id, value in value_rows(app, user["id"])}
    reordered = list(reversed(emails(4)))
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch({"op": "replace", "path": "emails", "value": reordered}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["emails"] == reordered
    assert scim.get(f"/Users/{user['id']}").json()["emails"] == reordered
    after = value_rows(app, user["id"])
    assert after == [(ids[email["value"]], email["value"]) for email in reordered]


def test_removing_one_value_keeps_the_others_and_their_order(app, scim):
    user = create_user(scim, "remove@example.com", addresses=elements("addresses", 4))
    before = value_rows(app, user["id"], "addresses")
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch({"op": "remove", "path": 'addresses[formatted eq "1 Main Street"]'}),
    )
    assert response.status_code == 200, response.text
    assert value_rows(app, user["id"], "addresses") == [before[0], *before[2:]]
    assert response.json()["addresses"] == [
        e for e in elements("addresses", 4) if e["formatted"] != "1 Main Street"
    ]


def test_new_primary_takes_primary_and_the_old_row_is_updated_in_place(app, scim):
    first = {"value": "first@example.com", "type": "work", "primary": True}
    user = create_user(scim, "primary@example.com", emails=[first, *emails(3)])
    before = value_rows(app, user["id"])
    new = {"value": "new@example.com", "type": "home", "primary": True}
    response = scim.patch(
        f"/Users/{user['id']}", json=patch({"op": "add", "path": "emails", "value": [new]})
    )
    assert response.status_code == 200, response.text
    assert response.json()["emails"] == [{**first, "primary": False}, *emails(3), new]
    after = value_rows(app, user["id"])
    assert after[:4] == before


# -- PATCH identity of elements (pure protocol; lookups by hash, same results) -----------------

HOME = {"value": "a@example.com", "type": "home"}
WORK = {"value": "a@example.com", "type": "work"}
STREET = {"formatted": "1 Main Street", "type": "work"}


@pytest.mark.parametrize(
    ("attribute", "existing", "added", "expected"),
    [
        ("emails", [WORK], [WORK], [WORK]),
        ("emails", [WORK], [HOME], [WORK, HOME]),
        ("emails", [WORK], [{**WORK, "display": "A"}], [{**WORK, "display": "A"}]),
        ("emails", [WORK], [HOME, HOME], [WORK, HOME]),
        ("addresses", [STREET], [STREET], [STREET]),
        ("addresses", [STREET], [{**STREET, "type": "home"}], [STREET, {**STREET, "type": "home"}]),
    ],
    ids=["same-pair", "other-type", "same-pair-updates", "repeated-entry", "same-address",
         "other-address"],
)
def test_add_updates_the_element_it_names_and_appends_the_others(
    attribute, existing, added, expected
):
    operations = parse_patch_request(
        patch({"op": "add", "path": attribute, "value": added}), USER_TYPE
    )
    result = apply_operations({"userName": "u", attribute: existing}, operations, USER_TYPE)
    assert result[attribute] == expected


def test_remove_by_value_list_removes_exactly_the_listed_elements():
    existing = [WORK, {"value": "b@example.com"}, {"value": "c@example.com"}]
    operations = parse_patch_request(
        patch({"op": "remove", "path": "emails", "value": [{"value": "b@example.com"}, WORK]}),
        USER_TYPE,
    )
    result = apply_operations({"userName": "u", "emails": existing}, operations, USER_TYPE)
    assert result["emails"] == [{"value": "c@example.com"}]
