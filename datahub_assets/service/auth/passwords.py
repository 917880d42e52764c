"""Passwords: argon2id (argon2-cffi's PasswordHasher, its current parameters).

`verify` answers False for a wrong password, a missing hash (OIDC-only users) and an unknown
user alike, and spends the same time on each: an unknown user is checked against a dummy hash
(no user enumeration by timing). `needs_rehash` tells a sign-in to store a new hash when the
parameters changed."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
HASHER = PasswordHasher()


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"the password has {len(password)} characters: use at least {MIN_LENGTH}"
        )


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    check_strength(password)
    return hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash("not a password of anyone: only spends the time of a check")


def verify(password_hash: str | None, password: str, hasher: PasswordHasher = HASHER) -> bool:
    """Whether `password` matches `password_hash` (None: always False, same cost)."""
    try:
        return hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, hasher: PasswordHasher = HASHER) -> bool:
    try:
        return hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
