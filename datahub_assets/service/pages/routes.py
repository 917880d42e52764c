"""The portal's pages (server-rendered; htmx only enhances, every form posts without JS):
sign in/out, my apps, an app's pipelines, a pipeline's definition and history, the review
page of a change, the audit log. The wizard's routes are in pages/wizard.py (its
model, form → XML, in pages/wizard_form.py).

`authorize` (installed app-wide) has already decided every call when a handler runs: it
redirected callers without a session to /login, answered 404 for invisible apps and 403 for
too small a role, and checked the CSRF token of every form POST except /login's (which uses
its own double-submit cookie below)."""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.auth import sessions
from datahub_assets.service.authz.roles import Principal, Role
from datahub_assets.service.pages import history, login, runs
from datahub_assets.service.pages.render import is_htmx, me, render
from datahub_assets.service.pages.review import change_context, load_change
from datahub_assets.service.registry.errors import Invalid, RegistryError
from datahub_assets.service.state.db import get_db
from datahub_assets.service.state.models import Change

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "datahub_login_csrf"
LAYER_ORDER = ("raw", "staging", "bronze", "silver", "standardization", "gold", "service")
AUDIT_LIMIT = 500
_SINCE = re.compile(r"^(\d{1,5})([mhdw])$")


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
def home() -> RedirectResponse:
    return _see_other("/apps")


# ------------------------------------------------------------------ sign in / out


