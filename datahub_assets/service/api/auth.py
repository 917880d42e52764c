"""`POST /api/v1/auth/token` (OAuth2 password form → a short-lived access token) and
`POST /api/v1/auth/revoke`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.auth import tokens
from datahub_assets.service.auth.login import RateLimited, login
from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal
from datahub_assets.service.state.db import get_db, utcnow
from datahub_assets.service.state.models import ApiToken, User

router = APIRouter(tags=["auth"])


class TokenAnswer(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post("/api/v1/auth/token", response_model=TokenAnswer)
def issue_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: Session = Depends(get_db, scope="function"),
) -> TokenAnswer:
    """Sign in with `username` and `password` (OAuth2 password form). Rate limited: 5 failures
    per user name or 20 per client address in 15 minutes answer 429 with Retry-After."""
    try:
        user = login(db, form.username, form.password, audit.client_of(request))
    except RateLimited as exc:
        raise HTTPException(
            429,
            "too many failed sign-ins: try again later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    if user is None:
        raise HTTPException(
            401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"}
        )
    settings = request.app.state.settings
    access, ttl = tokens.issue_access_token(user, settings.secret_key, settings.access_ttl_s)
    return TokenAnswer(access_token=access, expires_in=ttl)


class RevokeBody(BaseModel):
    token_id: str | None = None


@router.post("/api/v1/auth/revoke")
def revoke(
    request: Request,
    body: Annotated[RevokeBody | None, Body()] = None,
    who: Principal = Depends(principal),
    db: Session = Depends(get_db, scope="function"),
) -> dict[str, Any]:
    """Without a body: revoke the token this call presents. With `{"token_id"}`: revoke that
    API token (your own; admins: anyone's)."""
    credential: tokens.Credential = request.state.credential
    if body is None or body.token_id is None:
        if credential.kind == "access":
            tokens.revoke_access_token(db, credential.token_id, credential.expires_at)
        else:
            _revoke_api(db, credential.token_id)
        audit.record_request(request, db, "token.revoke", credential.token_id, "ok")
        return {"revoked": credential.token_id}
    row = db.scalar(select(ApiToken).where(ApiToken.key_id == body.token_id))
    owner = db.get(User, row.user_id) if row is not None else None
    if row is None or owner is None or not (who.admin or owner.username == who.username):
        audit.record_request(
            request, db, "token.revoke", body.token_id[:64], "denied", detail="unknown token"
        )
        raise HTTPException(404, f"token {body.token_id[:64]!r} not found")
    _revoke_api(db, row.key_id)
    audit.record_request(request, db, "token.revoke", row.key_id, "ok", detail=owner.username)
    return {"revoked": row.key_id}


def _revoke_api(db: Session, key_id: str) -> None:
    row = db.scalar(select(ApiToken).where(ApiToken.key_id == key_id))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
