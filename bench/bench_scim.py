"""Benchmark scim-bridge over HTTP, and scim2-server beside it when it is installed.

Measures what an IdP feels (issue 2, item 15):

1. PATCH add-1 / remove-1 member on groups of 10, 1k, 10k and 100k members;
2. sequential POST /Users rate (one client, keep-alive);
3. ``GET /Users?filter=userName eq "..."`` with 100k users.

scim-bridge is started as ``scim-bridge serve`` on a fresh SQLite file (or, with ``--db``, a
throwaway PostgreSQL database this script creates and drops). Users and memberships for the
big cases are seeded with bulk SQL (SQLite WAL lets that happen while the server runs); every
measured request goes over HTTP to 127.0.0.1. scim2-server (in memory) is seeded over HTTP.

    python bench/bench_scim.py                  # full sizes, SQLite
    python bench/bench_scim.py --quick          # smoke run
    python bench/bench_scim.py --db postgresql+psycopg://postgres@127.0.0.1:5432/scim_bench

Only the standard library, httpx and scim_bridge (for the table definitions) are used.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import (  # noqa: E402
    LOOPBACK,
    UNTHROTTLED_ENV,
    BridgeServer,
    ServerProcess,
    free_port,
)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PEER_VENV_BIN = Path("/tmp/scim2srv-venv/bin/scim2-server")

# Targets of issue 2.
PATCH_RATIO_TARGET = 2.0
LOOKUP_TARGET_MS = 5.0
POST_RATE_TARGET = 600.0


# -- small helpers ---------------------------------------------------------------------------


def bounded(count: int, seconds: float) -> Iterator[int]:
    """0..count-1, stopping early once ``seconds`` have passed: every loop is bounded twice."""
    deadline = time.monotonic() + seconds
    for index in range(count):
        if time.monotonic() > deadline:
            return
        yield index


@dataclass
class Timing:
    """Latencies of one measured operation, in milliseconds."""

    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def p95(self) -> float:
        if not self.samples:
            return math.nan
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def timed(self, call: Callable[[], httpx.Response], expect: int | tuple[int, ...]) -> None:
        started = time.perf_counter()
        response = call()
        elapsed = (time.perf_counter() - started) * 1000
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise RuntimeError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
        self.samples.append(elapsed)

    def cell(self) -> str:
        if not self.samples:
            return self.note or "-"
        return f"{self.median:8.2f} / {self.p95:8.2f}  (n={len(self.samples)})"


def patch_add(user_id: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
    }


def patch_remove(user_id: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{user_id}"]'}],
    }


def idp_user_body(user_name: str, given: str, family: str) -> dict[str, Any]:
    """What Okta or Entra sends on create: name, displayName, one primary work email, active."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "displayName": f"{given} {family}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


def new_user_body(index: int, run: str) -> dict[str, Any]:
    return idp_user_body(f"post-{run}-{index}@bench.example.com", "Bench", f"User{index}")


def seeded_user_name(index: int) -> str:
    return f"seed{index:06d}@bench.example.com"


def seeded_user_body(index: int) -> dict[str, Any]:
    return idp_user_body(seeded_user_name(index), "Seed", f"User{index:06d}")


# -- servers ---------------------------------------------------------------------------------


def peer_command() -> list[str] | None:
    """scim2-server: ``$SCIM2_SERVER``, else the bench's own venv, else the one on PATH."""
    named = os.environ.get("SCIM2_SERVER")
    if named:
        return [named]
    if PEER_VENV_BIN.exists():
        return [str(PEER_VENV_BIN)]
    which = shutil.which("scim2-server")
    return [which] if which else None


# -- databases -------------------------------------------------------------------------------


@dataclass
class Database:
    """The URL the server uses, and how to get rid of it."""

    url: str
    cleanup: Callable[[], None]
    label: str


def sqlite_database(workdir: Path) -> Database:
    path = workdir / "scim-bridge-bench.db"
    return Database(f"sqlite:///{path}", lambda: None, f"SQLite WAL synchronous=FULL ({path})")


