"""Application sessions: created for an active user, checked by introspection (RFC 7662)
against the database row on every call, and ended by logout through the choke point.

A signed token alone never makes a session active: introspection also needs the row unrevoked
and unexpired and the user still active, so a revocation committed by a SCIM request is
visible to the very next introspection, in any process.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..db import Reader, connection_of, new_id
from ..errors import Forbidden, InvalidValue, NotFound
from ..events.record import LOGOUT, Cause
from ..metrics import SESSIONS_CREATED, count_after_commit
from ..models import DEFAULT_TENANT, NAME_LENGTH, AppSession, Group, Membership, Tenant, User
from ..prepared import BoundRead, PreparedRead
from ..scim.formats import fold
from . import jose
from .choke import revoke_user_sessions
from .keys import KeyRing

#: The tenant a ``userName``/``externalId`` lookup means when it names none (PRODUCT.md).
_IDENTIFIERS = ("user_id", "userName", "externalId")


class UserInactive(Forbidden):
    error = "user_inactive"


@dataclass(frozen=True)
class SessionRequest:
    """A validated ``POST /api/v1/sessions`` body."""

    identifier: str
    value: str
    client: str
    ttl_seconds: int
    tenant: str | None = None


@dataclass(frozen=True)
class IssuedSession:
    row: AppSession
    token: str
    user: User
    tenant_name: str
    groups: list[tuple[str, str]]


def parse_request(body: Any, *, default_ttl: int, max_ttl: int) -> SessionRequest:
    if not isinstance(body, Mapping):
        raise InvalidValue("the request body must be a JSON object")
    given = [name for name in _IDENTIFIERS if body.get(name) is not None]
    if len(given) != 1:
        raise InvalidValue("send exactly one of 'user_id', 'userName' or 'externalId'")
    value = body[given[0]]
    if not _text(value, given[0], 512):
        raise InvalidValue(f"'{given[0]}' must be a non-empty string")
    client = body.get("client")
    if not _text(client, "client", 64):
        raise InvalidValue("'client' is required: a short name such as 'web' or 'mobile'")
    ttl = body.get("ttl_seconds")
    if ttl is None:
        ttl = min(default_ttl, max_ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= max_ttl:
        raise InvalidValue(f"'ttl_seconds' must be an integer from 1 to {max_ttl}")
    tenant = body.get("tenant")
    if tenant is not None and not _text(tenant, "tenant", NAME_LENGTH):
        raise InvalidValue("'tenant' must be a tenant's name")
    return SessionRequest(given[0], value, client.strip(), ttl, tenant)


def _text(value: Any, field: str, longest: int) -> TypeGuard[str]:
    """A non-blank string without NUL (which no database stores); longer than ``longest``
    (its column, or what it is looked up in) is refused naming the field."""
    if isinstance(value, str) and len(value) > longest:
        raise InvalidValue(f"'{field}' may be at most {longest} characters, got {len(value)}")
    return isinstance(value, str) and bool(value.strip()) and "\x00" not in value


def create_session(
    db: Session, keys: KeyRing, request: SessionRequest, issuer: str, now: dt.datetime
) -> IssuedSession:
    """Insert the session row and sign its token; 404 unknown user, 403 inactive user.

    The user row is read ``FOR SHARE`` (PostgreSQL), so a concurrent deactivation or removal
    either sees this session and revokes it, or is seen here: every membership change updates
    its users' rows (their version) before it revokes. The memberships themselves are not
    locked: a removal deletes its membership before it updates the user, so locking them after
    the user would deadlock with it.
    """
    user = _find_user(db, request)
    if not user.is_active:
        raise UserInactive(f"user '{user.user_name}' is not active; no session can start")
    tenant_name = db.scalar(select(Tenant.name).where(Tenant.id == user.tenant_id)) or ""
    groups = [
        (group_id, name)
        for group_id, name in db.execute(
            select(Group.id, Group.display_name)
            .join(Membership, Membership.group_id == Group.id)
            .where(Membership.user_id == user.id)
            .order_by(Group.display_name_key, Group.id)
        )
    ]
    issued_at = int(now.timestamp())
    expires_at = dt.datetime.fromtimestamp(issued_at + request.ttl_seconds, dt.UTC)
    row = AppSession(id=new_id(), tenant_id=user.tenant_id, user_id=user.id,
                     client=request.client, created_at=now, expires_at=expires_at)
    db.add(row)
    db.flush()
    count_after_commit(db, SESSIONS_CREATED)
    kid, key = keys.signing_key(db)
    claims = {
        "iss": issuer,
        "sub": user.id,
        "sid": row.id,
        "iat": issued_at,
        "exp": int(expires_at.timestamp()),
        "jti": uuid.uuid4().hex,
        "groups": [name for _, name in groups],
        "tenant": tenant_name,
        "client": request.client,
    }
    return IssuedSession(row, jose.sign(claims, key, kid), user, tenant_name, groups)


def _find_user(db: Session, request: SessionRequest) -> User:
    statement = select(User).with_for_update(read=True)
    if request.identifier == "user_id":
        statement = statement.where(User.id == request.value)
        if request.tenant is not None:
            statement = statement.where(User.tenant_id == _tenant_id(db, request.tenant))
    else:
        tenant_id = _tenant_id(db, request.tenant or DEFAULT_TENANT)
        column = User.user_name_key if request.identifier == "userName" else User.external_id
        value = fold(request.value) if request.identifier == "userName" else request.value
        statement = statement.where(User.tenant_id == tenant_id, column == value)
    user = db.scalar(statement)
    if user is None:
        where = f" in tenant '{request.tenant}'" if request.tenant else ""
        raise NotFound(f"no user with {request.identifier} '{request.value}'{where}")
    return user


def _tenant_id(db: Session, name: str) -> int:
    tenant_id = db.scalar(select(Tenant.id).where(Tenant.name == name))
    if tenant_id is None:
        raise NotFound(f"no tenant named '{name}'")
    return tenant_id


#: Prepared once, one round trip: introspection is the hot path. One row per current group
#: (or one row with ``group_name`` NULL when the user is in none), in no order: the groups are
#: sorted here, so the order is the same however the read was sent.
_LIVE_SESSION = PreparedRead(
    select(AppSession.user_id, AppSession.client, AppSession.revoked_at,
           AppSession.expires_at, User.user_name, User.active, Tenant.name.label("tenant"),
           Group.display_name.label("group_name"), Group.display_name_key.label("group_key"))
    .join(User, User.id == AppSession.user_id)
    .join(Tenant, Tenant.id == AppSession.tenant_id)
    .outerjoin(Membership, Membership.user_id == AppSession.user_id)
    .outerjoin(Group, Group.id == Membership.group_id)
    .where(AppSession.id == bindparam("sid"))
)


def introspect(
    db: Reader, keys: KeyRing, token: Any, issuer: str, now: dt.datetime
) -> dict[str, Any]:
    """RFC 7662 §2.2: the session's current state at ``now``, or only ``{"active": false}``."""
    try:
        claims = keys.verify(db, token, issuer, now)
    except jose.InvalidToken:
        return {"active": False}
    return session_state(claims, _LIVE_SESSION.all(connection_of(db), {"sid": claims["sid"]}),
                         now)


