"""Small builders for SCIM request bodies used across the HTTP tests."""

from __future__ import annotations

from typing import Any

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user_body(user_name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def create_user(scim: Any, user_name: str, **extra: Any) -> dict[str, Any]:
    response = scim.post("/Users", json=user_body(user_name, **extra))
    assert response.status_code == 201, response.text
    return response.json()


def create_group(scim: Any, name: str, member_ids: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": [{"value": member_id} for member_id in member_ids],
    }
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def member_ids(scim: Any, group_id: str) -> set[str]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.text
    return {member["value"] for member in response.json().get("members", [])}