def postgres_database(url: str) -> Database:
    """Create the throwaway database named in ``url`` (it must not exist); drop it afterwards."""
    import psycopg

    parts = urlsplit(url)
    if parts.hostname not in (LOOPBACK, "localhost"):
        raise SystemExit(f"--db must point at {LOOPBACK}, not {parts.hostname}")
    name = parts.path.lstrip("/") or f"scim_bench_{uuid.uuid4().hex[:8]}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"--db database name {name!r}: use lowercase letters, digits, _")
    admin = f"postgresql://{parts.netloc.replace('localhost', LOOPBACK)}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            raise SystemExit(f"database {name!r} exists; the benchmark only uses one it creates")
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    server_url = parts._replace(path=f"/{name}").geturl()
    return Database(server_url, drop, f"PostgreSQL ({name}, created and dropped by the bench)")


class Seeder:
    """Bulk SQL straight into scim-bridge's tables (SQLAlchemy Core, executemany)."""

    CHUNK = 20_000

    def __init__(self, url: str):
        from sqlalchemy import select

        from scim_bridge.db import make_engine
        from scim_bridge.models import Tenant

        self.engine = make_engine(url)
        with self.engine.connect() as conn:
            self.tenant_id = conn.scalar(select(Tenant.id).where(Tenant.name == "default"))
        if self.tenant_id is None:
            raise RuntimeError("the server did not create the default tenant")
        self.user_ids: list[str] = []

    def add_users(self, total: int, seconds: float) -> None:
        """Grow the seeded users to ``total``; ids are random UUIDs, as the server makes them."""
        import datetime as dt

        from sqlalchemy import insert

        from scim_bridge.db import WRITE_OPTION
        from scim_bridge.models import User, UserValue

        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        deadline = time.monotonic() + seconds
        while len(self.user_ids) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"seeding users took more than {seconds:.0f} s")
            start = len(self.user_ids)
            rows, emails = [], []
            for index in range(start, min(total, start + self.CHUNK)):
                body, user_id = seeded_user_body(index), str(uuid.uuid4())
                rows.append(
                    {
                        "id": user_id,
                        "tenant_id": self.tenant_id,
                        "user_name": body["userName"],
                        "user_name_key": body["userName"].lower(),
                        "active": True,
                        "display_name": body["displayName"],
                        "name_given": body["name"]["givenName"],
                        "name_family": body["name"]["familyName"],
                        "created_at": now,
                        "last_modified": now,
                        "version": 1,
                    }
                )
                emails.extend(
                    {
                        "user_id": user_id,
                        "attribute": "emails",
                        "position": position,
                        "value": email["value"],
                        "value_key": email["value"].lower(),
                        "type": email["type"],
                        "primary": email["primary"],
                    }
                    for position, email in enumerate(body["emails"])
                )
            with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                with conn.begin():
                    conn.execute(insert(User), rows)
                    conn.execute(insert(UserValue), emails)
            self.user_ids.extend(str(row["id"]) for row in rows)

    def add_members(self, group_id: str, user_ids: list[str], seconds: float) -> None:
        from sqlalchemy import insert

        from scim_bridge.db import WRITE_OPTION
        from scim_bridge.models import Membership

        for start in bounded(len(user_ids), seconds):
            if start % self.CHUNK:
                continue
            rows = [
                {"group_id": group_id, "user_id": uid}
                for uid in user_ids[start : start + self.CHUNK]
            ]
            with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                with conn.begin():
                    conn.execute(insert(Membership), rows)
        if self.member_count(group_id) != len(user_ids):
            raise RuntimeError(f"seeding members took more than {seconds:.0f} s")

    def member_count(self, group_id: str) -> int:
        from sqlalchemy import func, select

        from scim_bridge.models import Membership

        with self.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(Membership)
                    .where(Membership.group_id == group_id)
                )
                or 0
            )

    def close(self) -> None:
        self.engine.dispose()


