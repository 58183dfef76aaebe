"""A careless operator gets one line naming what to fix and exit status 2, never a traceback,
from every command: bad settings, unusable databases, bad signing key files, unmigrated schemas.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy.engine import make_url

from scim_bridge.cli import main
from scim_bridge.settings import Settings, env_fields, env_name

from .conftest import PG_URL, http_client
from .harness import free_port

URL_VARIABLE = "SCIM_BRIDGE_DATABASE_URL"
KEY_VARIABLE = "SCIM_BRIDGE_SIGNING_KEY_FILE"

COMMANDS = {
    "serve": ["serve", "--port", "0"],
    "db upgrade": ["db", "upgrade"],
    "token create": ["token", "create", "--name", "okta", "--scope", "scim"],
    "token list": ["token", "list"],
    "token revoke": ["token", "revoke", "okta"],
    "tenant create": ["tenant", "create", "acme"],
    "tenant list": ["tenant", "list"],
    "keys rotate": ["keys", "rotate"],
    "keys list": ["keys", "list"],
}
READ_ONLY = ["token list", "tenant list", "keys list"]
USES_KEY_FILE = ["serve", "keys rotate", "keys list"]


def invoke(args: list[str], **variables: str) -> Result:
    """Run the command in-process with exactly these ``SCIM_BRIDGE_*`` variables set."""
    env: dict[str, str | None] = {env_name(name): None for name in env_fields()}
    env.update({f"SCIM_BRIDGE_{name}": value for name, value in variables.items()})
    return CliRunner().invoke(main, args, env=env)


def assert_one_line_exit_2(result: Result, *named: str) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr naming each of ``named``."""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


# -- settings ----------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("DATABASE_URL", "not a url"),
    ("DATABASE_URL", "mysql://root@127.0.0.1/bridge"),
    ("DATABASE_URL", "sqlite://"),
    ("PUBLIC_URL", "ftp://bridge.example"),
    ("PUBLIC_URL", "bridge.example"),
    ("PUBLIC_URL", "https://bridge.example:99999"),
    ("PUBLIC_URL", "https://bridge.example/?x=1"),
    ("DEFAULT_SESSION_TTL", "eight hours"),
    ("DEFAULT_SESSION_TTL", "0"),
    ("DEFAULT_SESSION_TTL", "2592001"),  # longer than the maximum
    ("MAX_SESSION_TTL", "-5"),
    ("MAX_SESSION_TTL", "1e6"),
    ("REVOKE_ON_GROUP_ADD", "maybe"),
    ("FORWARDED_ALLOW_IPS", "proxy.example"),
    ("FORWARDED_ALLOW_IPS", ","),
    ("FORWARDED_ALLOW_IPS", "10.0.0.5/8"),
    ("BULK_MAX_OPERATIONS", "0"),
    ("BULK_MAX_OPERATIONS", "99999999999999999999"),
    ("MAX_PAYLOAD_BYTES", "1MB"),
    ("MAX_PAYLOAD_BYTES", "10"),
    ("MAX_PAGE_SIZE", "0"),
    ("MAX_PAGE_SIZE", "lots"),
    ("REQUEST_LOG_RETENTION", "0"),
    ("REQUEST_LOG_RETENTION", "1_000"),
    ("SQLITE_BUSY_TIMEOUT_MS", "-1"),
    ("SQLITE_BUSY_TIMEOUT_MS", "30s"),
    ("RATE_LIMIT_SCIM", "100 per fortnight"),
    ("RATE_LIMIT_SCIM", "100"),
    ("RATE_LIMIT_ADMIN", "0/second"),
    ("RATE_LIMIT_SESSIONS", "fast"),
    ("RATE_LIMIT_FAILED_AUTH", "20/minute; junk"),
    ("RATE_LIMIT_SIGN_IN", "0/minute"),
    ("ADMIN_SESSION_LIFETIME", "59"),  # at least a minute
    ("REDIS_URL", "127.0.0.1:6379"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("LOG_FORMAT", "xml"),
    ("EMBEDDED_WORKER", "sometimes"),
    ("DELIVERY_GIVE_UP", "3 days"),
    ("DELIVERY_LEASE", "61"),  # a claim's lease is at most a minute
    ("DELIVERY_TIMEOUT", "60"),  # must be under half the lease
    ("DELIVERY_BACKOFF_BASE_MS", "0"),
    ("DELIVERY_BACKOFF_CAP", "-1"),
    ("DELIVERY_POLL_MS", "1"),
    ("DELIVERY_CONCURRENCY", "0"),
    ("SSF_LONG_POLL_SECONDS", "31"),
    ("SSF_MIN_VERIFICATION_INTERVAL", "-1"),
    ("RECEIVER_URLS", "private"),
    ("WEBHOOK_SECRET_GRACE", "-1"),
]


