"""SSF subjects as a receiver meets them over HTTP: a stream of format ``email`` names users by
their address in every CAEP and RISC SET (RFC 9493 §3.2.2), and a subject the stream removes
(SSF 1.0 §8.1.3.3) sends it none of that user's events until it is added back (§8.1.3.2),
whichever of the formats we send names it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from scim_bridge.models import RemovedSubject

from . import test_ssf as ssf
from .conftest import PUBLIC_URL, admin_client, http_client, make_token
from .receivers import deliveries_of
from .scimdata import create_user, patch
from .sessionkit import start_session
from .test_ssf import (
    API,
    DISABLED,
    ENABLED,
    PURGED,
    SESSION_REVOKED,
    STREAM_UPDATED,
    VERIFICATION,
    checked,
    create,
    event_type,
    polled,
    push_stream,
    set_active,
)

# The SSF tests' fixtures: their short backoff and long poll, and the receiver's ssf client.
settings = ssf.settings
rp = ssf.rp


def drained(rp: Any, anonymous: Any, stream: dict[str, Any]) -> list[dict[str, Any]]:
    """Every SET waiting on a poll stream, checked, in order; acknowledged, so the next
    call sees only newer ones."""
    sets = polled(rp, stream)["sets"]
    if sets:
        polled(rp, stream, ack=list(sets), maxEvents=0)
    return [checked(anonymous, token, stream) for token in sets.values()]


def iss_sub(user: dict[str, Any]) -> dict[str, str]:
    return {"format": "iss_sub", "iss": PUBLIC_URL, "sub": user["id"]}


def about(sets: list[dict[str, Any]], user: dict[str, Any]) -> list[str]:
    """The event types of the SETs whose subject is ``user`` (by id or by email)."""
    names = ({"format": "iss_sub", "iss": PUBLIC_URL, "sub": user["id"]},
             *({"format": "email", "email": e["value"]} for e in user.get("emails", [])))
    return [event_type(c) for c in sets if c["sub_id"] in names]


def remove(rp: Any, stream: dict[str, Any], subject: Any) -> None:
    response = rp.post("/subjects/remove", json={"stream_id": stream["stream_id"],
                                                 "subject": subject})
    assert response.status_code == 204 and response.content == b"", response.text


def add(rp: Any, stream: dict[str, Any], subject: Any, **extra: Any) -> None:
    response = rp.post("/subjects/add", json={"stream_id": stream["stream_id"],
                                              "subject": subject, **extra})
    assert response.status_code == 200 and response.content == b"", response.text


def emails(*values: str, primary: str | None = None) -> list[dict[str, Any]]:
    return [{"value": v, "type": "work", **({"primary": True} if v == primary else {})}
            for v in values]


# --- the email format ------------------------------------------------------------------


def test_an_email_stream_names_the_user_by_their_primary_email_in_every_set(
        rp, scim, api, anonymous, receiver, worker):
    stream = push_stream(rp, receiver.url, format="email")
    assert stream["format"] == "email"
    assert rp.get("/streams", params={"stream_id": stream["stream_id"]}).json() == stream
    user = create_user(scim, "alice", emails=emails(
        "alice.old@example.com", "Alice.Primary@Example.com",
        primary="Alice.Primary@Example.com"))
    start_session(api, user_id=user["id"])
    set_active(scim, user, False)
    sets = [checked(anonymous, r.body.decode(), stream) for r in receiver.wait_for(2)]
    assert sorted(event_type(c) for c in sets) == sorted([DISABLED, SESSION_REVOKED])
    for claims in sets:  # checked() also holds the subject inside the event to sub_id
        assert claims["sub_id"] == {"format": "email", "email": "Alice.Primary@Example.com"}


def test_without_a_primary_the_first_email_names_the_user_and_without_any_iss_sub(
        rp, scim, anonymous):
    stream = create(rp, format="email")
    first = create_user(scim, "bob", emails=emails("bob@example.com", "b2@example.com"))
    nameless = create_user(scim, "carol", emails=[])
    for user in (first, nameless):
        set_active(scim, user, False)
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [
        {"format": "email", "email": "bob@example.com"}, iss_sub(nameless)]


def test_one_logout_of_many_users_names_each_by_their_own_email(app, rp, api, scim, anonymous):
    """A bulk change records its events together (events/record.py reads their emails in one
    query): each SET still names its own user, primary first, else the first, else iss_sub."""
    stream = create(rp, format="email")
    users = [
        create_user(scim, "erin", emails=emails("erin.old@example.com", "Erin@Example.com",
                                                primary="Erin@Example.com")),
        create_user(scim, "frank", emails=emails("frank@example.com", "f2@example.com")),
        create_user(scim, "gina", emails=[]),
    ]
    for user in users:
        start_session(api, user_id=user["id"])
    with admin_client(app) as admin:
        done = admin.post("/force-logout", json={"user_ids": [u["id"] for u in users]})
        assert done.json() == {"users": 3, "revoked_sessions": 3}, done.text
    sets = drained(rp, anonymous, stream)
    assert {event_type(c) for c in sets} == {SESSION_REVOKED}
    assert sorted(map(str, (c["sub_id"] for c in sets))) == sorted(map(str, [
        {"format": "email", "email": "Erin@Example.com"},
        {"format": "email", "email": "frank@example.com"}, iss_sub(users[2])]))


def test_the_email_a_set_names_is_the_one_the_user_had_when_it_happened(rp, scim, anonymous):
    stream = create(rp, format="email")
    user = create_user(scim, "dave@example.com")
    set_active(scim, user, False)
    changed = scim.patch(f"/Users/{user['id']}", json=patch(
        {"op": "replace", "path": "emails", "value": emails("new@example.com")}))
    assert changed.status_code == 200, changed.text
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    sets = drained(rp, anonymous, stream)
    assert [(event_type(c), c["sub_id"]["email"]) for c in sets] == [
        (DISABLED, "dave@example.com"), (PURGED, "new@example.com")]


def test_a_stream_may_switch_to_email_by_update_and_back_by_replace(rp, scim, anonymous):
    stream = create(rp)
    sid = stream["stream_id"]
    patched = rp.patch("/streams", json={"stream_id": sid, "format": "email"})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**stream, "format": "email"}
    user = create_user(scim, "erin@example.com")
    set_active(scim, user, False)
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [
        {"format": "email", "email": "erin@example.com"}]
    replaced = rp.put("/streams", json={"stream_id": sid})
    assert replaced.status_code == 200 and replaced.json()["format"] == "iss_sub"
    set_active(scim, user, True)
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [iss_sub(user)]
    assert rp.put("/streams", json={"stream_id": sid, "format": "email"}
                  ).json()["format"] == "email"


@pytest.mark.parametrize("bad", ["EMAIL", "phone_number", "opaque", 5, None, ["email"]])
def test_a_bad_format_in_an_update_is_a_400_that_changes_nothing(rp, bad):
    stream = create(rp, format="email")
    for method in (rp.patch, rp.put):
        response = method("/streams", json={"stream_id": stream["stream_id"], "format": bad})
        assert response.status_code == 400, response.text
        assert "format" in response.json()["error_description"]
    assert rp.get("/streams").json() == [stream]


# --- removing and adding subjects --------------------------------------------------------


def test_a_removed_subject_gets_no_events_until_it_is_added_again(rp, scim, api, anonymous):
    stream = create(rp)
    alice, bob = create_user(scim, "alice@example.com"), create_user(scim, "bob@example.com")
    remove(rp, stream, iss_sub(alice))
    remove(rp, stream, iss_sub(alice))  # twice is once
    start_session(api, user_id=alice["id"])
    for user in (alice, bob):
        set_active(scim, user, False)
    assert rp.post("/verify", json={"stream_id": stream["stream_id"], "state": "s"}
                   ).status_code == 204
    sets = drained(rp, anonymous, stream)
    assert about(sets, alice) == []
    assert about(sets, bob) == [DISABLED]
    assert [event_type(c) for c in sets] == [DISABLED, VERIFICATION]
    add(rp, stream, iss_sub(alice), verified=True)
    add(rp, stream, iss_sub(alice))  # adding a subject the stream has changes nothing
    for user in (alice, bob):
        set_active(scim, user, True)
    sets = drained(rp, anonymous, stream)
    assert about(sets, alice) == [ENABLED] and about(sets, bob) == [ENABLED]


def test_removing_a_subject_drops_what_a_poll_stream_still_holds_for_them(
        rp, scim, api, anonymous):
    stream = create(rp)
    alice, bob = create_user(scim, "alice@example.com"), create_user(scim, "bob@example.com")
    start_session(api, user_id=alice["id"])
    for user in (alice, bob):
        set_active(scim, user, False)
    waiting = polled(rp, stream)["sets"]
    assert len(waiting) == 3  # alice's account-disabled and session-revoked, bob's
    remove(rp, stream, iss_sub(alice))
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [iss_sub(bob)]


def test_removing_a_subject_drops_what_a_paused_stream_holds_for_them(
        rp, scim, anonymous, receiver, worker):
    stream = push_stream(rp, receiver.url)
    ssf.set_status(rp, stream["stream_id"], "paused")
    alice, bob = create_user(scim, "alice@example.com"), create_user(scim, "bob@example.com")
    for active in (False, True):
        for user in (alice, bob):
            set_active(scim, user, active)
    remove(rp, stream, {"format": "email", "email": "alice@example.com"})
    ssf.set_status(rp, stream["stream_id"], "enabled")
    requests = receiver.wait_for(2)
    time.sleep(0.3)
    sets = [checked(anonymous, r.body.decode(), stream) for r in receiver.requests]
    assert about(sets, alice) == [] and about(sets, bob) == [DISABLED, ENABLED]
    assert len(requests) == 2


def _named(user: dict[str, Any], how: str) -> dict[str, Any]:
    email = user["emails"][0]["value"]
    return {
        "iss_sub": iss_sub(user),
        "email": {"format": "email", "email": email},
        "email in other case": {"format": "email", "email": email.upper()},
        "opaque": {"format": "opaque", "id": user["id"]},
        "complex user": {"format": "complex", "user": iss_sub(user)},
        "complex user and tenant": {"format": "complex", "user": {"format": "email",
                                                                  "email": email},
                                    "tenant": {"format": "opaque", "id": "default"}},
    }[how]


@pytest.mark.parametrize("how", ["iss_sub", "email", "email in other case", "opaque",
                                 "complex user", "complex user and tenant"])
def test_every_format_we_send_names_the_user_to_remove_and_add(rp, scim, anonymous, how):
    stream = create(rp)
    alice, bob = create_user(scim, "alice@example.com"), create_user(scim, "bob@example.com")
    remove(rp, stream, _named(alice, how))
    for user in (alice, bob):
        set_active(scim, user, False)
    sets = drained(rp, anonymous, stream)
    assert about(sets, alice) == [] and about(sets, bob) == [DISABLED]
    add(rp, stream, _named(alice, how))
    set_active(scim, alice, True)
    assert about(drained(rp, anonymous, stream), alice) == [ENABLED]


def test_an_email_two_users_share_removes_both(rp, scim, anonymous):
    stream = create(rp)
    shared = "team@example.com"
    one = create_user(scim, "one", emails=emails("one@example.com", shared))
    two = create_user(scim, "two", emails=emails(shared))
    other = create_user(scim, "three@example.com")
    remove(rp, stream, {"format": "email", "email": shared})
    for user in (one, two, other):
        set_active(scim, user, False)
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [iss_sub(other)]


def test_a_removal_stays_with_the_user_whatever_their_email_becomes(rp, scim, anonymous):
    stream = create(rp, format="email")
    user = create_user(scim, "frank@example.com")
    remove(rp, stream, {"format": "email", "email": "frank@example.com"})
    changed = scim.patch(f"/Users/{user['id']}", json=patch(
        {"op": "replace", "path": "emails", "value": emails("f2@example.com")}))
    assert changed.status_code == 200, changed.text
    set_active(scim, user, False)
    assert drained(rp, anonymous, stream) == []
    add(rp, stream, {"format": "email", "email": "frank@example.com"})  # no longer his
    set_active(scim, user, True)
    assert drained(rp, anonymous, stream) == []
    add(rp, stream, {"format": "email", "email": "F2@example.com"})
    set_active(scim, user, False)
    assert [c["sub_id"] for c in drained(rp, anonymous, stream)] == [
        {"format": "email", "email": "f2@example.com"}]


def _nobody(app: Any, scim: Any) -> dict[str, dict[str, Any]]:
    """Well-formed subjects that name none of this tenant's users."""
    with http_client(app, make_token(app, "acme-idp", "scim", tenant="acme"), "/scim/v2"
                     ) as acme:
        stranger = create_user(acme, "alice@example.com")  # same address, other tenant
    return {
        "another issuer": {"format": "iss_sub", "iss": "https://other.example", "sub": "x"},
        "an unknown id": {"format": "iss_sub", "iss": PUBLIC_URL, "sub": "no-such-user"},
        "another tenant's user": iss_sub(stranger),
        "an unknown email": {"format": "email", "email": "nobody@example.com"},
        "a format we never send": {"format": "phone_number", "phone_number": "+12065550100"},
        "another tenant": {"format": "complex", "user": {"format": "opaque", "id": "x"},
                           "tenant": {"format": "opaque", "id": "acme"}},
        "the stream itself": {"format": "opaque", "id": "stream"},
    }


