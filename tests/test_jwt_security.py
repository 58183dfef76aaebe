"""Forged, altered, expired and foreign tokens are all ``{"active": false}``; the JWKS publishes
public keys only; rotation keeps old tokens valid until they expire. Tokens signed with the
bridge's own key are still checked claim by claim: times must be numbers, ``iat`` and ``nbf``
not in the future, and no ``crit`` header."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import time

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt
from sqlalchemy import select, update

from scim_bridge import create_app
from scim_bridge.cli import main as cli
from scim_bridge.models import SigningKey
from scim_bridge.revocation.keys import KeyRing

from .conftest import PUBLIC_URL
from .scimdata import create_user
from .sessionkit import introspect, is_active, sessions_client, start_session


@pytest.fixture
def issued(api, scim):
    """A real session: its token, claims and header."""
    user = create_user(scim, "nia@example.com")
    body = start_session(api, user_id=user["id"])
    return {
        "token": body["token"],
        "claims": jwt.get_unverified_claims(body["token"]),
        "header": jwt.get_unverified_header(body["token"]),
        "user_id": user["id"],
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _bridge_key(app, kid: str) -> str:
    """The bridge's own private key: tokens it signs must still be checked claim by claim."""
    with app.extensions["scim_bridge"].sessions() as db:
        return db.scalar(select(SigningKey.private_pem).where(SigningKey.kid == kid))


def _jwks(anonymous) -> list[dict]:
    response = anonymous.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.json()["keys"]


def _public_pem(key: dict) -> bytes:
    public = jwk.construct(key, "ES256")
    return public.to_pem()


def _hs256(claims: dict, header: dict, secret: bytes) -> str:
    signing_input = f"{_segment({**header, 'alg': 'HS256'})}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def test_a_genuine_token_is_active(api, issued):
    assert is_active(api, issued["token"])


def test_alg_none_is_inactive(api, issued):
    for alg in ("none", "None", "NONE"):
        forged = f"{_segment({**issued['header'], 'alg': alg})}.{_segment(issued['claims'])}."
        assert introspect(api, forged) == {"active": False}


def test_hs256_signed_with_the_public_key_is_inactive(api, anonymous, issued):
    """Key confusion: the public key (PEM, or the JWK JSON) used as an HMAC secret."""
    published = next(k for k in _jwks(anonymous) if k["kid"] == issued["header"]["kid"])
    for secret in (_public_pem(published), json.dumps(published).encode(),
                   published["x"].encode()):
        forged = _hs256(issued["claims"], issued["header"], secret)
        assert introspect(api, forged) == {"active": False}


@pytest.mark.parametrize(
    "change",
    [{"sub": "someone-else"}, {"groups": ["Admins"]}, {"exp": 4102444800},
     {"tenant": "acme"}, {"sid": "another-session"}],
    ids=["sub", "groups", "exp", "tenant", "sid"],
)
def test_a_changed_payload_is_inactive(api, issued, change):
    header, _, signature = issued["token"].split(".")
    forged = f"{header}.{_segment({**issued['claims'], **change})}.{signature}"
    assert introspect(api, forged) == {"active": False}


def _signed_by_bridge(app, issued, claims: dict, **header) -> str:
    key = _bridge_key(app, issued["header"]["kid"])
    return jwt.encode(claims, key, algorithm="ES256",
                      headers={"kid": issued["header"]["kid"], **header})


def _inactive_every_time(api, token: str) -> None:
    """Inactive at the first introspection and at the repeat (which the verifier caches)."""
    for _ in range(2):
        response = api.post("/sessions/introspect", data={"token": token})
        assert response.status_code == 200, response.text
        assert response.json() == {"active": False}


#: Claim changes, as functions of the genuine ``iat``, that a token the bridge signed must not
#: survive. python-jose alone takes ``int(value)``: it accepts "1700000000" and true, and
#: raises OverflowError (a 500) on Infinity.
BAD_TIMES = {
    "string-exp": lambda iat: {"exp": str(iat + 3600)},
    "string-iat": lambda iat: {"iat": str(iat)},
    "string-nbf": lambda iat: {"nbf": str(iat)},
    "bool-exp": lambda iat: {"exp": True},
    "bool-iat": lambda iat: {"iat": True},
    "bool-nbf": lambda iat: {"nbf": False},
    "null-nbf": lambda iat: {"nbf": None},
    "infinite-exp": lambda iat: {"exp": float("inf")},
    "infinite-iat": lambda iat: {"iat": float("inf")},
    "nan-exp": lambda iat: {"exp": float("nan")},
    "future-iat": lambda iat: {"iat": iat + 3600},
    "future-nbf": lambda iat: {"nbf": iat + 3600},
    "iat-beyond-skew": lambda iat: {"iat": iat + 120},
    "nbf-beyond-skew": lambda iat: {"nbf": iat + 120},
    "exp-now": lambda iat: {"exp": iat},
}


