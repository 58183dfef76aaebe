"""ServiceProviderConfig, ResourceTypes and Schemas are generated from one definition."""

from __future__ import annotations

import json


def test_service_provider_config_advertises_what_the_server_does(scim):
    config = scim.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True
    assert config["bulk"] == {"supported": True, "maxOperations": 1000,
                              "maxPayloadSize": 1_048_576}
    assert config["filter"]["supported"] is True and config["etag"]["supported"] is True
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_name_users_groups_and_the_enterprise_extension(scim):
    body = scim.get("/ResourceTypes").json()
    by_id = {r["id"]: r for r in body["Resources"]}
    assert by_id["User"]["endpoint"] == "/Users"
    assert by_id["User"]["schemaExtensions"][0]["schema"].endswith("enterprise:2.0:User")
    assert scim.get("/ResourceTypes/Group").json()["endpoint"] == "/Groups"
    assert scim.get("/ResourceTypes/Nope").status_code == 404


def test_schemas_list_core_user_group_and_enterprise_without_nulls(scim):
    body = scim.get("/Schemas").json()
    ids = {s["id"] for s in body["Resources"]}
    assert "urn:ietf:params:scim:schemas:core:2.0:Group" in ids
    assert "urn:ietf:params:scim:schemas:core:2.0:User" in ids
    assert "null" not in json.dumps(body)
    user = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    user_name = next(a for a in user["attributes"] if a["name"] == "userName")
    assert user_name["caseExact"] is False and user_name["uniqueness"] == "server"


def test_discovery_answers_any_accept_header(scim):
    for accept in ("application/scim+json", "application/json", "*/*", "text/html"):
        response = scim.get("/Schemas", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/scim+json")
