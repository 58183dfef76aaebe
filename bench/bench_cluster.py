"""Scale-out under load (issue 10, point 5): several ``scim-bridge serve`` instances on one
PostgreSQL database, IdP traffic and application sessions at once; prints a table.

Every client thread sends each request to the next instance in turn (round robin). The SCIM
clients replay Okta-style and Entra-style traffic: lookups by filter before creates, creates,
profile PATCHes, group member adds and removes, deactivations and re-activations. Each user
and group belongs to one SCIM client, which writes it one request at a time, so the last
acknowledged write of every key is well defined. The session clients sign random users in
and introspect their sessions over and over, meanwhile.

Afterwards the run checks, and prints every violation it found:

- every ``active`` flag and every group's members equal the owner's last acknowledged write;
- every session that existed before a removal or deactivation started is revoked;
- no introspection that started after such a change's response answered ``active: true``
  for a session the change had to end, and no active introspection listed a group the user
  had already been removed from;
- lookups by filter see the owner's own acknowledged writes (read-your-writes across
  instances), and no request got a 5xx or no answer.

    python bench/bench_cluster.py                                  # 3 instances, 50+20, 60 s
    python bench/bench_cluster.py --seconds 10 --clients 8 --session-clients 4
    python bench/bench_cluster.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/x

The database named by ``--database-url`` must be empty or hold only scim-bridge's own tables:
the bench empties it first (it is the bench's, like a test database). tests/test_cluster.py
runs a short version of the same engine in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.harness import UNTHROTTLED_ENV, BridgeServer, scim_bridge_command  # noqa: E402

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
SCIM_JSON = "application/scim+json; charset=utf-8"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test_cluster"
REQUEST_TIMEOUT = 60.0

OKTA_HEADERS = {"Accept": "application/scim+json", "Accept-Charset": "utf-8",
                "User-Agent": "Okta SCIM Client 1.0.0"}
ENTRA_HEADERS = {"User-Agent": "Azure AD SCIM bench"}  # Entra's GETs send no scim+json Accept

#: What a SCIM client does next, and how often (weights).
ACTIONS = {"user.create": 14, "user.patch": 18, "group.add": 20, "group.remove": 15,
           "user.deactivate": 7, "user.reactivate": 5, "user.lookup": 16, "group.lookup": 5}
ACTION_METHODS = {"user.create": "create_user", "user.patch": "user_patch",
                  "group.add": "group_add", "group.remove": "group_remove",
                  "user.deactivate": "user_deactivate", "user.reactivate": "user_reactivate",
                  "user.lookup": "user_lookup", "group.lookup": "group_lookup"}
#: Request types in the table, in this order.
KINDS = ("user.probe", "user.create", "user.patch", "user.deactivate", "user.reactivate",
         "user.lookup", "group.create", "group.add", "group.remove", "group.lookup",
         "session.create", "session.introspect", "session.logout")


@dataclass(frozen=True)
class Config:
    database_url: str
    instances: int = 3
    clients: int = 50
    session_clients: int = 20
    seconds: float = 60.0
    workers: int = 2
    threads: int = 4
    groups_per_client: int = 2
    seed_users_per_client: int = 6
    redis_url: str | None = None
    seed: int | None = None


# -- what happened, as the clients saw it ------------------------------------------------------


@dataclass
class Change:
    """An acknowledged write that ends sessions (removal, deactivation) or allows them again
    (re-activation, a member added back); times are ``time.monotonic()`` in this process."""

    kind: str  # "remove" | "deactivate" | "reactivate" | "add"
    user_id: str
    started: float
    acked: float
    group_id: str | None = None


@dataclass
class Introspection:
    started: float
    ended: float
    active: bool
    groups: list[str]


@dataclass
class SessionRecord:
    user_id: str
    sid: str
    token: str
    started: float
    acked: float
    group_ids: set[str]
    introspections: list[Introspection] = field(default_factory=list)
    logout_acked: float | None = None


@dataclass
class Refusal:
    """A session the bridge refused (403: the user was inactive)."""

    user_id: str
    started: float
    ended: float


@dataclass
class UserModel:
    id: str
    user_name: str
    external_id: str
    family: str
    active: bool = True
    tainted: bool = False  # a write to it got no clear answer: its state is unknown


@dataclass
class GroupModel:
    id: str
    name: str
    members: set[str] = field(default_factory=set)
    tainted: bool = False


class Stats:
    """One thread's latencies per request type, statuses and failures (merged at the end)."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.failures: list[str] = []

    def merge(self, other: Stats) -> None:
        for kind, samples in other.latencies.items():
            self.latencies[kind].extend(samples)
        for kind, counts in other.statuses.items():
            self.statuses[kind].update(counts)
        self.failures.extend(other.failures)


