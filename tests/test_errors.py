"""Bad input gets a clear SCIM error in the right format and changes nothing; never a 500."""

from __future__ import annotations

import pytest

from .conftest import PG_URL, http_client, make_token
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


def test_a_database_outage_is_503_with_retry_after(scim, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from scim_bridge.services import users

    def unreachable(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(users, "get_user", unreachable)
    response = scim.get("/Users/anything")
    _is_scim_error(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert "server closed" not in response.text


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