def test_every_setting_has_a_bad_value_case():
    covered = {f"SCIM_BRIDGE_{name}" for name, _ in BAD_SETTINGS} | {KEY_VARIABLE}  # see below
    assert covered >= {env_name(name) for name in env_fields()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("variable,value", BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_the_variable(command, variable, value, tmp_path):
    variables = {"DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db", variable: value}
    assert_one_line_exit_2(invoke(COMMANDS[command], **variables), f"SCIM_BRIDGE_{variable}")
    assert not (tmp_path / "bridge.db").exists()


def test_a_database_password_is_never_shown(tmp_path):
    result = invoke(COMMANDS["token list"],
                    DATABASE_URL=f"postgresql+psycopg://bridge:s3cret@127.0.0.1:{free_port()}/x")
    line = assert_one_line_exit_2(result, URL_VARIABLE)
    assert "s3cret" not in line


@pytest.mark.parametrize("field", env_fields())
def test_every_setting_can_be_set_from_the_environment(field):
    value = {"database_url": "sqlite:////tmp/x.db", "public_url": "https://bridge.example",
             "revoke_on_group_add": "true", "signing_key_file": "/etc/bridge/key.pem",
             "default_session_ttl": "60", "max_session_ttl": "86400",
             "rate_limit_scim": "10/second", "rate_limit_admin": "off",
             "rate_limit_sessions": "1000/second;10000/minute",
             "rate_limit_failed_auth": "5/minute", "rate_limit_sign_in": "5/minute",
             "redis_url": "redis://127.0.0.1:6379/3",
             "log_format": "text",
             "forwarded_allow_ips": "10.0.0.0/8,::1",
             "embedded_worker": "false", "delivery_lease": "30", "delivery_timeout": "5",
             "delivery_concurrency": "16", "ssf_long_poll_seconds": "25",
             "receiver_urls": "public"}.get(field, "2048")
    settings = Settings.from_env({env_name(field): value})
    assert str(getattr(settings, field)).lower() == value


def test_every_variable_is_in_the_readme_configuration_table():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    for name in env_fields():
        assert f"| `{env_name(name)}` |" in table, env_name(name)


# -- databases ---------------------------------------------------------------------------------


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 100)
    return f"sqlite:///{tmp_path}/notes.db"


def _a_directory(tmp_path: Path) -> str:
    (tmp_path / "bridge.db").mkdir()
    return f"sqlite:///{tmp_path}/bridge.db"


UNUSABLE_DATABASES = {
    "unknown driver": (lambda tmp: "postgresql+nosuchdriver://bridge@127.0.0.1/bridge", ()),
    "unknown sqlite driver": (lambda tmp: f"sqlite+nosuchdriver:///{tmp}/bridge.db", ()),
    "unreachable server": (
        lambda tmp: f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/bridge",
        ("127.0.0.1",)),
    "missing sqlite directory": (lambda tmp: f"sqlite:///{tmp}/missing/bridge.db",
                                 ("/missing", "does not exist")),
    "unwritable sqlite directory": (lambda tmp: "sqlite:////sys/bridge.db", ("/sys",)),
    "sqlite path is a directory": (_a_directory, ("is a directory",)),
    "file that is not a database": (_not_a_database, ("not a database",)),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", UNUSABLE_DATABASES)
def test_an_unusable_database_is_one_line_naming_the_url(command, case, tmp_path):
    make_database, mentions = UNUSABLE_DATABASES[case]
    url = make_database(tmp_path)
    assert_one_line_exit_2(invoke(COMMANDS[command], DATABASE_URL=url), URL_VARIABLE, *mentions)


def _postgres(**parts: str) -> str:
    return make_url(PG_URL).set(**parts).render_as_string(hide_password=False)


@pytest.mark.skipif(not PG_URL, reason="needs SCIM_BRIDGE_TEST_DATABASE_URL (PostgreSQL)")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("parts,mention", [
    ({"database": "scim_bridge_no_such_database"}, "createdb"),
    ({"username": "scim_bridge_no_such_role"}, "role"),
])
def test_a_missing_postgres_database_or_role_is_one_line(command, parts, mention):
    result = invoke(COMMANDS[command], DATABASE_URL=_postgres(**parts))
    assert_one_line_exit_2(result, URL_VARIABLE, next(iter(parts.values())), mention)


def test_a_missing_driver_names_the_postgres_extra(tmp_path):
    """The base install runs on SQLite without psycopg; a PostgreSQL URL then says what to
    install, and SQLite works end to end."""
    script = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None\n"
        "from scim_bridge.cli import main\n"
        "main()\n"
    )

    def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                              text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", URL_VARIABLE: url})

    missing = cli("postgresql+psycopg://postgres@127.0.0.1/bridge", "db", "upgrade")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1 and "scim-bridge[postgres]" in missing.stderr
    sqlite_url = f"sqlite:///{tmp_path}/bridge.db"
    assert cli(sqlite_url, "db", "upgrade").returncode == 0
    created = cli(sqlite_url, "token", "create", "--name", "okta", "--scope", "scim")
    assert created.returncode == 0, created.stderr


# -- schema: read-only commands never migrate --------------------------------------------------


@pytest.mark.parametrize("command", READ_ONLY)
def test_a_read_only_command_on_a_missing_sqlite_file_creates_nothing(command, tmp_path):
    result = invoke(COMMANDS[command], DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db")
    assert_one_line_exit_2(result, URL_VARIABLE, "scim-bridge db upgrade")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def empty_database():
    """A database with no tables: a new SQLite file, or a new PostgreSQL database."""
    from .live import fresh_database

    with fresh_database() as url:
        if url.startswith("sqlite"):
            sqlite3.connect(make_url(url).database).close()
        yield url


def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READ_ONLY)
def test_a_read_only_command_does_not_migrate(command, empty_database):
    result = invoke(COMMANDS[command], DATABASE_URL=empty_database)
    assert_one_line_exit_2(result, URL_VARIABLE, "scim-bridge db upgrade")
    assert _tables(empty_database) == set()


@pytest.mark.parametrize("command", READ_ONLY)
def test_a_read_only_command_on_an_older_schema_says_to_upgrade(command, empty_database):
    from alembic import command as alembic

    from scim_bridge import migrate

    alembic.upgrade(migrate.alembic_config(empty_database), "0001")
    result = invoke(COMMANDS[command], DATABASE_URL=empty_database)
    assert_one_line_exit_2(result, URL_VARIABLE, "0001", "scim-bridge db upgrade")


@pytest.mark.parametrize("command", READ_ONLY)
def test_a_read_only_command_works_on_a_migrated_database(command, database_url):
    result = invoke(COMMANDS[command], DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output


# -- the signing key file ----------------------------------------------------------------------


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(name: str, content: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path
    return make


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    return tmp_path / "keys"


_P256 = ec.generate_private_key(ec.SECP256R1())
BAD_KEY_FILES = {
    "missing": (lambda tmp: tmp / "absent.pem", "no such file"),
    "empty": (_write("empty.pem", b""), "empty"),
    "corrupt": (_write("corrupt.pem", b"-----BEGIN PRIVATE KEY-----\nnot base64!\n"
                                      b"-----END PRIVATE KEY-----\n"), "not a PEM private key"),
    "wrong curve": (_write("p384.pem", _pem(ec.generate_private_key(ec.SECP384R1()))),
                    "secp384r1"),
    "rsa": (_write("rsa.pem", _pem(rsa.generate_private_key(65537, 2048))), "RSA"),
    "ed25519": (_write("ed.pem", _pem(ed25519.Ed25519PrivateKey.generate())), "not an EC key"),
    "public half only": (_write("public.pem", _P256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
        "not a PEM private key"),
    "encrypted": (_write("encrypted.pem", _P256.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))), "encrypted"),
    "directory": (_directory, "is a directory"),
}


@pytest.mark.parametrize("command", USES_KEY_FILE)
@pytest.mark.parametrize("case", BAD_KEY_FILES)
def test_a_bad_signing_key_file_is_one_line_naming_the_file(command, case, tmp_path):
    make_file, mention = BAD_KEY_FILES[case]
    key_file = make_file(tmp_path)
    result = invoke(COMMANDS[command], DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
                    SIGNING_KEY_FILE=str(key_file))
    assert_one_line_exit_2(result, KEY_VARIABLE, str(key_file), mention)
    assert not (tmp_path / "bridge.db").exists()  # refused before touching the database


def test_serve_with_a_bad_signing_key_never_starts(tmp_path):
    """The real command exits at start: no database, no tokens printed, nothing listening."""
    from .harness import scim_bridge_command

    port = free_port()
    key_file = tmp_path / "rsa.pem"
    key_file.write_bytes(_pem(rsa.generate_private_key(65537, 2048)))
    result = subprocess.run(
        [*scim_bridge_command(), "serve", "--port", str(port)], capture_output=True, text=True,
        timeout=60, env={"PATH": "/usr/bin:/bin", URL_VARIABLE: f"sqlite:///{tmp_path}/b.db",
                         KEY_VARIABLE: str(key_file)},
    )
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert KEY_VARIABLE in result.stderr and str(key_file) in result.stderr
    assert not (tmp_path / "b.db").exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_an_unloadable_key_file_never_shows_its_path_to_clients(app, settings, tmp_path):
    """An app built without the CLI's check answers 503 without the file's path."""
    from scim_bridge import create_app

    missing = tmp_path / "secret-location" / "key.pem"
    broken = create_app(settings.with_(signing_key_file=str(missing)))
    try:
        with http_client(broken, None) as client:
            response = client.get("/.well-known/jwks.json")
        assert response.status_code == 503
        assert "secret-location" not in response.text
    finally:
        broken.extensions["scim_bridge"].engine.dispose()


# -- the real console script -------------------------------------------------------------------


@pytest.mark.parametrize("variables,named", [
    ({URL_VARIABLE: "mysql://root@127.0.0.1/bridge"}, URL_VARIABLE),
    ({"SCIM_BRIDGE_MAX_PAGE_SIZE": "many"}, "SCIM_BRIDGE_MAX_PAGE_SIZE"),
    ({KEY_VARIABLE: "/nonexistent/key.pem"}, KEY_VARIABLE),
])
def test_the_console_script_exits_2_with_one_line(variables, named, tmp_path):
    from .harness import scim_bridge_command

    env = {"PATH": "/usr/bin:/bin", URL_VARIABLE: f"sqlite:///{tmp_path}/b.db", **variables}
    result = subprocess.run([*scim_bridge_command(), "keys", "list"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr
    assert "Traceback" not in result.stderr


def test_version_is_the_package_version():
    from importlib.metadata import version

    import scim_bridge

    from .harness import scim_bridge_command

    result = subprocess.run([*scim_bridge_command(), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert scim_bridge.__version__ == version("scim-bridge")
    assert result.stdout.strip() == f"scim-bridge, version {scim_bridge.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_schema_from_a_newer_version_is_one_line(command, empty_database):
    from sqlalchemy import create_engine, text

    engine = create_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('9999_from_the_future')"))
    engine.dispose()
    result = invoke(COMMANDS[command], DATABASE_URL=empty_database)
    assert_one_line_exit_2(result, URL_VARIABLE, "9999_from_the_future")
