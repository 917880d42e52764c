"""`authorize`: the one dependency that decides every call (app.py installs it app-wide).

1. the matched route's Rule (authz/rules.py, keyed by method and path template); none: 500;
2. authentication: `Authorization: Bearer` (access or API token) for /api/*; the session
   cookie for pages and /auth/verify. An API call that brings the session cookie but no
   Bearer token is 401: a browser's cookie never authorises the API (no CSRF on the API);
3. page form POSTs carry the session's CSRF token (form field `csrf` or header
   `X-CSRF-Token`), else 403;
4. the decision: an app-scoped call on an app the caller has no role on is 404 (invisible, as
   if absent); a visible app with too small a role is 403; approving one's own change is 403;
   a change touching python/ files needs admin (403).

Every refusal is audited (action "access", outcome "denied", target "METHOD path"), except
the 401/303 of a request that presented no credential at all on a GET (a signed-out browser
or a health probe: noise, and nothing was attempted). Pages without a session answer
303 → /login?next=<path>.

The handler gets the caller from `request.state.principal` (or the `principal` dependency),
the app from `request.state.app`, and for change routes the Change row from
`request.state.change`.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import quote

from fastapi import Depends, HTTPException
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from datahub_assets.service import audit
from datahub_assets.service.auth import sessions, tokens
from datahub_assets.service.authz.roles import AppGrant, Principal, Role
from datahub_assets.service.authz.rules import API_PREFIX, COOKIE_API_PATHS, Rule, rule_for
from datahub_assets.service.state.db import get_db
from datahub_assets.service.state.models import Change, User

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def principal_of(user: User, via: str) -> Principal:
    grants = {}
    for grant in user.grants:
        try:
            grants[grant.app] = AppGrant(Role[grant.role], bool(grant.pii))
        except KeyError:
            continue  # an unknown role grants nothing
    return Principal(
        username=user.username,
        admin=bool(user.admin),
        operator=bool(user.operator),
        grants=grants,
        via=via,
    )


def principal(request: Request) -> Principal:
    """Dependency of handlers: the authenticated caller (authorize ran first)."""
    who = getattr(request.state, "principal", None)
    if who is None:
        raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
    return who


def optional_principal(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def _kind(path: str) -> str:
    if path.startswith(API_PREFIX):
        return "api"
    return "cookie" if path in COOKIE_API_PATHS else "page"


def deny(
    request: Request,
    db: Session,
    status: int,
    detail: str,
    *,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    record: bool = True,
) -> HTTPException:
    """The HTTPException of a refusal, audited (the request's session is committed on it)."""
    if record:
        audit.record_request(
            request,
            db,
            "access",
            f"{request.method} {request.url.path}",
            "denied",
            detail={"status": status, "reason": reason or detail},
        )
    return HTTPException(status, detail, headers=headers)


async def authorize(request: Request, db: Session = Depends(get_db, scope="function")) -> None:
    request.state.principal = None
    request.state.app = None
    request.state.change = None
    request.state.credential = None
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    rule = rule_for(request.method, path) if isinstance(path, str) else None
    if rule is None or path is None:
        raise HTTPException(
            500, f"no authorization rule for {request.method} {path} (authz/rules.py)"
        )
    kind = _kind(path)
    if rule.who == "public" and kind == "api":
        return  # nobody to look up
    # what needs the body is read here (async); the database work runs in a worker thread,
    # never on the event loop (a wait for a SQLite lock must not stop every other request)
    csrf = await _presented_csrf(request) if kind == "page" and request.method == "POST" else None
    body = await _json_body(request) if rule.app_from == "body" else None
    if kind == "api" and _allowed_from_cache(request, rule, body):
        return  # a token checked in the last seconds, a decision needing no database
    await run_in_threadpool(_authorize, request, db, rule, kind, csrf, body)


def _allowed_from_cache(request: Request, rule: Rule, body: Any) -> bool:
    """True when the bearer token is in the app's `auth_cache` (auth/tokens.py: how long an
    entry is trusted) and the rule lets its principal through without reading the database.
    Anything else (a miss, a refusal, a change route) goes the full way in the thread pool,
    which audits refusals."""
    token = _bearer(request)
    if token is None or rule.app_from == "change":
        return False
    cache: tokens.AuthCache | None = getattr(request.app.state, "auth_cache", None)
    hit = cache.get(tokens.AuthCache.key(token)) if cache is not None else None
    if hit is None:
        return False
    credential, who = hit
    target = _app_of_request(request, rule, body) if rule.who == "app" else (None, [])
    if target is None or _refusal(rule, who, target[0], None, target[1]) is not None:
        return False
    request.state.credential = credential
    request.state.principal = who
    request.state.app = target[0]
    return True


def _authorize(
    request: Request, db: Session, rule: Rule, kind: str, csrf: str | None, body: Any
) -> None:
    if rule.who == "public":
        _optional_session(request, db, kind)
        return
    who = _authenticate(request, db, kind)
    request.state.principal = who
    if kind == "page" and request.method == "POST":
        _check_csrf(request, db, csrf)
    _decide(request, db, rule, who, body)


# --- authentication ------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _authenticate(request: Request, db: Session, kind: str) -> Principal:
    if kind == "api":
        return _authenticate_api(request, db)
    found = sessions.lookup(db, request.cookies.get(sessions.COOKIE))
    if found is not None:
        web, user = found
        request.state.web_session = web
        request.state.credential = tokens.Credential(user, "session", web.id, web.expires_at)
        return principal_of(user, "session")
    presented = sessions.COOKIE in request.cookies
    quiet = not presented and request.method == "GET"
    if kind == "page":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise deny(
            request,
            db,
            303,
            "sign in first",
            reason="no valid session" if presented else "no session",
            headers={"Location": f"/login?next={quote(target, safe='')}"},
            record=not quiet,
        )
    raise deny(request, db, 401, "sign in first", reason="no valid session", record=not quiet)


def _authenticate_api(request: Request, db: Session) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    token = _bearer(request)
    if token is None:
        if sessions.COOKIE in request.cookies:
            raise deny(
                request,
                db,
                401,
                "the API needs an Authorization: Bearer token (the session cookie is not "
                "accepted here)",
                reason="session cookie on the API",
                headers=challenge,
            )
        quiet = request.method == "GET" and "authorization" not in request.headers
        raise deny(
            request,
            db,
            401,
            "missing Authorization: Bearer token",
            headers=challenge,
            record=not quiet,
        )
    cache: tokens.AuthCache = getattr(request.app.state, "auth_cache", None) or tokens.AuthCache(0)
    key = cache.key(token)
    hit = cache.get(key)
    if hit is not None:
        request.state.credential = hit[0]
        return hit[1]
    stamp = cache.stamp()  # before the reads: a change committed meanwhile voids the entry
    try:
        credential = tokens.authenticate_bearer(db, token, request.app.state.settings.secret_key)
    except tokens.InvalidToken as exc:
        raise deny(
            request, db, 401, "invalid or expired token", reason=str(exc), headers=challenge
        ) from None
    who = principal_of(credential.user, credential.kind)
    cache.put(key, credential, who, stamp)
    request.state.credential = credential
    return who


def _optional_session(request: Request, db: Session, kind: str) -> None:
    """Public pages still know a signed-in caller (e.g. /login sends them on)."""
    if kind == "api":
        return
    found = sessions.lookup(db, request.cookies.get(sessions.COOKIE))
    if found is not None:
        request.state.web_session = found[0]
        request.state.principal = principal_of(found[1], "session")


async def _presented_csrf(request: Request) -> str | None:
    presented = request.headers.get(sessions.CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(sessions.CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    return presented


def _check_csrf(request: Request, db: Session, presented: str | None) -> None:
    if not sessions.csrf_ok(request.state.web_session, presented):
        raise deny(
            request,
            db,
            403,
            "the form's CSRF token is missing or wrong: reload the page and try again",
            reason="csrf",
        )


# --- the decision ----------------------------------------------------------------------------


def _decide(request: Request, db: Session, rule: Rule, who: Principal, body: Any) -> None:
    app, change, files = None, None, []
    if rule.who == "app":
        app, change, files = _app_of(request, db, rule, body)
        request.state.app = app  # the refusals below are audited under the app too
    refusal = _refusal(rule, who, app, change, files)
    if refusal is not None:
        status, detail, reason = refusal
        raise deny(request, db, status, detail, reason=reason)


Refusal = tuple[int, str, str | None]  # status, detail, the audit's reason (None: the detail)


def _refusal(
    rule: Rule, who: Principal, app: str | None, change: Change | None, files: list[Any]
) -> Refusal | None:
    """Why `rule` refuses `who` (on `app`, for `change` and its `files`); None: allowed."""
    if rule.who == "admin" and not who.admin:
        return 403, "this needs the admin role", None
    if rule.who == "operator" and not (who.operator or who.admin):
        return 403, "this needs the operator role", None
    if rule.who == "auditor" and not (
        who.admin or any(g.role >= Role.approver for g in who.grants.values())
    ):
        return 403, "the audit log needs admin, or approver on an app", None
    if rule.who == "app":
        return _app_refusal(rule, who, app or "", change, files)
    return None


def _app_refusal(
    rule: Rule, who: Principal, app: str, change: Change | None, files: list[Any]
) -> Refusal | None:
    role = who.role_on(app)
    if role is None:
        what = f"change {change.id!r}" if change is not None else f"app {app!r}"
        return 404, f"{what} not found", f"app {app!r} invisible"
    assert rule.min_role is not None
    if role < rule.min_role:
        return 403, f"this needs the {rule.min_role.name} role on app {app!r}", None
    if rule.not_author and change is not None and change.author == who.username:
        return 403, "the author of a change cannot approve it", None
    if rule.python_admin and not who.admin and any(map(_is_python, files)):
        return 403, "changes to python/ files of an app need the admin role", None
    return None


def _app_of(
    request: Request, db: Session, rule: Rule, body: Any
) -> tuple[str, Change | None, list[Any]]:
    """(app, the change for change routes, the change's or body's file paths)."""
    if rule.app_from == "change":
        change_id = str(request.path_params.get("change_id", ""))
        change = db.get(Change, change_id) if len(change_id) <= 32 else None
        if change is None:
            raise deny(request, db, 404, f"change {change_id!r} not found", record=False)
        request.state.change = change
        return change.app, change, [f.get("path") for f in change.files or []]
    if rule.app_from == "body" and not isinstance(body, dict):
        raise deny(request, db, 422, "the body is not a JSON object", record=False)
    target = _app_of_request(request, rule, body)
    if target is None:
        raise deny(request, db, 422, 'the body needs "app": the app\'s name', record=False)
    return target[0], None, target[1]


def _app_of_request(request: Request, rule: Rule, body: Any) -> tuple[str, list[Any]] | None:
    """(app, the body's file paths) from the path, query or body; None: no app in the body."""
    if rule.app_from == "path":
        return str(request.path_params.get("app", "")), []
    if rule.app_from == "query":
        return request.query_params.get("app", ""), []
    app = body.get("app") if isinstance(body, dict) else None
    if not isinstance(app, str) or not app:
        return None
    files = body.get("files") if isinstance(body, dict) else None
    paths = [f.get("path") for f in files if isinstance(f, dict)] if isinstance(files, list) else []
    return app, paths


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _is_python(path: Any) -> bool:
    if not isinstance(path, str):
        return False
    clean = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
    return clean == "python" or clean.startswith("python/")
