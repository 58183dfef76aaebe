"""Structured logs: one JSON line per request (from a real ``scim-bridge serve``, and in-process),
``--log-format text`` for a terminal, and no token, session JWT or password in any line, on
success and on every error path."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, request
from gunicorn.config import Config
from pythonjsonlogger.json import JsonFormatter

from scim_bridge import logs
from scim_bridge import server as serving
from scim_bridge.settings import Settings

from . import live
from .conftest import admin_client, http_client, make_token, sessions_client
from .scimdata import user_body

PASSWORD = "hunter2-secret"
WRONG_TOKEN = "sb_wrong-token-never-logged-7c1f"
ACCESS_FIELDS = {"request_id", "tenant", "token_name", "method", "route", "status",
                 "duration_ms", "client_addr", "time", "level", "logger", "process"}


def _secret_user(user_name: str, **extra: Any) -> dict[str, Any]:
    return user_body(user_name, password=PASSWORD, **extra)


def _without_user_name() -> dict[str, Any]:
    body = _secret_user("nobody@example.com")
    del body["userName"]
    return body


# -- through gunicorn ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[live.LiveServer]:
    with live.serve() as running:  # the default format: json
        yield running


def _stderr(server: live.LiveServer) -> list[str]:
    assert server.process is not None
    return list(server.process.stderr)


def _access_lines(server: live.LiveServer) -> list[dict[str, Any]]:
    found = []
    for line in _stderr(server):
        record = json.loads(line)  # every stderr line is JSON, gunicorn's too
        if record["logger"] == logs.ACCESS_LOGGER:
            found.append(record)
    return found


def _wait_for_access_lines(server: live.LiveServer, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while len(lines := _access_lines(server)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


def test_every_request_and_error_path_logs_json_without_secrets(server):
    admin_token = server.cli("token", "create", "--name", live.unique("console"),
                             "--scope", "admin")
    sent = len(_access_lines(server))
    request_ids = []
    with server.client({"Accept": "application/scim+json"}) as scim, \
            server.application() as application, \
            httpx.Client(base_url=f"{server.base_url}/api/v1/admin", timeout=30,
                         headers={"Authorization": f"Bearer {admin_token}"}) as admin:
        name = live.unique("secret") + "@example.com"
        created = scim.post("/Users", json=_secret_user(name))
        assert created.status_code == 201
        request_ids.append(created.headers["X-Request-Id"])
        session = live.start_session(application, created.json()["id"])
        answers = [
            scim.post("/Users", json=_secret_user(name)),  # 409
            scim.post("/Users", json=_without_user_name()),  # 400
            scim.get(f"/Users/{uuid.uuid4()}"),  # 404
            scim.get("/Users", headers={"Authorization": f"Bearer {WRONG_TOKEN}"}),  # 401
            scim.get("/Users", headers={"Authorization": f"Bearer {session}"}),  # 401
            scim.post("/Users", json=user_body(name, password=PASSWORD + "x" * 1_100_000)),
            application.post("/sessions/introspect", data={"token": session}),
            application.post("/sessions/introspect", data={"token": session + "tampered"}),
            admin.get("/users"),
            admin.get(f"/users/{uuid.uuid4()}/sessions"),
        ]
    assert [answer.status_code for answer in answers] == [
        409, 400, 404, 401, 401, 413, 200, 200, 200, 404,
    ]
    sent += 2 + len(answers)  # the create and the session too
    lines = _wait_for_access_lines(server, sent)
    assert len(lines) >= sent
    secrets = [server.scim_token, admin_token, session, WRONG_TOKEN, PASSWORD]
    for line in _stderr(server):
        for secret in secrets:
            assert secret not in line, f"a secret reached the log: {line}"
    for line in lines:
        assert ACCESS_FIELDS <= line.keys(), line
    create = next(line for line in lines if line["request_id"] == request_ids[0])
    assert create["route"] == "/scim/v2/Users" and create["method"] == "POST"
    assert create["status"] == 201 and create["tenant"] == "default"
    assert create["token_name"] and create["client_addr"] == "127.0.0.1"
    assert isinstance(create["duration_ms"], float)
    statuses = {line["status"] for line in lines}
    assert {201, 400, 401, 404, 409, 413} <= statuses
    assert "/scim/v2/Users/<user_id>" in {line["route"] for line in lines}


def test_text_format_gives_plain_lines():
    with live.serve("--log-format", "text") as running:
        assert httpx.get(f"{running.base_url}/healthz", timeout=30).status_code == 200
        assert running.process is not None
        running.process.wait_for_line(r"scim_bridge\.access: GET /healthz 200 ", 20)
        lines = list(running.process.stderr)
    assert lines and not any(line.startswith("{") for line in lines)
    assert any("gunicorn.error: Booting worker" in line for line in lines)


# -- in process: the 500 path and caplog ---------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(max_payload_bytes=1024)


@pytest.fixture
def app(app: Flask) -> Flask:
    """The test app with one more route, which fails after reading the body (not a product
    route)."""

    def fail() -> str:
        request.get_data()
        raise RuntimeError("the test-only route failed")

    app.add_url_rule("/test-only/fail", "test_only_fail", fail, methods=["POST"])
    return app


def test_no_secret_in_any_log_record_in_process(app, caplog):
    caplog.set_level(logging.DEBUG)
    scim_token = make_token(app, "okta", "scim")
    with http_client(app, scim_token, "/scim/v2") as scim, sessions_client(app) as api, \
            admin_client(app) as admin, http_client(app, scim_token) as root:
        user = scim.post("/Users", json=_secret_user("ada@example.com"))
        assert user.status_code == 201
        session = api.post("/sessions", json={"user_id": user.json()["id"], "client": "web"})
        session = session.json()["token"]
        admin_token = admin.headers["Authorization"].removeprefix("Bearer ")
        statuses = [
            scim.post("/Users", json=_secret_user("ada@example.com")).status_code,
            scim.post("/Users", json=_without_user_name()).status_code,
            scim.get(f"/Users/{uuid.uuid4()}").status_code,
            scim.get("/Users", headers={"Authorization": f"Bearer {WRONG_TOKEN}"}).status_code,
            scim.post("/Users", json=_secret_user("big@example.com", x="y" * 2000)).status_code,
            api.post("/sessions/introspect", data={"token": session}).status_code,
            admin.get("/users").status_code,
            root.post("/test-only/fail", json={"password": PASSWORD}).status_code,
        ]
    assert statuses == [409, 400, 404, 401, 413, 200, 200, 500]
    formatter = _json_formatter()
    # Every record of the server side (the test's own HTTP client logs its requests too).
    rendered = [formatter.format(record) for record in caplog.records
                if not record.name.startswith(("httpx", "httpcore"))]
    for line in rendered:
        for secret in (scim_token, admin_token, session, WRONG_TOKEN, PASSWORD):
            assert secret not in line, f"a secret reached the log: {line}"
    access = [json.loads(line) for line in rendered
              if json.loads(line)["logger"] == logs.ACCESS_LOGGER]
    assert [line["status"] for line in access][-8:] == statuses
    failed = access[-1]
    assert failed["route"] == "/test-only/fail" and failed["token_name"] is None
    assert any("RuntimeError" in line for line in rendered)  # the 500 is logged, with its cause


def _json_formatter() -> logging.Formatter:
    """The formatter ``serve`` configures, built from the same document."""
    options = dict(logs.logging_config("json")["formatters"]["json"])
    assert options.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    return JsonFormatter(**options)


def test_gunicorn_builds_no_access_line_of_its_own():
    """observability.py logs each request; gunicorn would otherwise build a dict of every
    header and environ entry per request for a logger that drops the line."""
    config = Config()
    config.set("accesslog", "-")  # what would turn gunicorn's own access log on
    config.set("logger_class", serving.options(Settings(), host="127.0.0.1", port=8080,
                                              workers=1, threads=4)["logger_class"])
    logger = config.logger_class(config)
    assert logger.access_log_enabled is False


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no /dev/shm on this machine")
def test_the_worker_heartbeat_lives_in_memory():
    """gunicorn touches the heartbeat file on every turn of a worker's loop: on a disk it
    waits behind other writers' journal flushes."""
    chosen = serving.options(Settings(), host="127.0.0.1", port=8080, workers=1, threads=4)
    assert chosen["worker_tmp_dir"] == "/dev/shm"
