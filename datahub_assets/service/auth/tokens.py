"""Bearer tokens of the API (contract section 2).

Access tokens (`POST /api/v1/auth/token`): JWT, HS256 with the service key, claims `sub`
(user name), `uid`, `iat`, `exp`, `jti`, `typ="access"`, `iss`/`aud` fixed, and `pwd`: a short
hash of the user's password hash and creation time, so a password change (or a deleted and
re-created user) invalidates every access token issued before it. Decoding pins the
algorithm (no `none`, no RS/HS confusion) and requires every claim; revoked `jti`s are
refused.

API tokens (`datahub tokens create`): `dh_<key_id>_<secret>`; only sha256(secret) is stored
and compared in constant time; they expire (optionally) and can be revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import ApiToken, RevokedAccessToken, User

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