def test_subjects_that_name_nobody_of_ours_are_accepted_and_change_nothing(
        app, rp, scim, anonymous):
    stream = create(rp)
    alice = create_user(scim, "alice@example.com")
    for name, subject in _nobody(app, scim).items():
        if name == "the stream itself":
            subject = {**subject, "id": stream["stream_id"]}
        remove(rp, stream, subject)
        add(rp, stream, subject)
        remove(rp, stream, subject)
    set_active(scim, alice, False)
    assert rp.post("/verify", json={"stream_id": stream["stream_id"]}).status_code == 204
    assert [event_type(c) for c in drained(rp, anonymous, stream)] == [DISABLED, VERIFICATION]


_BAD_SUBJECTS = [
    ("alice", "subject"),
    ([], "subject"),
    ({"format": 5, "id": "x"}, "subject"),
    ({"format": "iss_sub", "sub": "x"}, "subject.iss"),
    ({"format": "iss_sub", "iss": PUBLIC_URL, "sub": 5}, "subject.sub"),
    ({"format": "iss_sub", "iss": PUBLIC_URL, "sub": "x", "extra": 1}, "extra"),
    ({"format": "email", "email": "not-an-address"}, "subject.email"),
    ({"format": "email", "email": "a@" + "x" * 2048}, "subject.email"),
    ({"format": "opaque", "id": ""}, "subject.id"),
    ({"format": "complex"}, "subject"),
    ({"format": "complex", "tenant": {"format": "opaque", "id": "default"}}, "user"),
    ({"format": "complex", "user": "alice"}, "subject.user"),
    ({"format": "complex", "user": {"format": "complex", "user": {"format": "opaque",
                                                                  "id": "x"}}}, "complex"),
    ({"format": "complex", "user": {"format": "opaque", "id": "x"},
      "session": {"format": "opaque", "id": "s"}}, "session"),
    ({"format": "complex", "user": {"format": "opaque", "id": "x"},
      "tenant": {"format": "opaque"}}, "subject.tenant"),
]