@pytest.mark.parametrize("change", list(BAD_TIMES.values()), ids=list(BAD_TIMES))
def test_bridge_signed_tokens_with_bad_times_are_inactive_every_time(app, api, issued, change):
    claims = {**issued["claims"], **change(issued["claims"]["iat"])}
    _inactive_every_time(api, _signed_by_bridge(app, issued, claims))
    assert is_active(api, _signed_by_bridge(app, issued, issued["claims"]))


@pytest.mark.parametrize(
    "crit",
    [{"crit": ["exp"]}, {"crit": ["urn:example:ext"], "urn:example:ext": True}, {"crit": []},
     {"crit": "exp"}],
    ids=["registered-claim", "extension", "empty", "not-a-list"],
)
def test_a_crit_header_is_inactive(app, api, issued, crit):
    """RFC 7515 §4.1.11: this bridge understands no extension, so no ``crit`` token is valid."""
    _inactive_every_time(api, _signed_by_bridge(app, issued, issued["claims"], **crit))


@pytest.mark.parametrize(
    "change",
    [lambda iat: {"iat": iat + 30}, lambda iat: {"nbf": iat + 30}, lambda iat: {"nbf": iat},
     lambda iat: {"exp": iat + 3600.5, "iat": iat + 0.25}],
    ids=["iat-within-skew", "nbf-within-skew", "nbf-now", "float-times"],
)
def test_times_within_the_clock_skew_and_fractional_times_are_accepted(app, api, issued,
                                                                        change):
    """Another instance's clock may run up to 60 s fast; NumericDates may be fractional."""
    token = _signed_by_bridge(app, issued, {**issued["claims"], **change(issued["claims"]["iat"])})
    assert is_active(api, token)
    assert is_active(api, token)


@pytest.fixture
def settings(settings, clock):
    return settings.with_(clock=clock)


def test_the_token_expiry_is_checked_against_the_apps_clock(app, api, issued, clock):
    """A token whose ``exp`` is before its session row's expiry ends at its ``exp``, also
    when the verifier has already cached it."""
    iat = clock.timestamp()
    short = _signed_by_bridge(app, issued, {**issued["claims"], "iat": iat, "exp": iat + 10})
    assert is_active(api, short)
    clock.advance(9)
    assert is_active(api, short)
    clock.advance(1)
    _inactive_every_time(api, short)
    assert is_active(api, issued["token"])


def test_a_future_iat_is_judged_by_the_apps_clock(app, api, issued, clock):
    iat = clock.timestamp()
    early = _signed_by_bridge(app, issued, {**issued["claims"], "iat": iat + 600})
    _inactive_every_time(api, early)
    clock.advance(600)
    assert is_active(api, early)


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 5},
        {"iss": "https://evil.example"},
        {"sid": None},
        {"exp": None},
        {"iss": None},
        {"sub": None},
        {"sid": 12},
        {"sub": "someone-else"},
    ],
    ids=["expired", "other-issuer", "missing-sid", "missing-exp", "missing-iss", "missing-sub",
         "numeric-sid", "other-subject"],
)
def test_bridge_signed_tokens_with_bad_claims_are_inactive(app, api, issued, change):
    claims = {**issued["claims"], **change}
    claims = {name: value for name, value in claims.items() if value is not None}
    assert introspect(api, _signed_by_bridge(app, issued, claims)) == {"active": False}
    assert is_active(api, _signed_by_bridge(app, issued, issued["claims"]))


def test_another_key_is_inactive_whatever_kid_it_claims(api, issued):
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for kid in ("unknown-kid", issued["header"]["kid"], "", "../../etc/passwd"):
        forged = jwt.encode(issued["claims"], stranger, algorithm="ES256", headers={"kid": kid})
        assert introspect(api, forged) == {"active": False}
    no_kid = jwt.encode(issued["claims"], stranger, algorithm="ES256")
    assert introspect(api, no_kid) == {"active": False}


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b.c", "....", "a" * 20000, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
     f"{_segment([1])}.{_segment({})}.", "\x01\x02", "Bearer x.y.z", "ü.ö.ä",
     f"{_segment({'alg': 'ES256', 'kid': ['x']})}.{_segment({})}.AA",
     f"{_b64(b'[' * 3000 + b']' * 3000)}.{_segment({})}.AA"],
)
def test_garbage_is_inactive(api, garbage):
    assert introspect(api, garbage) == {"active": False}


