"""Time (or profile) the small SCIM requests inside one process, with no HTTP in between.

The WSGI app is called directly, one thread, on a fresh SQLite file (WAL, synchronous=FULL)
or a throwaway PostgreSQL database: what each request costs the app itself, which is the part
this repository can change. Machine load moves HTTP figures a lot; these move less.

    python bench/profile_path.py                       # median µs per request kind
    python bench/profile_path.py --profile patch       # pyinstrument tree of one kind
    python bench/profile_path.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scim_bridge import create_app, migrate
from scim_bridge.db import begin_write
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import UNTHROTTLED  # noqa: E402

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def user_body(user_name: str) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Bench", "familyName": "User"},
        "displayName": "Bench User",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


class App:
    def __init__(self, url: str) -> None:
        migrate.upgrade(url)
        self.app = create_app(Settings(database_url=url, public_url="http://bench.test",
                                       **UNTHROTTLED))
        bridge = self.app.extensions["scim_bridge"]
        self.bridge = bridge
        with bridge.sessions() as db:
            begin_write(db)
            tokens.ensure_default_tenant(db)
            self.token = tokens.create_token(db, "bench", "scim")
            db.commit()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "bench.test", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "CONTENT_TYPE": "application/scim+json",
            "CONTENT_LENGTH": str(len(data)), "HTTP_HOST": "bench.test",
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "HTTP_ACCEPT": "application/scim+json",
        }
        status: list[str] = []
        chunks = self.app(environ, lambda s, h, e=None: status.append(s))
        try:
            payload = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return int(status[0].split()[0]), payload

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None


def workloads(app: App, users: int) -> dict[str, Callable[[int], None]]:
    """Request kinds by name; each takes the iteration number (``patch`` is an add and a
    remove of one member of a 10-member group)."""
    ids = [app.ok("POST", "/scim/v2/Users", user_body(f"seed{i}@bench.test"))["id"]
           for i in range(users)]
    group = app.ok("POST", "/scim/v2/Groups", {"displayName": "ten",
                                               "members": [{"value": u} for u in ids[:10]]})
    run = uuid.uuid4().hex[:6]

    def lookup(i: int) -> None:
        app.ok("GET", f'/scim/v2/Users?filter=userName%20eq%20%22seed{i % users}@bench.test%22')

    def patch(i: int) -> None:
        outsider = ids[10 + i % (users - 10)]
        app.ok("PATCH", f"/scim/v2/Groups/{group['id']}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": outsider}]}]})
        app.ok("PATCH", f"/scim/v2/Groups/{group['id']}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": f'members[value eq "{outsider}"]'}]})

    def post(i: int) -> None:
        app.ok("POST", "/scim/v2/Users", user_body(f"post-{run}-{i}@bench.test"))

    def get(i: int) -> None:
        app.ok("GET", f"/scim/v2/Users/{ids[i % users]}")

    def floor(i: int) -> None:
        app.ok("GET", "/scim/v2/ServiceProviderConfig")

    return {"lookup": lookup, "patch": patch, "post": post, "get": get, "floor": floor}


def cost_us(work: Callable[[int], None], repeat: int, offset: int) -> tuple[float, float]:
    """(median wall µs, CPU µs per call): CPU time is the steadier figure on a shared machine;
    it is the least of three rounds, each the mean over a third of ``repeat`` calls."""
    wall, cpu = [], []
    rounds = 3
    for round_ in range(rounds):
        started_cpu = time.process_time()
        for i in range(repeat // rounds):
            started = time.perf_counter()
            work(offset + round_ * repeat + i)
            wall.append((time.perf_counter() - started) * 1e6)
        cpu.append((time.process_time() - started_cpu) / (repeat // rounds) * 1e6)
    return statistics.median(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL server URL (a throwaway database is made)")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--profile", help="profile one kind with pyinstrument")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        url, drop = f"sqlite:///{workdir}/profile.db", None
        if args.db:
            name = f"scim_bridge_profile_{uuid.uuid4().hex[:8]}"
            server = create_engine(args.db, isolation_level="AUTOCOMMIT")
            with server.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.db).set(database=name).render_as_string(hide_password=False)

            def drop() -> None:
                with server.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                server.dispose()
        try:
            app = App(url)
            kinds = workloads(app, args.users)
            for work in kinds.values():  # warm every path once
                work(0)
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002)
                profiler.start()
                for i in range(args.repeat):
                    kinds[args.profile](1 + i)
                profiler.stop()
                print(profiler.output_text(unicode=True, color=False, show_all=False))
            else:
                print(f"{'request':<8} {'wall µs':>10} {'CPU µs':>10}  (n={args.repeat})")
                for name, work in kinds.items():
                    wall, cpu = cost_us(work, args.repeat, 1)
                    print(f"{name:<8} {wall:>10.0f} {cpu:>10.0f}")
            app.bridge.close()
        finally:
            if drop:
                drop()


if __name__ == "__main__":
    main()
