"""Schema migrations (Alembic) and first-start bootstrap."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from .db import make_engine, write_transaction
from .revocation.issuer import keep_issuer
from .services import tokens

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


#: Key of the PostgreSQL advisory lock that serialises migrations of instances starting at once.
_MIGRATION_LOCK = 0x5C1B_0001


def upgrade(url: str) -> None:
    """Apply pending migrations; on PostgreSQL under an advisory lock, so several instances
    starting together on an empty database migrate once instead of racing."""
    config = alembic_config(url)
    if not url.startswith("postgresql"):
        command.upgrade(config, "head")
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()


class SchemaNotCurrent(Exception):
    """The database has no schema yet, or an older one; the message says to migrate."""


def require_current(url: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless the schema is at the newest revision; changes
    nothing (a missing SQLite file is not created)."""
    engine = make_engine(url)  # first: it explains a bad driver or SQLite directory
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            path = Path(parsed.database).resolve()
            if not path.exists():
                raise SchemaNotCurrent(f"there is no database at {path}; "
                                       "create it with 'scim-bridge db upgrade'")
        with engine.connect() as connection:
            problem = schema_problem(connection)
    finally:
        engine.dispose()
    if problem is not None:
        raise SchemaNotCurrent(problem)


@cache
def _scripts() -> ScriptDirectory:
    """The migration scripts of this version (read once: they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config(""))


def known_revisions() -> set[str]:
    """Every revision this version can upgrade from."""
    return {revision.revision for revision in _scripts().walk_revisions()}


def head_revisions() -> set[str]:
    return set(_scripts().get_heads())


def schema_problem(connection: Connection) -> str | None:
    """Why the schema on ``connection`` is not at this version's newest revision (what to
    run, in one sentence), or ``None`` when it is; reads only Alembic's version table."""
    current = set(MigrationContext.configure(connection).get_current_heads())
    heads = head_revisions()
    if current == heads:
        return None
    if not current:
        return "the database has no scim-bridge schema yet; run 'scim-bridge db upgrade'"
    if not current <= known_revisions():
        return (f"the database is at revision {', '.join(sorted(current))}, "
                "which this scim-bridge does not know; upgrade scim-bridge")
    return (f"the database schema is at revision {', '.join(sorted(current))}, "
            f"older than {', '.join(sorted(heads))}; run 'scim-bridge db upgrade'")


@dataclass(frozen=True)
class FirstStart:
    scim_token: str
    admin_token: str


def bootstrap(url: str, issuer: str, *, configured: bool = False) -> FirstStart | None:
    """Migrate, make sure the default tenant exists, keep the token issuer (stored on first
    start; replaced when ``configured`` by ``SCIM_BRIDGE_PUBLIC_URL``), and on an empty
    database create the first SCIM and admin tokens (returned once, to be printed once)."""
    upgrade(url)
    with write_transaction(url) as db:
        issuer = issuer.rstrip("/")
        before = keep_issuer(db, issuer, replace=configured)
        if configured and before is not None and before != issuer:
            log.warning("the token issuer changes from %s to %s (SCIM_BRIDGE_PUBLIC_URL); "
                        "sessions signed with the old issuer are no longer active", before, issuer)
        return _first_start(db)


def _first_start(db: Session) -> FirstStart | None:
    tokens.ensure_default_tenant(db)
    if tokens.has_tokens(db):
        return None
    return FirstStart(
        scim_token=tokens.create_token(db, "idp", "scim"),
        admin_token=tokens.create_token(db, "admin", "admin"),
    )