def live_session_read(claims: Mapping[str, Any]) -> BoundRead:
    """The read :func:`session_state` judges, for verified ``claims``, to send together with
    others."""
    return _LIVE_SESSION.bound(sid=claims["sid"])


def session_state(
    claims: Mapping[str, Any], rows: list[Any], now: dt.datetime
) -> dict[str, Any]:
    """:func:`introspect`'s answer from verified ``claims`` and the session's rows."""
    found = rows[0] if rows else None
    if (
        found is None
        or found.revoked_at is not None
        or found.expires_at <= now
        or found.active is False
        or found.user_id != claims["sub"]
    ):
        return {"active": False}
    return {
        "active": True,
        "sub": found.user_id,
        "sid": claims["sid"],
        "username": found.user_name,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": claims["iss"],
        "client": found.client,
        # display names are unique per tenant, folded: their keys order them completely
        "groups": [row.group_name for row in sorted(rows, key=lambda row: row.group_key or "")
                   if row.group_name is not None],
        "tenant": found.tenant,
        "token_type": "Bearer",
    }


def logout(db: Session, session_id: str, actor: str, txn: str) -> None:
    """The user's own logout: revoke one session (idempotent); 404 when it never existed.
    ``txn`` is the sessions call's request id, recorded on the event."""
    found = db.execute(
        select(AppSession.tenant_id, AppSession.user_id).where(AppSession.id == session_id)
    ).first()
    if found is None:
        raise NotFound(f"no session with id '{session_id}'")
    revoke_user_sessions(
        db,
        tenant_id=found.tenant_id,
        user_ids=[found.user_id],
        cause=Cause(LOGOUT, actor, detail="the user logged out", txn=txn),
        session_id=session_id,
        record_without_sessions=False,
    )
