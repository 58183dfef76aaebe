"""Tenants and API tokens, as the CLI manages them, and a tenant's own tokens as its admin
manages them over the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..auth import SCOPES, hash_token, new_token
from ..db import utcnow
from ..errors import Conflict, InvalidValue, NotFound
from ..models import DEFAULT_TENANT, NAME_LENGTH, ApiToken, Tenant
from ..scim.formats import iso


def ensure_default_tenant(db: Session) -> Tenant:
    tenant = db.scalar(select(Tenant).where(Tenant.name == DEFAULT_TENANT))
    if tenant is None:
        tenant = Tenant(name=DEFAULT_TENANT)
        db.add(tenant)
        db.flush()
    return tenant


def create_tenant(db: Session, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise InvalidValue("a tenant needs a name")
    _check_name("tenant", name)
    if db.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise Conflict(f"tenant '{name}' already exists")
    tenant = Tenant(name=name)
    db.add(tenant)
    db.flush()
    return tenant


def get_tenant(db: Session, name: str | None) -> Tenant:
    tenant = db.scalar(select(Tenant).where(Tenant.name == (name or DEFAULT_TENANT)))
    if tenant is None:
        if not name or name == DEFAULT_TENANT:
            return ensure_default_tenant(db)
        raise NotFound(f"no tenant named '{name}'")
    return tenant


def create_token(db: Session, name: str, scope: str, tenant: str | None = None) -> str:
    """Create a token and return it; only its hash is stored, so this is the one chance."""
    if scope not in SCOPES:
        raise InvalidValue(f"unknown scope '{scope}'; choose one of {', '.join(SCOPES)}")
    _check_name("token", name)
    owner = get_tenant(db, tenant)
    taken = select(ApiToken.id).where(ApiToken.tenant_id == owner.id, ApiToken.name == name)
    if db.scalar(taken) is not None:
        raise Conflict(f"a token named '{name}' already exists in tenant '{owner.name}'")
    token = new_token()
    db.add(ApiToken(name=name, scope=scope, tenant_id=owner.id, token_hash=hash_token(token)))
    db.flush()
    return token


def _check_name(kind: str, name: str) -> None:
    """Refused before the database, so SQLite (which stores any length) agrees with PostgreSQL."""
    if len(name) > NAME_LENGTH:
        raise InvalidValue(
            f"a {kind} name may be at most {NAME_LENGTH} characters, got {len(name)}"
        )


def list_tokens(db: Session) -> list[ApiToken]:
    """Every tenant's tokens (with their tenant loaded), by tenant then creation."""
    return list(db.scalars(select(ApiToken).order_by(ApiToken.tenant_id, ApiToken.id)))


def revoke_token(db: Session, name: str, tenant: str | None = None) -> None:
    """Revoke the tenant's token called ``name`` (the default tenant's when none is named)."""
    owner = get_tenant(db, tenant)
    token = db.scalar(
        select(ApiToken).where(ApiToken.tenant_id == owner.id, ApiToken.name == name)
    )
    if token is None:
        raise NotFound(f"tenant '{owner.name}' has no token named '{name}'")
    token.revoked_at = token.revoked_at or utcnow()
    db.flush()


def has_tokens(db: Session) -> bool:
    return bool(db.scalar(select(func.count()).select_from(ApiToken)))


# What a tenant's admin may do with its own tokens over the admin API (the CLI may do more).

#: Scopes an admin may mint; ``sessions`` tokens act for every tenant, so only the CLI makes them.
ADMIN_MINTABLE = ("scim", "admin")


def token_summary(token: ApiToken) -> dict[str, Any]:
    """What an admin may see of a token: never the token or its hash."""
    return {"name": token.name, "scope": token.scope, "created_at": iso(token.created_at),
            "revoked_at": iso(token.revoked_at) if token.revoked_at else None}


def tenant_tokens(db: Session, tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's tokens, oldest first, revoked ones included."""
    rows = db.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id)
                      .order_by(ApiToken.id))
    return [token_summary(row) for row in rows]


def mint_tenant_token(db: Session, tenant_name: str, body: Any) -> dict[str, Any]:
    """A new ``scim`` or ``admin`` token of the tenant, returned once with its summary."""
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object")
    name, scope = body.get("name"), body.get("scope")
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise InvalidValue("'name' must be a non-empty string")
    if scope not in ADMIN_MINTABLE:
        raise InvalidValue(
            f"'scope' must be one of {', '.join(ADMIN_MINTABLE)} (sessions tokens act for "
            "every tenant: create them with `scim-bridge token create`)"
        )
    token = create_token(db, name.strip(), scope, tenant_name)
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    assert row is not None
    return {**token_summary(row), "token": token}


def revoke_tenant_token(
    db: Session, tenant_name: str, name: str, *, current: str, allow_self: bool
) -> dict[str, Any]:
    """Revoke one of the tenant's tokens at once. Revoking the token making the request needs
    ``allow_self``: an admin locking itself out by a slip has no way back in but the CLI."""
    if name == current and not allow_self:
        raise Conflict(
            f"'{name}' is the token making this request; add ?self=true to revoke it anyway"
        )
    revoke_token(db, name, tenant_name)
    owner = get_tenant(db, tenant_name)
    row = db.scalar(select(ApiToken).where(ApiToken.tenant_id == owner.id,
                                           ApiToken.name == name))
    assert row is not None
    return token_summary(row)
