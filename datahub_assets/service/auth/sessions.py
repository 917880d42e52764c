"""Browser sessions of the portal pages and /auth/verify.

The cookie `datahub_session` holds a random id (HttpOnly, SameSite=Lax, Path=/, Secure when
DATAHUB_COOKIE_SECURE=1); the row in `web_sessions` holds the user, the expiry and the
session's CSRF token, which every page form POST sends back (form field `csrf`, or header
`X-CSRF-Token` for htmx) and `authz.decide.authorize` checks. Signing out revokes the row."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.responses import Response

from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import User, WebSession

COOKIE = "datahub_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_TTL_S = 8 * 3600


def create_session(db: Session, user: User, ttl_s: int = DEFAULT_TTL_S) -> WebSession:
    now = utcnow()
    row = WebSession(
        id=secrets.token_urlsafe(32),
        user_id=user.id,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    db.add(row)
    db.flush()
    return row


def end_session(db: Session, session_id: str) -> None:
    row = db.get(WebSession, session_id) if session_id else None
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def end_user_sessions(db: Session, user_id: int) -> None:
    """Revoke every open session of a user (password changed, user deleted)."""
    db.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def lookup(db: Session, session_id: str | None) -> tuple[WebSession, User] | None:
    """The open session of the cookie value and its user (None: none, expired, revoked)."""
    if not session_id or len(session_id) > 64:
        return None
    row = db.get(WebSession, session_id)
    if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= utcnow():
        return None
    user = db.get(User, row.user_id)
    return (row, user) if user is not None else None


def csrf_ok(session: WebSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(str(presented), session.csrf)


def set_cookie(response: Response, session: WebSession, secure: bool, ttl_s: int) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_cookie(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
