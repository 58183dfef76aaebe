"""Schema migrations (Alembic) and first-start bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session

from .db import write_transaction
from .services import tokens

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


@dataclass(frozen=True)
class FirstStart:
    scim_token: str
    admin_token: str


def bootstrap(url: str) -> FirstStart | None:
    """Migrate, make sure the default tenant exists, and on an empty database create the
    first SCIM and admin tokens (returned once, to be printed once)."""
    upgrade(url)
    with write_transaction(url) as session:
        return _first_start(session)


def _first_start(session: Session) -> FirstStart | None:
    tokens.ensure_default_tenant(session)
    if tokens.has_tokens(session):
        return None
    return FirstStart(
        scim_token=tokens.create_token(session, "idp", "scim"),
        admin_token=tokens.create_token(session, "admin", "admin"),
    )
