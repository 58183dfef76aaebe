"""The session-token issuer (``iss``): one per deployment, kept in ``deployment_settings``.

Every instance signs and verifies with the same issuer, or a token one instance signed is
inactive at the next. ``scim-bridge serve`` stores it on first start (``SCIM_BRIDGE_PUBLIC_URL``
if set, else that start's ``http://HOST:PORT``); an instance that sets
``SCIM_BRIDGE_PUBLIC_URL`` uses that value and also stores it, so the stored issuer is always
the one the configured fleet signs with and an instance started without the setting agrees.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db import Reader
from ..models import DeploymentSetting

__all__ = ["ISSUER", "keep_issuer", "stored_issuer"]

#: The ``deployment_settings`` row that holds the issuer.
ISSUER = "issuer"


def stored_issuer(db: Reader) -> str | None:
    return db.scalar(select(DeploymentSetting.value).where(DeploymentSetting.name == ISSUER))


def keep_issuer(db: Session, issuer: str, *, replace: bool) -> str | None:
    """Store ``issuer`` if none is stored yet, or over the stored one when ``replace``
    (an explicit ``SCIM_BRIDGE_PUBLIC_URL``); returns the issuer stored before, if any.

    Instances starting at once on an empty database converge on the first one committed.
    """
    before = stored_issuer(db)
    if before == issuer or (before is not None and not replace):
        return before
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(DeploymentSetting).values(name=ISSUER, value=issuer)
    if replace:
        db.execute(statement.on_conflict_do_update(
            index_elements=[DeploymentSetting.name], set_={"value": issuer}))
    else:
        db.execute(statement.on_conflict_do_nothing(index_elements=[DeploymentSetting.name]))
    return before