# -- the procedure ---------------------------------------------------------------------------


@dataclass
class PostRate:
    per_second: float = math.nan
    latency: Timing = field(default_factory=Timing)
    note: str = ""


@dataclass
class Results:
    patch_add: dict[int, Timing] = field(default_factory=dict)
    patch_remove: dict[int, Timing] = field(default_factory=dict)
    post_empty: PostRate = field(default_factory=PostRate)
    post_full: PostRate = field(default_factory=PostRate)
    users_at_end: int = 0
    lookup: Timing = field(default_factory=Timing)
    lookup_users: int = 0
    floor: Timing = field(default_factory=Timing)
    seeding: list[str] = field(default_factory=list)


@dataclass
class Target:
    """One SCIM service provider under test."""

    name: str
    client: httpx.Client
    #: (users, seconds) -> None: make sure at least that many users exist.
    ensure_users: Callable[[int, float], None]
    user_ids: Callable[[], list[str]]
    user_name: Callable[[int], str]
    #: (size, member ids, seconds) -> group id
    make_group: Callable[[int, list[str], float], str]
    member_count: Callable[[str], int | None]


def measure_floor(target: Target, repeat: int) -> Timing:
    """The cheapest authenticated request: what every SCIM call pays before doing any work."""
    timing = Timing()
    for _ in bounded(repeat, 30):
        timing.timed(lambda: target.client.get("/ServiceProviderConfig"), 200)
    return timing


def prepare_groups(
    target: Target, sizes: list[int], repeat: int, budget: float, results: Results
) -> dict[int, tuple[str, list[str]]]:
    """A group of each size, plus ``repeat`` outsiders per group to add and remove again."""
    prepared: dict[int, tuple[str, list[str]]] = {}
    for size in sizes:
        started = time.monotonic()
        try:
            target.ensure_users(size + repeat + 2, budget)
            pool = target.user_ids()
            group_id = target.make_group(size, pool[:size], budget)
        except TooSlow as slow:
            results.patch_add[size] = Timing(note=f"skipped (too slow: {slow})")
            results.patch_remove[size] = Timing(note=f"skipped (too slow: {slow})")
            continue
        results.seeding.append(
            f"{target.name}: group of {size} members ready in {time.monotonic() - started:.1f} s"
        )
        prepared[size] = (group_id, pool[size : size + repeat + 2])
    return prepared


def measure_patches(
    target: Target, sizes: list[int], repeat: int, budget: float, results: Results
) -> None:
    """Add a non-member, then remove it again; the group stays at its size.

    Sizes take turns, one add and one remove each per round, so a change in machine load
    during the run hits every size alike and the 100k/10 ratio stays meaningful. Each size
    stops on its own once it has spent ``budget`` seconds.
    """
    prepared = prepare_groups(target, sizes, repeat, budget, results)
    for size in prepared:
        results.patch_add[size], results.patch_remove[size] = Timing(), Timing()
    spent = dict.fromkeys(prepared, 0.0)
    for group_id, outsiders in prepared.values():  # connection and caches warm; not counted
        target.client.patch(f"/Groups/{group_id}", json=patch_add(outsiders[0]))
        target.client.patch(f"/Groups/{group_id}", json=patch_remove(outsiders[0]))
    for index in bounded(repeat, budget * max(1, len(prepared))):
        for size, (group_id, outsiders) in prepared.items():
            if spent[size] > budget:
                continue
            user_id, started = outsiders[1 + index], time.monotonic()
            path = f"/Groups/{group_id}"
            results.patch_add[size].timed(
                partial(target.client.patch, path, json=patch_add(user_id)), (200, 204)
            )
            results.patch_remove[size].timed(
                partial(target.client.patch, path, json=patch_remove(user_id)), (200, 204)
            )
            spent[size] += time.monotonic() - started
    for size, (group_id, _) in prepared.items():
        count = target.member_count(group_id)
        if count is not None and count != size:
            raise RuntimeError(f"{target.name}: group of {size} ended with {count} members")


