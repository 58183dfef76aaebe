"""What a claim costs and what it may hand out: the claim walks the open rows in order and stops
at its limit whatever the planner's statistics say, and a row that waited too long for a free
sending slot is handed back unsent rather than sent on a lease about to run out."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from scim_bridge.events.outbox import claim
from scim_bridge.events.record import USER_DELETED, Cause, record
from scim_bridge.events.worker import DeliveryWorker
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL
from .harness import UNTHROTTLED
from .receivers import deliveries_of, ids, register, wait_until
from .scimdata import create_user, patch

DEACTIVATE = patch({"op": "replace", "path": "active", "value": False})
REACTIVATE = patch({"op": "replace", "path": "active", "value": True})


@pytest.mark.parametrize("backlog", [2_000, 10_000])  # each misled one planner choice
def test_on_postgresql_a_claim_reads_only_the_rows_it_takes(app, admin, settings, backlog):
    """A backlog in tables never analysed yet (a new install's first outage): planned on no
    statistics, the claim used to sort every open row to take the first few, or to scan every
    open row for each one it took, so a drain took time quadratic in its backlog. The tables
    here are never-analysed temporary copies, which shadow the real ones in this
    transaction."""
    engine = app.extensions["scim_bridge"].engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's claim has no statistics to be misled by")
    register(admin, "http://127.0.0.1:9/hook", ["user.deleted"])
    plans: list[str] = []

    def explain(conn, cursor, statement, parameters, context, executemany):
        if "SKIP LOCKED" in statement:
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    with engine.connect() as connection:
        for table in ("receivers", "deliveries"):
            connection.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {table} (LIKE public.{table} INCLUDING ALL)")
        connection.exec_driver_sql("INSERT INTO pg_temp.receivers SELECT * FROM public.receivers")
        db = Session(bind=connection)
        record(db, tenant_id=tokens.ensure_default_tenant(db).id,
               cause=Cause(USER_DELETED, "test"),
               user_sessions=[(f"user-{n}", []) for n in range(backlog)])
        db.flush()
        event.listen(engine, "before_cursor_execute", explain)
        try:
            leased = claim(db, "test", settings.clock(), 60, 16)
        finally:
            event.remove(engine, "before_cursor_execute", explain)
        connection.rollback()
    assert [row.subject for row in leased] == [f"user-{n}" for n in range(16)]
    [plan] = plans
    assert "Index Scan using deliveries_next_attempt_at_id_idx" in plan, plan  # in order
    assert "Index Scan using deliveries_receiver_id_subject_id_idx" in plan, plan  # per row
    assert "Sort" not in plan and "Bitmap" not in plan, plan


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Short backoff, poll and timeout, so retries take milliseconds."""
    return Settings(database_url=database_url, public_url=PUBLIC_URL,
                    delivery_backoff_base_ms=20, delivery_poll_ms=100, delivery_timeout=2,
                    delivery_lease=5, **UNTHROTTLED)


def test_a_row_left_less_than_a_timeout_of_its_lease_goes_back_unsent(
        app, settings, scim, admin, receiver, clock):
    register(admin, receiver.url, ["user.deleted"])
    scim.delete(f"/Users/{create_user(scim, 'alice@example.com')['id']}")
    bridge = app.extensions["scim_bridge"]
    worker = DeliveryWorker(bridge.sessions, settings.with_(clock=clock))
    clock.advance(1)  # past the row's creation
    try:
        [claimed] = worker.finish_and_claim([], 8)
        clock.advance(3.5)  # it waited for a slot: 1.5 s of its 5 s lease left, timeout 2 s
        released = worker.attempt(claimed)
        assert released.result == "released" and receiver.arrived == 0
        [again] = worker.finish_and_claim([(claimed, released)], 8)  # due again at once
        assert (again.id, again.attempts) == (claimed.id, 0)
        [delivery] = deliveries_of(admin)
        assert delivery["attempts"] == 0 and delivery["last_error"] is None
        delivered = worker.attempt(again)
        assert delivered.result == "delivered"
        worker.finish_and_claim([(again, delivered)], 0)
    finally:
        worker.client.close()
    [delivery] = deliveries_of(admin)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 1
    assert len(receiver.requests) == 1


def test_order_per_subject_holds_with_many_subjects_in_flight_and_failed_first_attempts(
        app, scim, admin, receiver):
    """Six users' deactivate, reactivate, deactivate, queued before the worker starts, then
    sent concurrently while the receiver refuses the first five attempts: a user's later event
    never arrives before an earlier one, and every event arrives."""
    secret = register(admin, receiver.url, ["user.deactivated", "user.reactivated"])["secret"]
    receiver.answer_first(5, 503)
    users = [create_user(scim, f"user{n}@example.com")["id"] for n in range(6)]
    for user in users:
        for change in (DEACTIVATE, REACTIVATE, DEACTIVATE):
            assert scim.patch(f"/Users/{user}", json=change).status_code == 200
    worker = app.extensions["scim_bridge"].delivery_worker()
    worker.start()
    try:
        wait_until(lambda: len(set(ids(receiver.requests))) == 18 and all(
            d["state"] == "delivered" for d in deliveries_of(admin)), 30)
    finally:
        worker.stop(wait=15)
    arrivals: dict[str, list[str]] = {user: [] for user in users}
    for request, payload in zip(receiver.requests, receiver.verified(secret), strict=True):
        sent = arrivals[payload["data"]["user_id"]]
        if not sent or sent[-1] != request.headers["webhook-id"]:
            sent.append(request.headers["webhook-id"])
    for user, sent in arrivals.items():
        assert len(sent) == len(set(sent)) == 3, (user, sent)  # no earlier one after a later
        # commit order: a user's delivery ids grow with it
        assert sent == sorted(sent, key=lambda msg_id: int(msg_id.removeprefix("msg_")))
    assert len(receiver.requests) == 18 + 5
