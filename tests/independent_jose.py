"""Verifying the bridge's security event and logout tokens the way a receiver does: with PyJWT
(not python-jose, which the bridge signs with), against the JWKS fetched over HTTP, with the
one algorithm pinned."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import PUBLIC_URL


def published_keys(anonymous: httpx.Client) -> dict[str, dict[str, Any]]:
    """The JWKS of ``/.well-known/jwks.json``, by ``kid``."""
    response = anonymous.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    return {key["kid"]: key for key in response.json()["keys"]}


def verified(
    anonymous: httpx.Client, token: str, *, typ: str, audience: str | list[str],
    algorithm: str = "RS256",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a token whose signature, ``iss`` and ``aud`` verify with the
    published key its ``kid`` names; its header has exactly ``alg``, ``kid`` and ``typ``."""
    header = jwt.get_unverified_header(token)
    assert set(header) == {"alg", "kid", "typ"}
    assert header["alg"] == algorithm and header["typ"] == typ
    published = published_keys(anonymous)
    assert header["kid"] in published
    key = published[header["kid"]]
    assert key["alg"] == algorithm and key["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
    public = jwt.PyJWK(key, algorithm)
    if algorithm == "RS256":
        assert key["kty"] == "RSA"
        assert isinstance(public.key, rsa.RSAPublicKey) and public.key.key_size >= 2048
    claims = jwt.decode(
        token, public, algorithms=[algorithm], audience=audience, issuer=PUBLIC_URL,
        options={"require": ["iss", "aud", "iat", "jti"], "enforce_minimum_key_length": True},
    )
    return header, claims
