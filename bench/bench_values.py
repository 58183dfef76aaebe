"""Benchmark writes to multi-valued User attributes (issue 7 §2); prints a table.

For a user with N = 10 and N = 100 (the limit) emails: PATCH add 1 email, PATCH replace all
emails, and PUT with one changed email, each as the median time of several requests and the
number of ``user_values`` rows the database was asked to write (INSERT, UPDATE, DELETE) per
request. Then a request with 10,000 emails as POST, PUT and PATCH: its status and how long
it took to answer (with the limit it is refused with 400 before any database work).

Requests go straight into the WSGI app (no socket), so the numbers are the app's own cost.
To compare with the code before a change, point PYTHONPATH at an export of that commit:

    python bench/bench_values.py                      # SQLite in a temporary directory
    python bench/bench_values.py --quick              # fewer requests per case
    python bench/bench_values.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
    git archive <commit> | tar -x -C /tmp/before && PYTHONPATH=/tmp/before \\
        python bench/bench_values.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

import scim_bridge
from scim_bridge import create_app, migrate
from scim_bridge.db import begin_write
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import UNTHROTTLED  # noqa: E402

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
SIZES = (10, 100)
HUGE = 10_000


class Bench:
    """An app on a migrated database with a SCIM token, and a counter of value-row writes."""

    def __init__(self, url: str) -> None:
        migrate.upgrade(url)
        self.app = create_app(Settings(database_url=url, public_url="http://bench.test",
                                       **UNTHROTTLED))
        self.bridge = self.app.extensions["scim_bridge"]
        with self.bridge.sessions() as db:
            begin_write(db)
            tokens.ensure_default_tenant(db)
            token = tokens.create_token(db, f"bench-{uuid.uuid4().hex[:8]}", "scim")
            db.commit()
        self.client = httpx.Client(
            transport=httpx.WSGITransport(app=self.app),
            base_url="http://bench.test/scim/v2",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.value_rows_written = 0
        self._inserts = set()
        event.listen(self.bridge.engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if "user_values" not in statement or verb not in {"INSERT", "UPDATE", "DELETE"}:
            return
        if verb == "INSERT":
            # A multi-row INSERT may be sent in batches of flattened parameters, all of one
            # execution context: count that context's rows once.
            if id(context) not in self._inserts:
                self._inserts.add(id(context))
                self.value_rows_written += len(context.compiled_parameters)
        else:
            self.value_rows_written += len(parameters) if executemany else 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.value_rows_written = 0
        self._inserts: set[int] = set()
        yield

    def request(self, method: str, path: str, body: Any) -> httpx.Response:
        return self.client.request(method, path, json=body)


def emails(count: int, tag: str) -> list[dict[str, Any]]:
    return [{"value": f"{tag}{n}@bench.test", "type": "work"} for n in range(count)]


def user_body(user_name: str, user_emails: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, "emails": user_emails}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def timed(bench: Bench, repeats: int, step: Callable[[int], tuple[str, str, Any]],
          reset: Callable[[int], tuple[str, str, Any]] | None = None) -> tuple[float, float]:
    """(median ms, value rows written per request) of ``repeats`` requests from ``step``."""
    latencies, rows = [], []
    for index in range(repeats):
        with bench.counting():
            started = time.perf_counter()
            response = bench.request(*step(index))
            latencies.append((time.perf_counter() - started) * 1000)
            rows.append(bench.value_rows_written)
        assert response.status_code == 200, response.text[:300]
        if reset is not None:
            assert bench.request(*reset(index)).status_code == 200
    return statistics.median(latencies), statistics.median(rows)


def measure_size(bench: Bench, size: int, repeats: int) -> list[tuple[str, float, float]]:
    run = uuid.uuid4().hex[:8]
    user_name = f"n{size}-{run}@bench.test"
    # N-1 emails, so that adding one reaches N (the limit for N = 100).
    created = bench.request("POST", "/Users", user_body(user_name, emails(size - 1, "a")))
    assert created.status_code == 201, created.text[:300]
    user = f"/Users/{created.json()['id']}"
    extra = {"value": f"extra-{run}@bench.test", "type": "home"}
    add = timed(
        bench, repeats,
        lambda i: ("PATCH", user, patch({"op": "add", "path": "emails", "value": [extra]})),
        lambda i: ("PATCH", user, patch(
            {"op": "remove", "path": f'emails[value eq "{extra["value"]}"]'})),
    )
    replace = timed(
        bench, repeats,
        lambda i: ("PATCH", user, patch(
            {"op": "replace", "path": "emails", "value": emails(size, "ab"[i % 2])})),
    )

    def put_one_changed(index: int) -> tuple[str, str, Any]:
        body_emails = emails(size, "a")
        body_emails[size // 2] = {"value": f"changed{index % 2}@bench.test", "type": "work"}
        return "PUT", user, user_body(user_name, body_emails)

    put = timed(bench, repeats, put_one_changed)
    return [("PATCH add 1 email", *add), ("PATCH replace all emails", *replace),
            ("PUT, one email changed", *put)]


def measure_huge(bench: Bench) -> list[tuple[str, int, float]]:
    run = uuid.uuid4().hex[:8]
    created = bench.request("POST", "/Users", user_body(f"huge-{run}@bench.test", []))
    assert created.status_code == 201, created.text[:300]
    user = f"/Users/{created.json()['id']}"
    many = emails(HUGE, f"h{run}-")
    cases = [
        ("POST", "POST", "/Users", user_body(f"huge-post-{run}@bench.test", many)),
        ("PUT", "PUT", user, user_body(f"huge-{run}@bench.test", many)),
        ("PATCH add", "PATCH", user, patch({"op": "add", "path": "emails", "value": many})),
    ]
    results = []
    for label, method, path, body in cases:
        started = time.perf_counter()
        response = bench.request(method, path, body)
        results.append((label, response.status_code, (time.perf_counter() - started) * 1000))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="5 requests per case")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 5
    with tempfile.TemporaryDirectory() as directory:
        url = args.db or f"sqlite:///{directory}/values.db"
        bench = Bench(url)
        print(f"scim_bridge from {scim_bridge.__file__}")
        print(f"database: {bench.bridge.engine.dialect.name}, {args.repeats} requests per case\n")
        print(f"{'N emails':>8}  {'operation':<26} {'median ms':>10} {'rows written':>13}")
        for size in SIZES:
            for label, latency, rows in measure_size(bench, size, args.repeats):
                print(f"{size:>8}  {label:<26} {latency:>10.2f} {rows:>13.0f}")
        print(f"\nA request with {HUGE:,} emails:")
        print(f"{'request':<10} {'status':>6} {'ms':>10}")
        for label, status, latency in measure_huge(bench):
            print(f"{label:<10} {status:>6} {latency:>10.1f}")
        bench.client.close()
        bench.bridge.close()


if __name__ == "__main__":
    main()
