"""All JOSE work, on python-jose: ES256 keys, signing session tokens, verifying them.

Verification accepts exactly one algorithm (``ES256``), picks the key by the ``kid`` header
among the published keys, refuses a ``crit`` header, requires ``iss``, ``exp``, ``iat``,
``sub``, ``jti`` and ``sid``, checks the times itself (``exp``, ``iat`` and ``nbf`` must be
numbers; python-jose accepts ``"123"`` and ``true``), and maps every failure, whatever
python-jose or the input raises, to one :class:`InvalidToken`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jws, jwt
from jose.backends.base import Key
from jose.exceptions import JOSEError

from ..errors import Unauthorized

__all__ = [
    "ALGORITHM",
    "GeneratedKey",
    "InvalidToken",
    "Key",
    "Verifier",
    "generate_key",
    "key_from_pem",
    "public_jwk",
    "public_key",
    "sign",
    "verify",
]

ALGORITHM = "ES256"
#: Longer than any token this bridge signs; longer input is rejected before parsing.
MAX_TOKEN_LENGTH = 8192
#: Seconds an ``iat`` or ``nbf`` may lie ahead of this host's clock (another instance's clock
#: may run a little fast); ``exp`` gets none, as the session row's expiry gets none.
CLOCK_SKEW_SECONDS = 60
#: python-jose checks presence and signature only; :func:`_check_times` checks the times.
_OPTIONS = {"require_iss": True, "require_exp": True, "require_iat": True,
            "require_sub": True, "require_jti": True, "verify_aud": False,
            "verify_exp": False, "verify_iat": False, "verify_nbf": False}
#: Whatever a malformed token can make python-jose (or json/base64 under it) raise.
_FAILURES = (JOSEError, ValueError, TypeError, KeyError, IndexError, AttributeError,
             ArithmeticError, RecursionError)


class InvalidToken(Unauthorized):
    """The token is not one this bridge signed, or it is expired or malformed."""


@dataclass(frozen=True)
class GeneratedKey:
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]


def generate_key() -> GeneratedKey:
    """A new EC P-256 key; its ``kid`` is the RFC 7638 thumbprint, unique per key."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = public_jwk(pem)
    return GeneratedKey(public["kid"], pem, public)


def key_from_pem(pem: str) -> Key:
    """The private signing key of a PEM; ``ValueError`` when it is not an EC P-256 key."""
    try:
        key = jwk.construct(pem, ALGORITHM)
    except _FAILURES as exc:
        raise ValueError(f"not an EC P-256 private key: {exc}") from None
    if not key.is_public() and key.to_dict().get("crv") == "P-256":
        return key
    raise ValueError("the signing key must be an EC P-256 private key")


def public_jwk(pem: str) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a private PEM, with ``kid``, ``alg`` and ``use``."""
    public = key_from_pem(pem).public_key().to_dict()
    members = {name: public[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    digest = hashlib.sha256(canonical).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def public_key(jwk_dict: Mapping[str, Any]) -> Key:
    """A verification key from a published JWK; private members are never read."""
    members = {name: jwk_dict[name] for name in ("crv", "kty", "x", "y")}
    return jwk.construct(members, ALGORITHM)


def sign(claims: Mapping[str, Any], key: Key, kid: str) -> str:
    return jwt.encode(dict(claims), key, algorithm=ALGORITHM, headers={"kid": kid})


def verify(
    token: str, find_key: Callable[[str], Key | None], issuer: str, *, now: float
) -> dict[str, Any]:
    """The claims of a token this bridge signed and that is valid at ``now`` (POSIX seconds).

    ``find_key(kid)`` returns the published key with that ``kid`` (or ``None``).
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("the token is missing or malformed")
    try:
        header = jws.get_unverified_header(token)
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise InvalidToken(f"the token is not signed with {ALGORITHM}")
        if "crit" in header:  # RFC 7515 §4.1.11: this bridge understands no extension
            raise InvalidToken("the token names critical header extensions ('crit')")
        kid = header.get("kid")
        key = find_key(kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise InvalidToken("the token's key is not one this bridge publishes")
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], issuer=issuer, options=_OPTIONS
        )
    except InvalidToken:
        raise
    except _FAILURES as exc:
        raise InvalidToken(f"the token is invalid: {exc}") from None
    _check_times(claims, now)
    sid = claims.get("sid")
    if not isinstance(sid, str) or not sid or not isinstance(claims.get("sub"), str):
        raise InvalidToken("the token has no session id")
    return claims


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7519 §4.1.4-6: ``exp`` and ``iat`` are NumericDates, ``nbf`` too when present."""
    expires, issued = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
    if expires <= now:
        raise InvalidToken("the token has expired")
    if issued > now + CLOCK_SKEW_SECONDS:
        raise InvalidToken("the token was issued in the future")
    if "nbf" in claims and _numeric_date(claims, "nbf") > now + CLOCK_SKEW_SECONDS:
        raise InvalidToken("the token is not valid yet")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise InvalidToken(f"the token's '{name}' is not a number of seconds")
    return value


class Verifier:
    """:func:`verify` with a bounded memory of tokens already verified, by exact string.

    An application introspects the same session token on every request it serves; its
    signature cannot change, so a repeat costs a dictionary lookup plus the ``exp``, ``iss``
    and published-key checks (only tokens whose times passed :func:`_check_times` are kept,
    so ``exp`` is a number). The session row is still read on every introspection.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._verified: dict[str, tuple[dict[str, Any], str]] = {}
        self._lock = threading.Lock()

    def verify(
        self, token: str, find_key: Callable[[str], Key | None], issuer: str, *, now: float
    ) -> dict[str, Any]:
        hit = self._verified.get(token) if isinstance(token, str) else None
        if hit is not None:
            claims, kid = hit
            fresh = claims["exp"] > now and claims["iss"] == issuer
            if fresh and find_key(kid) is not None:
                return claims
        claims = verify(token, find_key, issuer, now=now)
        with self._lock:
            if len(self._verified) >= self._size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (claims, jws.get_unverified_header(token)["kid"])
        return claims
