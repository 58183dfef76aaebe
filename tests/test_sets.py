"""Security Event Tokens as a receiver sees them: each SCIM or admin change that ends access maps
to the CAEP and RISC SETs SSF 1.0 and the CAEP interoperability profile require, signed RS256
by a key published in the JWKS and verified here with PyJWT. Event keys never verify as session
keys, and rotate with ``scim-bridge keys rotate``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from scim_bridge import create_app
from scim_bridge.cli import main as cli
from scim_bridge.events import sets
from scim_bridge.models import Event, SigningKey

from .conftest import PUBLIC_URL, http_client, make_token, sessions_client
from .independent_jose import published_keys, verified
from .scimdata import create_group, create_user, patch
from .sessionkit import introspect, is_active, start_session

AUDIENCE = "https://receiver.example.com"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
ISSUED_AT = 1_767_225_600


def _stored(app, event_type: str) -> list[Event]:
    with app.extensions["scim_bridge"].sessions() as db:
        return list(db.scalars(select(Event).where(Event.type == event_type)
                               .order_by(Event.id)))


def _sign(app, claims: dict, alg: str = "RS256") -> str:
    return app.extensions["scim_bridge"].keys.sign_event(claims, alg=alg, typ=sets.TYP)


def _received(app, anonymous, event: Event, **options) -> list[dict]:
    """The SETs of a stored event, signed, then verified the way a receiver verifies them."""
    claims = sets.sets_for_event(event, issuer=PUBLIC_URL, audience=AUDIENCE, jti="d-7",
                                 txn="txn-1", issued_at=ISSUED_AT, **options)
    return [verified(anonymous, _sign(app, one), typ="secevent+jwt", audience=AUDIENCE)[1]
            for one in claims]


def _user_sub(user_id: str) -> dict:
    return {"format": "iss_sub", "iss": PUBLIC_URL, "sub": user_id}


def _session_revoked(event: Event, jti: str, entity: str, reason: str) -> dict:
    subject = _user_sub(event.user_id)
    return {
        "iss": PUBLIC_URL, "aud": AUDIENCE, "iat": ISSUED_AT, "jti": jti, "txn": "txn-1",
        "sub_id": subject,
        "events": {f"{CAEP}session-revoked": {
            "event_timestamp": int(event.occurred_at.timestamp()),
            "initiating_entity": entity,
            "reason_admin": {"en": reason},
            "subject": subject,
        }},
    }


def _account(event: Event, name: str) -> dict:
    subject = _user_sub(event.user_id)
    return {"iss": PUBLIC_URL, "aud": AUDIENCE, "iat": ISSUED_AT, "jti": "d-7.0",
            "txn": "txn-1", "sub_id": subject, "events": {f"{RISC}{name}": {"subject": subject}}}


@pytest.fixture
def sales(scim, api):
    """A user in group Sales with three application sessions."""
    user = create_user(scim, "rosa@example.com")
    group = create_group(scim, "Sales", [user["id"]])
    sessions = [start_session(api, user_id=user["id"]) for _ in range(3)]
    return {"user": user, "group": group, "sessions": sessions}


def _remove_from_group(scim, sales) -> None:
    response = scim.patch(f"/Groups/{sales['group']['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{sales["user"]["id"]}"]'}))
    assert response.status_code in (200, 204), response.text


def _set_active(scim, sales, active: bool) -> None:
    response = scim.patch(f"/Users/{sales['user']['id']}",
                          json=patch({"op": "replace", "path": "active", "value": active}))
    assert response.status_code == 200, response.text


def test_a_member_removal_with_three_sessions_is_three_session_revoked_sets(
    app, anonymous, scim, sales
):
    _remove_from_group(scim, sales)
    [event] = _stored(app, "member_removed")
    received = _received(app, anonymous, event)
    assert received == [
        _session_revoked(event, f"d-7.{n}", "policy", "removed from group 'Sales'")
        for n in range(3)
    ]
    assert {sid for sid in event.session_ids} == {s["session_id"] for s in sales["sessions"]}


def test_a_deactivation_is_account_disabled_then_one_session_revoked_per_session(
    app, anonymous, scim, sales
):
    _set_active(scim, sales, False)
    [event] = _stored(app, "user_deactivated")
    received = _received(app, anonymous, event)
    assert received == [_account(event, "account-disabled")] + [
        _session_revoked(event, f"d-7.{n}", "policy", "account deactivated")
        for n in range(1, 4)
    ]


def test_a_reactivation_is_account_enabled(app, anonymous, scim, sales):
    _set_active(scim, sales, False)
    _set_active(scim, sales, True)
    [event] = _stored(app, "user_reactivated")
    assert _received(app, anonymous, event) == [_account(event, "account-enabled")]


def test_a_deletion_is_account_purged_then_session_revoked(app, anonymous, scim, sales):
    assert scim.delete(f"/Users/{sales['user']['id']}").status_code == 204
    [event] = _stored(app, "user_deleted")
    received = _received(app, anonymous, event)
    assert received[0] == _account(event, "account-purged")
    assert received[1:] == [_session_revoked(event, f"d-7.{n}", "policy", "account deleted")
                            for n in range(1, 4)]


def test_an_admin_force_logout_is_initiated_by_the_admin(app, anonymous, admin, sales):
    assert admin.post(f"/users/{sales['user']['id']}/force-logout").status_code == 200
    [event] = _stored(app, "force_logout")
    received = _received(app, anonymous, event)
    assert received == [
        _session_revoked(event, f"d-7.{n}", "admin", "signed out by an administrator")
        for n in range(3)
    ]


def test_a_user_logout_is_initiated_by_the_user(app, anonymous, api, sales):
    session = sales["sessions"][0]
    assert api.delete(f"/sessions/{session['session_id']}").status_code == 204
    [event] = _stored(app, "logout")
    assert _received(app, anonymous, event) == [
        _session_revoked(event, "d-7.0", "user", "signed out")]


def test_changes_that_end_no_session_and_name_no_account_change_produce_no_set(
    app, scim, sales
):
    create_user(scim, "new@example.com")
    for event in _stored(app, "user_created") + _stored(app, "member_added"):
        assert sets.sets_for_event(event, issuer=PUBLIC_URL, audience=AUDIENCE, jti="d",
                                   txn="t", issued_at=ISSUED_AT) == []


def test_an_email_subject_is_used_when_the_stream_asks_for_it(app, anonymous, scim, sales):
    _remove_from_group(scim, sales)
    [event] = _stored(app, "member_removed")
    for received in _received(app, anonymous, event, subject_format="email",
                              email="rosa@example.com"):
        assert received["sub_id"] == {"format": "email", "email": "rosa@example.com"}
        assert received["events"][f"{CAEP}session-revoked"]["subject"] == received["sub_id"]


def test_a_complex_subject_names_the_user_the_session_and_the_tenant(
    app, anonymous, scim, sales
):
    _set_active(scim, sales, False)
    [event] = _stored(app, "user_deactivated")
    received = _received(app, anonymous, event, subject_format="complex", tenant="default")
    user, tenant = _user_sub(event.user_id), {"format": "opaque", "id": "default"}
    assert received[0]["sub_id"] == {"format": "complex", "user": user, "tenant": tenant}
    for one, session_id in zip(received[1:], event.session_ids, strict=True):
        assert one["sub_id"] == {"format": "complex", "user": user, "tenant": tenant,
                                 "session": {"format": "opaque", "id": session_id}}
        assert one["events"][f"{CAEP}session-revoked"]["subject"] == one["sub_id"]


def test_the_audience_may_be_a_list(app, anonymous):
    audience = [AUDIENCE, "https://other.example.com"]
    claims = sets.account_enabled(
        sets.Envelope(PUBLIC_URL, audience, "j", "t", ISSUED_AT), _user_sub("u-1"))
    _, received = verified(anonymous, _sign(app, claims), typ="secevent+jwt",
                           audience=AUDIENCE)
    assert received["aud"] == audience


@pytest.mark.parametrize("state", ["c5f1", None])
def test_a_verification_set_names_the_stream_and_echoes_the_state(app, anonymous, state):
    envelope = sets.Envelope(PUBLIC_URL, AUDIENCE, "v-1", "txn-v", ISSUED_AT)
    _, received = verified(anonymous, _sign(app, sets.verification(envelope, "s-9", state)),
                           typ="secevent+jwt", audience=AUDIENCE)
    assert received == {
        "iss": PUBLIC_URL, "aud": AUDIENCE, "iat": ISSUED_AT, "jti": "v-1", "txn": "txn-v",
        "sub_id": {"format": "opaque", "id": "s-9"},
        "events": {f"{SSF}verification": {} if state is None else {"state": state}},
    }


def test_a_stream_updated_set_names_the_stream_its_status_and_reason(app, anonymous):
    envelope = sets.Envelope(PUBLIC_URL, AUDIENCE, "u-1", "txn-u", ISSUED_AT)
    claims = sets.stream_updated(envelope, "s-9", "paused", "receiver unreachable")
    _, received = verified(anonymous, _sign(app, claims), typ="secevent+jwt",
                           audience=AUDIENCE)
    assert received["sub_id"] == {"format": "opaque", "id": "s-9"}
    assert received["events"] == {
        f"{SSF}stream-updated": {"status": "paused", "reason": "receiver unreachable"}}


@pytest.mark.parametrize("bad", [
    lambda e: sets.stream_updated(e, "s", "stopped"),
    lambda e: sets.session_revoked(e, _user_sub("u"), revoked_at=1,
                                   initiating_entity="idp", reason_admin="x"),
    lambda e: sets.session_revoked(e, _user_sub("u"), revoked_at=1,
                                   initiating_entity="admin", reason_admin=""),
    lambda e: sets.account_enabled(sets.Envelope(PUBLIC_URL, [], "j", "t", 1), _user_sub("u")),
    lambda e: sets.account_enabled(sets.Envelope(PUBLIC_URL, "a", "j", "", 1), _user_sub("u")),
    lambda e: sets.user_subject(PUBLIC_URL, "u", subject_format="phone_number"),
], ids=["status", "initiating-entity", "empty-reason", "empty-aud", "empty-txn", "format"])
def test_claims_a_receiver_would_refuse_are_never_built(bad):
    with pytest.raises(ValueError):
        bad(sets.Envelope(PUBLIC_URL, AUDIENCE, "j", "t", ISSUED_AT))


# -- the keys -----------------------------------------------------------------------------------


def _event_claims() -> dict:
    return sets.account_disabled(sets.Envelope(PUBLIC_URL, AUDIENCE, "j", "t", ISSUED_AT),
                                 _user_sub("u-1"))


def test_the_event_key_is_rs256_made_on_first_use_and_published_beside_the_session_key(
    app, anonymous, api, sales
):
    session_kid = jwt.get_unverified_header(sales["sessions"][0]["token"])["kid"]
    assert set(published_keys(anonymous)) == {session_kid}
    header, _ = verified(anonymous, _sign(app, _event_claims()), typ="secevent+jwt",
                         audience=AUDIENCE)
    assert set(published_keys(anonymous)) == {session_kid, header["kid"]}
    with app.extensions["scim_bridge"].sessions() as db:
        assert db.get(SigningKey, header["kid"]).algorithm == "RS256"
    fresh = start_session(api, user_id=sales["user"]["id"])
    fresh_header = jwt.get_unverified_header(fresh["token"])
    assert fresh_header["alg"] == "ES256" and fresh_header["kid"] == session_kid
    assert is_active(api, fresh["token"])


def test_es256_event_signing_is_selectable_per_call(app, anonymous, sales):
    session_kid = jwt.get_unverified_header(sales["sessions"][0]["token"])["kid"]
    header, claims = verified(anonymous, _sign(app, _event_claims(), alg="ES256"),
                              typ="secevent+jwt", audience=AUDIENCE, algorithm="ES256")
    assert header["kid"] == session_kid and claims == _event_claims()
    with pytest.raises(ValueError):
        _sign(app, _event_claims(), alg="HS256")


def _rs256_private_pem(app) -> bytes:
    _sign(app, _event_claims())
    with app.extensions["scim_bridge"].sessions() as db:
        return db.scalar(select(SigningKey.private_pem).where(SigningKey.algorithm == "RS256")
                         .where(SigningKey.retired_at.is_(None))).encode()


def _published_of(app, algorithm: str) -> dict[str, dict]:
    bridge = app.extensions["scim_bridge"]
    with bridge.sessions() as db:
        jwks = bridge.keys.jwks(db)["keys"]
    return {key["kid"]: key for key in jwks if key["alg"] == algorithm}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_session_payload_signed_with_the_event_key_is_not_a_session(app, api, sales):
    """Key confusion: the bridge's own RS256 key, a valid-looking session payload, and every
    header a forger might try (its own kid, the session key's kid, ES256 claimed)."""
    token = sales["sessions"][0]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    session_kid = jwt.get_unverified_header(token)["kid"]
    pem = _rs256_private_pem(app)
    [event_kid] = _published_of(app, "RS256")
    for kid in (event_kid, session_kid):
        forged = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})
        assert introspect(api, forged) == {"active": False}
        header, payload, signature = forged.split(".")
        claimed_es256 = _b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT"}).encode())
        assert introspect(api, f"{claimed_es256}.{payload}.{signature}") == {"active": False}
    assert is_active(api, token)


