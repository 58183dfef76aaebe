"""Property tests with Hypothesis (issue 10 §3): random PATCH sequences on a user and a group
end in the state of a reference model, or in a 4xx that changed nothing (RFC 7644 §3.5.2).
Black-box over HTTP, on SQLite or on PostgreSQL (``SCIM_BRIDGE_TEST_DATABASE_URL``); runs and
seeds: tests/properties.py.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .properties import EXAMPLES, Node, property_settings

patch_properties = property_settings(EXAMPLES)

# -- PATCH sequences: the reference model (RFC 7644 §3.5.2) ---------------------------------

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: Small pools, so that operations collide: the same email twice, a name another user has.
STRINGS = ["Ann", "ann", "B b", "100%", "x_y"]
EMAIL_VALUES = ["a@x.io", "A@x.io", "b@x.io"]
EMAIL_TYPES = ["work", "Work", "home"]


class Refused(Exception):
    """The model's verdict that the server must refuse the request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status


def _without_duplicates(emails: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An element identical to an earlier one is dropped (the server deduplicates)."""
    kept: list[dict[str, Any]] = []
    for email in emails:
        if email not in kept:
            kept.append(email)
    return kept


def _type_is(email: dict[str, Any], wanted: str) -> bool:
    return str(email.get("type", "")).lower() == wanted.lower()  # type is caseExact=false


def apply_to_user(user: dict[str, Any], op: Node) -> None:
    """One operation on the model of a user, in place; ``Refused`` for a 4xx."""
    match op:
        case ("set", attribute, value):  # add or replace of a single-valued string
            if value == "" and attribute != "userName":
                user.pop(attribute, None)  # "" clears (the server's documented Entra rule)
            else:
                user[attribute] = value
        case ("remove", "userName"):
            raise Refused(400)  # required: mutability
        case ("remove", attribute):
            user.pop(attribute, None)
        case ("set_name", sub, value):
            user.setdefault("name", {})[sub] = value
        case ("remove_name", sub):
            name = user.get("name", {})
            name.pop(sub, None)
            if not name:
                user.pop("name", None)
        case ("active", value):
            if value not in (True, False, "True", "false"):
                raise Refused(400)
            user["active"] = value in (True, "True")
        case ("add_emails", added):
            user["emails"] = _without_duplicates([*user.get("emails", []), *added])
        case ("replace_emails", replaced):
            user["emails"] = _without_duplicates(replaced)
        case ("set_email_value", wanted_type, value):  # emails[type eq "t"].value
            emails = user.get("emails", [])
            selected = [email for email in emails if _type_is(email, wanted_type)]
            for email in selected:
                email["value"] = value
            if not selected:  # a filter that selects nothing adds the element (Entra)
                emails.append({"value": value, "type": wanted_type})
            user["emails"] = _without_duplicates(emails)
        case ("remove_emails_of_type", wanted_type):
            user["emails"] = [e for e in user.get("emails", []) if not _type_is(e, wanted_type)]
        case ("remove_email_value", value):  # value is caseExact=false
            user["emails"] = [
                e for e in user.get("emails", []) if e["value"].lower() != value.lower()
            ]
        case ("remove", ) | ("unknown_path",):
            raise Refused(400)
        case _:
            raise AssertionError(f"unknown operation {op!r}")
    if not user.get("emails", True):
        user.pop("emails")


def user_operation(op: Node) -> dict[str, Any]:
    """The PATCH operation for a model operation, in one of the spellings IdPs send."""
    match op:
        case ("set", attribute, value):
            return {"op": "replace" if attribute == "userName" else "add", "path": attribute,
                    "value": value}
        case ("remove", attribute):
            return {"op": "remove", "path": attribute}
        case ("set_name", sub, value):
            return {"op": "replace", "path": f"name.{sub}", "value": value}
        case ("remove_name", sub):
            return {"op": "remove", "path": f"name.{sub}"}
        case ("active", value):
            return {"op": "replace", "path": "active", "value": value}
        case ("add_emails", added):
            return {"op": "add", "path": "emails", "value": added}
        case ("replace_emails", replaced):
            return {"op": "replace", "path": "emails", "value": replaced}
        case ("set_email_value", wanted_type, value):
            return {"op": "replace", "path": f"emails[type eq {json.dumps(wanted_type)}].value",
                    "value": value}
        case ("remove_emails_of_type", wanted_type):
            return {"op": "remove", "path": f"emails[type eq {json.dumps(wanted_type)}]"}
        case ("remove_email_value", value):
            return {"op": "remove", "path": f"emails[value eq {json.dumps(value)}]"}
        case ("remove",):
            return {"op": "remove"}  # RFC 7644 §3.5.2.2: remove needs a path (noTarget)
        case ("unknown_path",):
            return {"op": "replace", "path": "shoeSize", "value": "44"}
    raise AssertionError(f"unknown operation {op!r}")


_emails = st.lists(
    st.fixed_dictionaries({"value": st.sampled_from(EMAIL_VALUES),
                           "type": st.sampled_from(EMAIL_TYPES)}),
    min_size=1, max_size=2,
)
USER_OPERATIONS: st.SearchStrategy[Node] = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["displayName", "title", "nickName"]),
              st.sampled_from(["", *STRINGS])),
    st.tuples(st.just("set"), st.just("userName"),
              st.sampled_from(["u-one", "U-ONE", "rival", "RIVAL"])),
    st.tuples(st.just("remove"), st.sampled_from(["displayName", "title", "userName"])),
    st.tuples(st.just("set_name"), st.sampled_from(["givenName", "familyName"]),
              st.sampled_from(STRINGS)),
    st.tuples(st.just("remove_name"), st.sampled_from(["givenName", "familyName"])),
    st.tuples(st.just("active"), st.sampled_from([True, False, "True", "false", "maybe"])),
    st.tuples(st.just("add_emails"), _emails),
    st.tuples(st.just("replace_emails"), _emails),
    st.tuples(st.just("set_email_value"), st.sampled_from(EMAIL_TYPES),
              st.sampled_from(EMAIL_VALUES)),
    st.tuples(st.just("remove_emails_of_type"), st.sampled_from(EMAIL_TYPES)),
    st.tuples(st.just("remove_email_value"), st.sampled_from(EMAIL_VALUES)),
    st.sampled_from([("remove",), ("unknown_path",)]),
)


def apply_to_group(group: dict[str, Any], op: Node, known_users: set[str]) -> None:
    """One operation on the model of a group (displayName, externalId, member ids)."""
    match op:
        case ("rename", ""):
            raise Refused(400)  # required: mutability
        case ("rename", name):
            group["displayName"] = name
        case ("remove", "displayName"):
            raise Refused(400)
        case ("external_id", value):
            if value:
                group["externalId"] = value
            else:
                group.pop("externalId", None)
        case ("add_members", ids):
            if not set(ids) <= known_users:
                raise Refused(400)  # members must be users of this tenant
            group["members"] |= set(ids)
        case ("replace_members", ids):
            if not set(ids) <= known_users:
                raise Refused(400)
            group["members"] = set(ids)
        case ("remove_member", member_id):
            group["members"].discard(member_id)
        case ("remove", "members"):
            group["members"] = set()
        case _:
            raise AssertionError(f"unknown operation {op!r}")


def group_operation(op: Node) -> dict[str, Any]:
    match op:
        case ("rename", name):
            return {"op": "replace", "path": "displayName", "value": name}
        case ("remove", path):
            return {"op": "remove", "path": path}
        case ("external_id", ""):
            return {"op": "remove", "path": "externalId"}
        case ("external_id", value):
            return {"op": "replace", "path": "externalId", "value": value}
        case ("add_members", ids):
            return {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
        case ("replace_members", ids):
            return {"op": "replace", "path": "members", "value": [{"value": i} for i in ids]}
        case ("remove_member", member_id):
            return {"op": "remove", "path": f"members[value eq {json.dumps(member_id)}]"}
    raise AssertionError(f"unknown operation {op!r}")


#: Members are named by role; the test puts in the ids: the user under test, a second user,
#: and an id nobody has (in REQUESTS, which adds it to refused requests on purpose).
_member_ids = st.lists(st.sampled_from(["user", "other"]), min_size=1, max_size=2)
GROUP_OPERATIONS: st.SearchStrategy[Node] = st.one_of(
    st.tuples(st.just("rename"), st.sampled_from(["Team", "team", "rival", "Rival", "", "G_1%"])),
    st.tuples(st.just("remove"), st.sampled_from(["displayName", "members"])),
    st.tuples(st.just("external_id"), st.sampled_from(
        ["", "ext-1", "EXT-1", "ext-rival", "EXT-RIVAL"])),
    st.tuples(st.just("add_members"), _member_ids),
    st.tuples(st.just("replace_members"), _member_ids),
    st.tuples(st.just("remove_member"), st.sampled_from(["user", "other", "nobody"])),
)
#: One request: a user PATCH or a group PATCH of one to three operations, applied atomically;
#: some end in an operation that must be refused, after others that would change something.
REQUESTS = st.one_of(
    st.tuples(st.just("user"), st.lists(USER_OPERATIONS, min_size=1, max_size=3)),
    st.tuples(st.just("group"), st.lists(GROUP_OPERATIONS, min_size=1, max_size=3)),
    st.tuples(st.just("user"), st.lists(USER_OPERATIONS, min_size=1, max_size=2).map(
        lambda operations: [*operations, ("unknown_path",)])),
    st.tuples(st.just("group"), st.lists(GROUP_OPERATIONS, min_size=1, max_size=2).map(
        lambda operations: [*operations, ("add_members", ["nobody"])])),
)


# -- PATCH sequences: the property -----------------------------------------------------------


@dataclass
class Rivals:
    """A user and a group whose names the generated operations may try to take, and a
    second user to add as a member."""

    user: dict[str, Any]
    group: dict[str, Any]


@pytest.fixture
def rivals(scim: httpx.Client) -> Rivals:
    user = scim.post("/Users", json={"userName": "rival", "displayName": "Rival"})
    group = scim.post("/Groups", json={"displayName": "rival", "externalId": "ext-rival"})
    assert (user.status_code, group.status_code) == (201, 201), (user.text, group.text)
    return Rivals(user.json(), group.json())


def _user_state(scim: httpx.Client, user_id: str) -> tuple[dict[str, Any], set[str]]:
    """The user as GET returns it, without what the server alone decides (meta, schemas),
    and apart from it the ids of the user's groups."""
    response = scim.get(f"/Users/{user_id}")
    assert response.status_code == 200, response.text
    user = response.json()
    groups = {group["value"] for group in user.get("groups", [])}
    return {k: v for k, v in user.items() if k not in ("meta", "schemas", "groups")}, groups


def _group_state(scim: httpx.Client, group_id: str) -> dict[str, Any]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.text
    group = response.json()
    state = {k: v for k, v in group.items() if k not in ("meta", "schemas", "members")}
    return {**state, "members": {member["value"] for member in group.get("members", [])}}


def _expected_status(
    operations: list[Node], apply: Callable[[Node], None], conflicts: Callable[[], bool]
) -> int:
    """0 when the model accepts the request; else the status of the refusal. Operations are
    checked in order and the first invalid one is a 400; uniqueness (409) is a property of
    the resource as written, after the last operation: a name taken and given back is fine."""
    for op in operations:
        try:
            apply(op)
        except Refused as refusal:
            return refusal.status
    return 409 if conflicts() else 0


def _takes_a_rivals_name(resource: dict[str, Any], rivals: Rivals) -> bool:
    """userName and displayName are unique caseExact=false, externalId caseExact."""
    if "userName" in resource:
        return resource["userName"].lower() == rivals.user["userName"].lower()
    return (resource["displayName"].lower() == rivals.group["displayName"].lower()
            or resource.get("externalId") == rivals.group["externalId"])


@patch_properties
@given(requests=st.lists(REQUESTS, min_size=3, max_size=8))
def test_a_random_patch_sequence_ends_where_the_model_does(
    scim: httpx.Client, rivals: Rivals, requests: list[tuple[str, list[Node]]]
) -> None:
    """After every request: a 2xx and GET equals the model, or the model's 4xx and GET
    equals the state before; membership agrees seen from the group and from each user."""
    created = scim.post("/Users", json={"userName": f"u-{uuid.uuid4().hex}"})
    assert created.status_code == 201, created.text
    user_id, other_id = created.json()["id"], rivals.user["id"]
    team = scim.post("/Groups", json={"displayName": f"g-{uuid.uuid4().hex}"})
    assert team.status_code == 201, team.text
    group_id = team.json()["id"]
    ids = {"user": user_id, "other": other_id, "nobody": str(uuid.uuid4())}
    tag = uuid.uuid4().hex[:8]
    user, group = _user_state(scim, user_id)[0], _group_state(scim, group_id)
    for target, operations in requests:
        operations = [_with_ids(op, ids, tag) for op in operations]
        before = copy.deepcopy((user, group))
        changed = user if target == "user" else group
        apply = (
            partial(apply_to_user, user)
            if target == "user"
            else partial(apply_to_group, group, known_users={user_id, other_id})
        )
        expected_status = _expected_status(
            operations, apply, partial(_takes_a_rivals_name, changed, rivals)
        )
        if expected_status:
            user, group = before
        render = user_operation if target == "user" else group_operation
        body = {"schemas": [PATCH_OP], "Operations": [render(op) for op in operations]}
        path = f"/Users/{user_id}" if target == "user" else f"/Groups/{group_id}"
        response = scim.patch(path, json=body)
        story = (target, operations, response.status_code, response.text)
        if expected_status:
            assert response.status_code == expected_status, story
        else:
            assert response.status_code in (200, 204), story
        user_now, groups_of_user = _user_state(scim, user_id)
        assert user_now == user, story
        assert _group_state(scim, group_id) == group, story
        assert (group_id in groups_of_user) == (user_id in group["members"]), story
        groups_of_other = _user_state(scim, other_id)[1]
        assert (group_id in groups_of_other) == (other_id in group["members"]), story


def _with_ids(op: Node, ids: dict[str, str], tag: str) -> Node:
    """An operation naming members by role, with the roles replaced by ids, and its new
    userName or displayName made this example's own (``tag``): earlier examples' users and
    groups are still in the database. The rivals' names stay as they are."""
    match op:
        case ("set", "userName", name) if name.lower() != "rival":
            return ("set", "userName", f"{name}-{tag}")
        case ("rename", name) if name.lower() not in ("rival", ""):
            return ("rename", f"{name}-{tag}")
        case ("external_id", value) if value not in ("ext-rival", ""):  # caseExact
            return ("external_id", f"{value}-{tag}")
        case ("add_members" | "replace_members" as kind, roles):
            return (kind, [ids[role] for role in roles])
        case ("remove_member", role):
            return ("remove_member", ids[role])
    return op
