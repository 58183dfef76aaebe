"""SCIM Bulk (RFC 7644 §3.7): bulkId references, failOnErrors, maxOperations."""

from __future__ import annotations

from .scimdata import create_user

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim, operations: list[dict], fail_on_errors: int | None = None):
    """POST a BulkRequest with these operations (and ``failOnErrors`` when given)."""
    body: dict = {"schemas": [BULK], "Operations": operations}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return scim.post("/Bulk", json=body)


def test_bulk_creates_a_user_and_a_group_that_references_it(scim):
    response = bulk(
        scim,
        [
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {"displayName": "Bulk", "members": [{"value": "bulkId:u1"}]},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "u1",
                "data": {"userName": "bulk@example.com"},
            },
        ],
    )
    assert response.status_code == 200
    results = response.json()["Operations"]
    assert [r["status"] for r in results] == ["201", "201"]
    group_id = results[0]["location"].rsplit("/", 1)[1]
    user_id = results[1]["location"].rsplit("/", 1)[1]
    members = scim.get(f"/Groups/{group_id}").json()["members"]
    assert [m["value"] for m in members] == [user_id]


def test_bulk_reports_each_failure_and_keeps_the_successes(scim):
    create_user(scim, "taken@example.com")
    response = bulk(
        scim,
        [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "a",
                "data": {"userName": "taken@example.com"},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b",
                "data": {"userName": "fresh@example.com"},
            },
            {"method": "DELETE", "path": "/Users/missing"},
        ],
    )
    statuses = [r["status"] for r in response.json()["Operations"]]
    assert statuses == ["409", "201", "404"]
    assert response.json()["Operations"][0]["response"]["scimType"] == "uniqueness"
    assert (
        scim.get("/Users", params={"filter": 'userName eq "fresh@example.com"'}).json()[
            "totalResults"
        ]
        == 1
    )


def test_fail_on_errors_stops_processing(scim):
    response = bulk(
        scim,
        [
            {"method": "DELETE", "path": "/Users/missing"},
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "x",
                "data": {"userName": "late@example.com"},
            },
        ],
        fail_on_errors=1,
    )
    assert [r["status"] for r in response.json()["Operations"]] == ["404"]
    assert scim.get("/Users").json()["totalResults"] == 0


def test_more_operations_than_advertised_is_413(scim):
    operations = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(1001)]
    response = bulk(scim, operations)
    assert response.status_code == 413
    assert response.json()["status"] == "413"


def test_an_unresolvable_bulk_id_is_reported(scim):
    response = bulk(
        scim,
        [
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {"displayName": "G", "members": [{"value": "bulkId:never"}]},
            },
        ],
    )
    result = response.json()["Operations"][0]
    assert result["status"] in {"400", "409"}


def test_bulk_patch_and_put_and_delete(scim):
    user = create_user(scim, "b2@example.com")
    response = bulk(
        scim,
        [
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": {"Operations": [{"op": "replace", "path": "title", "value": "Lead"}]},
            },
            {
                "method": "PUT",
                "path": f"/Users/{user['id']}",
                "data": {"userName": "b2@example.com", "title": "Boss"},
            },
            {"method": "DELETE", "path": f"/Users/{user['id']}"},
        ],
    )
    assert [r["status"] for r in response.json()["Operations"]] == ["200", "200", "204"]
    assert scim.get(f"/Users/{user['id']}").status_code == 404


def test_bulk_body_must_have_operations(scim):
    response = scim.post("/Bulk", json={"schemas": [BULK]})
    assert response.status_code == 400
