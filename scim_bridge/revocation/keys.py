"""Signing keys: generated on first use and kept in ``signing_keys`` (or read from a PEM file),
rotated by ``scim-bridge keys rotate``, published in the JWKS until their tokens have expired.

Policy. The active key is the oldest unretired one (``created_at``, then ``kid``), so two
processes that generate a key at the same moment converge on one and publish both. A retired
key stays published for ``max_session_ttl`` after ``retired_at``: no token it signed outlives
that. With ``signing_key_file`` the file's key is the active one; the database keeps only its
public half (``private_pem`` empty), and replacing the file retires the previous key.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..db import begin_write, utcnow
from ..errors import BridgeError, Conflict
from ..models import SigningKey
from ..settings import Settings
from . import jose
from .issuer import stored_issuer

log = logging.getLogger(__name__)

#: How an operator makes a key this bridge can use.
_MAKE_ONE = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out FILE"


class KeyUnavailable(BridgeError):
    status = 503
    error = "temporarily_unavailable"


class SigningKeyFileError(ValueError):
    """``SCIM_BRIDGE_SIGNING_KEY_FILE`` names a file that is not an EC P-256 private key; the
    message names the file and how to make a good one."""


@dataclass(frozen=True)
class FileKey:
    kid: str
    public_jwk: dict[str, Any]
    key: jose.Key


def load_key_file(path: str) -> FileKey:
    """Read and check the configured PEM file; :class:`SigningKeyFileError` says what is wrong."""
    def bad(problem: str) -> SigningKeyFileError:
        return SigningKeyFileError(
            f"SCIM_BRIDGE_SIGNING_KEY_FILE {path}: {problem}; point it at an unencrypted "
            f"EC P-256 private key in PEM ({_MAKE_ONE}) or unset it to keep keys in the database"
        )

    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise bad("no such file") from None
    except IsADirectoryError:
        raise bad("is a directory") from None
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror})") from None
    if not data.strip():
        raise bad("the file is empty")
    try:
        private = load_pem_private_key(data, password=None)
    except TypeError:
        raise bad("the key is encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise bad("not a PEM private key") from None
    if isinstance(private, rsa.RSAPrivateKey):
        raise bad("an RSA key; session tokens are signed with ES256")
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise bad(f"a key of type {type(private).__name__.removesuffix('PrivateKey')}, "
                  "not an EC key")
    if not isinstance(private.curve, ec.SECP256R1):
        raise bad(f"an EC key on curve {private.curve.name}, not P-256")
    try:
        pem = data.decode("ascii")
        public = jose.public_jwk(pem)
        return FileKey(public["kid"], public, jose.key_from_pem(pem))
    except (UnicodeDecodeError, ValueError):
        raise bad("not a PEM private key") from None


def _active(db: Session) -> SigningKey | None:
    return db.scalar(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at, SigningKey.kid)
        .limit(1)
    )


def ensure_active_key(db: Session, key_file: str | None = None) -> str:
    """Make sure a key is active (creating or adopting one); returns its ``kid``."""
    if key_file:
        return _adopt_file_key(db, key_file)
    current = _active(db)
    if current is not None:
        return current.kid
    return _insert_new(db).kid


def rotate(db: Session, key_file: str | None = None) -> tuple[list[str], str]:
    """Retire every active key and create a new one: (retired kids, new kid)."""
    if key_file:
        raise Conflict(
            f"the signing key comes from {key_file}; replace that file and restart to rotate"
        )
    retired = list(
        db.scalars(
            update(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .values(retired_at=utcnow())
            .returning(SigningKey.kid)
        )
    )
    return sorted(retired), _insert_new(db).kid


def published(db: Session, max_session_ttl: int) -> list[SigningKey]:
    """Active keys, and retired keys whose tokens may still be valid."""
    cutoff = utcnow() - dt.timedelta(seconds=max_session_ttl)
    return list(
        db.scalars(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
            .order_by(SigningKey.created_at, SigningKey.kid)
        )
    )


def _insert_new(db: Session) -> SigningKey:
    generated = jose.generate_key()
    row = SigningKey(
        kid=generated.kid,
        algorithm=jose.ALGORITHM,
        private_pem=generated.private_pem,
        public_jwk=generated.public_jwk,
        created_at=utcnow(),
    )
    db.add(row)
    db.flush()
    return row


def _adopt_file_key(db: Session, key_file: str) -> str:
    loaded = load_key_file(key_file)
    kid, public = loaded.kid, loaded.public_jwk
    db.execute(
        update(SigningKey)
        .where(SigningKey.retired_at.is_(None), SigningKey.kid != kid)
        .values(retired_at=utcnow())
    )
    row = db.get(SigningKey, kid)
    if row is None:
        db.add(SigningKey(kid=kid, algorithm=jose.ALGORITHM, private_pem="",
                               public_jwk=public, created_at=utcnow()))
    else:
        row.retired_at = None
    db.flush()
    return kid


class KeyRing:
    """A process's view of the keys: the signing key and constructed public keys, cached."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._max_ttl = settings.max_session_ttl
        self._key_file = settings.signing_key_file
        self._file_key: FileKey | None = None
        self._private: dict[str, jose.Key] = {}
        #: kid -> (public key, published until; ``None`` while it was active when cached)
        self._public: dict[str, tuple[jose.Key, dt.datetime | None]] = {}
        self._lock = threading.Lock()
        self._ready = False
        self._verifier = jose.Verifier()
        self._public_url = settings.public_url
        #: The stored issuer, read once per process (introspection is the hot path).
        self._stored_issuer: str | None = None
        self._issuer_read = False

    def prepare(self) -> None:
        """Make sure a key is active, in a short transaction of its own.

        Call it before a request opens its writing transaction (SQLite has one writer).
        """
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            for attempt in (1, 2):
                try:
                    with self._sessions() as db:
                        begin_write(db)
                        ensure_active_key(db, self._key_file)
                        db.commit()
                    break
                except IntegrityError:  # another process adopted the same file key first
                    if attempt == 2:
                        raise
                except (OSError, ValueError) as exc:
                    # The detail (a file path) is for the operator's log, not for clients.
                    log.error("the signing key cannot be loaded: %s", exc)
                    raise KeyUnavailable("the signing key cannot be loaded") from None
            self._ready = True

    def signing_key(self, db: Session) -> tuple[str, jose.Key]:
        """(kid, private key) of the currently active key, as ``db`` sees it."""
        if self._key_file:
            if self._file_key is None:
                self._file_key = load_key_file(self._key_file)
            return self._file_key.kid, self._file_key.key
        kid = db.scalar(
            select(SigningKey.kid)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at, SigningKey.kid)
            .limit(1)
        )
        if kid is None:
            raise KeyUnavailable("no signing key is active; run 'scim-bridge keys rotate'")
        key = self._private.get(kid)
        if key is None:
            row = db.get(SigningKey, kid)
            if row is None or not row.private_pem:
                raise KeyUnavailable(f"the private half of signing key {kid} is not stored")
            key = self._private[kid] = jose.key_from_pem(row.private_pem)
        return kid, key

    def public_key(self, db: Session, kid: str) -> jose.Key | None:
        """The published key with this ``kid``; constructed once per process."""
        cached = self._public.get(kid)
        now = utcnow()
        if cached is not None and (cached[1] is None or cached[1] > now):
            return cached[0]
        row = db.get(SigningKey, kid)
        if row is None:
            return None
        until = None
        if row.retired_at is not None:
            until = row.retired_at + dt.timedelta(seconds=self._max_ttl)
            if until <= now:
                return None
        key = jose.public_key(row.public_jwk)
        self._public[kid] = (key, until)
        return key

    def issuer(self, db: Session) -> str | None:
        """The ``iss`` this instance signs and verifies with: ``SCIM_BRIDGE_PUBLIC_URL`` if
        set, else the deployment's stored issuer (read once); ``None`` when neither exists
        (an app not started by ``scim-bridge serve``)."""
        if self._public_url:
            return self._public_url.rstrip("/")
        if not self._issuer_read:
            self._stored_issuer = stored_issuer(db)
            self._issuer_read = True
        return self._stored_issuer

    def verify(
        self, db: Session, token: str, issuer: str, now: dt.datetime
    ) -> dict[str, Any]:
        """The claims of a session token signed by a published key and valid at ``now``;
        else ``InvalidToken``."""
        return self._verifier.verify(token, lambda kid: self.public_key(db, kid), issuer,
                                     now=now.timestamp())

    def jwks(self, db: Session) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5): public members only."""
        return {"keys": [_public_members(row.public_jwk)
                         for row in published(db, self._max_ttl)]}


def _public_members(jwk_dict: dict[str, Any]) -> dict[str, Any]:
    return {name: jwk_dict[name] for name in ("kty", "crv", "x", "y", "kid", "alg", "use")
            if name in jwk_dict}
