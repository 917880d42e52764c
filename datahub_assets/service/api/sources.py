"""Source helpers of the wizard (the Morphix design); editor on the app, read-only.

    GET /api/v1/apps/{app}/connections                     [{"name", "kind"}]
    GET /api/v1/apps/{app}/connections/{name}/tables       tables or collections
    GET /api/v1/apps/{app}/connections/{name}/schema?table=  {"name", "columns": [...]}
    GET /api/v1/apps/{app}/landing                         [{"name", "size", "source", "pipeline"}]
    GET /api/v1/apps/{app}/landing/header?name=            {"name", "kind", "header", "rows"}

Answers never carry a URL or a secret value (`registry.sources`). Errors: 404 unknown
connection, table or file; 422 a table name that is not an identifier; 502 the database
could not be reached (the message free of secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request

from datahub_assets.service.registry import sources
from datahub_assets.service.registry.preview import app_secret_values, scrub

router = APIRouter(tags=["sources"])
_T = TypeVar("_T")


def _answer(app: str, call: Callable[[], _T]) -> _T:
    try:
        return scrub(call(), app_secret_values(app))
    except sources.SourceHelperError as exc:
        raise HTTPException(exc.status, detail=scrub(str(exc), app_secret_values(app))) from None


def _dirs(request: Request):
    settings = request.app.state.settings
    return settings.pipelines_dir, settings.data_dir


@router.get("/api/v1/apps/{app}/connections")
def list_connections(app: str, request: Request) -> list[dict[str, Any]]:
    pipelines_dir, _ = _dirs(request)
    return _answer(app, lambda: sources.connections(pipelines_dir, app))


@router.get("/api/v1/apps/{app}/connections/{name}/tables")
def list_tables(app: str, name: str, request: Request) -> list[dict[str, Any]]:
    pipelines_dir, _ = _dirs(request)
    return _answer(app, lambda: sources.tables(pipelines_dir, app, name))


@router.get("/api/v1/apps/{app}/connections/{name}/schema")
def table_schema(
    app: str, name: str, request: Request, table: str = Query(max_length=200)
) -> dict[str, Any]:
    pipelines_dir, _ = _dirs(request)
    return _answer(app, lambda: sources.table_schema(pipelines_dir, app, name, table))


@router.get("/api/v1/apps/{app}/landing")
def list_landing(app: str, request: Request) -> list[dict[str, Any]]:
    pipelines_dir, data_dir = _dirs(request)
    return _answer(app, lambda: sources.landing_files(pipelines_dir, app, data_dir))


@router.get("/api/v1/apps/{app}/landing/header")
def landing_header(app: str, request: Request, name: str = Query(max_length=500)) -> dict[str, Any]:
    pipelines_dir, data_dir = _dirs(request)
    return _answer(app, lambda: sources.landing_header(pipelines_dir, app, name, data_dir))
