"""Scale-out under load (issue 10, point 5): bench/bench_cluster.py's engine, shorter, in CI.

Three ``scim-bridge serve`` instances on one PostgreSQL database take Okta- and Entra-style
traffic and application sessions at once; afterwards every write the clients saw acknowledged
is what every instance answers, every session a removal or deactivation had to end is
inactive, and no request got a 5xx. The checker itself is tested on made-up histories, so a
violation cannot go unnoticed.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench.bench_cluster import (
    Change,
    Config,
    Introspection,
    Refusal,
    SessionRecord,
    ending,
    may_be_inactive,
    print_report,
    run,
)

from .conftest import postgres_unreachable
from .live import PG_URL, fresh_database


def test_three_instances_keep_every_acknowledged_write_and_end_every_session(capsys):
    if not PG_URL.startswith("postgresql"):
        postgres_unreachable("the cluster test needs PostgreSQL: set "
                             "SCIM_BRIDGE_TEST_DATABASE_URL to a postgresql+psycopg:// URL")
    with fresh_database() as database_url:
        report = run(Config(database_url, instances=3, clients=8, session_clients=4,
                            seconds=9, workers=1, threads=4, seed=10))
    print_report(report)
    with capsys.disabled():
        print(capsys.readouterr().out)
    assert report.violations == []
    assert report.stats.statuses["session.introspect"][200] > 0
    for what in ("removals", "deactivations", "sessions that had to end", "users checked",
                 "memberships checked"):
        assert report.exercised.get(what, 0) > 0, (what, report.exercised)


# -- the checker, on histories made by hand ----------------------------------------------------


def _session(started: float, acked: float, *introspections: tuple[float, bool, list[str]],
             group_ids: set[str] | None = None) -> SessionRecord:
    record = SessionRecord("u1", "s1", "token", started, acked,
                           {"g1"} if group_ids is None else group_ids)
    record.introspections = [Introspection(at, at + 0.01, active, groups)
                             for at, active, groups in introspections]
    return record


def _check(record: SessionRecord, changes: list[Change]) -> list[str]:
    violations: list[str] = []
    ending(record, changes, violations, Counter(), {"g1": "Group one"})
    return violations


REMOVAL = Change("remove", "u1", started=10.0, acked=10.5, group_id="g1")
DEACTIVATION = Change("deactivate", "u1", started=10.0, acked=10.5)


@pytest.mark.parametrize("change", [REMOVAL, DEACTIVATION], ids=["removal", "deactivation"])
def test_an_active_introspection_after_the_change_that_ended_the_session_is_a_violation(change):
    record = _session(1.0, 1.1, (5.0, True, ["Group one"]), (11.0, True, []))
    assert len(_check(record, [change])) == 1


def test_an_inactive_introspection_after_the_change_is_what_it_should_be():
    record = _session(1.0, 1.1, (5.0, True, ["Group one"]), (11.0, False, []))
    assert _check(record, [REMOVAL]) == []


def test_a_session_created_after_the_removal_may_stay_active():
    record = _session(10.6, 10.7, (11.0, True, []))
    assert _check(record, [REMOVAL]) == []


def test_a_session_begun_during_a_removal_may_stay_active_only_without_the_group():
    without = _session(10.2, 10.8, (11.0, True, []), group_ids=set())
    with_group = _session(10.2, 10.8, (11.0, True, []), group_ids={"g1"})
    assert _check(without, [REMOVAL]) == []
    assert len(_check(with_group, [REMOVAL])) == 1


def test_listing_a_group_after_the_removal_from_it_is_a_violation():
    record = _session(10.6, 10.7, (11.0, True, ["Group one"]), group_ids=set())
    assert len(_check(record, [REMOVAL])) == 1
    added_back = Change("add", "u1", started=10.8, acked=10.9, group_id="g1")
    assert _check(record, [REMOVAL, added_back]) == []


def test_a_logged_out_session_must_stay_inactive():
    record = _session(1.0, 1.1, (3.0, True, []))
    record.logout_acked = 2.0
    assert len(_check(record, [])) == 1


def test_a_refused_sign_in_needs_a_moment_when_the_user_was_inactive():
    assert may_be_inactive([DEACTIVATION], Refusal("u1", 11.0, 11.1))
    assert may_be_inactive([DEACTIVATION], Refusal("u1", 10.2, 10.3))
    assert not may_be_inactive([DEACTIVATION], Refusal("u1", 5.0, 5.1))
    reactivated = Change("reactivate", "u1", started=12.0, acked=12.5)
    assert not may_be_inactive([DEACTIVATION, reactivated], Refusal("u1", 13.0, 13.1))
