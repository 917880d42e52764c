"""Sign-in with a user name and password: the one function behind `POST /api/v1/auth/token`
and the /login page. It applies the rate limit, checks the password (same time for unknown
users), upgrades the hash when argon2's parameters changed, audits the attempt (actor: the
name tried) and commits, so the audit row and the failure count survive the 401 or 429 the
caller answers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.auth import passwords, ratelimit
from datahub_assets.service.auth.ratelimit import RateLimited
from datahub_assets.service.state.models import User

__all__ = ["RateLimited", "login"]


def login(db: Session, username: str, password: str, client: str) -> User | None:
    """The user, or None for a wrong name or password; raises RateLimited (429)."""
    name = (username or "").strip()[:255]
    try:
        ratelimit.check(db, name, client)
    except RateLimited as exc:
        audit.record(
            db,
            actor=name,
            action="login",
            target=name,
            outcome="denied",
            client=client,
            detail=f"rate limited, retry after {exc.retry_after} s",
        )
        db.commit()
        raise
    user = db.scalar(select(User).where(User.username == name)) if name else None
    ok = passwords.verify(user.password_hash if user else None, password or "")
    if not ok or user is None:
        ratelimit.record_failure(db, name, client)
        audit.record(
            db,
            actor=name,
            action="login",
            target=name,
            outcome="denied",
            client=client,
            detail="wrong user name or password",
        )
        db.commit()
        return None
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.HASHER.hash(password)
    ratelimit.clear(db, name)
    audit.record(db, actor=name, action="login", target=name, outcome="ok", client=client)
    db.commit()
    return user
