"""A PostgreSQL deadlock (40P01) or serialization failure (40001) is retried once inside the
request; a second one is a 503 with ``Retry-After`` that says what happened, not an outage.

The conflicts are real PostgreSQL errors: a trigger the test installs raises them the first
``times`` it fires. Its count is a sequence, which a rollback does not undo.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from .conftest import PG_URL, counted
from .scimdata import create_user, patch, user_body

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="needs PostgreSQL (SCIM_BRIDGE_TEST_DATABASE_URL): SQLite has no such errors"
)

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CONFLICT_DETAIL = "could not serialize this change with a concurrent one; retry"

_INSTALL = """
CREATE TABLE conflict_plan (times integer NOT NULL, code text NOT NULL);
CREATE SEQUENCE conflict_calls;
CREATE FUNCTION conflict_now() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  plan conflict_plan;
BEGIN
  SELECT * INTO plan FROM conflict_plan;
  IF nextval('conflict_calls') <= plan.times THEN
    RAISE EXCEPTION 'conflict provoked by the test' USING ERRCODE = plan.code;
  END IF;
  RETURN NULL;
END $$;
"""
_UNINSTALL = """
DROP TRIGGER IF EXISTS conflict ON {table};
DROP FUNCTION IF EXISTS conflict_now() CASCADE;
DROP SEQUENCE IF EXISTS conflict_calls;
DROP TABLE IF EXISTS conflict_plan;
"""


class Conflicts:
    """Arms the trigger on one table: the first ``times`` rows written raise ``code``."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.tables: set[str] = set()

    def arm(self, times: int, *, code: str = "40001", table: str = "users",
            at_commit: bool = False) -> None:
        kind = ("CONSTRAINT TRIGGER conflict AFTER INSERT OR UPDATE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED" if at_commit
                else "TRIGGER conflict AFTER INSERT OR UPDATE ON {table}")
        with self.engine.begin() as connection:  # type: ignore[attr-defined]
            connection.execute(text("INSERT INTO conflict_plan VALUES (:times, :code)"),
                               {"times": times, "code": code})
            connection.execute(text(
                f"CREATE {kind.format(table=table)} FOR EACH ROW EXECUTE FUNCTION conflict_now()"
            ))
        self.tables.add(table)


@pytest.fixture
def conflicts(app: object) -> Iterator[Conflicts]:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    armed = Conflicts(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql(_UNINSTALL.format(table="users"))
        connection.exec_driver_sql(_INSTALL)
    yield armed
    with engine.connect() as connection:
        for table in armed.tables | {"users"}:
            connection.exec_driver_sql(_UNINSTALL.format(table=table))
    engine.dispose()


def _users_named(scim, user_name: str) -> int:
    listed = scim.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    assert listed.status_code == 200, listed.text
    return listed.json()["totalResults"]


def _is_conflict_503(response) -> dict:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    return response.json()


@pytest.mark.parametrize("code", ["40001", "40P01"])
@pytest.mark.parametrize("at_commit", [False, True], ids=["in-statement", "at-commit"])
def test_one_conflict_is_retried_and_the_post_creates_one_user(scim, conflicts, code, at_commit):
    conflicts.arm(1, code=code, at_commit=at_commit)
    before = counted("scim_bridge_database_errors_total", kind="conflict-retried")
    response = scim.post("/Users", json=user_body("ann@example.com"))
    assert response.status_code == 201, response.text
    assert counted("scim_bridge_database_errors_total", kind="conflict-retried") == before + 1
    assert _users_named(scim, "ann@example.com") == 1


@pytest.mark.parametrize("at_commit", [False, True], ids=["in-statement", "at-commit"])
def test_two_conflicts_are_a_scim_503_and_change_nothing(scim, conflicts, at_commit, caplog):
    conflicts.arm(2, code="40P01", at_commit=at_commit)
    before = counted("scim_bridge_database_errors_total", kind="conflict-503")
    response = scim.post("/Users", json=user_body("ann@example.com"))
    assert counted("scim_bridge_database_errors_total", kind="conflict-503") == before + 1
    assert not [record for record in caplog.records if record.exc_info]  # no traceback
    body = _is_conflict_503(response)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "503" and CONFLICT_DETAIL in body["detail"]
    assert "unavailable" not in body["detail"]
    assert _users_named(scim, "ann@example.com") == 0


def test_a_retried_patch_is_applied_once(scim, conflicts):
    user = create_user(scim, "ann@example.com")
    conflicts.arm(1)
    response = scim.patch(f"/Users/{user['id']}", json=patch(
        {"op": "add", "path": "emails", "value": [{"value": "ann@home.example", "type": "home"}]}
    ))
    assert response.status_code == 200, response.text
    stored = scim.get(f"/Users/{user['id']}").json()
    assert [e["value"] for e in stored["emails"]].count("ann@home.example") == 1
    assert stored["meta"]["version"] == 'W/"2"'


def test_a_retried_bulk_creates_each_user_once(scim, conflicts):
    conflicts.arm(1)
    operations = [{"method": "POST", "path": "/Users", "bulkId": name,
                   "data": user_body(f"{name}@example.com")} for name in ("ann", "bob")]
    response = scim.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    assert response.status_code == 200, response.text
    assert [op["status"] for op in response.json()["Operations"]] == ["201", "201"]
    assert _users_named(scim, "ann@example.com") == _users_named(scim, "bob@example.com") == 1


def test_outside_scim_two_conflicts_are_a_json_503(scim, api, admin, conflicts):
    user = create_user(scim, "ann@example.com")
    conflicts.arm(2, table="app_sessions")
    response = api.post("/sessions", json={"userName": "ann@example.com", "client": "web"})
    body = _is_conflict_503(response)
    assert body == {"error": "concurrent_change", "error_description": body["error_description"]}
    assert CONFLICT_DETAIL in body["error_description"]
    assert admin.get(f"/users/{user['id']}/sessions").json()["sessions"] == []


def test_outside_scim_one_conflict_is_retried(scim, api, admin, conflicts):
    user = create_user(scim, "ann@example.com")
    conflicts.arm(1, table="app_sessions")
    response = api.post("/sessions", json={"userName": "ann@example.com", "client": "web"})
    assert response.status_code == 201, response.text
    assert len(admin.get(f"/users/{user['id']}/sessions").json()["sessions"]) == 1


def test_other_database_errors_are_not_retried(scim, conflicts):
    """55P03 (lock_not_available) is an OperationalError too, but no conflict: today's 503."""
    conflicts.arm(1, code="55P03")
    response = scim.post("/Users", json=user_body("ann@example.com"))
    body = _is_conflict_503(response)
    assert "unavailable" in body["detail"] and CONFLICT_DETAIL not in body["detail"]
    assert _users_named(scim, "ann@example.com") == 0
