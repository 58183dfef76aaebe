"""IdPs send requests in parallel: a real server with two worker processes must serialise
them correctly (on SQLite, and on PostgreSQL when the suite runs against it)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from .scimdata import patch, user_body


def _client(server) -> httpx.Client:
    return server.client({"Accept": "application/scim+json"})


def test_twenty_parallel_patches_each_adding_a_member_keep_all_twenty(server):
    with _client(server) as scim:
        user_ids = [scim.post("/Users", json=user_body(f"par{i}@example.com")).json()["id"]
                    for i in range(20)]
        group_id = scim.post("/Groups", json={"displayName": "Parallel"}).json()["id"]

    def add(user_id: str) -> int:
        with _client(server) as client:
            body = patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
            return client.patch(f"/Groups/{group_id}", json=body).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(add, user_ids))
    assert statuses == [204] * 20
    with _client(server) as scim:
        members = scim.get(f"/Groups/{group_id}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted(user_ids)


def test_ten_parallel_creates_of_one_username_give_one_201_and_nine_409(server):
    def create(i: int) -> int:
        with _client(server) as client:
            name = "Race@Example.com" if i % 2 else "race@example.com"
            return client.post("/Users", json=user_body(name)).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = Counter(pool.map(create, range(10)))
    assert statuses == Counter({201: 1, 409: 9})
    with _client(server) as scim:
        found = scim.get("/Users", params={"filter": 'userName eq "race@example.com"'}).json()
    assert found["totalResults"] == 1


def test_parallel_group_creates_of_one_name_give_one_201(server):
    def create(_: int) -> int:
        with _client(server) as client:
            return client.post("/Groups", json={"displayName": "Racing"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = Counter(pool.map(create, range(8)))
    assert statuses == Counter({201: 1, 409: 7})
