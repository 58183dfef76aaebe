"""``/metrics`` through a real ``scim-bridge serve --workers 2``: every worker's requests are
counted (also after one is killed), labels are route templates, access-control events are
counted, and the metrics are off the public surface (loopback port, or a ``metrics`` token)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from . import live
from .harness import LOOPBACK, free_port, scim_bridge_command
from .receivers import Answer, receiving
from .scimdata import create_group, create_user, patch

USER_ROUTE = "/scim/v2/Users/<user_id>"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(metrics_port: int) -> Iterator[live.LiveServer]:
    """One server for the module (the worker-kill test runs last: it replaces a worker)."""
    with live.serve("--metrics-port", str(metrics_port)) as running:
        yield running


@pytest.fixture(scope="module")
def metrics_token(server: live.LiveServer) -> str:
    return server.cli("token", "create", "--name", live.unique("prom"), "--scope", "metrics")


@pytest.fixture(scope="module")
def scim(server: live.LiveServer) -> Iterator[httpx.Client]:
    with server.client({"Accept": "application/scim+json"}) as client:
        yield client


def scrape(server: live.LiveServer, token: str) -> str:
    response = httpx.get(f"{server.base_url}/metrics",
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def access_lines(server: live.LiveServer) -> list[dict[str, Any]]:
    assert server.process is not None
    lines = []
    for line in list(server.process.stderr):
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "scim_bridge.access":
                lines.append(record)
    return lines


def read_missing_users(server: live.LiveServer, how_many: int) -> None:
    """``how_many`` GETs of unknown users (404), each on a new connection, eight at a time, so
    gunicorn hands them to both workers."""

    def one(_: int) -> None:
        response = httpx.get(f"{server.scim_url}/Users/{uuid.uuid4()}", timeout=30,
                             headers={"Authorization": f"Bearer {server.scim_token}"})
        assert response.status_code == 404

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(how_many)))


def workers_that_answered(server: live.LiveServer, route: str) -> set[int]:
    return {line["process"] for line in access_lines(server) if line["route"] == route}


def test_requests_spread_over_both_workers_are_all_counted(server, metrics_token):
    before = value(scrape(server, metrics_token), "scim_bridge_http_requests_total",
                   route=USER_ROUTE, method="GET", status="404")
    sent = 0
    while len(workers_that_answered(server, USER_ROUTE)) < 2 and sent < 400:
        read_missing_users(server, 40)
        sent += 40
    assert len(workers_that_answered(server, USER_ROUTE)) == 2, "one worker took every request"
    text = scrape(server, metrics_token)
    assert value(text, "scim_bridge_http_requests_total",
                 route=USER_ROUTE, method="GET", status="404") == before + sent
    assert value(text, "scim_bridge_http_request_duration_seconds_count",
                 route=USER_ROUTE, method="GET") >= before + sent


def test_labels_are_route_templates_never_raw_paths(server, metrics_token, scim):
    user = create_user(scim, live.unique("label") + "@example.com")
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    assert scim.get("/NoSuchThing/abc123").status_code == 404
    text = scrape(server, metrics_token)
    assert user["id"] not in text
    assert "abc123" not in text
    assert value(text, "scim_bridge_http_requests_total", route=USER_ROUTE, status="200") >= 1
    routes = {sample.labels.get("route") for family in text_string_to_metric_families(text)
              for sample in family.samples if "route" in sample.labels}
    assert all(route.startswith("/") or route == "unmatched" for route in routes)


def test_a_removal_revokes_and_introspections_are_counted(server, metrics_token, scim):
    before = scrape(server, metrics_token)
    user = create_user(scim, live.unique("removed") + "@example.com")
    group = create_group(scim, live.unique("team"), [user["id"]])
    with server.application() as application:
        token = live.start_session(application, user["id"])
        assert live.session_is_active(application, token)
        removal = patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'})
        assert scim.patch(f"/Groups/{group['id']}", json=removal).status_code in (200, 204)
        assert not live.session_is_active(application, token)
    after = scrape(server, metrics_token)
    for name, labels, grown in [
        ("scim_bridge_revocations_total", {"cause": "member_removed"}, 1),
        ("scim_bridge_sessions_created_total", {}, 1),
        ("scim_bridge_introspections_total", {"result": "active"}, 1),
        ("scim_bridge_introspections_total", {"result": "inactive"}, 1),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == grown, name
    assert "scim_bridge_request_log_pending" in after


def _webhook(server: live.LiveServer, url: str) -> str:
    """Register a ``user.deleted`` webhook with the CLI; returns its id."""
    printed = server.cli("webhook", "add", url, "--events", "user.deleted")
    return printed.splitlines()[0].split()[-1]


def _wait_for(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def test_the_outbox_is_measured_by_receiver_kind(server, metrics_token, metrics_port, scim):
    """Depth and oldest pending age (a receiver asking for an hour's pause), a dead letter (a
    410), attempts by outcome and the delivery latency, summed over both workers' processes
    (the outbox gauges are the database's, on the main port and on the metrics port)."""
    kind = {"kind": "webhook"}
    before = scrape(server, metrics_token)
    with receiving() as healthy, receiving() as paused, receiving() as gone:
        paused.default = Answer(503, {"Retry-After": "3600"})
        gone.default = Answer(410)
        hooks = [_webhook(server, r.url) for r in (healthy, paused, gone)]
        try:
            user = create_user(scim, live.unique("measured") + "@example.com")
            assert scim.delete(f"/Users/{user['id']}").status_code == 204
            for receiver in (healthy, paused, gone):
                receiver.wait_for(1, seconds=20)

            def settled() -> str | None:
                text = scrape(server, metrics_token)
                grown = value(text, "scim_bridge_delivery_attempts_total", **kind) - value(
                    before, "scim_bridge_delivery_attempts_total", **kind)
                return text if grown >= 3 else None

            after = _wait_for(settled)
            for name, labels, grown in [
                ("scim_bridge_delivery_attempts_total", {"outcome": "delivered"}, 1),
                ("scim_bridge_delivery_attempts_total", {"outcome": "retry"}, 1),
                ("scim_bridge_delivery_attempts_total", {"outcome": "dead"}, 1),
                ("scim_bridge_delivery_latency_seconds_count", {}, 1),
                ("scim_bridge_outbox_depth", {}, 1),
                ("scim_bridge_outbox_dead_letters", {}, 1),
            ]:
                assert value(after, name, **kind, **labels) - value(
                    before, name, **kind, **labels) == grown, name
            assert value(after, "scim_bridge_outbox_oldest_pending_age_seconds", **kind) >= 0
            time.sleep(1.1)
            older = scrape(server, metrics_token)
            assert value(older, "scim_bridge_outbox_oldest_pending_age_seconds", **kind) >= 1
            on_port = httpx.get(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=30).text
            assert value(on_port, "scim_bridge_outbox_depth", **kind) == value(
                older, "scim_bridge_outbox_depth", **kind)
            assert value(on_port, "scim_bridge_delivery_attempts_total", **kind) == value(
                older, "scim_bridge_delivery_attempts_total", **kind)
        finally:
            for hook in hooks:
                server.cli("webhook", "remove", hook)
    cleared = scrape(server, metrics_token)
    assert value(cleared, "scim_bridge_outbox_depth", **kind) == value(
        before, "scim_bridge_outbox_depth", **kind)


def test_the_metrics_port_listens_on_loopback_only(server, metrics_port):
    response = httpx.get(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=30)
    assert response.status_code == 200
    assert "scim_bridge_http_requests_total" in response.text
    assert _listening_addresses(metrics_port) == {LOOPBACK}


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port`` (Linux /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    if len(address) == 8:
                        found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
                    else:
                        found.add(address)
    return found


def test_the_main_port_refuses_metrics_without_a_metrics_token(server, metrics_token):
    url = f"{server.base_url}/metrics"
    assert httpx.get(url, timeout=30).status_code == 401
    unknown = httpx.get(url, headers={"Authorization": "Bearer sb_nope"}, timeout=30)
    assert unknown.status_code == 401
    for scope in ("scim", "sessions", "admin"):
        other = server.cli("token", "create", "--name", live.unique(scope), "--scope", scope)
        answer = httpx.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=30)
        assert answer.status_code == 403, scope
        assert "scim_bridge" not in answer.text
    assert "scim_bridge_http_requests_total" in scrape(server, metrics_token)


def test_a_killed_workers_counts_are_still_summed(server, metrics_token):
    """Runs last in the module: it replaces a worker."""
    assert server.process is not None
    read_missing_users(server, 16)
    victims = workers_that_answered(server, USER_ROUTE)
    before = value(scrape(server, metrics_token), "scim_bridge_http_requests_total",
                   route=USER_ROUTE, status="404")
    victim = sorted(victims)[0]
    os.kill(victim, signal.SIGKILL)
    server.process.wait_for_line(rf"Booting worker with pid: (?!{victim}\b)\d+", 30)
    _wait_until_answering(server)
    assert value(scrape(server, metrics_token), "scim_bridge_http_requests_total",
                 route=USER_ROUTE, status="404") == before
    read_missing_users(server, 10)
    assert value(scrape(server, metrics_token), "scim_bridge_http_requests_total",
                 route=USER_ROUTE, status="404") == before + 10
    assert server.process.process.poll() is None
    assert not [line for line in server.process.stderr if "Traceback" in line]


def _wait_until_answering(server: live.LiveServer) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not answer after its worker was replaced")



def test_a_metrics_port_in_use_stops_serve_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*scim_bridge_command(), "serve", "--port", str(free_port()),
             "--metrics-port", str(port)],
            env={**os.environ, "SCIM_BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db"},
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: --metrics-port {port}: cannot listen on 127.0.0.1 (Address already in use); "
        "choose a free port"
    ]
    assert not (tmp_path / "bridge.db").exists()  # refused before the database is touched
