"""openapi.yaml tells the truth: schemathesis fuzzes every operation in it against the app.

Each operation is called with a valid token of the scope it needs (chosen below), and every
check schemathesis has runs on every answer: no 5xx, only documented status codes and content
types, bodies that match their schemas, schema-violating requests rejected, schema-valid ones
not rejected, undeclared methods answered 405 with ``Allow``, and a request without the token
refused. The stateful test follows the spec's OpenAPI links, so the users and groups it creates
are read, patched, replaced and deleted.

In-process through WSGI, on the test database (SQLite, or PostgreSQL when the suite runs there).
Deterministic by default (Hypothesis' derandomize) so CI never flakes; a longer or random run:

    SCIM_BRIDGE_FUZZ_EXAMPLES=1000 pytest tests/test_openapi_fuzz.py
    SCIM_BRIDGE_FUZZ_SEED=random SCIM_BRIDGE_FUZZ_EXAMPLES=200 pytest tests/test_openapi_fuzz.py

New routes need nothing here: every operation in the file is picked up. An operation's token
scope is the one its ``security`` names (``bearer: [scope]``), else the one of its path prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from scim_bridge import create_app
from scim_bridge.db import begin_write
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, make_token
from .harness import UNTHROTTLED

SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"

#: Examples per operation (and stateful scenarios); CI keeps the default, a long run raises it.
EXAMPLES = int(os.environ.get("SCIM_BRIDGE_FUZZ_EXAMPLES", "15"))
#: Unset: derandomized (the same cases every run); "random": a fresh seed each run.
SEED = os.environ.get("SCIM_BRIDGE_FUZZ_SEED", "")

#: The token scope of every operation under a path prefix (first match wins).
SCOPE_BY_PREFIX = (
    ("/scim/v2/", "scim"),
    ("/api/v1/sessions", "sessions"),
    ("/api/v1/admin/", "admin"),
    ("/api/v1/events", "ssf"),
    ("/metrics", "metrics"),
    ("/ssf/", "ssf"),
    ("/api/v1/ssf/", "ssf"),
)

#: The fuzzer sends thousands of requests without a token: the failed-auth budget too is unbounded.
FUZZ_LIMITS = {**UNTHROTTLED, "rate_limit_failed_auth": "1000000/second"}


def _spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def _declared_scope(operation: dict[str, Any]) -> str | None:
    for requirement in operation.get("security") or []:
        for scopes in requirement.values():
            if scopes:
                return str(scopes[0])
    return None


def scope_of(path: str, operation: dict[str, Any] | None = None) -> str | None:
    """The scope of the token an operation is called with; None when it needs no token."""
    operation = operation or {}
    if operation.get("security") == []:
        return None
    declared = _declared_scope(operation)
    if declared:
        return declared
    for prefix, scope in SCOPE_BY_PREFIX:
        if path.startswith(prefix):
            return scope
    return None


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [(path, method, operation)
            for path, item in _spec()["paths"].items()
            for method, operation in item.items() if method in methods]


def test_every_secured_operation_has_a_token_scope() -> None:
    """A route added to openapi.yaml under a new prefix must say which token calls it."""
    unknown = [f"{method.upper()} {path}" for path, method, operation in _operations()
               if operation.get("security") != [] and scope_of(path, operation) is None]
    assert not unknown, (f"no token scope for {unknown}: add `security: [{{bearer: [SCOPE]}}]` "
                         "to the operation or its prefix to SCOPE_BY_PREFIX")


def _hypothesis_settings(**extra: Any) -> settings:
    """Derandomized (the same cases every run) unless SCIM_BRIDGE_FUZZ_SEED=random."""
    return settings(max_examples=EXAMPLES, derandomize=SEED != "random", database=None,
                    deadline=None, suppress_health_check=list(HealthCheck), **extra)


class _AppUnderTest:
    """The WSGI app the schema calls: each test points it at its own app and database."""

    def __init__(self) -> None:
        self.app: Any = None
        self.tokens: dict[str, str] = {}

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


UNDER_TEST = _AppUnderTest()
RAW = _spec()
_config = schemathesis.Config()
_config.output.sanitization.update(enabled=False)
# The service refuses NUL in any URL or body as unstorable (README), a documented 400, so
# positive cases carry none.
_config.projects.default.generation.update(allow_x00=False)
#: The admin page's own form endpoints answer only a browser that holds the page's session
#: cookie and CSRF token; the browser and page tests (tests/test_admin_page*.py) drive them.
PAGE_ONLY = r"^/admin/"
schema = schemathesis.openapi.from_dict(RAW, config=_config).exclude(path_regex=PAGE_ONLY)
schema.app = UNDER_TEST
schema.config.update(base_url=PUBLIC_URL)


class ScopedToken:
    """A valid token of the scope the case's operation needs (none for public operations)."""

    def get(self, case: schemathesis.Case, context: Any) -> str | None:
        definition = RAW["paths"][case.path].get(case.method.lower(), {})
        scope = scope_of(case.path, definition)
        return UNDER_TEST.tokens[scope] if scope else None

    def set(self, case: schemathesis.Case, data: str | None, context: Any) -> None:
        if data:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


schema.auth(ScopedToken, refresh_interval=None)


@pytest.fixture(autouse=True)
def app_under_test(database_url: str) -> Any:
    app = create_app(Settings(database_url=database_url, public_url=PUBLIC_URL, **FUZZ_LIMITS))
    bridge = app.extensions["scim_bridge"]
    with bridge.sessions() as db:
        begin_write(db)
        tokens.ensure_default_tenant(db)
        db.commit()
    UNDER_TEST.app = app
    UNDER_TEST.tokens = {scope: make_token(app, f"fuzz-{scope}", scope)
                         for scope in ("scim", "sessions", "admin", "ssf", "metrics")}
    yield app
    UNDER_TEST.app = None
    bridge.close()


@schema.parametrize()
@_hypothesis_settings()
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_created_users_and_groups_are_read_patched_and_deleted() -> None:
    machine = schema.as_state_machine()
    machine.run(settings=_hypothesis_settings(stateful_step_count=6))


def test_creating_a_user_or_group_links_to_its_read_patch_replace_and_delete() -> None:
    """The stateful test only follows links: each POST that creates a User or Group links on."""
    paths = _spec()["paths"]
    for collection in ("/scim/v2/Users", "/scim/v2/Groups"):
        links = paths[collection]["post"]["responses"]["201"].get("links", {})
        assert len(links) >= 4, f"POST {collection} links to {sorted(links)}"
