"""The ``scim-bridge`` command as an operator uses it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scim_bridge.cli", *args],
        capture_output=True,
        text=True,
        env={"SCIM_BRIDGE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def test_db_upgrade_creates_the_schema(url):
    result = run("db", "upgrade", url=url)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_token_create_prints_only_the_token_and_stores_a_hash(url, tmp_path):
    result = run("token", "create", "--name", "okta", "--scope", "scim", url=url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("sb_") and "\n" not in token and len(token) > 40
    assert token.encode() not in (tmp_path / "cli.db").read_bytes()


def test_token_list_and_revoke(url):
    run("token", "create", "--name", "okta", "--scope", "scim", url=url)
    listed = run("token", "list", url=url).stdout
    assert "okta\tscim\tdefault\tactive" in listed
    assert run("token", "revoke", "okta", url=url).returncode == 0
    assert "okta\tscim\tdefault\trevoked" in run("token", "list", url=url).stdout


def test_token_for_a_tenant(url):
    assert run("tenant", "create", "acme", url=url).returncode == 0
    result = run("token", "create", "--name", "acme-okta", "--scope", "scim", "--tenant", "acme",
                 url=url)
    assert result.returncode == 0, result.stderr
    assert "acme-okta\tscim\tacme\tactive" in run("token", "list", url=url).stdout


@pytest.mark.parametrize("args,message", [
    (("token", "create", "--name", "x", "--scope", "root"), "Invalid value"),
    (("token", "create", "--name", "x", "--scope", "scim", "--tenant", "ghost"), "no tenant"),
    (("token", "revoke", "ghost"), "no token"),
])
def test_cli_errors_are_clear_and_nonzero(url, args, message):
    result = run(*args, url=url)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_token_name_is_refused(url):
    run("token", "create", "--name", "dup", "--scope", "scim", url=url)
    result = run("token", "create", "--name", "dup", "--scope", "admin", url=url)
    assert result.returncode != 0 and "already exists" in result.stderr


def _serve_output(url: str, port: int) -> str:
    """Start ``scim-bridge serve``, wait until it answers, stop it; return what it printed."""
    import time

    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "scim_bridge.cli", "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={"SCIM_BRIDGE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    return output


def test_serve_prints_the_tokens_once_on_an_empty_database(url):
    from .live import _free_port

    first = _serve_output(url, _free_port())
    assert "SCIM base URL: http://127.0.0.1:" in first and "/scim/v2" in first
    assert "SCIM token:    sb_" in first and "Admin token:   sb_" in first
    second = _serve_output(url, _free_port())
    assert "token" not in second.lower()


def test_sqlite_database_is_in_wal_mode(url, tmp_path):
    import sqlite3

    run("db", "upgrade", url=url)
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
