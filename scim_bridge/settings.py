"""One frozen settings object, read from ``SCIM_BRIDGE_*`` once; tests build their own.

Every field ``name`` is set by the variable ``SCIM_BRIDGE_<NAME>``. Values are checked when the
object is built (from the environment or by hand): a bad one raises :class:`SettingsError`,
whose message names the variable and says what to set instead.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .logs import LOG_FORMATS
from .proxy import parse_allowed

#: ``receiver_urls``: every URL, or public addresses only (events/urls.py applies it).
RECEIVER_URL_RULES = ("any", "public")

__all__ = [
    "DEFAULT_DATABASE_URL", "ENV_PREFIX", "RATE_LIMIT_OFF", "Settings", "SettingsError",
    "env_fields", "env_name",
]

DEFAULT_DATABASE_URL = "sqlite:///./scim-bridge.db"
ENV_PREFIX = "SCIM_BRIDGE_"
#: Integers are bound as SQL parameters and compared with 32-bit columns: stay inside int32.
_INT_MAX = 2**31 - 1
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DATABASE_HINT = "use sqlite:///path/to/bridge.db or postgresql+psycopg://user@host:5432/dbname"
#: The value of a rate-limit setting that turns that limit off.
RATE_LIMIT_OFF = "off"


#: Fields only code sets (tests inject a clock); no variable may replace them.
_NOT_FROM_ENV = {"clock", "rate_limit_key_prefix"}


class SettingsError(ValueError):
    """A setting the bridge cannot use; the message names the variable and the fix."""


def env_fields() -> list[str]:
    """The settings a ``SCIM_BRIDGE_*`` variable sets (all but those only code passes)."""
    return [field.name for field in fields(Settings) if field.name not in _NOT_FROM_ENV]


def env_name(field_name: str) -> str:
    """The variable that sets a field: ``max_page_size`` -> ``SCIM_BRIDGE_MAX_PAGE_SIZE``."""
    return ENV_PREFIX + field_name.upper()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    #: Externally visible base URL; issuer of tokens and base of ``meta.location``.
    #: ``None`` means "derive from the request host".
    public_url: str | None = None
    default_session_ttl: int = 8 * 3600
    max_session_ttl: int = 30 * 24 * 3600
    #: Adding a member revokes the user's sessions too (for apps that cache group context).
    revoke_on_group_add: bool = False
    bulk_max_operations: int = 1000
    max_payload_bytes: int = 1_048_576
    max_page_size: int = 1000
    request_log_retention: int = 10_000
    #: PEM file with an EC P-256 private key; by default a key is generated and kept in the DB.
    signing_key_file: str | None = None
    sqlite_busy_timeout_ms: int = 30_000
    #: Request budgets per token on /scim/v2, /api/v1/admin and /api/v1/sessions, in
    #: the limits library's syntax (several joined by ";"), or "off"; README explains the defaults.
    rate_limit_scim: str = "300/second;6000/minute"
    rate_limit_admin: str = "50/second"
    rate_limit_sessions: str = RATE_LIMIT_OFF
    #: Failed authentications (401) per client address before its failures become 429s.
    rate_limit_failed_auth: str = "20/minute"
    #: Failed sign-ins to the admin page per client address before they are answered 429.
    rate_limit_sign_in: str = "10/minute"
    #: Seconds an admin page session lasts after sign-in (the cookie's and the server's expiry).
    admin_session_lifetime: int = 8 * 3600
    #: Redis holding the rate-limit counters, so several instances share one budget; unset:
    #: each process counts alone, in memory.
    redis_url: str | None = None
    #: Prefix of every rate-limit counter's key; tests give each run its own.
    rate_limit_key_prefix: str = "scim-bridge"
    #: ``json`` (one object per line, for a log shipper) or ``text`` (for a terminal); a fixed
    #: default, not a guess from the terminal, so what is shipped never changes with ``-t``.
    log_format: str = "json"
    #: Reverse proxies (addresses or networks, comma-separated, or ``*``) whose
    #: X-Forwarded-For and X-Forwarded-Proto are believed; gunicorn's default.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    #: ``scim-bridge serve`` runs the delivery worker in every gunicorn worker process
    #: (``serve --no-worker`` or false here when ``scim-bridge worker`` runs apart).
    embedded_worker: bool = True
    #: Seconds after which a delivery that keeps failing is given up (dead-lettered).
    delivery_give_up: int = 3 * 24 * 3600
    #: Seconds a worker holds a claimed delivery; a crashed worker's rows return after this.
    delivery_lease: int = 60
    #: Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempts))``.
    delivery_backoff_base_ms: int = 1000
    delivery_backoff_cap: int = 3600
    #: Seconds one HTTP delivery may take (connect, send, answer); under half the lease.
    delivery_timeout: int = 10
    #: Milliseconds between polls when no commit rang (covers other instances' commits).
    delivery_poll_ms: int = 1000
    #: Deliveries one worker sends at once: a slow receiver holds one slot, not the others.
    delivery_concurrency: int = 8
    #: Seconds an RFC 8936 long poll (``returnImmediately`` false) waits for a SET at most.
    ssf_long_poll_seconds: int = 20
    #: SSF ``min_verification_interval``: seconds a stream waits between verification requests.
    ssf_min_verification_interval: int = 10
    #: Where receivers may be: ``any`` URL (loopback and private addresses included: the app's
    #: services are usually internal), or only ``public`` addresses (events/urls.py).
    receiver_urls: str = "any"
    #: Seconds a webhook's previous secret keeps signing beside the new one after a rotation.
    webhook_secret_grace: int = 24 * 3600
    #: "Now" (aware UTC) for session expiry and token times; tests pass a clock they move.
    clock: Callable[[], dt.datetime] = utc_now

    def __post_init__(self) -> None:
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise SettingsError(f"{env_name(name)}={value!r} is out of range; "
                                    f"set a whole number from {low} to {high}")
        if self.default_session_ttl > self.max_session_ttl:
            raise SettingsError(
                f"{env_name('default_session_ttl')}={self.default_session_ttl} is longer than "
                f"{env_name('max_session_ttl')}={self.max_session_ttl}; "
                "lower it or raise the maximum"
            )
        for name in _BOOLEANS:
            if type(getattr(self, name)) is not bool:
                raise SettingsError(f"{env_name(name)} must be true or false")
        if 2 * self.delivery_timeout >= self.delivery_lease:
            # A claimed row may wait for one delivery before its own: both fit in the lease.
            raise SettingsError(
                f"{env_name('delivery_timeout')}={self.delivery_timeout} must be shorter than "
                f"half of {env_name('delivery_lease')}={self.delivery_lease}, or a slow "
                "delivery could be sent twice at once"
            )
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"{env_name('log_format')}={self.log_format!r} is not a log "
                                f"format; set {' or '.join(LOG_FORMATS)}")
        if self.receiver_urls not in RECEIVER_URL_RULES:
            raise SettingsError(f"{env_name('receiver_urls')}={self.receiver_urls!r} is not a "
                                f"receiver URL rule; set {' or '.join(RECEIVER_URL_RULES)}")
        _check_database_url(self.database_url)
        _check_public_url(self.public_url)
        _check_forwarded_allow_ips(self.forwarded_allow_ips)
        if self.signing_key_file is not None and not (
            isinstance(self.signing_key_file, str) and self.signing_key_file.strip()
        ):
            raise SettingsError(f"{env_name('signing_key_file')} must name a PEM file")
        for name in _RATE_LIMITS:
            _check_rate_limit(name, getattr(self, name))
        _check_redis_url(self.redis_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SCIM_BRIDGE_*``; an unset or empty variable keeps the default."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            if field.name in _NOT_FROM_ENV:
                continue
            raw = env.get(env_name(field.name), "").strip()
            if not raw:
                continue
            if field.name in _INT_RANGES:
                values[field.name] = _integer(field.name, raw)
            elif field.name in _BOOLEANS:
                values[field.name] = _boolean(field.name, raw)
            else:
                values[field.name] = raw
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


#: Inclusive bounds of every integer setting.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "default_session_ttl": (1, _INT_MAX),
    "max_session_ttl": (1, _INT_MAX),
    "bulk_max_operations": (1, _INT_MAX),
    "max_payload_bytes": (1024, _INT_MAX),
    "max_page_size": (1, _INT_MAX),
    "request_log_retention": (1, _INT_MAX),
    "sqlite_busy_timeout_ms": (0, _INT_MAX),
    "delivery_give_up": (1, _INT_MAX),
    # A claim's lease is at most a minute, so a crashed worker's rows come back within one.
    "delivery_lease": (2, 60),
    "delivery_backoff_base_ms": (1, 3_600_000),
    "delivery_backoff_cap": (1, _INT_MAX),
    "delivery_timeout": (1, 29),
    "delivery_poll_ms": (10, 60_000),
    "delivery_concurrency": (1, 256),
    # Well under gunicorn's 60 s worker timeout, which would kill a waiting poll.
    "ssf_long_poll_seconds": (1, 30),
    "ssf_min_verification_interval": (0, 86_400),
    "admin_session_lifetime": (60, 7 * 24 * 3600),
    "webhook_secret_grace": (0, _INT_MAX),
}
_BOOLEANS = {"revoke_on_group_add", "embedded_worker"}


#: The settings that hold a rate limit (or "off").
_RATE_LIMITS = ("rate_limit_scim", "rate_limit_admin", "rate_limit_sessions",
                "rate_limit_failed_auth", "rate_limit_sign_in")


def _integer(name: str, raw: str) -> int:
    low, high = _INT_RANGES[name]
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise SettingsError(f"{env_name(name)}={raw!r} is not a whole number; "
                            f"set one from {low} to {high}")
    return int(raw)


def _boolean(name: str, raw: str) -> bool:
    word = raw.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingsError(f"{env_name(name)}={raw!r} is not a yes/no value; set true or false")


def _check_database_url(url: str) -> None:
    """The URL parses and names a backend the bridge supports; the driver loads later."""
    name = env_name("database_url")
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{name} is empty; {_DATABASE_HINT}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The text may hold a password: do not echo it.
        raise SettingsError(f"{name} is not a database URL; {_DATABASE_HINT}") from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise SettingsError(f"{name} names the database '{backend}', which scim-bridge does not "
                            f"support; {_DATABASE_HINT}")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise SettingsError(f"{name} names an in-memory SQLite database, which keeps nothing; "
                            f"{_DATABASE_HINT}")


def _check_public_url(url: str | None) -> None:
    if url is None:
        return
    name = env_name("public_url")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        valid = parts is not None and parts.scheme in {"http", "https"} and bool(parts.hostname)
        valid = valid and parts is not None and not parts.query and not parts.fragment
        if parts is not None:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        valid = False
    if not valid:
        raise SettingsError(f"{name}={url!r} is not a base URL; set the externally visible "
                            "http(s)://host[:port][/path], without query or fragment")


def _check_forwarded_allow_ips(allowed: str) -> None:
    try:
        networks = parse_allowed(allowed) if isinstance(allowed, str) else []
    except ValueError:
        networks = []
    if networks == []:
        raise SettingsError(f"{env_name('forwarded_allow_ips')}={allowed!r} is not a list of "
                            "proxy addresses; set comma-separated addresses or networks "
                            "(127.0.0.1,10.0.0.0/8), or * to trust every peer")


def _check_rate_limit(name: str, value: str) -> None:
    """One or more budgets such as ``100/second`` or ``300/second;6000/minute``, or "off"."""
    if isinstance(value, str) and value.strip().lower() == RATE_LIMIT_OFF:
        return
    try:
        budgets = parse_many(value) if isinstance(value, str) else []
    except ValueError:
        budgets = []
    if not budgets or any(budget.amount < 1 for budget in budgets):
        raise SettingsError(f"{env_name(name)}={value!r} is not a rate limit; set e.g. "
                            f"100/second, 300/second;6000/minute, or {RATE_LIMIT_OFF}")


def _check_redis_url(url: str | None) -> None:
    if url is None:
        return
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in {"redis", "rediss"} or not urlsplit(url).hostname:
        # The URL may hold a password: do not echo it.
        raise SettingsError(f"{env_name('redis_url')} is not a Redis URL; use "
                            "redis://host:6379/0 (rediss:// for TLS)")
