"""OpenID Connect Back-Channel Logout 1.0 logout tokens as a relying party sees them: one per
ended session, ``typ: logout+jwt``, RS256, expiring within two minutes, never a ``nonce``;
verified with PyJWT and with an RP library's own LogoutToken check (idpyoidc), and never
accepted as a session token."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptojwt.exception import BadSignature
from cryptojwt.key_jar import KeyJar
from idpyoidc.message.oidc.session import LogoutToken
from sqlalchemy import select

from scim_bridge.events import backchannel
from scim_bridge.models import Event

from .conftest import PUBLIC_URL
from .independent_jose import published_keys, verified
from .scimdata import create_user
from .sessionkit import introspect, is_active, start_session

CLIENT_ID = "frontline-web"
BACKCHANNEL_LOGOUT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def forced(app, scim, api, admin):
    """A user whose two sessions an admin ended: the stored event and the session ids."""
    user = create_user(scim, "omar@example.com")
    sessions = [start_session(api, user_id=user["id"]) for _ in range(2)]
    assert admin.post(f"/users/{user['id']}/force-logout").status_code == 200
    with app.extensions["scim_bridge"].sessions() as db:
        [event] = db.scalars(select(Event).where(Event.type == "force_logout"))
    return {"user": user, "sessions": sessions, "event": event}


def _signed(app, claims: dict, alg: str = "RS256") -> str:
    return app.extensions["scim_bridge"].keys.sign_event(claims, alg=alg, typ=backchannel.TYP)


def _tokens(app, forced, issued_at: int) -> list[str]:
    claims = backchannel.logout_tokens_for_event(
        forced["event"], issuer=PUBLIC_URL, client_id=CLIENT_ID, jti="lt-3",
        issued_at=issued_at)
    return [_signed(app, one) for one in claims]


def test_each_ended_session_gets_one_logout_token_with_exactly_the_required_claims(
    app, anonymous, forced
):
    now = int(time.time())
    tokens = _tokens(app, forced, now)
    received = [verified(anonymous, token, typ="logout+jwt", audience=CLIENT_ID)[1]
                for token in tokens]
    assert received == [
        {"iss": PUBLIC_URL, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
         "jti": f"lt-3.{n}", "sub": forced["user"]["id"], "sid": session_id,
         "events": {BACKCHANNEL_LOGOUT: {}}}
        for n, session_id in enumerate(forced["event"].session_ids)
    ]
    assert set(forced["event"].session_ids) == {s["session_id"] for s in forced["sessions"]}
    for claims in received:
        assert "nonce" not in claims and 0 < claims["exp"] - claims["iat"] <= 120


def test_an_rp_librarys_logout_token_check_accepts_them(app, anonymous, forced):
    """idpyoidc's LogoutToken: signature by the JWKS, iss, aud, events, sub/sid, no nonce."""
    tokens = _tokens(app, forced, int(time.time()))
    keyjar = _keyjar(anonymous)
    for token in tokens:
        message = LogoutToken().from_jwt(token, keyjar=keyjar, sigalg="RS256")
        assert message.verify(iss=PUBLIC_URL, aud=CLIENT_ID, allowed_sign_alg="RS256")
        assert message["sub"] == forced["user"]["id"]


def test_the_rp_librarys_check_refuses_another_client_and_an_altered_token(
    app, anonymous, forced
):
    """The check above is a real one: it refuses what an RP must refuse."""
    token = _tokens(app, forced, int(time.time()))[0]
    keyjar = _keyjar(anonymous)
    message = LogoutToken().from_jwt(token, keyjar=keyjar, sigalg="RS256")
    with pytest.raises(Exception, match="audience"):
        message.verify(iss=PUBLIC_URL, aud="another-client", allowed_sign_alg="RS256")
    header, _, signature = token.split(".")
    claims = {**jwt.decode(token, options={"verify_signature": False}), "sub": "someone-else"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignature):
        LogoutToken().from_jwt(f"{header}.{payload}.{signature}", keyjar=keyjar, sigalg="RS256")


def _keyjar(anonymous) -> KeyJar:
    """An RP's key jar holding the bridge's published keys under its issuer."""
    keyjar = KeyJar()
    keyjar.import_jwks({"keys": list(published_keys(anonymous).values())}, PUBLIC_URL)
    return keyjar


def test_a_logout_token_is_never_a_session_token(app, api, forced, scim):
    """It carries iss, sub, sid, iat, exp and jti, all a session token has: neither its RS256
    form nor an ES256 one signed with the session key passes introspection."""
    user = create_user(scim, "live@example.com")
    live = start_session(api, user_id=user["id"])
    claims = backchannel.logout_token(issuer=PUBLIC_URL, client_id=CLIENT_ID,
                                      user_id=user["id"], session_id=live["session_id"],
                                      jti="x", issued_at=int(time.time()))
    for alg in ("RS256", "ES256"):
        token = _signed(app, claims, alg)
        assert jwt.get_unverified_header(token)["alg"] == alg
        assert introspect(api, token) == {"active": False}
    assert is_active(api, live["token"])


@pytest.mark.parametrize("lifetime", [0, 121, 3600])
def test_a_logout_token_lives_at_most_two_minutes(lifetime):
    with pytest.raises(ValueError):
        backchannel.logout_token(issuer=PUBLIC_URL, client_id=CLIENT_ID, user_id="u",
                                 session_id="s", jti="j", issued_at=1, lifetime=lifetime)


def test_an_event_that_ended_no_session_has_no_logout_token(app, scim):
    user = create_user(scim, "quiet@example.com")
    with app.extensions["scim_bridge"].sessions() as db:
        [event] = db.scalars(select(Event).where(Event.user_id == user["id"]))
    assert backchannel.logout_tokens_for_event(event, issuer=PUBLIC_URL, client_id=CLIENT_ID,
                                               jti="j", issued_at=1) == []