def test_jwks_publishes_public_keys_only(anonymous, issued):
    keys = {key["kid"]: key for key in _jwks(anonymous)}
    session_key = keys[issued["header"]["kid"]]
    assert session_key["kty"] == "EC" and session_key["crv"] == "P-256"
    assert session_key["alg"] == "ES256" and {"x", "y", "use"} <= set(session_key)
    for key in keys.values():  # the event key (RS256), once made, is published the same way
        assert (key["kty"], key["alg"]) in {("EC", "ES256"), ("RSA", "RS256")}
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)


def test_an_app_verifies_tokens_with_the_jwks_alone(anonymous, issued):
    published = {key["kid"]: key for key in _jwks(anonymous)}
    claims = jwt.decode(issued["token"], published[issued["header"]["kid"]],
                        algorithms=["ES256"], issuer=PUBLIC_URL)
    assert claims["sid"] == issued["claims"]["sid"]


def _rotate(database_url: str):
    result = CliRunner().invoke(cli, ["keys", "rotate"],
                                env={"SCIM_BRIDGE_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    return result.output


def test_rotation_keeps_the_old_key_published_and_old_tokens_valid(
    app, api, anonymous, scim, issued, database_url
):
    old_kid = issued["header"]["kid"]
    output = _rotate(database_url)
    assert f"retired {old_kid}" in output
    kids = [key["kid"] for key in _jwks(anonymous)]
    assert len(kids) == 2 and old_kid in kids
    fresh = start_session(api, user_id=issued["user_id"])
    new_kid = jwt.get_unverified_header(fresh["token"])["kid"]
    assert new_kid != old_kid and new_kid in kids
    assert is_active(api, issued["token"])
    assert is_active(api, fresh["token"])


def test_a_key_retired_longer_than_the_longest_session_is_unpublished(
    app, api, anonymous, issued, database_url, settings
):
    old_kid = issued["header"]["kid"]
    _rotate(database_url)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.max_session_ttl + 60)
    with app.extensions["scim_bridge"].sessions() as session:
        session.execute(update(SigningKey).where(SigningKey.kid == old_kid)
                        .values(retired_at=long_ago))
        session.commit()
    assert old_kid not in [key["kid"] for key in _jwks(anonymous)]
    other_app = create_app(settings)
    with sessions_client(other_app, "other-process") as other_process:
        assert introspect(other_process, issued["token"]) == {"active": False}
    other_app.extensions["scim_bridge"].engine.dispose()


def test_processes_starting_at_once_agree_on_one_signing_key(app, settings):
    rings = [KeyRing(app.extensions["scim_bridge"].sessions, settings) for _ in range(4)]
    barrier = threading.Barrier(len(rings))

    def start(ring: KeyRing) -> None:
        barrier.wait()
        ring.prepare()

    threads = [threading.Thread(target=start, args=(ring,)) for ring in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.extensions["scim_bridge"].sessions() as session:
        signing = {ring.signing_key(session)[0] for ring in rings}
        published = {key["kid"] for key in rings[0].jwks(session)["keys"]}
    assert len(signing) == 1
    assert signing <= published


def test_a_configured_pem_file_is_the_signing_key(app, api, anonymous, issued, settings,
                                                 tmp_path):
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(pem)
    file_app = create_app(settings.with_(signing_key_file=str(key_file)))
    with sessions_client(file_app, "file-app") as file_api:
        body = start_session(file_api, user_id=issued["user_id"])
        file_kid = jwt.get_unverified_header(body["token"])["kid"]
        assert is_active(file_api, body["token"])
        assert is_active(file_api, issued["token"])
    published = {key["kid"]: key for key in _jwks(anonymous)}
    assert set(published) == {file_kid, issued["header"]["kid"]}
    assert jwt.decode(body["token"], published[file_kid], algorithms=["ES256"],
                      issuer=PUBLIC_URL)["sid"] == body["session_id"]
    assert is_active(api, body["token"])
    file_app.extensions["scim_bridge"].engine.dispose()