def local_next(value: str | None) -> str:
    """`next` only when it is a path of this site ("/apps/shop"), else /apps."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/apps"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return "/apps"
    return value


def _login_page(
    request: Request, next_url: str, error: str = "", username: str = "", status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        None,
        "login.html",
        {
            "login_csrf": token,
            "next": next_url,
            "error": error,
            "username": username,
            "oidc": request.app.state.settings.oidc is not None,
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.cookie_secure,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if getattr(request.state, "principal", None) is not None:  # signed in already
        return _see_other(local_next(next))
    return _login_page(request, local_next(next))


@router.post("/login")
async def login_submit(
    request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    form = await request.form()
    username = str(form.get("username") or "")[:255]
    password = str(form.get("password") or "")
    next_url = local_next(str(form.get("next") or ""))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    sent = str(form.get("login_csrf") or "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        return _login_page(
            request, next_url, "The sign-in form expired: please sign in again.", username, 403
        )
    outcome = await run_in_threadpool(login.sign_in, request, db, username, password)
    if outcome.session is None:
        return _login_page(request, next_url, outcome.error, username, outcome.status)
    db.commit()  # before the browser follows the redirect (get_db commits after the answer)
    response = _see_other(next_url)
    settings = request.app.state.settings
    sessions.set_cookie(response, outcome.session, settings.cookie_secure, settings.session_ttl_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: Session = Depends(get_db, scope="function")) -> RedirectResponse:
    session_id = request.cookies.get(sessions.COOKIE)
    if session_id:
        login.sign_out(request, db, session_id)
        db.commit()
    response = _see_other("/login")
    sessions.clear_cookie(response, request.app.state.settings.cookie_secure)
    return response


# ------------------------------------------------------------------ apps and pipelines


@router.get("/apps")
def apps_page(request: Request, db: Session = Depends(get_db, scope="function")) -> HTMLResponse:
    principal = me(request)
    counts: dict[str, int] = request.app.state.registry.apps()
    rows = [
        {"app": app, "role": role.name, "pipelines": n}
        for app, n in sorted(counts.items())
        if (role := principal.role_on(app)) is not None
    ]
    return render(request, db, "apps.html", {"apps": rows})


def _by_layer(pipelines: list[dict]) -> list[tuple[str, list[dict]]]:
    layers: dict[str, list[dict]] = {}
    for row in pipelines:
        layers.setdefault(str(row.get("layer", "")), []).append(row)
    order = {name: i for i, name in enumerate(LAYER_ORDER)}
    return [
        (layer, sorted(rows, key=lambda r: str(r.get("id"))))
        for layer, rows in sorted(layers.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    ]


def asset_url(ui_url: str | None, key: list[str] | tuple[str, ...]) -> str | None:
    if not ui_url:
        return None
    from urllib.parse import quote

    return ui_url.rstrip("/") + "/assets/" + "/".join(quote(str(p), safe="") for p in key)


@router.get("/apps/{app}")
def app_page(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> HTMLResponse:
    principal = me(request)
    registry = request.app.state.registry
    settings = request.app.state.settings
    pipelines: list[dict] = registry.pipelines(app)
    last = runs.last_runs(settings, app)
    changes = db.scalars(
        select(Change)
        .where(Change.app == app, Change.status.in_(("open", "invalid")))
        .order_by(Change.created_at.desc())
        .limit(50)
    ).all()
    role = principal.role_on(app)
    return render(
        request,
        db,
        "app.html",
        {
            "app": app,
            "role": role.name if role else "",
            "is_editor": role is not None and role >= Role.editor,
            "layers": _by_layer(pipelines),
            "last_runs": last,
            "asset_url": lambda key: asset_url(settings.ui_url, key),
            "changes": changes,
        },
    )


@router.get("/apps/{app}/pipelines/{pipeline_id}")
def pipeline_page(
    app: str, pipeline_id: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> HTMLResponse:
    registry = request.app.state.registry
    settings = request.app.state.settings
    pipeline = registry.pipeline(app, pipeline_id)
    if pipeline is None:
        raise HTTPException(status_code=404, detail=f"no pipeline {pipeline_id!r} in {app!r}")
    commits = history.with_diffs(registry, app, pipeline)
    return render(
        request,
        db,
        "pipeline.html",
        {
            "app": app,
            "pipeline": pipeline,
            "history": commits,
            "asset_url": lambda key: asset_url(settings.ui_url, key),
        },
    )


# ------------------------------------------------------------------ review of a change


@router.get("/changes/{change_id}")
def change_page(
    change_id: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> HTMLResponse:
    change = load_change(db, change_id)
    return render(request, db, "change.html", change_context(request, change))


def _decision_failed(
    request: Request, db: Session, change_id: str, error: RegistryError
) -> HTMLResponse:
    change = load_change(db, change_id)
    context = change_context(request, change) | {"decision_error": str(error.detail)}
    return render(request, db, "change.html", context, status_code=error.status)


@router.post("/changes/{change_id}/approve")
def approve(
    change_id: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    principal = me(request)
    try:
        request.app.state.registry.approve(
            db, change_id, principal.username, client=audit.client_of(request)
        )
    except RegistryError as error:
        return _decision_failed(request, db, change_id, error)
    db.commit()  # the next page reads the decision
    return _see_other(f"/changes/{change_id}")


@router.post("/changes/{change_id}/reject")
async def reject(
    change_id: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    principal = me(request)
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if not reason:
        error = Invalid("write the reason of the rejection")
        return _decision_failed(request, db, change_id, error)
    try:
        request.app.state.registry.reject(
            db, change_id, principal.username, reason, client=audit.client_of(request)
        )
    except RegistryError as error:
        return _decision_failed(request, db, change_id, error)
    db.commit()  # the next page reads the decision
    return _see_other(f"/changes/{change_id}")


# ------------------------------------------------------------------ audit log


def audit_apps(principal: Principal) -> list[str] | None:
    """The apps whose events the caller may read (None: all, for admins)."""
    if principal.admin:
        return None
    return sorted(a for a, g in principal.grants.items() if g.role >= Role.approver)


@router.get("/audit")
def audit_page(
    request: Request,
    app: str = "",
    since: str = "7d",
    db: Session = Depends(get_db, scope="function"),
) -> HTMLResponse:
    principal = me(request)
    error = ""
    try:
        start = audit.parse_since(since) if since.strip() else None
    except ValueError as exc:
        start, error = None, str(exc)
    allowed = audit_apps(principal)
    found = audit.events(db, since=start, app=app or None, apps=allowed, limit=AUDIT_LIMIT)
    events = list(reversed(found))  # newest first
    return render(
        request,
        db,
        "audit.html",
        {
            "events": events,
            "app": app,
            "since": since,
            "error": error,
            "apps": allowed if allowed is not None else sorted(request.app.state.registry.apps()),
            "limit": AUDIT_LIMIT,
            "htmx": is_htmx(request),
        },
    )
