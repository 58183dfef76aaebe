"""The ``scim-bridge`` command: serve, worker, db (upgrade, backup, restore), tenant, token,
keys, webhook, events.

Exit status: 0 on success; 1 when the request itself is refused (a name already taken, no
such token or tenant); 2 when the configuration or the environment is wrong (a setting, the
database, the signing key file, a schema that is not migrated). Either way the cause is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from . import __version__
from .auth import SCOPES
from .db import DatabaseUnusable, make_engine, make_sessionmaker, write_transaction
from .errors import BridgeError
from .logs import LOG_FORMATS
from .migrate import SchemaNotCurrent
from .revocation.keys import SigningKeyFileError
from .settings import Settings, SettingsError, env_name

T = TypeVar("T")
_SETTINGS = "scim_bridge.settings"
_URL_VARIABLE = env_name("database_url")


class OperatorError(click.ClickException):
    """Something the operator fixes in the configuration or the environment."""

    exit_code = 2


class _Main(click.Group):
    """Turns every known configuration or environment failure into one line and status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SettingsError, SigningKeyFileError) as exc:
            raise OperatorError(_one_line(str(exc))) from None
        except SchemaNotCurrent as exc:
            raise OperatorError(f"{_URL_VARIABLE}={_shown_url(ctx)}: {exc}") from None
        except DatabaseUnusable as exc:
            raise OperatorError(f"{_URL_VARIABLE}={_shown_url(ctx)}: {exc}") from None
        except (OperationalError, InterfaceError, DatabaseError) as exc:
            raise OperatorError(_database_problem(ctx, exc)) from None
        except CommandError as exc:  # Alembic: e.g. a revision this version does not know
            said = _one_line(str(exc))
            hint = ("; a newer scim-bridge migrated it: upgrade scim-bridge"
                    if "locate revision" in said else "")
            raise OperatorError(f"{_URL_VARIABLE}={_shown_url(ctx)}: migration failed: "
                                f"{said}{hint}") from None


def _settings() -> Settings:
    """The settings, read from the environment once per command."""
    meta = click.get_current_context().meta
    if _SETTINGS not in meta:
        meta[_SETTINGS] = Settings.from_env()
    settings: Settings = meta[_SETTINGS]
    return settings


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _shown_url(ctx: click.Context) -> str:
    settings: Settings | None = ctx.meta.get(_SETTINGS)
    if settings is None:
        return "(unset)"
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _database_problem(ctx: click.Context, exc: DatabaseError | InterfaceError) -> str:
    """One line: which database, what the driver said, and what to do about it."""
    said = _one_line(str(exc.orig)).replace("FATAL:  ", "").replace("FATAL: ", "")
    lowered = said.lower()
    if "not a database" in lowered or "malformed" in lowered:
        hint = "the file is not a SQLite database; point the URL at a scim-bridge one or a new file"
    elif "role" in lowered and "does not exist" in lowered:
        hint = "create that role in PostgreSQL or put an existing user in the URL"
    elif "database" in lowered and "does not exist" in lowered:
        hint = "create the database (createdb NAME) or fix its name in the URL"
    elif "password" in lowered or "authentication" in lowered:
        hint = "check the user and password in the URL"
    elif "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        hint = "make the database file and its directory writable"
    else:
        hint = "make sure the database server is running and reachable at that address"
    return f"{_URL_VARIABLE}={_shown_url(ctx)}: cannot use the database ({said}); {hint}"


def _writing(work: Callable[[Session], T]) -> T:
    """Migrate, then run ``work(db)`` in one committed transaction."""
    from . import migrate

    url = _settings().database_url
    migrate.upgrade(url)
    try:
        with write_transaction(url) as db:
            return work(db)
    except BridgeError as error:
        raise click.ClickException(error.detail) from None


