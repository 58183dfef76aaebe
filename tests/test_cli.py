"""The ``scim-bridge`` command as an operator uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scim_bridge import create_app
from scim_bridge.settings import Settings

from .conftest import http_client


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


def _serve_output(url: str, port: int, logs: Path) -> str:
    """Start ``scim-bridge serve``, wait until it is healthy (a crash fails the test), stop it;
    return what it printed."""
    from .live import wait_healthy

    stdout, stderr = logs / f"serve-{port}.out", logs / f"serve-{port}.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "scim_bridge.cli", "serve", "--port", str(port),
             "--workers", "1"],
            stdout=out, stderr=err, text=True,
            env={"SCIM_BRIDGE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process,
                     lambda: f"{stdout.read_text()}\n{stderr.read_text()}")
    finally:
        process.terminate()
        process.wait(timeout=20)
    return stdout.read_text()


def test_serve_prints_the_tokens_once_on_an_empty_database(url, tmp_path):
    from .harness import free_port

    first = _serve_output(url, free_port(), tmp_path)
    assert "SCIM base URL: http://127.0.0.1:" in first and "/scim/v2" in first
    assert "SCIM token:    sb_" in first and "Admin token:   sb_" in first
    second = _serve_output(url, free_port(), tmp_path)
    assert "token" not in second.lower()


# -- token names are unique per tenant ---------------------------------------------------------


def _scim_status(database_url: str, token: str) -> int:
    """What ``GET /scim/v2/Users`` answers with this bearer token."""
    app = create_app(Settings(database_url=database_url, public_url="http://bridge.test"))
    try:
        with http_client(app, token, "/scim/v2") as client:
            return client.get("/Users").status_code
    finally:
        app.extensions["scim_bridge"].engine.dispose()


def test_two_tenants_may_each_have_a_token_of_the_same_name(database_url):
    assert run("tenant", "create", "acme", url=database_url).returncode == 0
    default = run("token", "create", "--name", "okta", "--scope", "scim", url=database_url)
    acme = run("token", "create", "--name", "okta", "--scope", "scim", "--tenant", "acme",
               url=database_url)
    assert default.returncode == 0 and acme.returncode == 0, default.stderr + acme.stderr
    listed = run("token", "list", url=database_url).stdout.splitlines()
    assert "okta\tscim\tdefault\tactive" in listed and "okta\tscim\tacme\tactive" in listed


def test_a_duplicate_name_in_one_tenant_is_one_line_and_status_1(database_url):
    """A refused request (not a broken configuration): exit status 1, one line."""
    assert run("tenant", "create", "acme", url=database_url).returncode == 0
    args = ("token", "create", "--name", "okta", "--scope", "scim", "--tenant", "acme")
    assert run(*args, url=database_url).returncode == 0
    again = run(*args, url=database_url)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.count("\n") == 1
    assert "'okta' already exists in tenant 'acme'" in again.stderr


def test_revoke_by_name_and_tenant_revokes_only_that_tenants_token(database_url):
    assert run("tenant", "create", "acme", url=database_url).returncode == 0
    default = run("token", "create", "--name", "okta", "--scope", "scim",
                  url=database_url).stdout.strip()
    acme = run("token", "create", "--name", "okta", "--scope", "scim", "--tenant", "acme",
               url=database_url).stdout.strip()
    assert _scim_status(database_url, acme) == 200
    revoked = run("token", "revoke", "okta", "--tenant", "acme", url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    assert _scim_status(database_url, acme) == 401
    assert _scim_status(database_url, default) == 200
    listed = run("token", "list", url=database_url).stdout.splitlines()
    assert "okta\tscim\tacme\trevoked" in listed and "okta\tscim\tdefault\tactive" in listed


def test_revoke_without_tenant_means_the_default_tenant(database_url):
    assert run("tenant", "create", "acme", url=database_url).returncode == 0
    acme = run("token", "create", "--name", "okta", "--scope", "scim", "--tenant", "acme",
               url=database_url).stdout.strip()
    refused = run("token", "revoke", "okta", url=database_url)
    assert refused.returncode == 1
    assert "tenant 'default' has no token named 'okta'" in refused.stderr
    assert _scim_status(database_url, acme) == 200


def test_an_ssf_token_reads_the_event_feed_of_its_tenant(database_url):
    result = run("token", "create", "--name", "siem", "--scope", "ssf", url=database_url)
    assert result.returncode == 0, result.stderr
    assert "siem\tssf\tdefault\tactive" in run("token", "list", url=database_url).stdout
    app = create_app(Settings(database_url=database_url, public_url="http://bridge.test"))
    try:
        with http_client(app, result.stdout.strip(), "/api/v1") as client:
            assert client.get("/events").json()["events"] == []
            assert client.get("/admin/users").status_code == 403
    finally:
        app.extensions["scim_bridge"].engine.dispose()


def test_an_unknown_scope_is_refused(url):
    result = run("token", "create", "--name", "x", "--scope", "root", url=url)
    assert result.returncode == 2 and "'root' is not one of" in result.stderr


def test_sqlite_database_is_in_wal_mode(url, tmp_path):
    import sqlite3

    run("db", "upgrade", url=url)
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