def test_alg_none_and_hs256_with_the_rsa_public_key_are_not_sessions(app, anonymous, api,
                                                                     sales):
    token = sales["sessions"][0]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    _sign(app, _event_claims())
    [(event_kid, rsa_jwk)] = _published_of(app, "RS256").items()
    payload = _b64(json.dumps(claims).encode())
    for alg in ("none", "None"):
        header = _b64(json.dumps({"alg": alg, "kid": event_kid, "typ": "JWT"}).encode())
        assert introspect(api, f"{header}.{payload}.") == {"active": False}
    public_pem = jwt.PyJWK(rsa_jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (public_pem, json.dumps(rsa_jwk).encode(), rsa_jwk["n"].encode()):
        header = _b64(json.dumps({"alg": "HS256", "kid": event_kid, "typ": "JWT"}).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert introspect(api, f"{header}.{payload}.{_b64(signature)}") == {"active": False}


def test_a_set_signed_with_the_session_key_is_not_a_session(app, api, sales):
    """An ES256 SET (or logout token) carrying every session claim is still refused: its
    ``typ`` says it is not a session token (RFC 8725 §3.11)."""
    token = sales["sessions"][0]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    for typ in ("secevent+jwt", "logout+jwt"):
        forged = app.extensions["scim_bridge"].keys.sign_event(claims, alg="ES256", typ=typ)
        assert introspect(api, forged) == {"active": False}
    assert is_active(api, token)


def _cli(database_url: str, *args: str, **env: str) -> str:
    result = CliRunner().invoke(cli, list(args),
                                env={"SCIM_BRIDGE_DATABASE_URL": database_url, **env})
    assert result.exit_code == 0, result.output
    return result.output


def test_rotation_keeps_the_old_event_key_published_and_a_new_kid_signs(
    app, anonymous, api, sales, database_url
):
    old_header, _ = verified(anonymous, _sign(app, _event_claims()), typ="secevent+jwt",
                             audience=AUDIENCE)
    session_kid = jwt.get_unverified_header(sales["sessions"][0]["token"])["kid"]
    output = _cli(database_url, "keys", "rotate")
    assert f"retired {old_header['kid']}" in output and f"retired {session_kid}" in output
    assert output.count("active  ") == 2
    new_header, _ = verified(anonymous, _sign(app, _event_claims()), typ="secevent+jwt",
                             audience=AUDIENCE)
    assert new_header["kid"] != old_header["kid"]
    assert {old_header["kid"], new_header["kid"], session_kid} <= set(published_keys(anonymous))
    listed = [line.split("\t") for line in _cli(database_url, "keys", "list").splitlines()]
    assert sorted((alg, state) for _, alg, state, _ in listed) == [
        ("ES256", "active"), ("ES256", "retired"), ("RS256", "active"), ("RS256", "retired")]
    fresh = start_session(api, user_id=sales["user"]["id"])
    assert jwt.get_unverified_header(fresh["token"])["alg"] == "ES256"
    assert is_active(api, fresh["token"]) and is_active(api, sales["sessions"][1]["token"])


def test_with_a_key_file_the_event_key_is_kept_and_rotated_apart_from_it(
    app, anonymous, settings, database_url, tmp_path
):
    event_kid = verified(anonymous, _sign(app, _event_claims()), typ="secevent+jwt",
                         audience=AUDIENCE)[0]["kid"]
    key_file = tmp_path / "session.pem"
    key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    file_app = create_app(settings.with_(signing_key_file=str(key_file)))
    try:
        with sessions_client(file_app, "file-app") as file_api:
            user = _create_user_in(file_app)
            file_kid = jwt.get_unverified_header(
                start_session(file_api, user_id=user)["token"])["kid"]
        assert _header_kid(_sign(file_app, _event_claims())) == event_kid  # adopting kept it
        output = _cli(database_url, "keys", "rotate",
                      SCIM_BRIDGE_SIGNING_KEY_FILE=str(key_file))
        assert output.splitlines()[0] == f"retired {event_kid}"
        assert file_kid not in output and output.count("active  ") == 1
        new_kid = _header_kid(_sign(file_app, _event_claims()))
        assert new_kid != event_kid
        assert {file_kid, event_kid, new_kid} <= set(published_keys(anonymous))
        with sessions_client(file_app, "file-app-2") as file_api:
            fresh = start_session(file_api, user_id=user)
            assert jwt.get_unverified_header(fresh["token"])["kid"] == file_kid
            assert is_active(file_api, fresh["token"])
    finally:
        file_app.extensions["scim_bridge"].engine.dispose()


def test_with_a_key_file_and_no_event_key_rotation_says_to_replace_the_file(
    app, database_url, tmp_path
):
    key_file = tmp_path / "session.pem"
    key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    result = CliRunner().invoke(cli, ["keys", "rotate"], env={
        "SCIM_BRIDGE_DATABASE_URL": database_url, "SCIM_BRIDGE_SIGNING_KEY_FILE": str(key_file)})
    assert result.exit_code == 1 and "replace that file" in result.output


def _header_kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _create_user_in(app) -> str:
    with http_client(app, make_token(app, "idp-2", "scim"), "/scim/v2") as scim:
        return create_user(scim, "filed@example.com")["id"]


def test_sessions_are_signed_by_the_session_key_even_when_the_event_key_is_older(
    app, anonymous, api, sales
):
    event_kid = _verified_kid(anonymous, _sign(app, _event_claims()))
    with app.extensions["scim_bridge"].sessions() as db:
        db.execute(update(SigningKey).where(SigningKey.kid == event_kid)
                   .values(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        db.commit()
    fresh = start_session(api, user_id=sales["user"]["id"])
    assert jwt.get_unverified_header(fresh["token"])["alg"] == "ES256"
    assert is_active(api, fresh["token"])
    assert _verified_kid(anonymous, _sign(app, _event_claims())) == event_kid


def _verified_kid(anonymous, token: str) -> str:
    return verified(anonymous, token, typ="secevent+jwt", audience=AUDIENCE)[0]["kid"]
