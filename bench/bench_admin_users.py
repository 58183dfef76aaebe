"""Benchmark User Management's API among 100,000 users (issue 9 §1 and §4); prints a table.

The app runs in-process (bench_sessions.Bench: the WSGI app called directly) on a tenant of
100,000 users with one email each, a group of 500 and one of 10,000 members, and a live
session for each of the 10,000. Each list request is the median of several runs:

    python bench/bench_admin_users.py            # SQLite in a temporary directory
    python bench/bench_admin_users.py --db postgresql+psycopg://postgres@127.0.0.1:5432/x
    python bench/bench_admin_users.py --users 20000   # a smaller smoke run

Measured on the shared 2-core machine with a load average of 14 (SQLite) and 41 (PostgreSQL),
so these are upper bounds; medians in ms, bulk in s:

    measure                       SQLite   PostgreSQL
    first page (50)                 17.4      38.7
    next page by cursor              7.7      35.8
    search userName prefix          11.6      17.4
    search displayName prefix       27.7      95.3     (1,111 matches)
    group of 500                    15.9     114.9
    group of 10,000                137.2      96.2
    active=true, SCIM filter        22.3      63.1
    Bulk dry run, 10,000 users      0.42      0.42
    Bulk confirmed, 10,000 users    1.20      1.49

Before the search and group drove the query (substring search, EXISTS per user), SQLite took
about 230 ms for a group of 500: its planner, without statistics, visited every user.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sessions import Bench, _database  # noqa: E402

from scim_bridge.models import Group, Membership  # noqa: E402

LIST_TARGET_MS = 100.0
BULK_TARGET_S = 2.0


def _seed_group(bench: Bench, name: str, members: list[str]) -> str:
    group_id = str(uuid.uuid4())
    bench._insert(Group, [{"id": group_id, "tenant_id": bench.tenant_id, "display_name": name,
                           "display_name_key": name.lower()}])
    bench._insert(Membership, [{"group_id": group_id, "user_id": uid} for uid in members])
    return group_id


def _median_ms(bench: Bench, path: str, repeats: int) -> tuple[float, Any]:
    times, body = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        body = bench.json("GET", path, "admin")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), body


def _run(bench: Bench, users: int, repeats: int) -> list[tuple[str, str, str]]:
    ids = bench.seed_users(users, "u")
    small = _seed_group(bench, "Ward 7", ids[::users // 500][:500])
    large_members = ids[1::users // 10_000][:10_000]
    large = _seed_group(bench, "Night shift", large_members)
    bench.seed_sessions(large_members)
    if bench.bridge.engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load; without it every estimate is one row.
        with bench.bridge.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    rows = []
    lists = [
        ("first page (50)", {}),
        ("search userName prefix", {"search": "u4242"}),
        ("search displayName prefix", {"search": "bench user99"}),
        ("group of 500", {"group": small}),
        ("group of 10,000", {"group": large}),
        ("active=true, SCIM filter", {"active": "true", "filter": 'userName sw "u77"'}),
    ]
    for name, params in lists:
        ms, body = _median_ms(bench, f"/api/v1/admin/users?{urlencode(params)}", repeats)
        rows.append((name, f"{ms:.1f} ms ({body['total_results']})", f"< {LIST_TARGET_MS:.0f} ms"))
        if name.startswith("first"):
            after = urlencode({"after": body["next_cursor"]})
            ms, _ = _median_ms(bench, f"/api/v1/admin/users?{after}", repeats)
            rows.append(("next page by cursor", f"{ms:.1f} ms", f"< {LIST_TARGET_MS:.0f} ms"))
    started = time.perf_counter()
    preview = bench.json("POST", "/api/v1/admin/force-logout", "admin",
                         {"group": large, "dry_run": True})
    dry = time.perf_counter() - started
    rows.append(("Bulk dry run, group of 10,000", f"{dry:.2f} s ({preview['sessions']})",
                 f"< {BULK_TARGET_S:.0f} s"))
    started = time.perf_counter()
    done = bench.json("POST", "/api/v1/admin/force-logout", "admin",
                      {"group": large, "confirm": preview["confirm"]})
    run = time.perf_counter() - started
    rows.append(("Bulk confirmed, group of 10,000", f"{run:.2f} s ({done['revoked_sessions']})",
                 f"< {BULK_TARGET_S:.0f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL server URL (a throwaway database is made)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        url, drop = _database(args.db, workdir)
        try:
            bench = Bench(url)
            rows = _run(bench, args.users, args.repeats)
            bench.bridge.close()
        finally:
            if drop:
                drop()
    print(f"\nscim-bridge admin users benchmark — {make_url(url).get_backend_name()}, "
          f"{args.users} users")
    width = max(len(row[0]) for row in rows)
    for name, result, target in rows:
        print(f"{name:<{width}}  {result:>22}  {target}")


if __name__ == "__main__":
    main()
