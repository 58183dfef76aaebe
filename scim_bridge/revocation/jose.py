"""All JOSE work, on python-jose: keys, signing session tokens and security events, verifying
session tokens.

Every key belongs to exactly one algorithm, fixed when it is made: ``ES256`` (EC P-256) for
session tokens, ``RS256`` (RSA) for security events and logout tokens, which receivers accept
in no other algorithm (CAEP interoperability profile §2.6). Signing takes the algorithm from
the key, never from the caller alone.

Verification of session tokens accepts exactly one algorithm (``ES256``) and one type
(``typ`` ``JWT`` or absent, so a SET or logout token signed with the same key is never a
session token; RFC 8725 §3.11), picks the key by the ``kid`` header among the published
keys, refuses a ``crit`` header, requires ``iss``, ``exp``, ``iat``, ``sub``, ``jti`` and
``sid``, checks the times itself (``exp``, ``iat`` and ``nbf`` must be numbers; python-jose
accepts ``"123"`` and ``true``), and maps every failure, whatever python-jose or the input
raises, to one :class:`InvalidToken`.
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jws, jwt
from jose.backends import ECKey, RSAKey
from jose.backends.base import Key
from jose.exceptions import JOSEError

from ..errors import Unauthorized

__all__ = [
    "EVENT_ALGORITHM",
    "GeneratedKey",
    "InvalidToken",
    "Key",
    "SESSION_ALGORITHM",
    "SigningKey",
    "Verifier",
    "generate_key",
    "key_from_pem",
    "public_jwk",
    "public_key",
    "sign",
    "verify",
]

#: Session tokens: the only algorithm :func:`verify` accepts.
SESSION_ALGORITHM = "ES256"
#: Security event tokens and logout tokens, by default.
EVENT_ALGORITHM = "RS256"
#: RSA modulus size of new RS256 keys (receivers require 2048 or more).
RSA_KEY_BITS = 2048
#: Each algorithm's public JWK members, in RFC 7638 thumbprint order, and its key classes.
_PUBLIC_MEMBERS = {"ES256": ("crv", "kty", "x", "y"), "RS256": ("e", "kty", "n")}
_KEY_CLASSES: dict[str, type[Key]] = {"ES256": ECKey, "RS256": RSAKey}
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
#: ``typ`` values of a session token: python-jose writes ``JWT``; RFC 7519 §5.1 makes it optional.
_SESSION_TYPES = (None, "JWT")


class InvalidToken(Unauthorized):
    """The token is not one this bridge signed, or it is expired or malformed."""


@dataclass(frozen=True)
class GeneratedKey:
    kid: str
    algorithm: str
    private_pem: str
    public_jwk: dict[str, Any]


@dataclass(frozen=True)
class SigningKey:
    """A private key bound to the one algorithm it signs with, and the ``kid`` it is published
    under."""

    kid: str
    algorithm: str
    key: Key


def generate_key(algorithm: str = SESSION_ALGORITHM) -> GeneratedKey:
    """A new key for ``algorithm`` (EC P-256 or RSA); its ``kid`` is the RFC 7638 thumbprint."""
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    else:
        raise ValueError(f"no keys are made for {algorithm!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = public_jwk(pem, algorithm)
    return GeneratedKey(public["kid"], algorithm, pem, public)


def key_from_pem(pem: str, algorithm: str = SESSION_ALGORITHM) -> Key:
    """The private signing key of a PEM for ``algorithm``; ``ValueError`` when the PEM is not
    an EC P-256 key (ES256) or an RSA key of at least 2048 bits (RS256)."""
    if algorithm not in _KEY_CLASSES:
        raise ValueError(f"no keys are made for {algorithm!r}")
    expected = "an EC P-256" if algorithm == "ES256" else "an RSA"
    try:
        key = jwk.construct(pem, algorithm)
    except _FAILURES as exc:
        raise ValueError(f"not {expected} private key: {exc}") from None
    if key.is_public() or not isinstance(key, _KEY_CLASSES[algorithm]):
        raise ValueError(f"the signing key must be {expected} private key")
    members = key.to_dict()
    if algorithm == "ES256" and members.get("crv") != "P-256":
        raise ValueError("the signing key must be an EC P-256 private key")
    if algorithm == "RS256" and _modulus_bits(members["n"]) < 2048:
        raise ValueError("the signing key must be an RSA key of at least 2048 bits")
    return key


def _modulus_bits(n: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()


def public_jwk(pem: str, algorithm: str = SESSION_ALGORITHM) -> dict[str, Any]:
    """The public JWK (RFC 7517) of a private PEM, with ``kid``, ``alg`` and ``use``."""
    public = key_from_pem(pem, algorithm).public_key().to_dict()
    members = {name: public[name] for name in _PUBLIC_MEMBERS[algorithm]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    digest = hashlib.sha256(canonical).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return {**members, "kid": kid, "alg": algorithm, "use": "sig"}


def public_key(jwk_dict: Mapping[str, Any], algorithm: str = SESSION_ALGORITHM) -> Key:
    """A verification key from a published JWK; private members are never read."""
    members = {name: jwk_dict[name] for name in _PUBLIC_MEMBERS[algorithm]}
    return jwk.construct(members, algorithm)


def sign(
    claims: Mapping[str, Any], key: Key | SigningKey, kid: str | None = None, *,
    typ: str | None = None,
) -> str:
    """A compact JWS of ``claims``: with a :class:`SigningKey` in its own algorithm; with a
    bare key (a session token) in ES256. ``typ`` sets the header's explicit type."""
    if not isinstance(key, SigningKey):
        if kid is None:
            raise ValueError("a bare key needs its kid")
        key = SigningKey(kid, SESSION_ALGORITHM, key)
    key_class = _KEY_CLASSES.get(key.algorithm)
    if key_class is None or not isinstance(key.key, key_class) or key.key.is_public():
        raise ValueError(f"key {key.kid} is not a private {key.algorithm} key")
    headers = {"kid": key.kid, **({"typ": typ} if typ else {})}
    return jwt.encode(dict(claims), key.key, algorithm=key.algorithm, headers=headers)


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
        if not isinstance(header, dict) or header.get("alg") != SESSION_ALGORITHM:
            raise InvalidToken(f"the token is not signed with {SESSION_ALGORITHM}")
        if header.get("typ") not in _SESSION_TYPES:  # a SET or logout token is not a session
            raise InvalidToken("the token is not a session token")
        if "crit" in header:  # RFC 7515 §4.1.11: this bridge understands no extension
            raise InvalidToken("the token names critical header extensions ('crit')")
        kid = header.get("kid")
        key = find_key(kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise InvalidToken("the token's key is not one this bridge publishes")
        claims = jwt.decode(
            token, key, algorithms=[SESSION_ALGORITHM], issuer=issuer, options=_OPTIONS
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
        remembered = self.remembered(token, find_key, issuer, now=now)
        if remembered is not None:
            return remembered
        claims = verify(token, find_key, issuer, now=now)
        with self._lock:
            if len(self._verified) >= self._size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (claims, jws.get_unverified_header(token)["kid"])
        return claims

    def remembered(
        self, token: Any, find_key: Callable[[str], Key | None], issuer: str, *, now: float
    ) -> dict[str, Any] | None:
        """The claims of a token verified before that is still valid at ``now``, without
        touching its signature; ``None`` for any other."""
        hit = self._verified.get(token) if isinstance(token, str) else None
        if hit is None:
            return None
        claims, kid = hit
        fresh = claims["exp"] > now and claims["iss"] == issuer
        return claims if fresh and find_key(kid) is not None else None
