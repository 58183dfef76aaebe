"""The outbox never loses an event: retries with the same id, dead letters and replay, order per
subject, no head-of-line blocking, a worker killed mid-delivery, two workers at once, and the
worker embedded in ``scim-bridge serve``. Real loopback receivers throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from scim_bridge import create_app
from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL
from .harness import scim_bridge_command
from .receivers import Answer, deliveries_of, ids, receiving, register, wait_until
from .scimdata import create_group, create_user, patch

DEACTIVATE = patch({"op": "replace", "path": "active", "value": False})
REACTIVATE = patch({"op": "replace", "path": "active", "value": True})


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Short backoff, poll and timeout, so retries take milliseconds."""
    return Settings(database_url=database_url, public_url=PUBLIC_URL,
                    delivery_backoff_base_ms=20, delivery_poll_ms=100, delivery_timeout=2,
                    delivery_lease=5)


def test_a_receiver_failing_three_times_gets_the_event_with_the_same_id(
        scim, admin, receiver, worker):
    secret = register(admin, receiver.url, ["user.deleted"])["secret"]
    receiver.answer_first(3, 500)
    alice = create_user(scim, "alice@example.com")
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    received = receiver.wait_for(4)
    assert len(set(ids(received))) == 1
    assert [p["type"] for p in receiver.verified(secret)] == ["user.deleted"] * 4
    [delivery] = wait_until(lambda: [d for d in deliveries_of(admin)
                                     if d["state"] == "delivered"])
    assert delivery["attempts"] == 4 and delivery["kind"] == "webhook"
    assert delivery["last_error"] is None


def test_retry_after_is_honoured(scim, admin, receiver, worker):
    register(admin, receiver.url, ["user.deleted"])
    receiver.answer_first(1, 429, **{"Retry-After": "1"})
    alice = create_user(scim, "alice@example.com")
    scim.delete(f"/Users/{alice['id']}")
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_a_410_dead_letters_at_once_and_replay_sends_the_same_id(
        scim, admin, receiver, worker):
    secret = register(admin, receiver.url, ["user.deleted"])["secret"]
    receiver.answer_first(1, 410)
    alice = create_user(scim, "alice@example.com")
    scim.delete(f"/Users/{alice['id']}")
    [gone] = receiver.wait_for(1)
    [event] = admin.get("/events", params={"type": "user_deleted"}).json()["events"]
    [dead] = wait_until(lambda: [d for d in deliveries_of(admin) if d["state"] == "dead"])
    assert dead["attempts"] == 1 and "410" in dead["last_error"]
    assert dead["next_attempt_at"] is None
    time.sleep(0.3)
    assert len(receiver.requests) == 1  # never retried on its own
    answer = admin.post(f"/events/{event['id']}/replay")
    assert answer.status_code == 200 and answer.json() == {"replayed": 1}
    _, again = receiver.wait_for(2)
    assert again.headers["webhook-id"] == gone.headers["webhook-id"]
    assert int(again.headers["webhook-timestamp"]) >= int(gone.headers["webhook-timestamp"])
    assert [p["type"] for p in receiver.verified(secret)] == ["user.deleted"] * 2
    wait_until(lambda: [d for d in deliveries_of(admin) if d["state"] == "delivered"])


def test_every_dead_delivery_of_the_tenant_can_be_replayed(scim, admin, receiver, worker):
    register(admin, receiver.url, ["user.deleted"])
    receiver.answer_first(2, 410)
    for name in ("alice@example.com", "bob@example.com"):
        scim.delete(f"/Users/{create_user(scim, name)['id']}")
    wait_until(lambda: len([d for d in deliveries_of(admin) if d["state"] == "dead"]) == 2)
    answer = admin.post("/deliveries/replay", json={"state": "dead"})
    assert answer.status_code == 200 and answer.json() == {"replayed": 2}
    received = receiver.wait_for(4)
    assert sorted(ids(received[:2])) == sorted(ids(received[2:]))


@pytest.mark.parametrize(("path", "body"), [
    ("/deliveries/replay", {"state": "pending"}),
    ("/deliveries/replay", {}),
    ("/deliveries/replay", ["dead"]),
    ("/deliveries/replay", {"state": "dead", "extra": 1}),
])
def test_a_bad_replay_is_a_400(admin, path, body):
    response = admin.post(path, json=body)
    assert response.status_code == 400, response.text
    assert "dead" in response.json()["error_description"]


