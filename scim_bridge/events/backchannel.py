"""OpenID Connect Back-Channel Logout 1.0: the logout tokens (§2.4) that tell a relying party
one of its sessions has ended.

Pure: plain values in, claims out; the key ring signs them
(``KeyRing.sign_event(claims, alg="RS256", typ=TYP)``: RPs validate a logout token like an ID
token, whose default algorithm is RS256). A token names both the user (``sub``) and the session
(``sid``), expires at most two minutes after it is issued (errata set 1; RPs keep a ``jti``
store for that long at most), and never carries ``nonce`` (§2.4: an RP must reject one that
does, so a logout token can never pass as an ID token).
"""

from __future__ import annotations

from typing import Any

from .sets import StoredEvent

__all__ = ["EVENT", "MAX_LIFETIME_SECONDS", "TYP", "logout_token", "logout_tokens_for_event"]

#: The JOSE header ``typ`` of a logout token (§2.4, "explicit typing").
TYP = "logout+jwt"
#: The one member of ``events``; its value is an empty object.
EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: §4: "a value of at most two minutes in the future is RECOMMENDED" for ``exp``.
MAX_LIFETIME_SECONDS = 120


def logout_token(
    *,
    issuer: str,
    client_id: str,
    user_id: str,
    session_id: str,
    jti: str,
    issued_at: int,
    lifetime: int = MAX_LIFETIME_SECONDS,
) -> dict[str, Any]:
    """The claims of the logout token for one ended session, addressed to one client."""
    if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
        raise ValueError(f"a logout token lives 1 to {MAX_LIFETIME_SECONDS} seconds")
    if not (issuer and client_id and user_id and session_id and jti):
        raise ValueError("a logout token needs iss, aud, sub, sid and jti")
    issued = int(issued_at)
    return {"iss": issuer, "aud": client_id, "iat": issued, "exp": issued + lifetime,
            "jti": jti, "sub": user_id, "sid": session_id, "events": {EVENT: {}}}


def logout_tokens_for_event(
    event: StoredEvent, *, issuer: str, client_id: str, jti: str, issued_at: int
) -> list[dict[str, Any]]:
    """One logout token per session the event ended; the ``n``-th token's ``jti`` is
    ``f"{jti}.{n}"``, stable across retries as the event's sessions never change. Build and
    sign them at each attempt (``issued_at`` now), so ``exp`` is never already past."""
    if event.user_id is None:
        return []
    return [
        logout_token(issuer=issuer, client_id=client_id, user_id=event.user_id,
                     session_id=session_id, jti=f"{jti}.{n}", issued_at=issued_at)
        for n, session_id in enumerate(event.session_ids)
    ]
