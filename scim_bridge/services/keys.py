"""Secrets every instance of one deployment shares, made on first use and kept in
``deployment_settings``: the Bulk User Logout confirmation key and the admin page's session key.
Random per deployment, never per process, so any gunicorn worker can check what another signed.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import DeploymentSetting

__all__ = ["deployment_secret"]

_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def deployment_secret(db: Session, name: str) -> str:
    """The deployment's secret ``name``; instances racing to make it converge on the first
    committed."""
    stored = db.scalar(select(DeploymentSetting.value).where(DeploymentSetting.name == name))
    if stored is None:
        insert = _INSERTS[db.get_bind().dialect.name]
        db.execute(insert(DeploymentSetting).values(name=name, value=secrets.token_hex(32))
                   .on_conflict_do_nothing(index_elements=[DeploymentSetting.name]))
        stored = db.scalar(
            select(DeploymentSetting.value).where(DeploymentSetting.name == name))
    assert stored is not None
    return stored