def measure_posts(target: Target, total: int, budget: float) -> PostRate:
    """``total`` sequential creates on one keep-alive connection."""
    run = uuid.uuid4().hex[:6]
    rate = PostRate()
    started = time.perf_counter()
    for index in bounded(total, budget):
        body = new_user_body(index, run)
        rate.latency.timed(partial(target.client.post, "/Users", json=body), 201)
    elapsed = time.perf_counter() - started
    done = len(rate.latency.samples)
    rate.per_second = done / elapsed if done else math.nan
    if done < total:
        rate.note = f"stopped at {done} of {total} after {budget:.0f} s"
    return rate


def measure_lookup(
    target: Target, users: int, lookups: int, budget: float, results: Results
) -> None:
    target.ensure_users(users, budget)
    population = min(users, len(target.user_ids()))
    rng = random.Random(2)
    timing = Timing()
    for _ in bounded(lookups, budget):
        user_name = target.user_name(rng.randrange(population))
        params = {"filter": f'userName eq "{user_name}"'}
        started = time.perf_counter()
        response = target.client.get("/Users", params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or response.json().get("totalResults") != 1:
            raise RuntimeError(f"{target.name}: lookup of {user_name}: {response.text[:300]}")
        timing.samples.append(elapsed)
    results.lookup, results.lookup_users = timing, population


def run_procedure(target: Target, args: argparse.Namespace, budget: float) -> Results:
    """The same steps for every server; ``budget`` bounds each step's seconds."""
    results = Results()
    results.floor = measure_floor(target, args.repeat)
    results.post_empty = measure_posts(target, args.users, budget)
    measure_patches(target, args.sizes, args.repeat, budget, results)
    try:
        measure_lookup(target, args.lookup_users, args.lookups, budget, results)
    except TooSlow as slow:
        results.lookup = Timing(note=f"skipped (too slow: {slow})")
    results.post_full = measure_posts(target, args.users, budget)
    results.users_at_end = len(target.user_ids())
    return results


class TooSlow(Exception):
    """Seeding a case would not finish within the time limit."""


# -- scim-bridge -----------------------------------------------------------------------------


def bridge_target(client: httpx.Client, seeder: Seeder) -> Target:
    def make_group(size: int, members: list[str], seconds: float) -> str:
        response = client.post(
            "/Groups",
            json={
                "schemas": [GROUP_SCHEMA],
                "displayName": f"bench-{size}-{uuid.uuid4().hex[:6]}",
            },
        )
        response.raise_for_status()
        group_id = str(response.json()["id"])
        seeder.add_members(group_id, members, seconds)
        return group_id

    return Target(
        name="scim-bridge",
        client=client,
        ensure_users=lambda total, seconds: seeder.add_users(total, seconds),
        user_ids=lambda: seeder.user_ids,
        user_name=seeded_user_name,
        make_group=make_group,
        member_count=seeder.member_count,
    )


def start_bridge(
    args: argparse.Namespace, database: Database, workdir: Path
) -> tuple[BridgeServer, str, str]:
    serve_args: list[str] = []
    if args.workers is not None:
        serve_args += ["--workers", str(args.workers)]
    if args.threads is not None:
        serve_args += ["--threads", str(args.threads)]
    server = BridgeServer(database.url, env={**os.environ, **UNTHROTTLED_ENV},
                          serve_args=tuple(serve_args))
    try:
        token = server.wait_for_line(r"SCIM token:\s+(sb_\S+)", 120).group(1)
        server.wait_healthy(seconds=60)
    except BaseException:
        stop(server, workdir)
        raise
    return server, f"{server.base_url}/scim/v2", token


def stop(server: ServerProcess, workdir: Path) -> None:
    """Stop ``server`` and keep its output in the work directory (see ``--keep``)."""
    server.stop()
    log = workdir / f"{server.name.split()[0]}.log"
    log.write_text("\n".join([*server.stdout, *server.stderr]) + "\n")


# -- scim2-server ----------------------------------------------------------------------------


class PeerSeeder:
    """Seeds scim2-server over HTTP (its storage is in memory): Bulk when it offers it."""

    def __init__(self, client: httpx.Client, bulk_max: int):
        self.client = client
        self.bulk_max = bulk_max
        self.user_ids: list[str] = []
        self.rate = math.nan  # users per second, measured while seeding

    def ensure_users(self, total: int, seconds: float) -> None:
        missing = total - len(self.user_ids)
        if missing <= 0:
            return
        if self.rate == self.rate and missing / self.rate > seconds:  # not NaN: predict
            raise TooSlow(
                f"seeding {total} users over HTTP at {self.rate:.0f}/s would take "
                f"~{missing / self.rate:.0f} s > {seconds:.0f} s limit"
            )
        started = time.monotonic()
        before = len(self.user_ids)
        for _ in bounded(missing, seconds):
            if len(self.user_ids) >= total:
                break
            self._seed_batch(total - len(self.user_ids))
        elapsed = max(time.monotonic() - started, 1e-6)
        self.rate = (len(self.user_ids) - before) / elapsed
        if len(self.user_ids) < total:
            raise TooSlow(
                f"seeded {len(self.user_ids)} of {total} users over HTTP in "
                f"{elapsed:.0f} s ({self.rate:.0f}/s)"
            )

    def _seed_batch(self, wanted: int) -> None:
        start = len(self.user_ids)
        if self.bulk_max > 1:
            count = min(wanted, self.bulk_max)
            body = {
                "schemas": [BULK_REQUEST],
                "Operations": [
                    {
                        "method": "POST",
                        "path": "/Users",
                        "bulkId": str(i),
                        "data": seeded_user_body(start + i),
                    }
                    for i in range(count)
                ],
            }
            response = self.client.post("/Bulk", json=body, timeout=300)
            response.raise_for_status()
            for operation in response.json()["Operations"]:
                if str(operation.get("status")) != "201":
                    raise RuntimeError(f"scim2-server bulk seeding: {operation}")
                self.user_ids.append(operation["location"].rstrip("/").rsplit("/", 1)[1])
            return
        response = self.client.post("/Users", json=seeded_user_body(start))
        response.raise_for_status()
        self.user_ids.append(str(response.json()["id"]))

    def make_group(self, size: int, members: list[str], seconds: float) -> str:
        """One POST with every member (scim2-server keeps members inside the group)."""
        started = time.monotonic()
        response = self.client.post(
            "/Groups",
            json={
                "schemas": [GROUP_SCHEMA],
                "displayName": f"bench-{size}",
                "members": [{"value": uid} for uid in members],
            },
            timeout=max(1.0, seconds),
        )
        response.raise_for_status()
        if time.monotonic() - started > seconds:
            raise TooSlow(f"creating a group of {size} took {time.monotonic() - started:.0f} s")
        return str(response.json()["id"])

    def member_count(self, group_id: str) -> int | None:
        response = self.client.get(f"/Groups/{group_id}", timeout=120)
        response.raise_for_status()
        return len(response.json().get("members") or [])


def peer_target(client: httpx.Client, seeder: PeerSeeder) -> Target:
    return Target(
        name="scim2-server",
        client=client,
        ensure_users=seeder.ensure_users,
        user_ids=lambda: seeder.user_ids,
        user_name=seeded_user_name,
        make_group=seeder.make_group,
        member_count=seeder.member_count,
    )


def start_peer(command: list[str], workdir: Path) -> tuple[ServerProcess, str, str]:
    port, token = free_port(), f"bench-{uuid.uuid4().hex}"
    argv = [*command, "--hostname", LOOPBACK, "--port", str(port), "--bearer-token", token]
    server = ServerProcess(argv, os.environ, name="scim2-server")
    base = f"http://{LOOPBACK}:{port}"
    try:
        server.wait_healthy(base, 60, path="/v2/ServiceProviderConfig",
                            headers={"Authorization": f"Bearer {token}"})
    except BaseException:
        stop(server, workdir)
        raise
    return server, f"{base}/v2", token


def run_peer(args: argparse.Namespace, workdir: Path) -> tuple[Results | None, str]:
    command = peer_command()
    if command is None:
        return None, (
            "scim2-server is not installed (pip install scim2-server, or into "
            f"{PEER_VENV_BIN.parent.parent}); no side-by-side comparison"
        )
    server, base, token = start_peer(command, workdir)
    try:
        with client_for(base, token, timeout=60) as client:
            config = client.get("/ServiceProviderConfig").json()
            bulk = config.get("bulk") or {}
            bulk_max = int(bulk.get("maxOperations") or 0) if bulk.get("supported") else 0
            seeder = PeerSeeder(client, min(bulk_max, 1000))
            results = run_procedure(peer_target(client, seeder), args, args.peer_limit)
            results.seeding.append(
                f"scim2-server: {len(seeder.user_ids)} users seeded over HTTP "
                f"({'Bulk' if bulk_max > 1 else 'POST'}, {seeder.rate:.0f}/s)"
            )
            return results, f"scim2-server ({' '.join(command)}), in memory, wsgiref threads"
    finally:
        stop(server, workdir)


def client_for(base: str, token: str, timeout: float) -> httpx.Client:
    if urlsplit(base).hostname != LOOPBACK:
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    return httpx.Client(
        base_url=base,
        timeout=timeout,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/scim+json",
            "Accept": "application/scim+json",
        },
    )


