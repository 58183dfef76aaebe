"""Benchmark the outbox and webhook delivery (issue 8, item 9); prints a table.

1. Latency from the SCIM response to a healthy loopback webhook receiver: the WSGI app called
   directly (profile_path.py's way) with the delivery worker running in the same process, woken
   by the commit; median and p99 over ``--deliveries`` user deletions.
2. Drain: 10,000 deliveries queued while no worker runs, then one worker started; the time
   from its first delivery to the last one recorded as delivered (the receiver runs in its
   own process here, as a real one would).
3. What subscribing costs a member-removal PATCH: CPU µs of profile_path.py's ``patch``
   workload (add one member, remove them) with 0 and with 5 webhooks subscribed to everything
   (the deliveries are written, no worker sends them).

    python bench/bench_delivery.py            # SQLite in a temporary directory
    python bench/bench_delivery.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
    python bench/bench_delivery.py --quick    # smaller sizes, a smoke run
    python bench/bench_delivery.py --only drain   # one measure (latency, drain or patch)
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from bench.profile_path import App, cost_us, user_body, workloads  # noqa: E402
from scim_bridge.db import begin_write  # noqa: E402
from scim_bridge.events.record import USER_DELETED, Cause, record  # noqa: E402
from scim_bridge.models import Delivery  # noqa: E402
from scim_bridge.services import tokens, webhooks  # noqa: E402
from tests.receivers import receiving  # noqa: E402

LATENCY_P99_MS, LATENCY_MEDIAN_MS, DRAIN_S, SUBSCRIBED_OVERHEAD = 100.0, 30.0, 10.0, 0.20


@contextmanager
def database(server: str | None) -> Iterator[str]:
    """A fresh SQLite file, or a throwaway database on the PostgreSQL server ``server``."""
    if not server:
        with tempfile.TemporaryDirectory() as workdir:
            yield f"sqlite:///{workdir}/delivery.db"
        return
    name = f"scim_bridge_delivery_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def subscribe(app: App, url: str, topics: list[str] | None = None) -> None:
    with app.bridge.sessions() as db:
        begin_write(db)
        tenant = tokens.ensure_default_tenant(db).id
        webhooks.create_webhook(db, tenant, {"url": url, **({"events": topics} if topics else {})},
                                app.bridge.settings)
        db.commit()


def latency(url: str, count: int) -> tuple[float, float]:
    app = App(url)
    worker = app.bridge.delivery_worker()
    with receiving() as receiver:
        subscribe(app, receiver.url, ["user.deleted"])
        gaps = deletion_gaps(app, worker, receiver, count, "lat")
    app.bridge.close()
    return percentiles(gaps)


def deletion_gaps(app: App, worker: Any, receiver: Any, count: int, prefix: str) -> list[float]:
    """Create and delete ``count`` users; for each, milliseconds from the DELETE's response to
    its event's arrival at ``receiver`` (the worker runs meanwhile)."""
    worker.start()
    gaps = []
    try:
        for i in range(count):
            user = app.ok("POST", "/scim/v2/Users", user_body(f"{prefix}{i}@bench.test"))
            app.ok("DELETE", f"/scim/v2/Users/{user['id']}")
            answered = time.monotonic()
            arrived = receiver.wait_for(i + 1)[-1].at
            gaps.append((arrived - answered) * 1000)
    finally:
        worker.stop(wait=15)
    return gaps


def percentiles(gaps: list[float]) -> tuple[float, float]:
    """Median and p99 of ``gaps``."""
    gaps = sorted(gaps)
    return statistics.median(gaps), gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]


def _count_requests(port: Any, received: Any, first: Any) -> None:
    """A healthy receiver in its own process (not sharing the worker's GIL): answers 204 and
    counts, keeping the wall time of the first request."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with received.get_lock():
                if received.value == 0:
                    first.value = time.time()
                received.value += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    server.serve_forever()


def drain(url: str, count: int) -> float:
    app = App(url)
    port, received = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0)
    first = multiprocessing.Value("d", 0.0)
    receiver = multiprocessing.Process(target=_count_requests, args=(port, received, first),
                                       daemon=True)
    receiver.start()
    while not port.value:
        time.sleep(0.01)
    subscribe(app, f"http://127.0.0.1:{port.value}/hook", ["user.deleted"])
    with app.bridge.sessions() as db:
        begin_write(db)
        tenant = tokens.ensure_default_tenant(db).id
        record(db, tenant_id=tenant, cause=Cause(USER_DELETED, "bench"),
               user_sessions=[(f"user-{i}", []) for i in range(count)])
        db.commit()
    worker = app.bridge.delivery_worker()
    worker.start()
    try:
        while True:  # the open rows are a partial index: this count stays cheap
            with app.bridge.sessions() as db:
                left = db.scalar(select(func.count()).select_from(Delivery).where(
                    text("deliveries.state IN ('pending', 'retrying')")))
            if not left:
                break
            time.sleep(0.05)
        elapsed = time.time() - first.value
    finally:
        worker.stop(wait=15)
        receiver.terminate()
    app.bridge.close()
    return elapsed


def patch_cost(url: str, receivers: int, repeat: int) -> float:
    app = App(url)
    for i in range(receivers):
        subscribe(app, f"http://127.0.0.1:9/hook{i}")
    patch = workloads(app, 300)["patch"]
    patch(0)
    _, cpu = cost_us(patch, repeat, 1)
    app.bridge.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL server URL (throwaway databases are made)")
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--drain", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    parser.add_argument("--only", choices=("latency", "drain", "patch"),
                        help="run only this measure")
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.drain, args.repeat = 30, 500, 30
    rows = []
    if args.only in (None, "latency"):
        with database(args.db) as url:
            median, p99 = latency(url, args.deliveries)
        rows.append(("webhook latency median", f"{median:.1f} ms",
                     f"< {LATENCY_MEDIAN_MS:.0f} ms"))
        rows.append(("webhook latency p99", f"{p99:.1f} ms", f"< {LATENCY_P99_MS:.0f} ms"))
    if args.only in (None, "drain"):
        with database(args.db) as url:
            seconds = drain(url, args.drain)
        rows.append((f"drain {args.drain} queued", f"{seconds:.2f} s", f"< {DRAIN_S:.0f} s"))
    if args.only in (None, "patch"):
        costs = {}
        for receivers in (0, 5):
            with database(args.db) as url:
                costs[receivers] = patch_cost(url, receivers, args.repeat)
            rows.append((f"PATCH, {receivers} receivers", f"{costs[receivers]:.0f} µs CPU", ""))
        rows.append(("PATCH overhead of 5", f"{costs[5] / costs[0] - 1:+.0%}",
                     f"< {SUBSCRIBED_OVERHEAD:.0%}"))
    print(f"{'measure':<26} {'result':>14}  target")
    for name, result, target in rows:
        print(f"{name:<26} {result:>14}  {target}")


if __name__ == "__main__":
    main()
