"""The ``scim-bridge`` command: serve, db, tenant, token."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from typing import Any

import click

from .db import write_transaction
from .errors import BridgeError
from .settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _in_transaction(work: Callable[[Any], Any]) -> Any:
    """Run ``work(session)`` in one committed transaction; errors become clean CLI errors."""
    from . import migrate

    url = _settings().database_url
    migrate.upgrade(url)
    try:
        with write_transaction(url) as session:
            return work(session)
    except BridgeError as error:
        raise click.ClickException(error.detail) from None


@click.group()
def main() -> None:
    """scim-bridge: SCIM 2.0 provisioning that revokes sessions the moment access changes."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Migrate the database and serve with gunicorn."""
    from . import migrate
    from .server import run

    settings = _settings()
    public_url = settings.public_url or f"http://{host}:{port}"
    if not settings.public_url and not _is_loopback(host):
        click.echo(f"warning: serving on {host} without SCIM_BRIDGE_PUBLIC_URL: session tokens "
                   "name the issuer stored on this deployment's first start; set "
                   "SCIM_BRIDGE_PUBLIC_URL to the URL applications use", err=True)
    first = migrate.bootstrap(settings.database_url, public_url,
                              configured=settings.public_url is not None)
    if first is not None:
        click.echo(f"SCIM base URL: {public_url.rstrip('/')}/scim/v2")
        click.echo(f"SCIM token:    {first.scim_token}")
        click.echo(f"Admin token:   {first.admin_token}")
        click.echo("These tokens are shown once; only their hashes are stored.")
    sys.stdout.flush()
    # Without SCIM_BRIDGE_PUBLIC_URL the workers sign with the stored issuer (KeyRing.issuer).
    run(settings, host=host, port=port, workers=workers, threads=threads)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from . import migrate

    migrate.upgrade(_settings().database_url)
    click.echo("database is up to date")


@main.group()
def tenant() -> None:
    """Tenants (customer organizations)."""


@tenant.command("create")
@click.argument("name")
def tenant_create(name: str) -> None:
    from .services import tokens

    _in_transaction(lambda session: tokens.create_tenant(session, name))
    click.echo(name)


@tenant.command("list")
def tenant_list() -> None:
    from sqlalchemy import select

    from .models import Tenant

    for name in _in_transaction(
        lambda session: list(session.scalars(select(Tenant.name).order_by(Tenant.id)))
    ):
        click.echo(name)


@main.group()
def token() -> None:
    """API tokens (stored hashed)."""


@token.command("create")
@click.option("--name", required=True)
@click.option("--scope", required=True, type=click.Choice(["scim", "sessions", "admin", "ssf"]))
@click.option("--tenant", "tenant_name", default=None, help="Tenant (default: 'default').")
def token_create(name: str, scope: str, tenant_name: str | None) -> None:
    """Print only the new token on stdout."""
    from .services import tokens

    click.echo(_in_transaction(lambda s: tokens.create_token(s, name, scope, tenant_name)))


@token.command("list")
def token_list() -> None:
    from .services import tokens

    def rows(session: Any) -> list[str]:
        return [
            f"{t.name}\t{t.scope}\t{t.tenant.name}\t{'revoked' if t.revoked_at else 'active'}"
            for t in tokens.list_tokens(session)
        ]

    for line in _in_transaction(rows):
        click.echo(line)


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    from .services import tokens

    _in_transaction(lambda session: tokens.revoke_token(session, name))
    click.echo(f"revoked {name}")


@main.group()
def keys() -> None:
    """Session-token signing keys (ES256)."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Retire the active key and start signing with a new one.

    The retired key stays in the JWKS until every token it signed has expired.
    """
    from .revocation import keys as signing_keys

    key_file = _settings().signing_key_file
    retired, new = _in_transaction(lambda session: signing_keys.rotate(session, key_file))
    for kid in retired:
        click.echo(f"retired {kid}")
    click.echo(f"active  {new}")


@keys.command("list")
def keys_list() -> None:
    """Published keys: kid, state and creation time."""
    from .revocation import keys as signing_keys

    settings = _settings()

    def rows(session: Any) -> list[str]:
        return [
            f"{key.kid}\t{'retired' if key.retired_at else 'active'}\t{key.created_at:%Y-%m-%d}"
            for key in signing_keys.published(session, settings.max_session_ttl)
        ]

    for line in _in_transaction(rows):
        click.echo(line)


if __name__ == "__main__":
    main()
