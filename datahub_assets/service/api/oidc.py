"""OpenID Connect sign-in: GET /auth/oidc/login and GET /auth/oidc/callback (public routes;
the protocol, the checks and the user/grant mapping are auth/oidc.py).

/auth/oidc/login?next=/path    302 to the provider (404 when DATAHUB_OIDC_ISSUER is unset)
/auth/oidc/callback            the provider's answer: a checked id_token makes a browser
                               session (cookie `datahub_session`) and 302s to `next`; anything
                               else answers 401 (400 when the answer is malformed), writes no
                               user and no session, and is audited as a refused `login`."""

from __future__ import annotations

import html
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.auth import oidc, sessions
from datahub_assets.service.settings import OidcSettings, ServiceSettings
from datahub_assets.service.state.db import get_db

router = APIRouter(tags=["auth"])

_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


def _not_configured() -> Response:
    return HTMLResponse(
        "<p>Sign-in with an identity provider is not configured here "
        "(DATAHUB_OIDC_ISSUER). <a href='/login'>Sign in</a> with a password.</p>",
        status_code=404,
    )


def _refused(message: str, status: int) -> Response:
    response = HTMLResponse(
        "<!doctype html><title>Sign-in refused</title>"
        f"<p>Sign-in with the identity provider was refused: {html.escape(message)}</p>"
        "<p><a href='/login'>Start again</a></p>",
        status_code=status,
    )
    response.delete_cookie(oidc.TRANSACTION_COOKIE, path=oidc.TRANSACTION_PATH)
    return response


@router.get("/auth/oidc/login", name="oidc_login", include_in_schema=False)
def oidc_login(request: Request, next: str | None = None) -> Response:  # noqa: A002
    settings = _settings(request)
    if settings.oidc is None:
        return _not_configured()
    try:
        url, cookie = oidc.start(settings.oidc, settings.secret_key, _callback_url(request), next)
    except oidc.OidcError as error:
        return _refused(error.reason, 502)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        oidc.TRANSACTION_COOKIE,
        cookie,
        max_age=oidc.TRANSACTION_TTL_S,
        path=oidc.TRANSACTION_PATH,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET
        secure=settings.cookie_secure,
    )
    return response


@router.get("/auth/oidc/callback", name="oidc_callback", include_in_schema=False)
def oidc_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    settings = _settings(request)
    if settings.oidc is None:
        return _not_configured()
    try:
        tx = oidc.read_transaction(
            request.cookies.get(oidc.TRANSACTION_COOKIE), settings.secret_key
        )
        oidc.check_state(tx, state)
        if error:
            code_name = error if _ERROR_CODE.match(error) else "unknown"
            raise oidc.OidcError(f"the identity provider answered {code_name}")
        if not code:
            return _audit_refusal(
                request, db, settings.oidc, "the answer has no code", 400, "invalid"
            )
        identity = oidc.exchange(settings.oidc, tx, code, _callback_url(request))
        user, changes = oidc.sync_user(db, settings.oidc, identity)
    except oidc.OidcError as refused:
        status = 502 if refused.outcome == "error" else 401
        return _audit_refusal(
            request, db, settings.oidc, refused.reason, status, refused.outcome, refused.username
        )
    for change in changes:
        audit.record(
            db,
            actor=user.username,
            action=change.action,
            target=f"{user.username} {change.what}".strip(),
            outcome="ok",
            client=audit.client_of(request),
            app=change.app,
            detail=f"from the groups of {oidc.source_of(settings.oidc)}",
        )
    web_session = sessions.create_session(db, user, ttl_s=settings.session_ttl_s)
    audit.record(
        db,
        actor=user.username,
        action="login",
        target=user.username,
        outcome="ok",
        client=audit.client_of(request),
        detail=f"via {oidc.source_of(settings.oidc)}",
    )
    response = RedirectResponse(tx.next, status_code=302)
    response.delete_cookie(oidc.TRANSACTION_COOKIE, path=oidc.TRANSACTION_PATH)
    sessions.set_cookie(response, web_session, settings.cookie_secure, settings.session_ttl_s)
    return response


def _audit_refusal(
    request: Request,
    db: Session,
    settings: OidcSettings,
    reason: str,
    status: int,
    outcome: str = "denied",
    username: str = "",
) -> Response:
    db.rollback()  # nothing of a refused sign-in is kept but its audit row
    audit.record(
        db,
        actor=username or oidc.source_of(settings),
        action="login",
        target=username,
        outcome=outcome,
        client=audit.client_of(request),
        detail=f"oidc: {reason}",
    )
    return _refused(reason, status)
