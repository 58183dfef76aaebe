"""The ``confirm`` value a Bulk User Logout preview hands out, so the count an admin confirmed
is the count that runs.

It is an HMAC, not a stored row: ``<expiry>.<mac>`` over the tenant, the expiry, the sorted
matching user ids and the sorted ids of their unrevoked sessions, keyed by a random
per-deployment secret (services/keys.py). Every instance can
check it, nothing is left to clean up, and no table is added; it reveals nothing but a hash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import Conflict, InvalidValue
from .keys import deployment_secret

__all__ = ["LIFETIME", "check", "issue"]

#: How long a preview may be confirmed: long enough to read a dialog, short enough to be fresh.
LIFETIME = dt.timedelta(minutes=5)
_SECRET = "bulk_logout_confirm_secret"


def _secret(db: Session) -> bytes:
    return deployment_secret(db, _SECRET).encode("ascii")


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
