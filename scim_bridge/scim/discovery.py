"""Discovery documents (RFC 7644 §4), generated from the schema definitions."""

from __future__ import annotations

from typing import Any

from .schema import RESOURCE_TYPES, SCHEMAS, SERVICE_PROVIDER_CONFIG


def service_provider_config(base_url: str, *, max_operations: int, max_payload: int,
                            max_results: int) -> dict[str, Any]:
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "documentationUri": f"{base_url}/ServiceProviderConfig",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": max_operations,
            "maxPayloadSize": max_payload,
        },
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with a bearer token issued by scim-bridge",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_types(base_url: str) -> list[dict[str, Any]]:
    return [rt.to_discovery(base_url) for rt in RESOURCE_TYPES]


def schemas(base_url: str) -> list[dict[str, Any]]:
    return [schema.to_discovery(base_url) for schema in SCHEMAS]
