"""Whether the service can do its work: the database answers."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def database_answers(db: Session) -> None:
    """Raises the database's own error when it does not answer a trivial query."""
    db.execute(text("SELECT 1"))