def _reading(work: Callable[[Session], T]) -> T:
    """Run ``work(db)`` on a migrated database without changing it (no migration either)."""
    from . import migrate

    settings = _settings()
    migrate.require_current(settings.database_url)
    engine = make_engine(settings.database_url,
                         busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        with make_sessionmaker(engine)() as db:
            return work(db)
    except BridgeError as error:
        raise click.ClickException(error.detail) from None
    finally:
        engine.dispose()


def _check_key_file(settings: Settings) -> None:
    if settings.signing_key_file:
        from .revocation.keys import load_key_file

        load_key_file(settings.signing_key_file)


@click.group(cls=_Main)
@click.version_option(__version__, "--version", prog_name="scim-bridge")
def main() -> None:
    """scim-bridge: SCIM 2.0 provisioning that revokes sessions the moment access changes."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="Threads per worker.")
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535),
              help="Also serve /metrics, without a token, on 127.0.0.1 at this port.")
@click.option("--log-format", default=None, type=click.Choice(LOG_FORMATS),
              help="json: one object per line; text: for a terminal. "
                   "[default: SCIM_BRIDGE_LOG_FORMAT, else json]")
@click.option("--worker/--no-worker", "deliver", default=None,
              help="Run the delivery worker in each process (default: "
                   "SCIM_BRIDGE_EMBEDDED_WORKER, true).")
def serve(host: str, port: int, workers: int, threads: int, metrics_port: int | None,
          log_format: str | None, deliver: bool | None) -> None:
    """Migrate the database and serve with gunicorn (delivering events too, by default)."""
    from . import migrate
    from .server import METRICS_HOST, listen_for_metrics, run

    settings = _settings()
    _check_key_file(settings)  # before anything listens: never a server that cannot sign
    _metrics_directory()
    if metrics_port is not None:
        try:
            listen_for_metrics(metrics_port, settings)
        except OSError as exc:
            raise OperatorError(f"--metrics-port {metrics_port}: cannot listen on "
                                f"{METRICS_HOST} ({exc.strerror}); choose a free port") from None
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
    run(settings, host=host, port=port, workers=workers, threads=threads,
        metrics_port=metrics_port, log_format=log_format,
        deliver=settings.embedded_worker if deliver is None else deliver)


def _metrics_directory() -> None:
    """A fresh directory for the workers' metric files, made before gunicorn forks them and
    removed when the master (not a worker, which runs exit handlers too) exits."""
    from . import metrics

    directory = tempfile.mkdtemp(prefix="scim-bridge-metrics-")
    metrics.enable_multiprocess(directory)
    master = os.getpid()

    def remove() -> None:
        if os.getpid() == master:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)


@main.command("worker")
def worker_command() -> None:
    """Deliver events in the foreground until SIGTERM or SIGINT (for deployments that run
    delivery apart from serving; then serve with --no-worker)."""
    import signal

    from . import migrate
    from .events.worker import DeliveryWorker
    from .revocation.keys import KeyRing

    settings = _settings()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url,
                         busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    sessions = make_sessionmaker(engine)
    worker = DeliveryWorker(sessions, settings, signer=KeyRing(sessions, settings))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    click.echo(f"delivery worker {worker.owner} running", err=True)
    try:
        worker.run()
    finally:
        engine.dispose()
    click.echo("delivery worker stopped", err=True)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from . import migrate

    migrate.upgrade(_settings().database_url)
    click.echo("database is up to date")


@db_group.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def db_backup(path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH, consistent while serve keeps writing.

    For PostgreSQL use pg_dump.
    """
    from .backup import BackupError, backup

    try:
        source = backup(_settings().database_url, path.resolve(), force=force)
    except BackupError as exc:
        raise OperatorError(_one_line(str(exc))) from None
    click.echo(f"backed up {source} to {path.resolve()}")


@db_group.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the database if it holds one.")
def db_restore(path: Path, force: bool) -> None:
    """Copy the SQLite backup PATH into the database; stop serve first.

    Then run 'scim-bridge db upgrade'. For PostgreSQL use pg_restore.
    """
    from .backup import BackupError, is_current, restore

    try:
        revision = restore(_settings().database_url, path.resolve(), force=force)
    except BackupError as exc:
        raise OperatorError(_one_line(str(exc))) from None
    click.echo(f"restored {path.resolve()} (schema revision {revision})")
    if not is_current(revision):
        click.echo("run 'scim-bridge db upgrade' before starting serve")


@main.group()
def tenant() -> None:
    """Tenants (customer organizations)."""


@tenant.command("create")
@click.argument("name")
def tenant_create(name: str) -> None:
    from .services import tokens

    _writing(lambda db: tokens.create_tenant(db, name))
    click.echo(name)


@tenant.command("list")
def tenant_list() -> None:
    from sqlalchemy import select

    from .models import Tenant

    for name in _reading(lambda db: list(db.scalars(select(Tenant.name).order_by(Tenant.id)))):
        click.echo(name)


@main.group()
def token() -> None:
    """API tokens (stored hashed); names are unique per tenant."""


_TENANT_OPTION = click.option("--tenant", "tenant_name", default=None,
                              help="Tenant (default: 'default').")


@token.command("create")
@click.option("--name", required=True)
@click.option("--scope", required=True, type=click.Choice(SCOPES))
@_TENANT_OPTION
def token_create(name: str, scope: str, tenant_name: str | None) -> None:
    """Print only the new token on stdout."""
    from .services import tokens

    click.echo(_writing(lambda db: tokens.create_token(db, name, scope, tenant_name)))


@token.command("list")
def token_list() -> None:
    """Every token: name, scope, tenant and state, tab-separated."""
    from .services import tokens

    def rows(db: Session) -> list[str]:
        return [
            f"{t.name}\t{t.scope}\t{t.tenant.name}\t{'revoked' if t.revoked_at else 'active'}"
            for t in tokens.list_tokens(db)
        ]

    for line in _reading(rows):
        click.echo(line)


@token.command("revoke")
@click.argument("name")
@_TENANT_OPTION
def token_revoke(name: str, tenant_name: str | None) -> None:
    """Revoke the tenant's token called NAME; requests with it get 401 from now on."""
    from .services import tokens

    _writing(lambda db: tokens.revoke_token(db, name, tenant_name))
    click.echo(f"revoked {name}")


@main.group()
def keys() -> None:
    """Signing keys: ES256 for session tokens, RS256 for security events and logout tokens."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Retire the active keys and start signing with new ones, one per algorithm in use.

    The retired keys stay in the JWKS until every token they signed has expired. A session
    key read from SCIM_BRIDGE_SIGNING_KEY_FILE is rotated by replacing that file.
    """
    from .revocation import keys as signing_keys

    settings = _settings()
    _check_key_file(settings)
    key_file = settings.signing_key_file
    retired, new = _writing(lambda db: signing_keys.rotate(db, key_file))
    for kid in retired:
        click.echo(f"retired {kid}")
    for kid in new:
        click.echo(f"active  {kid}")


@keys.command("list")
def keys_list() -> None:
    """Published keys: kid, algorithm, state and creation time."""
    from .revocation import keys as signing_keys

    settings = _settings()
    _check_key_file(settings)

    def rows(db: Session) -> list[str]:
        return [
            f"{key.kid}\t{key.algorithm}\t{'retired' if key.retired_at else 'active'}"
            f"\t{key.created_at:%Y-%m-%d}"
            for key in signing_keys.published(db, settings.max_session_ttl)
        ]

    for line in _reading(rows):
        click.echo(line)


@main.group()
def webhook() -> None:
    """Signed webhook endpoints (Standard Webhooks)."""


def _tenant_id(db: Session, tenant_name: str | None) -> int:
    from .services import tokens

    return tokens.get_tenant(db, tenant_name).id


@webhook.command("add")
@click.argument("url")
@click.option("--events", default=None, help="Comma-separated types (default: all).")
@_TENANT_OPTION
def webhook_add(url: str, events: str | None, tenant_name: str | None) -> None:
    """Register URL; prints its id, URL and types, and the secret alone on the last line
    (shown once)."""
    from .services import webhooks

    settings = _settings()
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = [name.strip() for name in events.split(",") if name.strip()]
    created = _writing(
        lambda db: webhooks.create_webhook(db, _tenant_id(db, tenant_name), body, settings))
    click.echo(f"id:     {created['id']}")
    click.echo(f"url:    {created['url']}")
    click.echo(f"events: {','.join(created['events'])}")
    click.echo(created["secret"])


@webhook.command("list")
@_TENANT_OPTION
def webhook_list(tenant_name: str | None) -> None:
    """The tenant's webhooks: id, URL, types and state, tab-separated."""
    from .services import webhooks

    listed = _reading(lambda db: webhooks.list_webhooks(db, _tenant_id(db, tenant_name)))
    for hook in listed["webhooks"]:
        click.echo(f"{hook['id']}\t{hook['url']}\t{','.join(hook['events'])}\t{hook['state']}")


@webhook.command("remove")
@click.argument("webhook_id")
@_TENANT_OPTION
def webhook_remove(webhook_id: str, tenant_name: str | None) -> None:
    from .services import webhooks

    _writing(lambda db: webhooks.delete_webhook(db, _tenant_id(db, tenant_name), webhook_id))
    click.echo(f"removed {webhook_id}")


@webhook.command("rotate")
@click.argument("webhook_id")
@_TENANT_OPTION
def webhook_rotate(webhook_id: str, tenant_name: str | None) -> None:
    """A new secret for WEBHOOK_ID, alone on the last line (shown once); the previous one
    keeps signing beside it for SCIM_BRIDGE_WEBHOOK_SECRET_GRACE seconds."""
    from .services import webhooks

    settings = _settings()
    rotated = _writing(lambda db: webhooks.rotate_secret(
        db, _tenant_id(db, tenant_name), webhook_id, settings))
    click.echo(f"id:                    {rotated['id']}")
    click.echo(f"previous secret until: {rotated['previous_secret_until']}")
    click.echo(rotated["secret"])


@main.group("logout-client")
def logout_client() -> None:
    """OpenID Connect back-channel logout clients."""


@logout_client.command("add")
@click.argument("client_id")
@click.argument("url")
@_TENANT_OPTION
def logout_client_add(client_id: str, url: str, tenant_name: str | None) -> None:
    """Register CLIENT_ID's back-channel logout URL; prints the registration's id."""
    from .services import logout_clients

    settings = _settings()
    body = {"client_id": client_id, "backchannel_logout_uri": url}
    created = _writing(lambda db: logout_clients.create_logout_client(
        db, _tenant_id(db, tenant_name), body, settings))
    click.echo(created["id"])


@logout_client.command("list")
@_TENANT_OPTION
def logout_client_list(tenant_name: str | None) -> None:
    """The tenant's logout clients: id, client id, URL and state, tab-separated."""
    from .services import logout_clients

    listed = _reading(lambda db: logout_clients.list_logout_clients(
        db, _tenant_id(db, tenant_name)))
    for client in listed["logout_clients"]:
        click.echo(f"{client['id']}\t{client['client_id']}\t{client['backchannel_logout_uri']}"
                   f"\t{client['state']}")


@logout_client.command("remove")
@click.argument("client_ref")
@_TENANT_OPTION
def logout_client_remove(client_ref: str, tenant_name: str | None) -> None:
    """Remove a logout client by the id ``add`` printed."""
    from .services import logout_clients

    _writing(lambda db: logout_clients.delete_logout_client(
        db, _tenant_id(db, tenant_name), client_ref))
    click.echo(f"removed {client_ref}")


@main.group("events")
def events_group() -> None:
    """The event log's deliveries."""


@events_group.command("replay")
@click.argument("event_id", required=False)
@click.option("--dead", is_flag=True, help="Replay every dead delivery of the tenant.")
@_TENANT_OPTION
def events_replay(event_id: str | None, dead: bool, tenant_name: str | None) -> None:
    """Send EVENT_ID's dead deliveries again (or, with --dead, all of them), same ids."""
    from .services import deliveries

    if (event_id is None) == (not dead):
        raise click.UsageError("give an EVENT_ID or --dead, not both")
    replayed = _writing(lambda db: (
        deliveries.replay_event(db, _tenant_id(db, tenant_name), event_id) if event_id
        else deliveries.replay_all(db, _tenant_id(db, tenant_name), {"state": "dead"})
    ))
    click.echo(f"replayed {replayed['replayed']}")


if __name__ == "__main__":
    main()
