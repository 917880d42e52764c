"""Sign-in rate limit: at least 5 failures for one user name, or 20 from one client address,
within 15 minutes refuse further attempts (429, Retry-After) until the oldest failure of the
window ages out. Failures are rows of `login_failures`, so the limit holds across processes
and restarts; a successful sign-in clears the user name's failures."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import LoginFailure

WINDOW = timedelta(minutes=15)
MAX_PER_USER = 5
MAX_PER_CLIENT = 20


class RateLimited(Exception):
    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-ins: retry in {retry_after} s")
        self.retry_after = retry_after


def _retry_after(db: Session, column, value: str, limit: int, now: datetime) -> int | None:
    since = now - WINDOW
    count, oldest = db.execute(
        select(func.count(), func.min(LoginFailure.time)).where(
            column == value, LoginFailure.time >= since
        )
    ).one()
    if count < limit or oldest is None:
        return None
    return max(1, int((as_utc(oldest) + WINDOW - now).total_seconds()) + 1)


def check(db: Session, username: str, client: str, now: datetime | None = None) -> None:
    """Raise RateLimited when `username` or `client` is over its limit."""
    now = now or utcnow()
    waits = [
        _retry_after(db, LoginFailure.username, username, MAX_PER_USER, now),
        _retry_after(db, LoginFailure.client, client, MAX_PER_CLIENT, now),
    ]
    if any(w is not None for w in waits):
        raise RateLimited(max(w for w in waits if w is not None))


def record_failure(db: Session, username: str, client: str) -> None:
    db.add(LoginFailure(username=username[:255], client=client[:64], time=utcnow()))
    db.execute(delete(LoginFailure).where(LoginFailure.time < utcnow() - 2 * WINDOW))


def clear(db: Session, username: str) -> None:
    db.execute(delete(LoginFailure).where(LoginFailure.username == username))
