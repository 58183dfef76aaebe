"""One frozen settings object, read from ``SCIM_BRIDGE_*`` once; tests build their own."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

DEFAULT_DATABASE_URL = "sqlite:///./scim-bridge.db"


def _bool(raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


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
    #: "Now" (aware UTC) for session expiry and token times; tests pass a clock they move.
    clock: Callable[[], dt.datetime] = utc_now

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def num(name: str, default: int) -> int:
            raw = env.get(f"SCIM_BRIDGE_{name}")
            return int(raw) if raw else default

        return cls(
            database_url=env.get("SCIM_BRIDGE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            public_url=(env.get("SCIM_BRIDGE_PUBLIC_URL") or None),
            default_session_ttl=num("DEFAULT_SESSION_TTL", cls.default_session_ttl),
            max_session_ttl=num("MAX_SESSION_TTL", cls.max_session_ttl),
            revoke_on_group_add=_bool(env.get("SCIM_BRIDGE_REVOKE_ON_GROUP_ADD"), False),
            bulk_max_operations=num("BULK_MAX_OPERATIONS", cls.bulk_max_operations),
            max_payload_bytes=num("MAX_PAYLOAD_BYTES", cls.max_payload_bytes),
            request_log_retention=num("REQUEST_LOG_RETENTION", cls.request_log_retention),
            signing_key_file=env.get("SCIM_BRIDGE_SIGNING_KEY_FILE") or None,
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
