"""Signing keys: generated on first use and kept in ``signing_keys`` (or read from a PEM file),
rotated by ``scim-bridge keys rotate``, published in the JWKS until their tokens have expired.

Two algorithms, one active key each: ``ES256`` signs session tokens (and security events that
ask for it), ``RS256`` signs security events and logout tokens and is made the first time one
is signed. Session verification only ever looks at ``ES256`` keys.

Policy. An algorithm's active key is its oldest unretired one (``created_at``, then ``kid``),
so two processes that generate a key at the same moment converge on one and publish both. A
retired key stays published for ``max_session_ttl`` after ``retired_at``: no token it signed
outlives that (events are signed at each delivery attempt, so theirs live far shorter). With
``signing_key_file`` the file's key is the active ``ES256`` one; the database keeps only its
public half (``private_pem`` empty), and replacing the file retires the previous key.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..db import Reader, begin_write, utcnow
from ..errors import BridgeError, Conflict
from ..models import SigningKey
from ..settings import Settings
from . import jose
from .issuer import stored_issuer

log = logging.getLogger(__name__)

#: What security events and logout tokens may be signed with (RS256 unless a receiver asks).
EVENT_ALGORITHMS = (jose.EVENT_ALGORITHM, jose.SESSION_ALGORITHM)
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


def _active_kid(db: Session, algorithm: str) -> str | None:
    return db.scalar(
        select(SigningKey.kid)
        .where(SigningKey.retired_at.is_(None), SigningKey.algorithm == algorithm)
        .order_by(SigningKey.created_at, SigningKey.kid)
        .limit(1)
    )


def ensure_active_key(
    db: Session, key_file: str | None = None, algorithm: str = jose.SESSION_ALGORITHM
) -> str:
    """Make sure a key of ``algorithm`` is active (creating or adopting one); returns its
    ``kid``. The key file, if any, is the session key."""
    if key_file and algorithm == jose.SESSION_ALGORITHM:
        return _adopt_file_key(db, key_file)
    current = _active_kid(db, algorithm)
    if current is not None:
        return current
    return _insert_new(db, algorithm).kid


def rotate(db: Session, key_file: str | None = None) -> tuple[list[str], list[str]]:
    """Retire every active key and create a new one of each algorithm in use:
    (retired kids, new kids). A session key read from ``key_file`` is left to that file."""
    rotating = {jose.SESSION_ALGORITHM} | set(
        db.scalars(select(SigningKey.algorithm).where(SigningKey.retired_at.is_(None)))
    )
    if key_file:
        rotating.discard(jose.SESSION_ALGORITHM)
        if not rotating:
            raise Conflict(
                f"the signing key comes from {key_file}; replace that file and restart to rotate"
            )
    retired = list(
        db.scalars(
            update(SigningKey)
            .where(SigningKey.retired_at.is_(None), SigningKey.algorithm.in_(rotating))
            .values(retired_at=utcnow())
            .returning(SigningKey.kid)
        )
    )
    return sorted(retired), [_insert_new(db, algorithm).kid for algorithm in sorted(rotating)]


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


def _insert_new(db: Session, algorithm: str) -> SigningKey:
    generated = jose.generate_key(algorithm)
    row = SigningKey(
        kid=generated.kid,
        algorithm=generated.algorithm,
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
        .where(SigningKey.retired_at.is_(None), SigningKey.kid != kid,
               SigningKey.algorithm == jose.SESSION_ALGORITHM)
        .values(retired_at=utcnow())
    )
    row = db.get(SigningKey, kid)
    if row is None:
        db.add(SigningKey(kid=kid, algorithm=jose.SESSION_ALGORITHM, private_pem="",
                               public_jwk=public, created_at=utcnow()))
    else:
        row.retired_at = None
    db.flush()
    return kid


class KeyRing:
    """A process's view of the keys: the signing keys and constructed public keys, cached."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._max_ttl = settings.max_session_ttl
        self._key_file = settings.signing_key_file
        self._file_key: FileKey | None = None
        #: (kid, algorithm) -> private key
        self._private: dict[tuple[str, str], jose.SigningKey] = {}
        #: (kid, algorithm) -> (public key, published until; ``None`` while it was active
        #: when cached)
        self._public: dict[tuple[str, str], tuple[jose.Key, dt.datetime | None]] = {}
        self._lock = threading.Lock()
        #: Algorithms whose active key this process has made sure of.
        self._ready: set[str] = set()
        self._verifier = jose.Verifier()
        self._public_url = settings.public_url
        #: The stored issuer, read once per process (introspection is the hot path).
        self._stored_issuer: str | None = None
        self._issuer_read = False

    def prepare(self, algorithm: str = jose.SESSION_ALGORITHM) -> None:
        """Make sure a key of ``algorithm`` is active, in a short transaction of its own.

        Call it before a request opens its writing transaction (SQLite has one writer).
        """
        if algorithm in self._ready:
            return
        with self._lock:
            if algorithm in self._ready:
                return
            for attempt in (1, 2):
                try:
                    with self._sessions() as db:
                        begin_write(db)
                        ensure_active_key(db, self._key_file, algorithm)
                        db.commit()
                    break
                except IntegrityError:  # another process adopted the same file key first
                    if attempt == 2:
                        raise
                except (OSError, ValueError) as exc:
                    # The detail (a file path) is for the operator's log, not for clients.
                    log.error("the signing key cannot be loaded: %s", exc)
                    raise KeyUnavailable("the signing key cannot be loaded") from None
            self._ready.add(algorithm)

    def signing_key(self, db: Session) -> tuple[str, jose.Key]:
        """(kid, private key) of the active session key, as ``db`` sees it."""
        key = self._active_key(db, jose.SESSION_ALGORITHM)
        return key.kid, key.key

    def sign_event(
        self, claims: Mapping[str, Any], *, alg: str = jose.EVENT_ALGORITHM, typ: str
    ) -> str:
        """A security event or logout token (header ``typ``) signed by ``alg``'s active key.

        Reads the key in a short session of its own, so it works in or out of a caller's
        transaction; the first call for an algorithm may write its key (on SQLite, make it,
        or :meth:`prepare` that algorithm, before opening a writing transaction).
        """
        if alg not in EVENT_ALGORITHMS:
            raise ValueError(f"events are signed with one of {EVENT_ALGORITHMS}, not {alg!r}")
        self.prepare(alg)
        with self._sessions() as db:
            key = self._active_key(db, alg)
        return jose.sign(claims, key, typ=typ)

    def _active_key(self, db: Session, algorithm: str) -> jose.SigningKey:
        if self._key_file and algorithm == jose.SESSION_ALGORITHM:
            if self._file_key is None:
                self._file_key = load_key_file(self._key_file)
            file_key = self._file_key
            return jose.SigningKey(file_key.kid, jose.SESSION_ALGORITHM, file_key.key)
        kid = _active_kid(db, algorithm)
        if kid is None:
            raise KeyUnavailable(f"no {algorithm} signing key is active; "
                                 "run 'scim-bridge keys rotate'")
        key = self._private.get((kid, algorithm))
        if key is None:
            row = db.get(SigningKey, kid)
            if row is None or not row.private_pem:
                raise KeyUnavailable(f"the private half of signing key {kid} is not stored")
            key = self._private[(kid, algorithm)] = jose.SigningKey(
                kid, algorithm, jose.key_from_pem(row.private_pem, algorithm)
            )
        return key

    def public_key(
        self, db: Reader, kid: str, algorithm: str = jose.SESSION_ALGORITHM
    ) -> jose.Key | None:
        """The published ``algorithm`` key with this ``kid``; constructed once per process.

        A key of another algorithm is ``None``: a token names its ``kid``, never its key type.
        """
        cached = self._public.get((kid, algorithm))
        now = utcnow()
        if cached is not None and (cached[1] is None or cached[1] > now):
            return cached[0]
        row = db.execute(
            select(SigningKey.algorithm, SigningKey.retired_at, SigningKey.public_jwk)
            .where(SigningKey.kid == kid)
        ).first()
        if row is None or row.algorithm != algorithm:
            return None
        until = None
        if row.retired_at is not None:
            until = row.retired_at + dt.timedelta(seconds=self._max_ttl)
            if until <= now:
                return None
        key = jose.public_key(row.public_jwk, algorithm)
        self._public[(kid, algorithm)] = (key, until)
        return key

    def issuer(self, db: Reader) -> str | None:
        """The ``iss`` this instance signs and verifies with: ``SCIM_BRIDGE_PUBLIC_URL`` if
        set, else the deployment's stored issuer (read once); ``None`` when neither exists
        (an app not started by ``scim-bridge serve``)."""
        if self._public_url:
            return self._public_url.rstrip("/")
        if not self._issuer_read:
            self._stored_issuer = stored_issuer(db)
            self._issuer_read = True
        return self._stored_issuer

    def current_issuer(self) -> str | None:
        """:meth:`issuer`, read in a short session of its own (for the delivery worker)."""
        if self._public_url:
            return self._public_url.rstrip("/")
        with self._sessions() as db:
            return self.issuer(db)

    def verify(
        self, db: Reader, token: str, issuer: str, now: dt.datetime
    ) -> dict[str, Any]:
        """The claims of a session token signed by a published session key and valid at
        ``now``; else ``InvalidToken``."""
        return self._verifier.verify(token, lambda kid: self.public_key(db, kid), issuer,
                                     now=now.timestamp())

    def remembered(
        self, db: Reader, token: Any, issuer: str, now: dt.datetime
    ) -> dict[str, Any] | None:
        """:meth:`verify` for a token whose signature this process verified before; ``None``
        for any other, whose signature is left unchecked."""
        return self._verifier.remembered(token, lambda kid: self.public_key(db, kid), issuer,
                                         now=now.timestamp())

    def jwks(self, db: Session) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5) of every algorithm: public members only."""
        return {"keys": [_public_members(row.public_jwk)
                         for row in published(db, self._max_ttl)]}


def _public_members(jwk_dict: dict[str, Any]) -> dict[str, Any]:
    return {name: jwk_dict[name]
            for name in ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")
            if name in jwk_dict}
