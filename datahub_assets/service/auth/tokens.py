"""Bearer tokens of the API (contract section 2).

Access tokens (`POST /api/v1/auth/token`): JWT, HS256 with the service key, claims `sub`
(user name), `uid`, `iat`, `exp`, `jti`, `typ="access"`, `iss`/`aud` fixed, and `pwd`: a short
hash of the user's password hash and creation time, so a password change (or a deleted and
re-created user) invalidates every access token issued before it. Decoding pins the
algorithm (no `none`, no RS/HS confusion) and requires every claim; revoked `jti`s are
refused.

API tokens (`datahub tokens create`): `dh_<key_id>_<secret>`; only sha256(secret) is stored
and compared in constant time; they expire (optionally) and can be revoked.

An `AuthCache` (one per app: `app.state.auth_cache`) remembers, for at most CACHE_TTL_S
seconds, what a bearer token that passed every check above authenticated as (keyed by sha256
of the whole token; never the token itself), so a client's burst of calls does not repeat the
same three database reads. Bounds:
- in this process a change is seen at once: any flush or bulk statement touching users,
  grants, API tokens or revoked access tokens (a revocation, a deleted user, a new password,
  a grant) voids every entry when its transaction commits;
- another process on this host that imported this module (every `datahub serve --workers`
  process, `datahub tokens`) signals its commits through a file (`signal_path`): seen at
  once too;
- any other change (another host on the same PostgreSQL, a process that did not import this
  module, a hand-made SQL statement) takes effect within CACHE_TTL_S (5 s) of its commit;
- a cached token still stops working at its own expiry; refusals are never cached."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import delete, event, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import ORMExecuteState, Session

from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import ApiToken, Grant, RevokedAccessToken, User

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "datahub"
AUDIENCE = "datahub-api"
API_PREFIX = "dh_"
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class InvalidToken(Exception):
    """Missing, malformed, forged, expired or revoked: the answer is 401 (the reason is
    for the audit log only)."""


@dataclass(frozen=True)
class Credential:
    """What authenticated a request: the user, and the token to revoke it by."""

    user: User
    kind: str  # "access" | "api"
    token_id: str  # the jti or the API token's key_id
    expires_at: datetime | None


def password_marker(user: User) -> str:
    """Changes when the password does, and differs for a re-created user of the same name."""
    created = as_utc(user.created_at).isoformat() if user.created_at else ""
    return hashlib.sha256(f"{user.password_hash or ''}|{created}".encode()).hexdigest()[:16]


def issue_access_token(user: User, key: bytes, ttl_s: int) -> tuple[str, int]:
    now = utcnow()
    claims = {
        "sub": user.username,
        "uid": user.id,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "pwd": password_marker(user),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), ttl_s


def decode_access_token(db: Session, token: str, key: bytes) -> Credential:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"access token refused: {type(exc).__name__}") from None
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    if db.get(RevokedAccessToken, str(claims["jti"])) is not None:
        raise InvalidToken("access token revoked")
    user = db.get(User, claims.get("uid")) if isinstance(claims.get("uid"), int) else None
    if user is None or user.username != claims["sub"]:
        raise InvalidToken("the token's user does not exist")
    if not hmac.compare_digest(str(claims.get("pwd", "")), password_marker(user)):
        raise InvalidToken("the user's password changed since the token was issued")
    return Credential(
        user, "access", str(claims["jti"]), datetime.fromtimestamp(claims["exp"], UTC)
    )


def revoke_access_token(db: Session, jti: str, expires_at: datetime | None) -> None:
    if db.get(RevokedAccessToken, jti) is None:
        db.add(RevokedAccessToken(jti=jti, expires_at=expires_at or utcnow()))
    # rows of tokens that expired anyway are no longer needed
    db.execute(
        delete(RevokedAccessToken).where(
            RevokedAccessToken.expires_at < utcnow() - timedelta(days=1)
        )
    )


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_token(
    db: Session, user: User, expires: timedelta | None = None
) -> tuple[str, ApiToken]:
    """A new API token of `user`: (the token text, shown once; its row)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        key_id=key_id,
        secret_hash=_hash_secret(secret),
        user_id=user.id,
        created_at=now,
        expires_at=now + expires if expires else None,
    )
    db.add(row)
    db.flush()
    return f"{API_PREFIX}{key_id}_{secret}", row


def is_api_token(token: str) -> bool:
    return token.startswith(API_PREFIX)


