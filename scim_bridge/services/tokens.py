"""Tenants and API tokens, as the CLI manages them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..auth import SCOPES, hash_token, new_token
from ..db import utcnow
from ..errors import Conflict, InvalidValue, NotFound
from ..models import DEFAULT_TENANT, NAME_LENGTH, ApiToken, Tenant


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
