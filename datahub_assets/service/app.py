"""`create_app()`: the service's FastAPI application (`datahub serve` runs it under uvicorn).

It puts `settings`, `state` (the state database) and `registry` (the pipelines' git work
tree) on `app.state`, installs `authz.decide.authorize` on every route, includes every
router of api/ and pages/, mounts /static, and wraps everything in two ASGI middlewares:
a body size limit (DATAHUB_MAX_BODY_BYTES: 413 before the body is read, nothing written)
and the security headers of every answer. Errors are JSON `{"detail": ...}`.
"""

from __future__ import annotations

import html
import importlib
import logging
import pkgutil
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datahub_assets.service import audit
from datahub_assets.service.auth.tokens import AuthCache, signal_path
from datahub_assets.service.authz.decide import authorize
from datahub_assets.service.settings import ServiceSettings
from datahub_assets.service.state.db import State

log = logging.getLogger(__name__)

ROUTER_PACKAGES = ("datahub_assets.service.api", "datahub_assets.service.pages")
"""Every module of these packages with a module-level `router = APIRouter()` is included."""

STATIC = Path(__file__).resolve().parent / "pages" / "static"

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; frame-ancestors 'none'; "
    "object-src 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env()
    app = FastAPI(
        title="Data Hub",
        summary="The front door: pipelines, changes and approvals, per-app permissions, audit",
        version="1",
        dependencies=[Depends(authorize)],
    )
    app.state.settings = settings
    app.state.state = State(settings.state_uri)
    app.state.registry = _registry(settings)
    # bearer tokens checked in the last seconds (auth/tokens.py says for how long)
    app.state.auth_cache = AuthCache(signal=signal_path(app.state.state.engine.url))
    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: the 413 gets the headers too
    return app


def _registry(settings: ServiceSettings) -> Any:
    """Helper B's Registry (makes DATAHUB_PIPELINES_DIR a git work tree), or None while
    registry/changes.py does not exist."""
    try:
        module = importlib.import_module("datahub_assets.service.registry.changes")
    except ModuleNotFoundError as exc:
        if exc.name != "datahub_assets.service.registry.changes":
            raise
        log.warning("the registry (registry/changes.py) is missing: /api/v1/apps answers 501")
        return None
    return module.Registry(settings)


def routers() -> list[APIRouter]:
    """The `router` of every module of ROUTER_PACKAGES, in module name order."""
    found = []
    for package_name in ROUTER_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.ispkg:
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            router = getattr(module, "router", None)
            if isinstance(router, APIRouter):
                found.append(router)
    return found


def iter_routes(routes: list[BaseRoute] | None = None, app: FastAPI | None = None) -> Iterator[Any]:
    """Every route of `app`, included routers flattened (FastAPI keeps them nested)."""
    for route in routes if routes is not None else (app.routes if app else []):
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from iter_routes(list(inner.routes))
        else:
            yield route


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a body or query that does not match the route's schema (raised
    after `authorize` let the call through); a refused state-changing call is audited too
    (action "access", outcome "invalid"; the values sent are not copied into the log)."""
    assert isinstance(exc, RequestValidationError)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            with request.app.state.state.session() as db:
                audit.record_request(
                    request,
                    db,
                    "access",
                    f"{request.method} {request.url.path}",
                    "invalid",
                    detail={"status": 422, "reason": "the request does not match the schema"},
                )
        except Exception:  # noqa: BLE001 - the answer stays a 422 even if the log cannot be written
            log.exception("could not audit a refused request")
    return await request_validation_exception_handler(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """JSON `{"detail"}` (FastAPI's answer), except a browser's page request, which gets a
    small HTML page with the same status, detail and headers."""
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    browser = "text/html" in request.headers.get("accept", "")
    is_page = not path.startswith(("/api/", "/auth/", "/static/")) and path not in DOCS_PATHS
    if not (browser and is_page) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    title = HTTPStatus(exc.status_code).phrase if exc.status_code in _STATUSES else "Error"
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{exc.status_code} {html.escape(title)} · Data Hub</title></head>"
        f"<body><h1>{exc.status_code} {html.escape(title)}</h1>"
        f'<p>{html.escape(str(exc.detail))}</p><p><a href="/apps">Your apps</a></p>'
        "</body></html>"
    )
    return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)


_STATUSES = {s.value for s in HTTPStatus}


async def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "internal error (see the service log)"}, status_code=500)


class SecurityHeaders:
    """Headers on every answer: no sniffing, no framing, no referrer across sites, a CSP
    allowing only the service itself (the OpenAPI pages also load Swagger's assets)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path in DOCS_PATHS else PAGE_CSP

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in _SECURITY_NAMES
                ]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", csp.encode()),
                ]
                if not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:  # the 500 gets the headers too; the error is still raised (logged)
                answer = JSONResponse({"detail": "internal error (see the service log)"}, 500)
                await answer(scope, _no_receive, send_with_headers)
            raise


_SECURITY_NAMES = {
    b"x-content-type-options",
    b"x-frame-options",
    b"referrer-policy",
    b"content-security-policy",
    b"cache-control",
}


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Bodies over `max_bytes` answer 413: at once when Content-Length says so, else as soon
    as the streamed body passes the limit (the handler fails before it writes anything)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers after the overflow, the answer is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:  # _TooLarge, or what a parser made of it
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)
        elif exceeded:
            log.warning("a body over %d bytes after the answer had started", self.max_bytes)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"the request body is larger than {self.max_bytes} bytes"},
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
