"""Benchmark sessions and revocation (issue 4, item 7); prints a table.

1. Introspections per second in one process: the WSGI app called directly, one thread (no
   socket, no HTTP parser: the app's own cost), with one token introspected repeatedly (what
   an app does on every request) and with a new token every call (no verification cache);
   and over HTTP against ``scim-bridge serve --workers 1`` (one server process) driven by
   client processes on the same machine, beside ``GET /healthz`` as the HTTP layer's ceiling.
2. Revocation cost: a SCIM PATCH that removes a member who has 1, 10 or 1,000 sessions.
3. Bulk User Logout of 10,000 users with one session each, by ``user_ids`` and by ``filter``.

    python bench/bench_sessions.py            # SQLite in a temporary directory
    python bench/bench_sessions.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
    python bench/bench_sessions.py --quick    # smaller sizes, a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from scim_bridge import create_app, migrate
from scim_bridge.db import begin_write, utcnow
from scim_bridge.models import AppSession, User, UserValue
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import UNTHROTTLED, UNTHROTTLED_ENV, BridgeServer  # noqa: E402

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PUBLIC_URL = "http://bench.test"
#: Issue 10 §7: introspections per second in one process, by backend.
INTROSPECTION_TARGETS = {"sqlite": 5000.0, "postgresql": 3000.0}
BULK_TARGET_S = 2.0


def idp_user_body(user_name: str, index: int) -> dict[str, Any]:
    """What Okta or Entra sends on create (tests/scimdata.py ``user_body``)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Bench", "familyName": f"User{index}"},
        "displayName": f"Bench User{index}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