@pytest.mark.parametrize("event_id", ["999", "abc", "99999999999999999999", "-1", "1.5"])
def test_replaying_an_unknown_event_is_a_404(admin, event_id):
    assert admin.post(f"/events/{event_id}/replay").status_code == 404


def test_replay_reaches_only_the_tenants_own_events(app, scim, admin, receiver, worker):
    from .conftest import admin_client

    register(admin, receiver.url, ["user.deleted"])
    receiver.answer_first(1, 410)
    scim.delete(f"/Users/{create_user(scim, 'alice@example.com')['id']}")
    [event] = admin.get("/events", params={"type": "user_deleted"}).json()["events"]
    wait_until(lambda: [d for d in deliveries_of(admin) if d["state"] == "dead"])
    with admin_client(app, "other", tenant="acme") as other:
        assert other.post(f"/events/{event['id']}/replay").status_code == 404
        assert other.post("/deliveries/replay", json={"state": "dead"}).json() == {"replayed": 0}
    assert [d["state"] for d in deliveries_of(admin)] == ["dead"]


def test_deactivate_then_reactivate_arrive_in_order_though_the_first_needed_a_retry(
        scim, admin, receiver, worker):
    secret = register(admin, receiver.url, ["user.deactivated", "user.reactivated"])["secret"]
    receiver.answer_first(1, 503)
    alice = create_user(scim, "alice@example.com")
    assert scim.patch(f"/Users/{alice['id']}", json=DEACTIVATE).status_code == 200
    assert scim.patch(f"/Users/{alice['id']}", json=REACTIVATE).status_code == 200
    received = receiver.wait_for(3)
    assert [p["type"] for p in receiver.verified(secret)] == [
        "user.deactivated", "user.deactivated", "user.reactivated"]
    assert ids(received)[0] == ids(received)[1] != ids(received)[2]


def test_a_hanging_receiver_does_not_delay_another(scim, admin, worker):
    with receiving() as slow, receiving() as healthy:
        slow.default = Answer(500, delay=3)
        register(admin, slow.url, ["user.deleted"])
        register(admin, healthy.url, ["user.deleted"])
        for number in range(3):
            user = create_user(scim, f"user{number}@example.com")
            assert scim.delete(f"/Users/{user['id']}").status_code == 204
            answered = time.monotonic()
            [*_, last] = healthy.wait_for(number + 1)
            assert last.at - answered < 1.0
        assert slow.arrived >= 1


