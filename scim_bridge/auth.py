"""Bearer tokens: random, stored as SHA-256, looked up by hash, scoped, bound to a tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from .db import Reader, connection_of
from .errors import Forbidden, Unauthorized
from .models import ApiToken, Tenant
from .prepared import BoundRead, PreparedRead

#: ``metrics`` reads only ``GET /metrics``: counters of every tenant, no tenant data.
SCOPES = ("scim", "sessions", "admin", "ssf", "metrics")
TOKEN_PREFIX = "sb_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, scope and tenant, and its hash (the key of its rate
    limit)."""

    token_name: str
    scope: str
    tenant_id: int
    tenant_name: str
    token_hash: str = field(default="", repr=False)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


# Prepared once: authentication runs on every request, so it skips ORM entity loading.
_TOKEN_BY_HASH = PreparedRead(
    select(
        ApiToken.name,
        ApiToken.scope,
        ApiToken.tenant_id,
        ApiToken.token_hash,
        ApiToken.revoked_at,
        Tenant.name.label("tenant_name"),
    )
    .join(Tenant, Tenant.id == ApiToken.tenant_id)
    .where(ApiToken.token_hash == bindparam("digest"))
)


def authenticate(db: Reader, authorization: str | None, *scopes: str) -> Principal:
    """The caller of a request, whose token must have one of ``scopes``."""
    return principal_of(db, hash_token(bearer_token(authorization)), *scopes)


def principal_of(db: Reader, digest: str, *scopes: str) -> Principal:
    """The holder of the token whose SHA-256 is ``digest`` (the admin page keeps only that),
    which must be unrevoked and have one of ``scopes``."""
    return principal_from(_TOKEN_BY_HASH.all(connection_of(db), {"digest": digest}),
                          digest, *scopes)


def token_read(digest: str) -> BoundRead:
    """The read :func:`principal_from` judges, to send together with others."""
    return _TOKEN_BY_HASH.bound(digest=digest)


def principal_from(rows: list[Any], digest: str, *scopes: str) -> Principal:
    """:func:`principal_of` from the rows :func:`token_read` read (one, or none)."""
    row = rows[0] if rows else None
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("the bearer token is unknown or revoked")
    if row.scope not in scopes:
        needed = " or ".join(f"'{scope}'" for scope in scopes)
        raise Forbidden(f"this token has scope '{row.scope}'; this endpoint needs {needed}")
    return Principal(row.name, row.scope, row.tenant_id, row.tenant_name, row.token_hash)
