"""One token issuer per deployment: real ``scim-bridge serve`` instances on one database (SQLite
file, or a throwaway PostgreSQL database) agree on ``iss`` without ``SCIM_BRIDGE_PUBLIC_URL``,
so a session signed at one is active at the next; the setting overrides and is kept; serving a
non-loopback host without it warns at start."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jose import jwt

from .harness import free_port, scim_bridge_command
from .live import LiveServer, fresh_database, session_is_active, start_session, wait_healthy
from .scimdata import user_body

CONFIGURED = "http://bridge.example"
_TOKEN_LINE = re.compile(r"^SCIM token:\s+(\S+)\s*$", re.MULTILINE)


def _environment(database_url: str, public_url: str | None) -> dict[str, str]:
    env = {**os.environ, "SCIM_BRIDGE_DATABASE_URL": database_url}
    env.pop("SCIM_BRIDGE_PUBLIC_URL", None)
    if public_url:
        env["SCIM_BRIDGE_PUBLIC_URL"] = public_url
    return env


class Instance:
    """One ``scim-bridge serve`` process, its output kept in files."""

    def __init__(self, database_url: str, logs: Path, *, host: str = "127.0.0.1",
                 public_url: str | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.out, self.err = logs / f"{self.port}.out", logs / f"{self.port}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [*scim_bridge_command(), "serve", "--host", host, "--port", str(self.port),
                 "--workers", "1", "--threads", "2"],
                stdout=out, stderr=err, env=_environment(database_url, public_url),
            )

    def describe(self) -> str:
        return f"-- stdout\n{self.out.read_text()}\n-- stderr\n{self.err.read_text()}"

    def live(self, scim_token: str) -> LiveServer:
        return LiveServer(self.base, scim_token, self.database_url)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def running(database_url: str, logs: Path, **options: str | None) -> Iterator[Instance]:
    instance = Instance(database_url, logs, **options)  # type: ignore[arg-type]
    try:
        wait_healthy(instance.base, instance.process, instance.describe)
        yield instance
    finally:
        instance.stop()


def _first_scim_token(instance: Instance) -> str:
    match = _TOKEN_LINE.search(instance.out.read_text())
    assert match, instance.describe()
    return match.group(1)


def _create_user(server: LiveServer, user_name: str) -> str:
    with server.client({}) as scim:
        response = scim.post("/Users", json=user_body(user_name))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _issuer(token: str) -> str:
    return str(jwt.get_unverified_claims(token)["iss"])


def test_a_session_signed_at_one_instance_is_active_at_another(tmp_path):
    with fresh_database() as url, running(url, tmp_path) as first:
        scim_token = _first_scim_token(first)
        with running(url, tmp_path) as second:
            one, two = first.live(scim_token), second.live(scim_token)
            user_id = _create_user(one, "ida@example.com")
            with one.application() as app_one, two.application() as app_two:
                from_one = start_session(app_one, user_id)
                from_two = start_session(app_two, user_id)
                assert _issuer(from_one) == _issuer(from_two) == first.base
                assert session_is_active(app_two, from_one)
                assert session_is_active(app_one, from_two)
                assert session_is_active(app_one, from_one)
                assert session_is_active(app_two, from_two)
            for instance in (first, second):
                assert "warning" not in instance.err.read_text().lower(), instance.describe()


def test_the_public_url_overrides_the_issuer_and_becomes_the_deployments(tmp_path):
    """An explicit SCIM_BRIDGE_PUBLIC_URL is the deployment's issuer from then on: an instance
    started later without it signs with it too."""
    with fresh_database() as url:
        with running(url, tmp_path) as first:
            default = first.base
            scim_token = _first_scim_token(first)
            user_id = _create_user(first.live(scim_token), "jo@example.com")
            with first.live(scim_token).application() as app:
                before = start_session(app, user_id)
            assert _issuer(before) == default
        with running(url, tmp_path, host="0.0.0.0", public_url=CONFIGURED) as configured:
            with configured.live(scim_token).application() as app:
                signed = start_session(app, user_id)
                assert _issuer(signed) == CONFIGURED
                assert session_is_active(app, signed)
                assert not session_is_active(app, before)
            stderr = configured.err.read_text()
            assert f"the token issuer changes from {default} to {CONFIGURED}" in stderr
            assert "warning: serving on" not in stderr
        with running(url, tmp_path) as later, later.live(scim_token).application() as app:
            assert _issuer(start_session(app, user_id)) == CONFIGURED
            assert session_is_active(app, signed)


def test_serving_a_non_loopback_host_without_a_public_url_warns_at_start(tmp_path):
    with fresh_database() as url:
        process = subprocess.Popen(
            [*scim_bridge_command(), "serve", "--host", "0.0.0.0", "--port", str(free_port()),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=_environment(url, None),
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or ()],
                         daemon=True).start()
        try:
            warning = ""
            while "SCIM_BRIDGE_PUBLIC_URL" not in warning:
                warning = lines.get(timeout=60)
        finally:
            process.kill()
            process.wait(timeout=10)
    assert warning.startswith("warning: serving on 0.0.0.0 without SCIM_BRIDGE_PUBLIC_URL")
    assert "set SCIM_BRIDGE_PUBLIC_URL" in warning
