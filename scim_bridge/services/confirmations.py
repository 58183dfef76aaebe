"""The ``confirm`` value a Bulk User Logout preview hands out, so the count an admin confirmed
is the count that runs.

It is an HMAC, not a stored row: ``<expiry>.<mac>`` over the tenant, the expiry, the sorted
matching user ids and the sorted ids of their unrevoked sessions, keyed by a random
per-deployment secret kept in ``deployment_settings`` (made on first use). Every instance can
check it, nothing is left to clean up, and no table is added; it reveals nothing but a hash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import Conflict, InvalidValue
from ..models import DeploymentSetting

__all__ = ["LIFETIME", "check", "issue"]

#: How long a preview may be confirmed: long enough to read a dialog, short enough to be fresh.
LIFETIME = dt.timedelta(minutes=5)
_SECRET = "bulk_logout_confirm_secret"
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _secret(db: Session) -> bytes:
    """The deployment's key; instances racing to make it converge on the first committed."""
    stored = db.scalar(select(DeploymentSetting.value).where(DeploymentSetting.name == _SECRET))
    if stored is None:
        insert = _INSERTS[db.get_bind().dialect.name]
        db.execute(insert(DeploymentSetting).values(name=_SECRET, value=secrets.token_hex(32))
                   .on_conflict_do_nothing(index_elements=[DeploymentSetting.name]))
        stored = db.scalar(
            select(DeploymentSetting.value).where(DeploymentSetting.name == _SECRET))
    assert stored is not None
    return stored.encode("ascii")


def _mac(db: Session, tenant_id: int, expiry: int, user_ids: Iterable[str],
         session_ids: Iterable[str]) -> str:
    message = "\n".join([str(tenant_id), str(expiry), ",".join(sorted(user_ids)),
                         ",".join(sorted(session_ids))])
    digest = hmac.new(_secret(db), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def issue(db: Session, tenant_id: int, user_ids: Iterable[str],
          session_ids: Iterable[str]) -> str:
    expiry = int((utcnow() + LIFETIME).timestamp())
    return f"{expiry}.{_mac(db, tenant_id, expiry, user_ids, session_ids)}"


def check(db: Session, tenant_id: int, confirm: object, user_ids: Iterable[str],
          session_ids: Iterable[str]) -> None:
    """Refuse (409) a confirmation that expired or was given for another set of users or
    sessions; a value this API did not make is a 400 naming ``confirm``."""
    expiry_text, _, mac = confirm.partition(".") if isinstance(confirm, str) else ("", "", "")
    if not (expiry_text.isascii() and expiry_text.isdigit() and len(expiry_text) <= 12 and mac):
        raise InvalidValue("'confirm' must be the value a dry run returned")
    expiry = int(expiry_text)
    if expiry < utcnow().timestamp():
        raise Conflict("the preview expired; run the dry run again and confirm its counts")
    if not hmac.compare_digest(mac, _mac(db, tenant_id, expiry, user_ids, session_ids)):
        raise Conflict("the users or sessions matching changed since the preview; nobody was "
                       "logged out: run the dry run again and confirm its counts")