@pytest.mark.parametrize(("subject", "named"), _BAD_SUBJECTS)
def test_a_malformed_subject_is_a_400_that_changes_nothing(rp, scim, anonymous, subject,
                                                           named):
    stream = create(rp)
    alice = create_user(scim, "alice@example.com")
    for path in ("/subjects/remove", "/subjects/add"):
        response = rp.post(path, json={"stream_id": stream["stream_id"], "subject": subject})
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert named in response.json()["error_description"]
    set_active(scim, alice, False)
    assert about(drained(rp, anonymous, stream), alice) == [DISABLED]


def test_a_subject_request_needs_a_stream_and_a_subject(rp):
    stream = create(rp)
    for path in ("/subjects/remove", "/subjects/add"):
        for body, named in (({"stream_id": stream["stream_id"]}, "subject"),
                            ({"subject": {"format": "opaque", "id": "x"}}, "stream_id"),
                            ({"stream_id": stream["stream_id"], "subject": {
                                "format": "opaque", "id": "x"}, "extra": 1}, "extra")):
            response = rp.post(path, json=body)
            assert response.status_code == 400, (path, response.text)
            assert named in response.json()["error_description"]


def test_a_removal_survives_updates_of_the_stream_and_goes_with_it(app, rp, scim, anonymous):
    stream = create(rp, description="mine")
    sid = stream["stream_id"]
    alice = create_user(scim, "alice@example.com")
    remove(rp, stream, iss_sub(alice))
    assert rp.patch("/streams", json={"stream_id": sid, "description": "renamed"}
                    ).status_code == 200
    assert rp.put("/streams", json={"stream_id": sid, "format": "email"}).status_code == 200
    for status in ("paused", "enabled"):
        ssf.set_status(rp, sid, status)
    set_active(scim, alice, False)
    assert drained(rp, anonymous, stream) == []
    assert rp.delete("/streams", params={"stream_id": sid}).status_code == 204
    assert _removals(app) == 0  # no removal outlives its stream


