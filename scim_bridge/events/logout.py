"""The back-channel logout sender (OpenID Connect Back-Channel Logout 1.0 §2.5): POST one
logout token for one ended session, as the form field ``logout_token``.

One delivery is one session: record.py adds a row per (revoked session, logout client), whose
``subject`` is the session id, so each session is retried, dead-lettered and replayed on its own
and one refused session never resends (or holds back) the others. The token is built and signed
at each attempt, so its ``exp`` (two minutes) counts from the attempt, while its ``jti`` is the
delivery's, the same on every retry and replay (RPs keep a ``jti`` store to drop repeats).

200 and 204 deliver (§2.8); 400 means the RP refused the token or the logout failed, which a
retry will not change: dead at once; anything else (and no answer) is retried.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from .backchannel import TYP, logout_token
from .outbox import Claimed, Outcome
from .record import LOGOUT_CLIENT
from .senders import dead, delivered, post, register, retry, retry_after, status_error

if TYPE_CHECKING:
    import httpx

KIND = LOGOUT_CLIENT
#: RPs validate a logout token like an ID token, whose default algorithm is RS256.
ALGORITHM = "RS256"


def token_id(delivery_id: int) -> str:
    return f"bcl_{delivery_id}"


def _judge(response: httpx.Response) -> Outcome:
    if response.status_code in (200, 204):
        return delivered()
    if response.status_code == 400:
        return dead(f"{status_error(response)} (the relying party refused the logout token)")
    return retry(status_error(response), retry_after(response))


@register(KIND)
def send(client: httpx.Client, claimed: Claimed) -> Outcome:
    keys, event = claimed.signer, claimed.event
    issuer = keys.current_issuer() if keys is not None else None
    # The deployment's issuer appears once `serve` ran or PUBLIC_URL is set.
    if keys is None or issuer is None:
        return retry("no issuer known yet to sign logout tokens with")
    if event.user_id is None or not claimed.subject or not claimed.receiver.name:
        return dead("a logout token needs the user, the session and the client id")
    claims = logout_token(issuer=issuer, client_id=claimed.receiver.name,
                          user_id=event.user_id, session_id=claimed.subject,
                          jti=token_id(claimed.id), issued_at=int(time.time()))
    token = keys.sign_event(claims, alg=ALGORITHM, typ=TYP)
    return post(client, claimed.receiver.url or "",
                content=urlencode({"logout_token": token}).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"}, judge=_judge)