class Failed(Exception):
    """A request got a 5xx, an unexpected status or no answer; already recorded."""


class Caller:
    """One client thread's connections, one per instance, used in turn (round robin)."""

    def __init__(self, bases: list[str], token: str, headers: dict[str, str], stats: Stats,
                 first: int) -> None:
        self.clients = [httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT,
                                     headers={"Authorization": f"Bearer {token}", **headers})
                        for base in bases]
        self.turn = first
        self.stats = stats

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def call(self, kind: str, method: str, path: str, expect: tuple[int, ...], *,
             body: Any = None, form: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> tuple[httpx.Response, float, float]:
        """Send one request to the next instance; (response, started, ended). Raises
        :class:`Failed` (after recording it) on a 5xx, no answer or a status not expected."""
        index = self.turn % len(self.clients)
        self.turn += 1
        client = self.clients[index]
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": SCIM_JSON} if content is not None else None
        started = time.monotonic()
        try:
            response = client.request(method, path, content=content, data=form,
                                      params=params, headers=headers)
        except httpx.HTTPError as exc:
            ended = time.monotonic()
            self.stats.failures.append(f"{kind}: {method} {path} at instance {index}: no answer "
                                       f"after {ended - started:.1f} s ({type(exc).__name__})")
            raise Failed from None
        ended = time.monotonic()
        self.stats.latencies[kind].append((ended - started) * 1000)
        self.stats.statuses[kind][response.status_code] += 1
        if response.status_code not in expect:
            self.stats.failures.append(
                f"{kind}: {method} {path} at instance {index} -> {response.status_code} "
                f"(expected {'/'.join(map(str, expect))}): {response.text[:200]}")
            raise Failed
        return response, started, ended


# -- the SCIM clients (Okta and Entra) ---------------------------------------------------------


class Shared:
    """What the SCIM clients publish for the session clients: users who may sign in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._candidates: dict[str, None] = {}

    def offer(self, user_id: str, can_sign_in: bool) -> None:
        with self._lock:
            if can_sign_in:
                self._candidates[user_id] = None
            else:
                self._candidates.pop(user_id, None)

    def pick(self, rng: random.Random) -> str | None:
        with self._lock:
            if not self._candidates:
                return None
            return rng.choice(list(self._candidates))


class IdpClient:
    """One SCIM client that owns its users and groups and writes each one request at a time."""

    def __init__(self, index: int, run: str, caller: Caller, shared: Shared, config: Config,
                 rng: random.Random) -> None:
        self.index = index
        self.okta = index % 2 == 0
        self.run = run
        self.caller = caller
        self.shared = shared
        self.config = config
        self.rng = rng
        self.users: list[UserModel] = []
        self.groups: list[GroupModel] = []
        self.changes: list[Change] = []
        self.stale_reads: list[str] = []
        self.created = 0

    @property
    def style(self) -> str:
        return "okta" if self.okta else "entra"

    def loop(self, deadline: float) -> None:
        for number in range(self.config.groups_per_client):
            self.attempt(self.create_group, number)
        for _ in range(self.config.seed_users_per_client):
            self.attempt(self.create_user)
        while time.monotonic() < deadline:
            action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            self.attempt(getattr(self, ACTION_METHODS[action]))

    def attempt(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except Failed:
            pass

    def publish(self, user: UserModel) -> None:
        in_a_group = any(user.id in group.members for group in self.groups)
        self.shared.offer(user.id, user.active and in_a_group and not user.tainted)

    # creates

    def create_group(self, number: int) -> None:
        name = f"{self.run} {self.style} {self.index} group {number}"
        schemas = [GROUP_SCHEMA] if self.okta else [GROUP_SCHEMA, ENTRA_GROUP]
        body: dict[str, Any] = {"schemas": schemas, "displayName": name}
        if not self.okta:
            body["meta"] = {"resourceType": "Group"}
        response, _, _ = self.caller.call("group.create", "POST", "/Groups", (201,), body=body)
        self.groups.append(GroupModel(response.json()["id"], name))

    def create_user(self) -> None:
        self.created += 1
        user_name = f"{self.run}-{self.style}{self.index}-{self.created}@cluster.example.com"
        external_id = f"{self.run}-ext-{self.index}-{self.created}"
        found, _, _ = self.caller.call(
            "user.probe", "GET", "/Users", (200,),
            params={"filter": f'userName eq "{user_name.upper() if self.okta else user_name}"'})
        if found.json()["totalResults"] != 0:
            self.stale_reads.append(f"probe for the new userName {user_name} found a user")
        family = f"Family{self.created}"
        body: dict[str, Any] = {
            "schemas": [USER_SCHEMA] if self.okta else [USER_SCHEMA, ENTERPRISE],
            "userName": user_name,
            "externalId": external_id,
            "name": {"givenName": "Given", "familyName": family},
            "displayName": f"Given {family}",
            "emails": [{"value": user_name, "type": "work", "primary": True}],
            "active": True,
        }
        if self.okta:
            body["password"] = "not-stored-by-the-bridge"
        else:
            body.update({"meta": {"resourceType": "User"}, "roles": [],
                         ENTERPRISE: {"employeeNumber": str(self.created)}})
            body["name"]["formatted"] = f"Given {family}"
        response, _, _ = self.caller.call("user.create", "POST", "/Users", (201,), body=body)
        self.users.append(UserModel(response.json()["id"], user_name, external_id, family))

    # user writes

    def user_patch(self) -> None:
        if not self.users:
            return
        user = self.rng.choice(self.users)
        family = f"Family{self.rng.randrange(10**6)}"
        if self.okta:
            operations = [{"op": "replace", "value": {"name": {"givenName": "Given",
                                                               "familyName": family}}}]
        else:
            operations = [{"op": "Replace", "path": "name.familyName", "value": family},
                          {"op": "Replace", "path": "displayName", "value": f"Given {family}"}]
        self.write_user(user, "user.patch", operations, (200, 204))
        user.family = family

    def user_deactivate(self) -> None:
        self.set_active(False)

    def user_reactivate(self) -> None:
        self.set_active(True)

    def set_active(self, active: bool) -> None:
        choices = [u for u in self.users if u.active != active and not u.tainted]
        if not choices:
            return
        user = self.rng.choice(choices)
        if self.okta:
            operations = [{"op": "replace", "value": {"active": active}}]
        else:
            operations = [{"op": "Replace", "path": "active", "value": str(active)}]
        kind = "user.reactivate" if active else "user.deactivate"
        started, acked = self.write_user(user, kind, operations, (200, 204))
        user.active = active
        self.changes.append(Change("reactivate" if active else "deactivate", user.id,
                                   started, acked))
        self.publish(user)

    def write_user(self, user: UserModel, kind: str, operations: list[dict[str, Any]],
                   expect: tuple[int, ...]) -> tuple[float, float]:
        try:
            _, started, acked = self.caller.call(
                kind, "PATCH", f"/Users/{user.id}", expect,
                body={"schemas": [PATCH_OP], "Operations": operations})
        except Failed:
            user.tainted = True
            self.publish(user)
            raise
        return started, acked

    # group writes

    def group_add(self) -> None:
        if not self.groups or not self.users:
            return
        group = self.rng.choice(self.groups)
        outside = [u for u in self.users if u.id not in group.members and not u.tainted]
        if not outside:
            return
        chosen = self.rng.sample(outside, k=min(len(outside), self.rng.choice((1, 1, 2))))
        if self.okta:
            values = [{"value": u.id, "display": u.user_name} for u in chosen]
            operation = {"op": "add", "path": "members", "value": values}
        else:
            operation = {"op": "Add", "path": "members",
                         "value": [{"$ref": None, "value": u.id} for u in chosen]}
        started, acked = self.write_group(group, "group.add", [operation])
        for user in chosen:
            group.members.add(user.id)
            self.changes.append(Change("add", user.id, started, acked, group.id))
            self.publish(user)

    def group_remove(self) -> None:
        candidates = [g for g in self.groups if g.members and not g.tainted]
        if not candidates:
            return
        group = self.rng.choice(candidates)
        user_id = self.rng.choice(sorted(group.members))
        if self.okta:
            operation: dict[str, Any] = {"op": "remove",
                                         "path": f'members[value eq "{user_id}"]'}
        else:
            operation = {"op": "Remove", "path": "members",
                         "value": [{"$ref": None, "value": user_id}]}
        started, acked = self.write_group(group, "group.remove", [operation])
        group.members.discard(user_id)
        self.changes.append(Change("remove", user_id, started, acked, group.id))
        self.publish(next(u for u in self.users if u.id == user_id))

    def write_group(self, group: GroupModel, kind: str,
                    operations: list[dict[str, Any]]) -> tuple[float, float]:
        try:
            _, started, acked = self.caller.call(
                kind, "PATCH", f"/Groups/{group.id}", (200, 204),
                body={"schemas": [PATCH_OP], "Operations": operations})
        except Failed:
            group.tainted = True
            raise
        return started, acked

    # reads: each must see this client's own acknowledged writes, at whichever instance

    def user_lookup(self) -> None:
        if not self.users:
            return
        user = self.rng.choice(self.users)
        query = (f'userName eq "{user.user_name}"' if self.okta or self.rng.random() < 0.5
                 else f'externalId eq "{user.external_id}"')
        response, _, _ = self.caller.call("user.lookup", "GET", "/Users", (200,),
                                          params={"filter": query})
        found = response.json()["Resources"]
        if user.tainted:
            return
        if len(found) != 1:
            self.stale_reads.append(f"{query}: {len(found)} results, expected 1")
        elif (found[0]["active"], found[0]["name"]["familyName"]) != (user.active, user.family):
            self.stale_reads.append(
                f"{query}: active={found[0]['active']} familyName="
                f"{found[0]['name']['familyName']}, last acknowledged active={user.active} "
                f"familyName={user.family}")

    def group_lookup(self) -> None:
        if not self.groups:
            return
        group = self.rng.choice(self.groups)
        if not self.okta:
            response, _, _ = self.caller.call(
                "group.lookup", "GET", "/Groups", (200,),
                params={"excludedAttributes": "members",
                        "filter": f'displayName eq "{group.name}"'})
            found = response.json()["Resources"]
            if len(found) != 1 or found[0]["id"] != group.id or "members" in found[0]:
                self.stale_reads.append(f"displayName eq {group.name!r}: {found!r:.200}")
            return
        response, _, _ = self.caller.call("group.lookup", "GET", f"/Groups/{group.id}", (200,))
        members = {m["value"] for m in response.json().get("members") or []}
        if not group.tainted and members != group.members:
            self.stale_reads.append(
                f"GET /Groups/{group.id}: members differ from the last acknowledged write "
                f"(missing {len(group.members - members)}, extra {len(members - group.members)})")


# -- the session clients (the application) -----------------------------------------------------


class AppClient:
    """Signs users in and introspects its sessions in turn, as an application does."""

    LIVE = 8

    def __init__(self, caller: Caller, shared: Shared, rng: random.Random) -> None:
        self.caller = caller
        self.shared = shared
        self.rng = rng
        self.sessions: list[SessionRecord] = []
        self.refusals: list[Refusal] = []
        self.live: list[SessionRecord] = []
        self.turn = 0

    def loop(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if not self.live or (len(self.live) < self.LIVE and self.rng.random() < 0.3):
                    if not self.sign_in():
                        time.sleep(0.01)  # nobody to sign in yet
                elif self.rng.random() < 0.02:
                    self.logout()
                else:
                    self.introspect()
            except Failed:
                pass

    def sign_in(self) -> bool:
        user_id = self.shared.pick(self.rng)
        if user_id is None:
            return False
        response, started, ended = self.caller.call(
            "session.create", "POST", "/sessions", (201, 403),
            body={"user_id": user_id, "client": self.rng.choice(("web", "mobile"))})
        if response.status_code == 403:
            self.refusals.append(Refusal(user_id, started, ended))
            return True
        body = response.json()
        record = SessionRecord(user_id, body["session_id"], body["token"], started, ended,
                               {g["id"] for g in body["groups"]})
        self.sessions.append(record)
        self.live.append(record)
        return True

    def introspect(self) -> None:
        self.turn += 1
        record = self.live[self.turn % len(self.live)]
        response, started, ended = self.caller.call(
            "session.introspect", "POST", "/sessions/introspect", (200,),
            form={"token": record.token})
        state = response.json()
        record.introspections.append(
            Introspection(started, ended, state["active"] is True, state.get("groups", [])))
        if state["active"] is not True:
            self.live.remove(record)

    def logout(self) -> None:
        record = self.rng.choice(self.live)
        _, _, acked = self.caller.call("session.logout", "DELETE", f"/sessions/{record.sid}",
                                       (204,))
        record.logout_acked = acked
        self.live.remove(record)


# -- the cluster -------------------------------------------------------------------------------


def empty_database(url: str) -> None:
    """Drop every table of the bench's database, so the first instance starts from nothing
    (and prints the first SCIM token)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@dataclass
class Cluster:
    servers: list[BridgeServer]
    scim_token: str
    sessions_token: str

    @property
    def bases(self) -> list[str]:
        return [server.base_url for server in self.servers]


@contextmanager
def cluster(config: Config) -> Iterator[Cluster]:
    """``config.instances`` ``scim-bridge serve`` processes on one fresh database."""
    empty_database(config.database_url)
    env = {k: v for k, v in os.environ.items() if k != "SCIM_BRIDGE_PUBLIC_URL"}
    env.update(UNTHROTTLED_ENV)
    env["SCIM_BRIDGE_PUBLIC_URL"] = "http://cluster.bench"  # one issuer for every instance
    if config.redis_url:
        env["SCIM_BRIDGE_REDIS_URL"] = config.redis_url
        env["SCIM_BRIDGE_RATE_LIMIT_KEY_PREFIX"] = f"cluster-{uuid.uuid4().hex[:8]}"
    serve_args = ("--workers", str(config.workers), "--threads", str(config.threads))
    servers: list[BridgeServer] = []
    try:
        first = BridgeServer(config.database_url, env=env, serve_args=serve_args)
        servers.append(first)
        scim_token = first.wait_for_line(r"SCIM token:\s+(sb_\S+)").group(1)
        first.wait_healthy()  # the first migrates; the others find the schema done
        for _ in range(config.instances - 1):
            servers.append(BridgeServer(config.database_url, env=env, serve_args=serve_args))
        for server in servers[1:]:
            server.wait_healthy()
        sessions_token = _cli(config.database_url, "token", "create", "--name",
                              "cluster-app", "--scope", "sessions")
        yield Cluster(servers, scim_token, sessions_token)
    finally:
        for server in servers:
            server.stop()


def _cli(database_url: str, *args: str) -> str:
    import subprocess

    result = subprocess.run([*scim_bridge_command(), *args], capture_output=True, text=True,
                            env={**os.environ, "SCIM_BRIDGE_DATABASE_URL": database_url},
                            timeout=60, check=True)
    return result.stdout.strip()


# -- the run and its verdict -------------------------------------------------------------------


@dataclass
class Report:
    config: Config
    elapsed: float
    stats: Stats
    violations: list[str]
    #: How much the run exercised what it checks (a run that checked nothing proves nothing).
    exercised: dict[str, int]
    load: tuple[str, str]


def run(config: Config) -> Report:
    """Start the cluster, drive it for ``config.seconds``, check the invariants."""
    rng = random.Random(config.seed)
    run_id = f"c{uuid.uuid4().hex[:6]}"
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with cluster(config) as running:
        shared = Shared()
        scim_bases = [f"{base}/scim/v2" for base in running.bases]
        idps = [IdpClient(i, run_id, Caller(scim_bases, running.scim_token,
                                            OKTA_HEADERS if i % 2 == 0 else ENTRA_HEADERS,
                                            Stats(), i), shared, config,
                          random.Random(rng.random()))
                for i in range(config.clients)]
        apps = [AppClient(Caller([f"{b}/api/v1" for b in running.bases],
                                 running.sessions_token, {}, Stats(), i), shared,
                          random.Random(rng.random()))
                for i in range(config.session_clients)]
        started = time.monotonic()
        deadline = started + config.seconds
        threads = [threading.Thread(target=c.loop, args=(deadline,), daemon=True)
                   for c in [*idps, *apps]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        stats = Stats()
        for client in [*idps, *apps]:
            stats.merge(client.caller.stats)
        violations, exercised = verify(running, idps, apps)
        for client in [*idps, *apps]:
            client.caller.close()
    violations[:0] = [f"request failed: {failure}" for failure in stats.failures]
    load = (load_at_start, " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return Report(config, elapsed, stats, violations, exercised, load)


def verify(running: Cluster, idps: list[IdpClient], apps: list[AppClient]
           ) -> tuple[list[str], dict[str, int]]:
    violations = [f"stale read: {s}" for idp in idps for s in idp.stale_reads]
    exercised: Counter[str] = Counter()
    violations += verify_state(running, idps, exercised)
    changes: dict[str, list[Change]] = defaultdict(list)
    for idp in idps:
        for change in idp.changes:
            changes[change.user_id].append(change)
    group_names = {g.id: g.name for idp in idps for g in idp.groups}
    sessions = [s for app in apps for s in app.sessions]
    must_end = []
    for record in sessions:
        ended_by = ending(record, changes[record.user_id], violations, exercised, group_names)
        if ended_by is not None:
            must_end.append(record)
    exercised["sessions"] = len(sessions)
    exercised["introspections"] = sum(len(s.introspections) for s in sessions)
    exercised["sessions that had to end"] = len(must_end)
    violations += still_active(running, must_end)
    for app in apps:
        for refusal in app.refusals:
            exercised["sign-ins refused (user inactive)"] += 1
            if not may_be_inactive(changes[refusal.user_id], refusal):
                violations.append(f"session refused (403) for user {refusal.user_id} who was "
                                  "active all through the request")
    return violations, dict(exercised)


def ending(record: SessionRecord, changes: list[Change], violations: list[str],
           exercised: Counter[str], group_names: dict[str, str]) -> float | None:
    """The earliest acknowledgement after which ``record`` must be inactive (None: never);
    checks each of its introspections against the changes of its user."""
    deadline: float | None = record.logout_acked
    for change in changes:
        if change.kind not in ("remove", "deactivate"):
            continue
        if record.acked < change.started:  # the session existed before the change began
            deadline = change.acked if deadline is None else min(deadline, change.acked)
        elif record.started < change.acked:  # they overlapped: either order is fine...
            allowed_after = (change.group_id not in record.group_ids
                             if change.kind == "remove"
                             else any(c.kind == "reactivate" and change.started < c.started
                                      < record.acked for c in changes))
            late = [i for i in record.introspections if i.active and i.started > change.acked]
            if late and not allowed_after:  # ...but only one that matches what it saw
                violations.append(
                    f"session {record.sid} began during a {change.kind} of user "
                    f"{record.user_id} and is still active after it, though it saw the state "
                    "from before")
    for introspection in record.introspections:
        if deadline is not None and introspection.started > deadline:
            exercised["introspections after the change that ended them"] += 1
            if introspection.active:
                violations.append(
                    f"session {record.sid} of user {record.user_id} was active in an "
                    f"introspection that began {introspection.started - deadline:.3f} s after "
                    "the change that ended it was acknowledged")
        if introspection.active:
            for name in stale_groups(record.user_id, changes, introspection, group_names):
                violations.append(f"session {record.sid}: introspection listed group {name!r} "
                                  "after the user's removal from it was acknowledged")
    return deadline


def stale_groups(user_id: str, changes: list[Change], introspection: Introspection,
                 group_names: dict[str, str]) -> list[str]:
    """Groups the introspection listed though the user's removal from them was acknowledged
    before it began, and no add-back had started before it ended."""
    listed = set(introspection.groups)
    stale = []
    for change in changes:
        if change.kind != "remove" or change.acked >= introspection.started:
            continue
        name = group_names.get(change.group_id or "")
        if name not in listed:
            continue
        added_back = any(c.kind == "add" and c.group_id == change.group_id
                         and c.started > change.started and c.started < introspection.ended
                         for c in changes)
        if not added_back:
            stale.append(name)
    return stale


def may_be_inactive(changes: list[Change], refusal: Refusal) -> bool:
    """Whether the user could have been inactive at some moment of the refused request."""
    state_before = True
    for change in sorted(changes, key=lambda c: c.started):
        if change.kind not in ("deactivate", "reactivate"):
            continue
        if change.acked < refusal.started:
            state_before = change.kind == "reactivate"
        elif change.started < refusal.ended and change.kind == "deactivate":
            return True
    return not state_before


def verify_state(running: Cluster, idps: list[IdpClient], exercised: Counter[str]
                 ) -> list[str]:
    """Every user's ``active`` and every group's members, read back through every instance,
    equal the owners' last acknowledged writes."""
    violations = []
    users = {u.id: u for idp in idps for u in idp.users}
    groups = {g.id: g for idp in idps for g in idp.groups}
    for number, base in enumerate(running.bases):
        with httpx.Client(base_url=f"{base}/scim/v2", timeout=REQUEST_TIMEOUT,
                          headers={"Authorization": f"Bearer {running.scim_token}"}) as client:
            seen_users = read_all(client, "/Users", {"attributes": "active"})
            seen_groups = read_all(client, "/Groups", {"attributes": "members"})
        for user in users.values():
            if user.tainted:
                continue
            if user.id not in seen_users:
                violations.append(f"instance {number}: user {user.id} is missing")
            elif seen_users[user.id].get("active") is not user.active:
                violations.append(f"instance {number}: user {user.user_name} has active="
                                  f"{seen_users[user.id].get('active')}, last acknowledged "
                                  f"{user.active}")
        for group in groups.values():
            if group.tainted:
                continue
            members = {m["value"] for m in seen_groups.get(group.id, {}).get("members") or []}
            if group.id not in seen_groups or members != group.members:
                violations.append(f"instance {number}: group {group.name!r} has {len(members)} "
                                  f"members, last acknowledged {len(group.members)}")
    exercised["users checked"] = sum(not u.tainted for u in users.values())
    exercised["groups checked"] = sum(not g.tainted for g in groups.values())
    exercised["memberships checked"] = sum(len(g.members) for g in groups.values())
    exercised["removals"] = sum(c.kind == "remove" for idp in idps for c in idp.changes)
    exercised["deactivations"] = sum(c.kind == "deactivate" for idp in idps for c in idp.changes)
    return violations


def read_all(client: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    start = 1
    while True:
        response = client.get(path, params={**params, "startIndex": str(start),
                                            "count": "500"})
        response.raise_for_status()
        page = response.json()
        for resource in page["Resources"]:
            found[resource["id"]] = resource
        start += len(page["Resources"])
        if not page["Resources"] or start > page["totalResults"]:
            return found


def still_active(running: Cluster, records: list[SessionRecord]) -> list[str]:
    """Introspect, once more, every session a removal, deactivation or logout had to end."""
    def check(record: SessionRecord, base: str) -> str | None:
        response = httpx.post(f"{base}/api/v1/sessions/introspect", data={"token": record.token},
                              headers={"Authorization": f"Bearer {running.sessions_token}"},
                              timeout=REQUEST_TIMEOUT)
        if response.status_code != 200:
            return f"final introspection of {record.sid}: {response.status_code}"
        if response.json()["active"] is not False:
            return f"session {record.sid} of user {record.user_id} is still active at the end"
        return None

    bases = running.bases
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(check, records, [bases[i % len(bases)] for i in range(len(records))])
        return [answer for answer in answers if answer]


# -- the table ---------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def print_report(report: Report) -> None:
    config, stats = report.config, report.stats
    print()
    print(f"scim-bridge cluster: {config.instances} instances x serve --workers {config.workers} "
          f"--threads {config.threads}, one PostgreSQL database"
          f"{', Redis limits' if config.redis_url else ''}; {config.clients} SCIM clients "
          f"(Okta/Entra alternating) + {config.session_clients} session clients, round robin, "
          f"{report.elapsed:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs shared by servers, PostgreSQL and the client threads "
          f"(one Python process); load average {report.load[0]} at start, {report.load[1]} at "
          "end")
    headers = ("request type", "count", "per s", "p50 ms", "p99 ms", "max ms", "statuses")
    rows = []
    for kind in [*KINDS, "all"]:
        samples = ([s for v in stats.latencies.values() for s in v] if kind == "all"
                   else stats.latencies.get(kind, []))
        counts = (sum(stats.statuses.values(), Counter()) if kind == "all"
                  else stats.statuses.get(kind, Counter()))
        if not samples:
            continue
        rows.append((kind, str(len(samples)), f"{len(samples) / report.elapsed:.1f}",
                     f"{percentile(samples, 0.5):.1f}", f"{percentile(samples, 0.99):.1f}",
                     f"{max(samples):.1f}",
                     " ".join(f"{code}:{n}" for code, n in sorted(counts.items()))))
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print("checked: " + ", ".join(f"{k} {v}" for k, v in report.exercised.items()))
    if report.violations:
        print(f"VIOLATIONS: {len(report.violations)}")
        for violation in report.violations[:50]:
            print(f"  {violation}")
    else:
        print("invariants: all hold (no 5xx, no lost write, every ended session inactive)")


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50, help="SCIM clients (IdP traffic)")
    parser.add_argument("--session-clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="the bench's own PostgreSQL database; emptied first "
                             "(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="serve --workers per instance")
    parser.add_argument("--threads", type=int, default=4, help="serve --threads per worker")
    parser.add_argument("--redis-url", default=None,
                        help="share the (unthrottled) rate-limit counters through this Redis")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the traffic")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL database")
    if min(args.instances, args.clients, args.session_clients) < 1 or args.seconds <= 0:
        parser.error("--instances, --clients, --session-clients and --seconds must be positive")
    return Config(args.database_url, args.instances, args.clients, args.session_clients,
                  args.seconds, args.workers, args.threads, redis_url=args.redis_url,
                  seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    print_report(report)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