def _run_worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SCIM_BRIDGE_DATABASE_URL": database_url,
           "SCIM_BRIDGE_DELIVERY_LEASE": "3", "SCIM_BRIDGE_DELIVERY_TIMEOUT": "1",
           "SCIM_BRIDGE_DELIVERY_POLL_MS": "100", "SCIM_BRIDGE_DELIVERY_BACKOFF_BASE_MS": "20"}
    return subprocess.Popen([*scim_bridge_command(), "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_killed_mid_delivery_loses_nothing_after_restart(
        database_url, scim, admin, receiver):
    secret = register(admin, receiver.url, ["user.deleted"])["secret"]
    receiver.default = Answer(200, delay=0.5)
    for number in range(12):
        scim.delete(f"/Users/{create_user(scim, f'user{number}@example.com')['id']}")
    first = _run_worker(database_url)
    try:
        wait_until(lambda: receiver.arrived >= 3, 30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    receiver.default = Answer(200)
    second = _run_worker(database_url)
    try:
        wait_until(lambda: len(set(ids(receiver.requests))) == 12, 30)
        wait_until(lambda: all(d["state"] == "delivered" for d in deliveries_of(admin)), 10)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0, second.stderr.read().decode() if second.stderr else ""
    finally:
        second.kill()
    payloads = receiver.verified(secret)
    assert {p["data"]["event_id"] for p in payloads} == {
        e["id"] for e in admin.get("/events", params={"type": "user_deleted"}).json()["events"]}


def test_two_workers_never_send_one_row_at_once(settings, scim, admin, receiver):
    register(admin, receiver.url, ["group.deleted"])
    members = [create_user(scim, f"user{n}@example.com")["id"] for n in range(200)]
    group = create_group(scim, "Everyone", members)
    apps = [create_app(settings) for _ in range(2)]
    workers = [a.extensions["scim_bridge"].delivery_worker() for a in apps]
    for running in workers:
        running.start()
    try:
        assert scim.delete(f"/Groups/{group['id']}").status_code == 204
        received = receiver.wait_for(200, 60)
        time.sleep(0.5)
    finally:
        for running in workers:
            running.stop(wait=15)
        for a in apps:
            a.extensions["scim_bridge"].engine.dispose()
    sent = ids(receiver.requests)
    assert len(sent) == len(set(sent)) == 200, "a row was sent twice"
    assert {r.json()["data"]["user_id"] for r in received} == set(members)


def test_the_worker_in_serve_delivers_within_a_second_of_the_scim_response(server):
    with receiving() as receiver:
        lines = server.cli("webhook", "add", receiver.url, "--events", "user.deleted")
        secret = lines.splitlines()[-1]
        assert secret.startswith("whsec_")
        assert secret not in server.cli("webhook", "list")
        with server.client({"Content-Type": "application/scim+json"}) as scim:
            user = scim.post("/Users", json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "live@example.com"}).json()
            assert scim.delete(f"/Users/{user['id']}").status_code == 204
            answered = time.monotonic()
        [request] = receiver.wait_for(1, 5)
        assert request.at - answered < 1.0
        [sent] = receiver.verified(secret)
        assert sent["type"] == "user.deleted" and sent["data"]["user_id"] == user["id"]
        webhook_id = lines.splitlines()[0].split()[-1]
        assert server.cli("webhook", "remove", webhook_id) == f"removed {webhook_id}"
        assert server.cli("webhook", "list") == ""


def test_the_cli_refuses_a_bad_webhook_in_one_line(server):
    result = subprocess.run(
        [*scim_bridge_command(), "webhook", "add", "ftp://x", "--events", "user.deleted"],
        env={**os.environ, "SCIM_BRIDGE_DATABASE_URL": server.database_url},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "url" in result.stderr and "Traceback" not in result.stderr


def test_events_replay_from_the_cli(server):
    with receiving() as receiver:
        receiver.answer_first(1, 410)
        server.cli("webhook", "add", receiver.url, "--events", "user.deleted")
        with server.client({"Content-Type": "application/scim+json"}) as scim:
            user = scim.post("/Users", json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "replayed@example.com"}).json()
            scim.delete(f"/Users/{user['id']}")
        [gone] = receiver.wait_for(1, 5)
        time.sleep(0.5)  # the 410 is recorded after the answer
        assert server.cli("events", "replay", "--dead") == "replayed 1"
        _, again = receiver.wait_for(2, 5)
        assert again.headers["webhook-id"] == gone.headers["webhook-id"]
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_a_commit_wakes_the_worker_without_waiting_for_its_poll(app, settings, scim, admin,
                                                                receiver):
    from scim_bridge.events.worker import DeliveryWorker

    bridge = app.extensions["scim_bridge"]
    sleepy = DeliveryWorker(bridge.sessions, settings.with_(delivery_poll_ms=60_000),
                            bridge.doorbell)
    register(admin, receiver.url, ["user.deleted"])
    sleepy.start()
    try:
        time.sleep(0.2)  # it has polled once and sleeps for a minute now
        assert_deletions_arrive_at_once(scim, receiver)
    finally:
        sleepy.stop(wait=15)


def test_a_delivery_failing_past_the_give_up_period_is_dead(app, settings, scim, admin,
                                                             receiver):
    from scim_bridge.events.worker import DeliveryWorker

    bridge = app.extensions["scim_bridge"]
    impatient = DeliveryWorker(bridge.sessions, settings.with_(delivery_give_up=1),
                               bridge.doorbell)
    receiver.default = Answer(500)
    register(admin, receiver.url, ["user.deleted"])
    scim.delete(f"/Users/{create_user(scim, 'alice@example.com')['id']}")
    impatient.start()
    try:
        [dead] = wait_until(lambda: [d for d in deliveries_of(admin) if d["state"] == "dead"])
    finally:
        impatient.stop(wait=15)
    assert dead["attempts"] >= 2
    assert dead["last_error"].startswith(f"gave up after {dead['attempts']} attempts: HTTP 500")


def test_removing_a_webhook_while_it_is_being_sent_to_disturbs_nobody(
        scim, admin, worker, caplog):
    with receiving() as slow, receiving() as healthy:
        slow.default = Answer(200, delay=1)
        doomed = register(admin, slow.url, ["user.deleted"])
        register(admin, healthy.url, ["user.deleted"])
        scim.delete(f"/Users/{create_user(scim, 'alice@example.com')['id']}")
        wait_until(lambda: slow.arrived == 1)
        assert admin.delete(f"/webhooks/{doomed['id']}").status_code == 204
        slow.wait_for(1)
        scim.delete(f"/Users/{create_user(scim, 'bob@example.com')['id']}")
        healthy.wait_for(2)
        time.sleep(0.3)
        assert len(slow.requests) == 1
        assert len(set(ids(healthy.requests))) == 2
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert [d["state"] for d in deliveries_of(admin)] == ["delivered", "delivered"]


def test_on_postgresql_another_instances_commit_wakes_the_worker(settings, scim, admin,
                                                                 receiver):
    """The worker of a second app (another instance) polls once a minute, yet delivers what
    the first app committed at once: NOTIFY at commit, LISTEN in the worker."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    register(admin, receiver.url, ["user.deleted"])
    other = create_app(settings.with_(delivery_poll_ms=60_000))
    elsewhere = other.extensions["scim_bridge"].delivery_worker()
    elsewhere.start()
    try:
        time.sleep(0.5)  # listening, and asleep for a minute
        assert_deletions_arrive_at_once(scim, receiver)
    finally:
        elsewhere.stop(wait=15)
        other.extensions["scim_bridge"].engine.dispose()


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    ("Wed, 02 Dec 2026 16:01:00 GMT", 60.0),
    ("Wed, 02 Dec 2026 15:00:00 GMT", 0.0),  # a date in the past: now
    ("soon", None),
    ("", None),
])
def test_retry_after_reads_seconds_or_an_http_date(header, seconds):
    import datetime as dt

    from scim_bridge.events.senders import retry_after

    now = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)
    answer = httpx.Response(429, headers={"Retry-After": header} if header else {})
    assert retry_after(answer, now) == seconds


def test_backoff_is_full_jitter_under_the_cap_and_retry_after_is_capped_too():
    from scim_bridge.events.outbox import RetryPolicy

    policy = RetryPolicy(base=1.0, cap=60.0, give_up=3600.0)
    for attempts in range(12):
        delays = [policy.delay(attempts, None) for _ in range(200)]
        assert all(0 <= d <= min(60.0, 2 ** attempts) for d in delays)
    assert max(policy.delay(3, None) for _ in range(500)) > 4  # spread over the whole range
    assert policy.delay(0, 30) == 30 and policy.delay(0, 7200) == 60


def test_serve_no_worker_leaves_delivery_to_a_separate_worker():
    from .live import serve

    with serve("--no-worker") as running, receiving() as receiver:
        running.cli("webhook", "add", receiver.url, "--events", "user.deleted")
        with running.client({"Content-Type": "application/scim+json"}) as scim:
            user = scim.post("/Users", json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "apart@example.com"}).json()
            assert scim.delete(f"/Users/{user['id']}").status_code == 204
        time.sleep(1.5)
        assert receiver.arrived == 0
        apart = _run_worker(running.database_url)
        try:
            receiver.wait_for(1, 10)
            apart.send_signal(signal.SIGTERM)
            assert apart.wait(15) == 0
        finally:
            apart.kill()


def assert_deletions_arrive_at_once(scim, receiver) -> None:
    """Two deletions, each delivered within half a second of its response: a sleeping worker
    was woken, not left to its next poll."""
    for number in range(2):
        user = create_user(scim, f"user{number}@example.com")
        assert scim.delete(f"/Users/{user['id']}").status_code == 204
        answered = time.monotonic()
        [*_, last] = receiver.wait_for(number + 1, 5)
        assert last.at - answered < 0.5
