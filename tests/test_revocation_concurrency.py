"""Zero stale window: introspection runs in parallel threads while an IdP removes the user;
no introspection that started after the SCIM response returned may say active."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text

from .conftest import PG_URL, http_client
from .scimdata import create_group, create_user, patch
from .sessionkit import sessions_client, start_session

THREADS = 6


def _hammer(app, api_token: str, token: str, stop: threading.Event,
            observed: list[tuple[float, float, bool]]) -> None:
    """Introspect in a loop, recording (started, finished, active) for each call."""
    with http_client(app, api_token, "/api/v1") as client:
        while not stop.is_set():
            started = time.monotonic()
            response = client.post("/sessions/introspect", data={"token": token})
            assert response.status_code == 200, response.text
            observed.append((started, time.monotonic(), response.json()["active"]))


@pytest.mark.parametrize("change", ["remove-member", "deactivate", "delete-group"])
def test_no_introspection_after_the_scim_response_says_active(app, scim, change):
    with sessions_client(app) as api:
        api_token = api.headers["authorization"].removeprefix("Bearer ")
        user = create_user(scim, "olga@example.com")
        group = create_group(scim, "Night shift", [user["id"]])
        token = start_session(api, user_id=user["id"])["token"]
    requests = {
        "remove-member": lambda: scim.patch(
            f"/Groups/{group['id']}",
            json=patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'})),
        "deactivate": lambda: scim.patch(
            f"/Users/{user['id']}", json=patch({"op": "replace", "value": {"active": "False"}})),
        "delete-group": lambda: scim.delete(f"/Groups/{group['id']}"),
    }
    stop = threading.Event()
    observed: list[tuple[float, float, bool]] = []
    threads = [threading.Thread(target=_hammer, args=(app, api_token, token, stop, observed))
               for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        sent = time.monotonic()
        response = requests[change]()
        returned = time.monotonic()
        assert response.status_code in (200, 204), response.text
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    before = [active for _, finished, active in observed if finished < sent]
    after = [active for started, _, active in observed if started > returned]
    assert before and all(before), "introspection was active before the change"
    assert len(after) >= THREADS, "too few introspections after the change to prove anything"
    assert not any(after), f"{sum(after)} introspections after the SCIM response said active"


@pytest.mark.skipif(not PG_URL,
                    reason="row locks: needs PostgreSQL (SCIM_BRIDGE_TEST_DATABASE_URL)")
def test_a_session_starts_while_a_removal_holds_the_membership(app, api, scim):
    """A removal deletes the membership, then updates the user's row (its version), then
    revokes. A session that locked the user and then waited on that membership deadlocked with
    it (a 503 after one retry); it now waits only on the user row, which the removal takes
    later, so it starts at once and the removal's revocation sees it."""
    ann = create_user(scim, "ann@example.com")
    crew = create_group(scim, "Crew", [ann["id"]])
    removal = create_engine(PG_URL)
    started: dict[str, int] = {}
    try:
        with removal.connect() as holding:
            holding.execute(text("DELETE FROM memberships WHERE user_id = :user AND "
                                 "group_id = :group"), {"user": ann["id"], "group": crew["id"]})
            starting = threading.Thread(target=lambda: started.setdefault(
                "status", api.post("/sessions", json={"user_id": ann["id"],
                                                      "client": "web"}).status_code))
            starting.start()
            starting.join(timeout=10)
            assert started.get("status") == 201, "the session waited on the removal's membership"
            holding.rollback()
    finally:
        removal.dispose()
