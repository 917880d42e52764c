"""Sign-in and sign-out of the pages: `auth.login.login` (the rate limit, argon2, the audit
row of every attempt: the same function as POST /api/v1/auth/token) and `auth.sessions` (the
cookie's session row). A failed sign-in says the same for an unknown user and a wrong
password."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.auth import sessions
from datahub_assets.service.auth.login import RateLimited, login

WRONG = "Wrong user name or password."


@dataclass(frozen=True)
class Outcome:
    session: sessions.WebSession | None
    error: str = ""
    status: int = 200


def sign_in(request: Request, db: Session, username: str, password: str) -> Outcome:
    try:
        user = login(db, username, password, audit.client_of(request))
    except RateLimited as limited:
        return Outcome(
            None, f"Too many failed sign-ins: try again in {limited.retry_after} s.", 429
        )
    if user is None:
        return Outcome(None, WRONG, 401)
    ttl = request.app.state.settings.session_ttl_s
    return Outcome(sessions.create_session(db, user, ttl_s=ttl))


def sign_out(request: Request, db: Session, session_id: str) -> None:
    sessions.end_session(db, session_id)
    audit.record_request(request, db, "logout", "session", "ok")
