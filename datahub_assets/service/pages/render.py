"""Rendering of the portal's pages: one Jinja2 environment with autoescaping ON for every
template (user text is always escaped; nothing is marked safe), the caller, the session's CSRF
token (hidden `csrf` field of every form; `X-CSRF-Token` of htmx requests, set on <body>)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from datahub_assets.service.authz.roles import Principal, Role
from datahub_assets.service.state.models import WebSession

SESSION_COOKIE = "datahub_session"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def me(request: Request) -> Principal:
    """The caller `authorize` set on the request (pages need a session: never None here)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise HTTPException(status_code=401, detail="sign in first")
    return principal


def csrf_of(request: Request, db: Session) -> str:
    """The CSRF token of the caller's browser session ("" without one)."""
    web = getattr(request.state, "web_session", None)  # set by authorize
    if isinstance(web, WebSession):
        return web.csrf
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return ""
    row = db.get(WebSession, session_id)
    return row.csrf if row is not None else ""


def may_audit(principal: Principal) -> bool:
    return principal.admin or any(g.role >= Role.approver for g in principal.grants.values())


def render(
    request: Request,
    db: Session | None,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    ctx: dict[str, Any] = {
        "principal": principal,
        "csrf": csrf_of(request, db) if db is not None and principal is not None else "",
        "may_audit": isinstance(principal, Principal) and may_audit(principal),
        "Role": Role,
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