def test_a_removal_goes_with_its_user(app, rp, scim):
    stream = create(rp)
    alice = create_user(scim, "alice@example.com")
    remove(rp, stream, iss_sub(alice))
    assert _removals(app) == 1
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    assert _removals(app) == 0


def _removals(app: Any) -> int:
    """Rows of removed subjects left in the database (no HTTP interface shows them)."""
    with app.extensions["scim_bridge"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(RemovedSubject)) or 0)


def test_another_tenants_receiver_cannot_touch_a_streams_subjects(app, rp, scim, anonymous):
    stream = create(rp)
    alice = create_user(scim, "alice@example.com")
    remove(rp, stream, iss_sub(alice))
    with http_client(app, make_token(app, "acme-rp", "ssf", tenant="acme"), API) as other:
        for path in ("/subjects/add", "/subjects/remove"):
            response = other.post(path, json={"stream_id": stream["stream_id"],
                                              "subject": iss_sub(alice)})
            assert response.status_code == 404, response.text
    set_active(scim, alice, False)
    assert drained(rp, anonymous, stream) == []


def test_a_push_stream_gets_no_delivery_for_a_removed_subject_but_others_still_do(
        app, rp, scim, api, anonymous, receiver, worker):
    removing = push_stream(rp, receiver.url)
    keeping = create(rp)  # another stream of the tenant keeps every subject
    alice, bob = create_user(scim, "alice@example.com"), create_user(scim, "bob@example.com")
    remove(rp, removing, {"format": "email", "email": "alice@example.com"})
    start_session(api, user_id=alice["id"])
    for user in (alice, bob):
        set_active(scim, user, False)
    (request,) = receiver.wait_for(1)
    assert checked(anonymous, request.body.decode(), removing)["sub_id"] == iss_sub(bob)
    with admin_client(app) as admin:
        pushed = [d for d in deliveries_of(admin) if d["receiver"] == removing["stream_id"]]
        assert len(pushed) == 1  # no row was added for alice's two events
        paused = admin.post(f"/streams/{removing['stream_id']}/status",
                            json={"status": "paused"})
        assert paused.status_code == 200, paused.text
    (_, updated) = receiver.wait_for(2)
    assert event_type(checked(anonymous, updated.body.decode(), removing)) == STREAM_UPDATED
    assert sorted(about(drained(rp, anonymous, keeping), alice)) == sorted(
        [DISABLED, SESSION_REVOKED])
