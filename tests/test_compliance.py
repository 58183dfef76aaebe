"""The public scim2-tester checker, run in-process against the app on an empty database."""

from __future__ import annotations

import pytest
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from .conftest import make_token


@pytest.fixture
def checker_client(app):
    token = make_token(app, "checker", "scim")
    return WSGISCIMClient(
        app, base_url="http://bridge.test/scim/v2", headers={"Authorization": f"Bearer {token}"}
    )


def test_every_scim2_tester_check_succeeds(checker_client):
    results = check_server(checker_client)
    failures = [
        f"{result.title}: {result.status.name}: {result.reason}"
        for result in results
        if result.status != Status.SUCCESS
    ]
    assert results, "the checker ran no checks"
    assert not failures, "\n".join(failures)
