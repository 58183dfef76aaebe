"""Bad input gets a clear SCIM error in the right format and changes nothing; never a 500."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from scim_bridge import create_app, migrate

from .conftest import PG_URL, counted, http_client, make_token
from .scimdata import create_user, patch


def _is_scim_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    assert body["detail"]
    return body


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", "non-token", "Basic YTpi"])
def test_missing_or_wrong_token_is_401_with_www_authenticate(app, header):
    headers = {"Authorization": header} if header else {}
    with http_client(app, None, "/scim/v2") as client:
        response = client.get("/Users", headers=headers)
    _is_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_401(app):
    from scim_bridge.db import begin_write
    from scim_bridge.services import tokens

    token = make_token(app, "short-lived", "scim")
    with app.extensions["scim_bridge"].sessions() as session:
        begin_write(session)
        tokens.revoke_token(session, "short-lived")
        session.commit()
    with http_client(app, token, "/scim/v2") as client:
        _is_scim_error(client.get("/Users"), 401)


@pytest.mark.parametrize("scope", ["admin", "sessions"])
def test_a_token_of_another_scope_is_refused(app, scope):
    token = make_token(app, f"t-{scope}", scope)
    with http_client(app, token, "/scim/v2") as client:
        response = client.get("/Users")
    assert response.status_code == 403
    _is_scim_error(response, 403)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1,", b"\xff\xfe", b'{"userName": "a"'])
def test_malformed_json_is_400_invalid_syntax(scim, body):
    response = scim.post("/Users", content=body,
                         headers={"Content-Type": "application/scim+json"})
    assert _is_scim_error(response, 400)["scimType"] == "invalidSyntax"


@pytest.mark.parametrize("body", ['"a string"', "[]", "42", "null"])
def test_a_body_that_is_not_an_object_is_400(scim, body):
    response = scim.post("/Users", content=body)
    _is_scim_error(response, 400)


def test_oversized_body_is_413(scim):
    huge = b'{"userName": "' + b"a" * 1_100_000 + b'"}'
    _is_scim_error(scim.post("/Users", content=huge), 413)


def test_unknown_id_is_404(scim):
    _is_scim_error(scim.get("/Users/00919288221112222"), 404)
    _is_scim_error(scim.get("/Groups/nope"), 404)
    _is_scim_error(scim.patch("/Users/nope", json=patch(
        {"op": "replace", "path": "title", "value": "x"})), 404)


def test_unknown_endpoint_is_a_scim_404(scim):
    _is_scim_error(scim.get("/Nothing/here"), 404)


def test_wrong_method_is_a_scim_405(scim):
    _is_scim_error(scim.delete("/ServiceProviderConfig"), 405)


@pytest.mark.parametrize("bad", [
    'userName eq', 'userName xx "a"', 'noSuchAttr eq "a"', '((userName eq "a")',
    'emails[type eq "work"', 'active gt true', "x" * 5000, "(" * 3000 + 'a eq "b"' + ")" * 3000,
])
def test_bad_filters_are_400_invalid_filter(scim, bad):
    response = scim.get("/Users", params={"filter": bad})
    assert _is_scim_error(response, 400)["scimType"] == "invalidFilter"


@pytest.mark.parametrize("params", [{"startIndex": "one"}, {"count": "many"},
                                    {"sortOrder": "sideways"}, {"sortBy": "noSuchAttr"}])
def test_bad_list_parameters_are_400(scim, params):
    _is_scim_error(scim.get("/Users", params=params), 400)


@pytest.mark.parametrize("body", [
    {"Operations": [{"op": "explode", "path": "title", "value": "x"}]},
    {"Operations": "replace"},
    {"Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]},
    {"Operations": [{"op": "remove", "path": "userName"}]},
    {"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]},
    {"Operations": [{"op": "replace", "value": "not an object"}]},
])
def test_bad_patches_are_400_and_change_nothing(scim, body):
    user = create_user(scim, "stable@example.com")
    response = scim.patch(f"/Users/{user['id']}", json=body)
    _is_scim_error(response, 400)
    after = scim.get(f"/Users/{user['id']}").json()
    assert after["meta"]["version"] == user["meta"]["version"]


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], True])
def test_wrong_value_types_are_400(scim, value):
    response = scim.post("/Users", json={"userName": "typed@example.com", "title": value})
    assert _is_scim_error(response, 400)["scimType"] == "invalidValue"


def test_a_500_never_reveals_internals(app, scim, monkeypatch):
    from scim_bridge.services import users

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(users, "get_user", explode)
    response = scim.get("/Users/anything")
    body = _is_scim_error(response, 500)
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["detail"]


@pytest.mark.parametrize("request_args", [
    ("GET", "/Users/x%00y", None),
    ("GET", "/Users?filter=userName%20eq%20%22x%00y%22", None),
    ("POST", "/Users", {"userName": "a\u0000b"}),
    ("POST", "/Users", {"userName": "ok@example.com", "name": {"givenName": "\u0000"}}),
])
def test_nul_characters_are_400_not_500(scim, request_args):
    method, path, body = request_args
    response = scim.request(method, path, json=body)
    assert _is_scim_error(response, 400)["scimType"] == "invalidSyntax"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


@pytest.fixture(params=["postgresql-closed-port", "sqlite-directory-removed"])
def unreachable_app(request, settings, closed_port, tmp_path) -> Iterator[tuple[object, str]]:
    """An app whose database cannot be reached, and a token that would otherwise be valid."""
    if request.param == "postgresql-closed-port":
        url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{closed_port}/bridge"
        app = create_app(settings.with_(database_url=url))
        token = "sb_not_checked_since_the_database_is_down"
    else:
        directory = tmp_path / "data"
        directory.mkdir()
        database = directory / "bridge.db"
        if settings.database_url.startswith("sqlite:///"):
            shutil.copy(settings.database_url.removeprefix("sqlite:///"), database)
        else:
            migrate.upgrade(f"sqlite:///{database}")
        app = create_app(settings.with_(database_url=f"sqlite:///{database}"))
        token = make_token(app, "okta", "scim")
        app.extensions["scim_bridge"].engine.dispose()  # no open connection survives
        shutil.rmtree(directory)
    yield app, token
    app.extensions["scim_bridge"].engine.dispose()


@pytest.mark.parametrize("method,path", [("GET", "/Users"), ("GET", "/Users/anything"),
                                         ("POST", "/Users")])
def test_an_unreachable_database_is_a_scim_503_with_retry_after(unreachable_app, method, path):
    app, token = unreachable_app
    before = counted("scim_bridge_database_errors_total", kind="unavailable")
    with http_client(app, token, "/scim/v2") as client:
        response = client.request(method, path, json={"userName": "down@example.com"})
    body = _is_scim_error(response, 503)
    assert counted("scim_bridge_database_errors_total", kind="unavailable") == before + 1
    assert response.headers["Retry-After"] == "1"
    assert "retry" in body["detail"]
    for internal in ("hunter2", "127.0.0.1", "bridge.db", "psycopg", "sqlite3", "Traceback"):
        assert internal not in response.text


def test_an_unreachable_database_is_a_json_503_outside_scim(unreachable_app):
    app, token = unreachable_app
    with http_client(app, token, "/api/v1/admin") as client:
        response = client.get("/users")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["Retry-After"] == "1"
    assert set(response.json()) == {"error", "error_description"}
    assert "hunter2" not in response.text


@pytest.mark.skipif(not PG_URL, reason="needs SCIM_BRIDGE_TEST_DATABASE_URL (PostgreSQL)")
def test_after_postgresql_drops_its_connections_at_most_one_request_fails(app, scim):
    from sqlalchemy import create_engine, text

    create_user(scim, "before@example.com")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
    admin.dispose()
    statuses = [scim.get("/Users").status_code for _ in range(3)]
    assert statuses[0] in (200, 503)
    assert statuses[1:] == [200, 200]
