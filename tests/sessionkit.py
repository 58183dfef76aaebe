"""Helpers for the sessions, revocation and admin tests: clients for the application and the
admin, starting sessions, asking introspection, and reading the event log."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import admin_client, sessions_client

__all__ = ["admin_client", "sessions_client"]


def start_session(api: httpx.Client, client: str = "web", **identifier: Any) -> dict[str, Any]:
    """``start_session(api, user_id=...)`` (or ``userName=``/``externalId=``/``tenant=``)."""
    response = api.post("/sessions", json={"client": client, **identifier})
    assert response.status_code == 201, response.text
    return response.json()


def introspect(api: httpx.Client, token: str) -> dict[str, Any]:
    response = api.post("/sessions/introspect", data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def is_active(api: httpx.Client, token: str) -> bool:
    answer = introspect(api, token)
    if answer["active"] is not True:
        assert answer == {"active": False}
    return answer["active"] is True


def events(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = admin.get("/events", params={"count": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def revocations(admin: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    """Events for this user that ended at least one session."""
    return [event for event in events(admin, user_id=user_id) if event["session_ids"]]
