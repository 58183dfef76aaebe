"""Benchmark SCIM Bulk (RFC 7644 §3.7) with chains of forward bulkId references (issue 7 §2).

A chain of N operations where operation i refers to the bulkId of operation i+1 is the worst
order an IdP can send: nothing can run until the last operation has. Three shapes:

- ``manager chain``: N users, user i's enterprise ``manager`` is ``bulkId:u{i+1}``;
- ``group chain``: N/2 groups and N/2 users, group i has user i as member, the user coming
  after its group in the request;
- ``no references``: N independent user creations, the baseline cost of one operation.

The app runs in-process (``create_app`` on a temporary SQLite file, or ``--db`` naming a
PostgreSQL database that this script empties first) and every request goes through the WSGI
stack with httpx, as an IdP's would. Nothing else is started.

    python bench/bench_bulk.py                 # 100, 250, 500, 1000 operations on SQLite
    python bench/bench_bulk.py --sizes 1000
    python bench/bench_bulk.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test_bulk

Measured on the shared 2-core machine, SQLite, load average about 1.5 (wall s / CPU s):

    shape            ops   before (repeated scans)   after (Kahn order)
    manager chain   1000           85.9 / 64.7            2.25 / 1.80
    group chain     1000           14.4 /  7.1            5.25 / 3.65
    no references   1000            9.9 /  5.0            2.41 / 1.75

What remains is the per-operation cost of the services (group creation is about three times
user creation) and of each operation's savepoint, both linear.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from scim_bridge import create_app, migrate
from scim_bridge.db import Base, begin_write
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import UNTHROTTLED  # noqa: E402

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PUBLIC_URL = "http://bench.test"


def user_data(user_name: str, **extra: Any) -> dict[str, Any]:
    """A user as an IdP sends one: name, email, active."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": "Bench", "familyName": user_name.split("@")[0]},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


def manager_chain(size: int, tag: str) -> list[dict[str, Any]]:
    operations = []
    for index in range(size):
        extra = {}
        if index + 1 < size:
            extra[ENTERPRISE] = {"manager": {"value": f"bulkId:u{index + 1}"}}
        operations.append({
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{index}",
            "data": user_data(f"m{index}.{tag}@example.com", **extra),
        })
    return operations


def group_chain(size: int, tag: str) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for index in range(size // 2):
        operations.append({
            "method": "POST",
            "path": "/Groups",
            "bulkId": f"g{index}",
            "data": {"displayName": f"Group {index} {tag}",
                     "members": [{"value": f"bulkId:u{index}"}]},
        })
        operations.append({
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{index}",
            "data": user_data(f"g{index}.{tag}@example.com"),
        })
    return operations


def independent(size: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"method": "POST", "path": "/Users", "bulkId": f"u{index}",
         "data": user_data(f"i{index}.{tag}@example.com")}
        for index in range(size)
    ]


SHAPES: dict[str, Callable[[int, str], list[dict[str, Any]]]] = {
    "manager chain": manager_chain,
    "group chain": group_chain,
    "no references": independent,
}


def empty_postgres(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def scim_client(url: str) -> httpx.Client:
    migrate.upgrade(url)
    if not url.startswith("sqlite"):
        empty_postgres(url)
    settings = Settings(database_url=url, public_url=PUBLIC_URL, bulk_max_operations=100_000,
                        **UNTHROTTLED)
    app = create_app(settings)
    bridge = app.extensions["scim_bridge"]
    with bridge.sessions() as db:
        begin_write(db)
        tokens.ensure_default_tenant(db)
        token = tokens.create_token(db, "bench-bulk", "scim")
        db.commit()
    return httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url=f"{PUBLIC_URL}/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )


def run(client: httpx.Client, operations: list[dict[str, Any]]) -> tuple[float, float, int]:
    """Wall and CPU seconds of one Bulk request (the app runs in this process, so CPU time is
    its own, steadier than wall time on a shared machine), and how many operations succeeded."""
    body = {"schemas": [BULK_REQUEST], "Operations": operations}
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.post("/Bulk", json=body)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    response.raise_for_status()
    succeeded = sum(int(result["status"]) < 300 for result in response.json()["Operations"])
    return seconds, cpu, succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--db", help="a PostgreSQL URL to use (emptied first) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'bench.db'}"
        with scim_client(url) as client:
            print(f"database: {url.split(':', 1)[0]}, load average {os.getloadavg()[0]:.1f}")
            print(f"{'shape':<15} {'operations':>10} {'seconds':>9} {'cpu s':>7} {'ms/op':>7} "
                  f"{'ok':>6}")
            for shape, build in SHAPES.items():
                for size in args.sizes:
                    operations = build(size, uuid.uuid4().hex[:8])
                    seconds, cpu, succeeded = run(client, operations)
                    print(f"{shape:<15} {len(operations):>10} {seconds:>9.3f} {cpu:>7.3f} "
                          f"{seconds * 1000 / len(operations):>7.2f} {succeeded:>6}")


if __name__ == "__main__":
    main()