# -- the table -------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def ratio(peer: float, ours: float) -> str:
    if not (peer == peer and ours == ours) or ours == 0:
        return "-"
    return f"{peer / ours:.1f}x"


def print_table(
    ours: Results,
    peer: Results | None,
    peer_note: str,
    args: argparse.Namespace,
    db_label: str,
    load_at_start: str,
) -> None:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def timing_row(
        label: str, mine: Timing, theirs: Timing | None, target: str = "", status: str = ""
    ) -> None:
        rows.append(
            (
                label,
                mine.cell(),
                target,
                status,
                theirs.cell() if theirs is not None else "-",
                ratio(theirs.median, mine.median) if theirs is not None else "-",
            )
        )

    smallest, largest = min(args.sizes), max(args.sizes)
    timing_row("GET /ServiceProviderConfig (floor)", ours.floor, peer.floor if peer else None)
    for kind, mine_by, theirs_by in (
        ("add", ours.patch_add, peer and peer.patch_add),
        ("remove", ours.patch_remove, peer and peer.patch_remove),
    ):
        base = mine_by[smallest].median
        for size in args.sizes:
            target = status = ""
            if size == largest and size != smallest:
                limit = PATCH_RATIO_TARGET * base
                measured = mine_by[size].median / base if base == base else math.nan
                target = f"<= {limit:.2f} ms ({PATCH_RATIO_TARGET:.0f}x size {smallest})"
                status = f"{verdict(mine_by[size].median <= limit)} ({measured:.2f}x)"
            timing_row(
                f"PATCH {kind}-1 member, group of {size}",
                mine_by[size],
                theirs_by[size] if theirs_by else None,
                target,
                status,
            )
    lookup_label = f"GET userName eq, {ours.lookup_users} users"
    if peer and peer.lookup.samples and peer.lookup_users != ours.lookup_users:
        lookup_label += f" (peer: {peer.lookup_users})"
    timing_row(
        lookup_label,
        ours.lookup,
        peer.lookup if peer else None,
        f"< {LOOKUP_TARGET_MS:.0f} ms median",
        verdict(ours.lookup.median < LOOKUP_TARGET_MS) if ours.lookup.samples else "-",
    )
    for label, mine_post, their_post in (
        ("empty database", ours.post_empty, peer.post_empty if peer else None),
        (f"{ours.users_at_end} seeded users", ours.post_full, peer.post_full if peer else None),
    ):
        timing_row(
            f"POST /Users latency, {label}",
            mine_post.latency,
            their_post.latency if their_post else None,
        )
        peer_rate = their_post.per_second if their_post else math.nan
        rows.append(
            (
                f"POST /Users sequential rate, {label}",
                f"{mine_post.per_second:8.1f} /s"
                + (f" ({mine_post.note})" if mine_post.note else ""),
                f">= {POST_RATE_TARGET:.0f} /s",
                verdict(mine_post.per_second >= POST_RATE_TARGET),
                (f"{peer_rate:8.1f} /s" if peer_rate == peer_rate else "-")
                + (f" ({their_post.note})" if their_post and their_post.note else ""),
                ratio(mine_post.per_second, peer_rate),
            )
        )

    headers = (
        "measurement (ms: median / p95)",
        "scim-bridge",
        "target",
        "status",
        "scim2-server",
        "peer/ours",
    )
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print()
    print(
        f"scim-bridge on {db_label}; repeat={args.repeat}; POSTs N={args.users}; client: httpx, "
        f"one keep-alive connection, 127.0.0.1; {os.cpu_count()} CPUs; load average "
        f"{load_at_start} at start, {' '.join(f'{x:.2f}' for x in os.getloadavg())} at end"
    )
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print(
        "peer/ours: scim2-server's median latency over scim-bridge's, or scim-bridge's rate "
        "over scim2-server's: above 1x, scim-bridge is faster."
    )
    print(peer_note)
    for line in ours.seeding + (peer.seeding if peer else []):
        print(f"  seeding: {line}")


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10,1000,10000,100000",
        help="group sizes, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=100,
        help="PATCH repetitions per size and kind (default: %(default)s)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=2000,
        help="POST /Users requests for the rate (default: %(default)s)",
    )
    parser.add_argument("--lookups", type=int, default=500, help="userName eq lookups")
    parser.add_argument(
        "--lookup-users",
        type=int,
        default=100_000,
        help="users present for the lookup (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: sizes 10,1000, 20 repeats, 200 POSTs, 5k users",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="postgresql+psycopg://postgres@127.0.0.1:5432/NAME: a throwaway "
        "database the bench creates and drops (default: fresh SQLite)",
    )
    parser.add_argument("--workers", type=int, default=None, help="scim-bridge serve --workers")
    parser.add_argument("--threads", type=int, default=None, help="scim-bridge serve --threads")
    parser.add_argument("--no-peer", action="store_true", help="skip scim2-server")
    parser.add_argument(
        "--limit",
        type=float,
        default=600.0,
        help="seconds any one scim-bridge step may take (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-limit",
        type=float,
        default=120.0,
        help="seconds any one scim2-server step may take (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.users, args.lookups = "10,1000", 20, 200, 100
        args.lookup_users = 5000
    args.sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1:
        parser.error("--sizes needs positive sizes and --repeat a positive count")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    database = postgres_database(args.db) if args.db else sqlite_database(workdir)
    print(f"workdir {workdir}; database {database.label}", flush=True)
    try:
        server, base, token = start_bridge(args, database, workdir)
        seeder = Seeder(database.url)
        try:
            with client_for(base, token, timeout=120) as client:
                print("measuring scim-bridge ...", flush=True)
                ours = run_procedure(bridge_target(client, seeder), args, args.limit)
        finally:
            seeder.close()
            stop(server, workdir)
        peer, peer_note = (None, "scim2-server: not run (--no-peer)")
        if not args.no_peer:
            print("measuring scim2-server ...", flush=True)
            peer, peer_note = run_peer(args, workdir)
        print_table(ours, peer, peer_note, args, database.label, load_at_start)
    finally:
        database.cleanup()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