def check_api_token(db: Session, token: str) -> Credential:
    parts = token.split("_", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise InvalidToken("malformed API token")
    _, key_id, secret = parts
    row = db.scalar(select(ApiToken).where(ApiToken.key_id == key_id))
    expected = row.secret_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(_hash_secret(secret), expected) or row is None:
        raise InvalidToken("unknown API token")
    now = utcnow()
    if row.revoked_at is not None:
        raise InvalidToken("API token revoked")
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        raise InvalidToken("API token expired")
    user = db.get(User, row.user_id)
    if user is None:
        raise InvalidToken("the token's user does not exist")
    if row.last_used_at is None or as_utc(row.last_used_at) < now - timedelta(minutes=5):
        row.last_used_at = now
    return Credential(user, "api", row.key_id, as_utc(row.expires_at) if row.expires_at else None)


def authenticate_bearer(db: Session, token: str, key: bytes) -> Credential:
    if is_api_token(token):
        return check_api_token(db, token)
    return decode_access_token(db, token, key)


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` (the CLI's --expires)."""
    value = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit() or int(value[:-1]) < 1:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 2w")
    return timedelta(**{units[value[-1]]: int(value[:-1])})


# --- the cache of authenticated bearer tokens --------------------------------------------------

CACHE_TTL_S = 5.0
CACHE_MAX_ENTRIES = 4096
AUTH_MODELS = (User, Grant, ApiToken, RevokedAccessToken)
"""Tables whose change can refuse a token or change what it may do."""


Stamp = tuple[int, bytes]
"""(this process's generation, the shared signal file's content) when a lookup began."""


@dataclass(frozen=True)
class _Entry:
    credential: Credential
    extra: Any  # what the caller derived from the credential (decide.py: the Principal)
    stamp: Stamp
    stored_at: float


class AuthCache:
    """token digest -> (Credential, extra), for `ttl_s` seconds and only while no change to
    AUTH_MODELS has been committed since the lookup began: in this process (the generation)
    or in another process on this host that signalled it (the `signal` file, see
    `signal_path`)."""

    def __init__(
        self,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = CACHE_MAX_ENTRIES,
        signal: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.signal = signal
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def stamp(self) -> Stamp:
        """Read BEFORE a lookup in the database, passed to `put` after it."""
        return _generation[0], _read_signal(self.signal)

    def get(self, key: str) -> tuple[Credential, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires = entry.credential.expires_at
        if (
            self.clock() - entry.stored_at >= self.ttl_s
            or (expires is not None and expires <= utcnow())
            or entry.stamp != self.stamp()
        ):
            self._entries.pop(key, None)
            return None
        return entry.credential, entry.extra

    def put(self, key: str, credential: Credential, extra: Any, stamp: Stamp) -> None:
        """Remember a token checked against the database by a lookup that began at `stamp`
        (a change committed since voids it: it is not stored)."""
        if self.ttl_s <= 0 or stamp != self.stamp():
            return
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {
                    k: e for k, e in self._entries.items() if now - e.stored_at < self.ttl_s
                }
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = _Entry(credential, extra, stamp, now)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_generation = [0]
_generation_lock = threading.Lock()


def invalidate_auth_caches() -> None:
    """Void every AuthCache entry of this process (entries of an older generation are
    never answered)."""
    with _generation_lock:
        _generation[0] += 1


def signal_path(url: URL) -> Path:
    """The file by which processes on this host sharing the state database at `url` tell
    each other that users, grants or tokens changed: next to a SQLite file, else in the
    temp folder, named by a digest of the URL without its password."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db_file = Path(str(url.database)).expanduser()
        return db_file.with_name(db_file.name + "-auth-signal")
    digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()
    return Path(tempfile.gettempdir()) / f"datahub-auth-signal-{digest[:16]}"


def _read_signal(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _write_signal(path: Path) -> None:
    try:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        tmp.replace(path)
    except OSError as exc:  # the other processes still see it within CACHE_TTL_S
        log.warning("could not write the auth change signal %s: %s", path, exc)


_CHANGED = "datahub_auth_changed"


@event.listens_for(Session, "after_flush")
def _note_auth_rows(session: Session, _context: Any) -> None:
    if any(isinstance(o, AUTH_MODELS) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True
        invalidate_auth_caches()  # and again at the commit (a lookup may run in between)


@event.listens_for(Session, "do_orm_execute")
def _note_auth_statements(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    writes = state.is_update or state.is_delete
    if writes and mapper is not None and issubclass(mapper.class_, AUTH_MODELS):
        state.session.info[_CHANGED] = True
        invalidate_auth_caches()


@event.listens_for(Session, "after_commit")
def _auth_rows_committed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        invalidate_auth_caches()
        bind = session.bind
        if bind is not None:
            _write_signal(signal_path(bind.engine.url))


@event.listens_for(Session, "after_soft_rollback")
def _auth_rows_rolled_back(session: Session, _previous: Any) -> None:
    session.info.pop(_CHANGED, None)