class Bench:
    """An app on a fresh database, with a SCIM, a sessions and an admin token."""

    def __init__(self, url: str) -> None:
        migrate.upgrade(url)
        self.url = url
        self.backend = make_url(url).get_backend_name()
        self.app = create_app(Settings(database_url=url, public_url=PUBLIC_URL,
                                       **UNTHROTTLED))
        self.bridge = self.app.extensions["scim_bridge"]
        with self.bridge.sessions() as db:
            begin_write(db)
            self.tenant_id = tokens.ensure_default_tenant(db).id
            self.tokens = {scope: tokens.create_token(db, f"bench-{scope}", scope)
                           for scope in ("scim", "sessions", "admin")}
            db.commit()

    def call(self, method: str, path: str, scope: str, body: bytes = b"",
             content_type: str = "application/json") -> tuple[int, bytes]:
        """One request straight into the WSGI app (what a WSGI server does, minus HTTP)."""
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "bench.test", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {self.tokens[scope]}", "HTTP_HOST": "bench.test",
        }
        status: list[str] = []
        chunks = self.app(environ, lambda s, h, e=None: status.append(s))
        try:
            data = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return int(status[0].split()[0]), data

    def json(self, method: str, path: str, scope: str, body: Any = None) -> Any:
        import json

        status, data = self.call(method, path, scope, json.dumps(body).encode() if body else b"")
        assert status < 300, (status, data[:300])
        return json.loads(data) if data else None

    def seed_users(self, count: int, prefix: str) -> list[str]:
        """Users as an IdP provisions them: name, displayName, one primary work email."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        rows, emails = [], []
        for i, uid in enumerate(ids):
            body = idp_user_body(f"{prefix}{i}@bench.test", i)
            rows.append({"id": uid, "tenant_id": self.tenant_id, "user_name": body["userName"],
                         "user_name_key": body["userName"].lower(), "active": True,
                         "display_name": body["displayName"],
                         "name_given": body["name"]["givenName"],
                         "name_family": body["name"]["familyName"]})
            emails.append({"user_id": uid, "attribute": "emails", "position": 0,
                           "value": body["userName"], "value_key": body["userName"].lower(),
                           "type": "work", "primary": True})
        self._insert(User, rows)
        self._insert(UserValue, emails)
        return ids

    def seed_sessions(self, user_ids: list[str], per_user: int = 1) -> None:
        now = utcnow()
        rows = [{"id": str(uuid.uuid4()), "tenant_id": self.tenant_id, "user_id": uid,
                 "client": "web", "created_at": now, "expires_at": now + dt.timedelta(hours=8)}
                for uid in user_ids for _ in range(per_user)]
        self._insert(AppSession, rows)

    def _insert(self, model: Any, rows: list[dict[str, Any]]) -> None:
        with self.bridge.sessions() as db:
            begin_write(db)
            for start in range(0, len(rows), 5000):
                db.execute(insert(model), rows[start : start + 5000])
            db.commit()
        if self.backend == "postgresql":  # what autovacuum does within a minute of a bulk load
            with self.bridge.engine.connect() as connection:
                connection.execute(text(f"ANALYZE {model.__tablename__}"))
                connection.commit()


def introspection_rate(bench: Bench, seconds: float) -> tuple[float, float]:
    """(warm, cold) introspections per second in one thread."""
    user = bench.json("POST", "/scim/v2/Users", "scim", idp_user_body("intro@bench.test", 0))
    bench.json("POST", "/scim/v2/Groups", "scim",
               {"displayName": "Intro", "members": [{"value": user["id"]}]})

    def new_token() -> bytes:
        body = bench.json("POST", "/api/v1/sessions", "sessions",
                          {"user_id": user["id"], "client": "web"})
        return urlencode({"token": body["token"]}).encode()

    def rate(bodies: list[bytes]) -> float:
        started, done = time.perf_counter(), 0
        for body in bodies:
            status, data = bench.call("POST", "/api/v1/sessions/introspect", "sessions", body,
                                      "application/x-www-form-urlencoded")
            assert status == 200 and b'"active":true' in data, data
            done += 1
            if time.perf_counter() - started > seconds:
                break
        return done / (time.perf_counter() - started)

    warm_body = new_token()
    rate([warm_body] * 200)  # warm up
    warm = rate([warm_body] * 10**7)
    cold_bodies = [new_token() for _ in range(int(seconds * 3000))]
    return warm, rate(cold_bodies)


def _drive(base: str, sessions_token: str, token: str | None, seconds: float,
           queue: Any) -> None:
    """One client process: introspect ``token`` (or GET /healthz) for ``seconds``."""
    done = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {sessions_token}"}) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if token is None:
                assert c.get("/healthz").status_code == 200
            else:
                response = c.post("/api/v1/sessions/introspect", data={"token": token})
                assert response.json()["active"] is True
            done += 1
    queue.put(done)


def http_rates(bench: Bench, seconds: float, clients: int = 4) -> tuple[float, float]:
    """(introspections, healthz) per second over HTTP against one ``scim-bridge serve``
    process (gunicorn, one worker); client processes run on the same machine."""
    env = {**os.environ, **UNTHROTTLED_ENV, "SCIM_BRIDGE_PUBLIC_URL": PUBLIC_URL}
    server = BridgeServer(bench.url, env=env, serve_args=("--workers", "1", "--threads", "1"))
    base = server.base_url
    try:
        server.wait_healthy(seconds=30)
        user = bench.json("POST", "/scim/v2/Users", "scim", idp_user_body("http@bench.test", 0))
        token = bench.json("POST", "/api/v1/sessions", "sessions",
                           {"user_id": user["id"], "client": "web"})["token"]
        rates = []
        for what in (token, None):
            queue: Any = multiprocessing.Queue()
            drivers = [multiprocessing.Process(target=_drive, args=(
                base, bench.tokens["sessions"], what, seconds, queue)) for _ in range(clients)]
            started = time.perf_counter()
            for driver in drivers:
                driver.start()
            total = sum(queue.get() for _ in drivers)
            for driver in drivers:
                driver.join()
            rates.append(total / (time.perf_counter() - started))
        return rates[0], rates[1]
    finally:
        server.stop()


def revocation_ms(bench: Bench, sessions: int, repeats: int) -> float:
    """Median time of a SCIM PATCH removing one member who has ``sessions`` live sessions."""
    [user_id] = bench.seed_users(1, f"rev{sessions}-")
    others = bench.seed_users(100, f"rev{sessions}-other-")
    group = bench.json("POST", "/scim/v2/Groups", "scim", {
        "displayName": f"Rev {sessions}", "members": [{"value": u} for u in others]})
    timings = []
    for _ in range(repeats):
        bench.json("PATCH", f"/scim/v2/Groups/{group['id']}", "scim", {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]})
        bench.seed_sessions([user_id], sessions)
        body = {"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": f'members[value eq "{user_id}"]'}]}
        started = time.perf_counter()
        bench.json("PATCH", f"/scim/v2/Groups/{group['id']}", "scim", body)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def bulk_logout_s(bench: Bench, users: int, by: str) -> tuple[float, dict[str, int]]:
    prefix = f"bulk{by}-"
    ids = bench.seed_users(users, prefix)
    bench.seed_sessions(ids)
    body = {"user_ids": ids} if by == "ids" else {"filter": f'userName sw "{prefix}"'}
    started = time.perf_counter()
    result = bench.json("POST", "/api/v1/admin/force-logout", "admin", body)
    elapsed = time.perf_counter() - started
    assert result == {"users": users, "revoked_sessions": users}, result
    return elapsed, result


def _database(arg: str | None, workdir: str) -> tuple[str, Any]:
    if not arg:
        return f"sqlite:///{workdir}/bench.db", None
    name = f"scim_bridge_bench_{uuid.uuid4().hex[:8]}"
    server = create_engine(arg, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()

    return make_url(arg).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL server URL (a throwaway database is made)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    bulk_users = 1000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as workdir:
        url, drop = _database(args.db, workdir)
        try:
            bench = Bench(url)
            rows = _run(bench, seconds, bulk_users, repeats=3 if args.quick else 7)
            bench.bridge.close()
        finally:
            if drop:
                drop()
    backend = make_url(url).get_backend_name()
    print(f"\nscim-bridge sessions benchmark — {backend}, Python {sys.version.split()[0]}")
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':>14}  target")
    print(f"{'-' * width}  {'-' * 14}  {'-' * 14}")
    for name, result, target in rows:
        print(f"{name:<{width}}  {result:>14}  {target}")


def _run(bench: Bench, seconds: float, bulk_users: int, repeats: int) -> list[tuple[str, str, str]]:
    warm, cold = introspection_rate(bench, seconds)
    over_http, healthz = http_rates(bench, seconds)
    rows = [
        ("introspection in-process, same token", f"{warm:,.0f} /s",
         f">= {INTROSPECTION_TARGETS[bench.backend]:,.0f} /s"),
        ("introspection in-process, new token each", f"{cold:,.0f} /s", ""),
        ("introspection over HTTP, 1 serve worker", f"{over_http:,.0f} /s", "4 clients"),
        ("GET /healthz over HTTP, same setup", f"{healthz:,.0f} /s", "HTTP ceiling"),
    ]
    for count in (1, 10, 1000):
        rows.append((f"SCIM PATCH remove, member has {count:,} sessions",
                     f"{revocation_ms(bench, count, repeats):,.1f} ms", ""))
    for by in ("ids", "filter"):
        elapsed, _ = bulk_logout_s(bench, bulk_users, by)
        rows.append((f"Bulk User Logout, {bulk_users:,} users by {by}", f"{elapsed:,.2f} s",
                     f"< {BULK_TARGET_S:.0f} s" if bulk_users >= 10_000 else ""))
    return rows


if __name__ == "__main__":
    main()
