"""Tenants and API tokens, as the CLI manages them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..auth import SCOPES, hash_token, new_token
from ..db import utcnow
from ..errors import Conflict, InvalidValue, NotFound
from ..models import DEFAULT_TENANT, ApiToken, Tenant


def ensure_default_tenant(session: Session) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == DEFAULT_TENANT))
    if tenant is None:
        tenant = Tenant(name=DEFAULT_TENANT)
        session.add(tenant)
        session.flush()
    return tenant


def create_tenant(session: Session, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise InvalidValue("a tenant needs a name")
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise Conflict(f"tenant '{name}' already exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, name: str | None) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == (name or DEFAULT_TENANT)))
    if tenant is None:
        if not name or name == DEFAULT_TENANT:
            return ensure_default_tenant(session)
        raise NotFound(f"no tenant named '{name}'")
    return tenant


def create_token(session: Session, name: str, scope: str, tenant: str | None = None) -> str:
    """Create a token and return it; only its hash is stored, so this is the one chance."""
    if scope not in SCOPES:
        raise InvalidValue(f"unknown scope '{scope}'; choose one of {', '.join(SCOPES)}")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named '{name}' already exists")
    owner = get_tenant(session, tenant)
    token = new_token()
    session.add(ApiToken(name=name, scope=scope, tenant_id=owner.id, token_hash=hash_token(token)))
    session.flush()
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, name: str) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token named '{name}'")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()


def has_tokens(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(ApiToken)))
