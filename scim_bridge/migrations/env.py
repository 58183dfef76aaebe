"""Alembic environment: the target is the models' metadata; the URL comes from the caller."""

from __future__ import annotations

from typing import Any

from alembic import context

from scim_bridge import models  # noqa: F401  (registers the tables)
from scim_bridge.db import Base, make_engine

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
