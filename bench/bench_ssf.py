"""Benchmark SSF delivery (issue 8, item 9, for SSF streams); prints a table.

1. Push (RFC 8935): latency from the SCIM DELETE's response to a healthy loopback receiver
   getting the signed account-purged SET; the WSGI app called directly with the delivery
   worker running in the same process, woken by the commit; median and p99.
2. Poll (RFC 8936): the same latency to a receiver that long-polls its stream
   (``returnImmediately`` false, acknowledging what it got on the next poll): the poll is
   woken by the commit.

    python bench/bench_ssf.py                 # SQLite in a temporary directory
    python bench/bench_ssf.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
    python bench/bench_ssf.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from bench.bench_delivery import (  # noqa: E402
    LATENCY_MEDIAN_MS,
    LATENCY_P99_MS,
    database,
    deletion_gaps,
    percentiles,
)
from bench.profile_path import App, user_body  # noqa: E402
from scim_bridge.db import begin_write  # noqa: E402
from scim_bridge.services import streams, tokens  # noqa: E402
from tests.receivers import receiving  # noqa: E402

PURGED = "https://schemas.openid.net/secevent/risc/event-type/account-purged"


def create_stream(app: App, body: dict[str, Any]) -> dict[str, Any]:
    with app.bridge.sessions() as db:
        begin_write(db)
        tenant = tokens.ensure_default_tenant(db)
        caller = streams.Caller(tenant.id, tenant.name, "bench-rp", "http://bench.test",
                                "http://bench.test", 0)
        stream = streams.create_stream(db, caller, {"events_requested": [PURGED], **body})
        db.commit()
    return stream


def push_latency(url: str, count: int) -> tuple[float, float]:
    app = App(url)
    worker = app.bridge.delivery_worker()
    with receiving() as receiver:
        receiver.default.status = 202
        create_stream(app, {"delivery": {"method": "urn:ietf:rfc:8935",
                                         "endpoint_url": receiver.url,
                                         "authorization_header": "Bearer bench"}})
        gaps = deletion_gaps(app, worker, receiver, count, "push")
    app.bridge.close()
    return percentiles(gaps)


def poll_latency(url: str, count: int) -> tuple[float, float]:
    app = App(url)
    stream = create_stream(app, {})
    with app.bridge.sessions() as db:
        begin_write(db)
        token = tokens.create_token(db, "bench-rp", "ssf")
        db.commit()
    got: list[float] = []
    arrived = threading.Condition()
    stop = threading.Event()

    def long_poll() -> None:
        ack: list[str] = []
        with httpx.Client(transport=httpx.WSGITransport(app=app.app),  # type: ignore[arg-type]
                          base_url="http://bench.test",
                          headers={"Authorization": f"Bearer {token}"}) as client:
            while not stop.is_set():
                answer = client.post(stream["delivery"]["endpoint_url"],
                                     json={"ack": ack, "maxEvents": 10}, timeout=60)
                answer.raise_for_status()
                ack = list(answer.json()["sets"])
                if ack:
                    with arrived:
                        got.extend(time.monotonic() for _ in ack)
                        arrived.notify_all()

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    gaps = []
    for i in range(count):
        user = app.ok("POST", "/scim/v2/Users", user_body(f"poll{i}@bench.test"))
        app.ok("DELETE", f"/scim/v2/Users/{user['id']}")
        answered = time.monotonic()
        with arrived:
            assert arrived.wait_for(lambda n=i: len(got) > n, timeout=30), "no SET was polled"
            gaps.append((got[i] - answered) * 1000)
    stop.set()
    # one more event ends the last long poll at once
    user = app.ok("POST", "/scim/v2/Users", user_body("last@bench.test"))
    app.ok("DELETE", f"/scim/v2/Users/{user['id']}")
    poller.join(30)
    app.bridge.close()
    return percentiles(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL server URL (throwaway databases are made)")
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    args = parser.parse_args()
    count = 20 if args.quick else args.deliveries
    rows = []
    with database(args.db) as url:
        median, p99 = push_latency(url, count)
    rows.append((f"push latency median ({count})", f"{median:.1f} ms",
                 f"< {LATENCY_MEDIAN_MS:.0f} ms"))
    rows.append((f"push latency p99 ({count})", f"{p99:.1f} ms", f"< {LATENCY_P99_MS:.0f} ms"))
    with database(args.db) as url:
        median, p99 = poll_latency(url, count)
    rows.append((f"long-poll latency median ({count})", f"{median:.1f} ms", "(none)"))
    rows.append((f"long-poll latency p99 ({count})", f"{p99:.1f} ms", "(none)"))
    backend = "PostgreSQL" if args.db else "SQLite"
    print(f"SSF delivery on {backend}")
    print(f"{'measure':<34} {'result':>12}  target")
    for name, result, target in rows:
        print(f"{name:<34} {result:>12}  {target}")


if __name__ == "__main__":
    main()
