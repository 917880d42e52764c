"""Pipelines of an app (contract section 3), their validation and reverts.

    GET  /api/v1/apps/{app}/pipelines                 viewer: the app's pipelines (cached by
                                                      the branch's HEAD commit)
    GET  /api/v1/apps/{app}/pipelines/{pipeline_id}   viewer: definition, assets, history
    POST /api/v1/apps/{app}/validate                  editor: draft files -> validation
                                                      (writes nothing)
    POST /api/v1/apps/{app}/revert                    editor: {"commit", "title"?} -> 201 a
                                                      new change undoing that commit's files

Who may call is decided by `authorize` (authz/rules.py); the registry's refusals answer
422 / 409 / 403 / 404 with {"detail": ...}.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datahub_assets.service.audit import client_of, record_request
from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal
from datahub_assets.service.registry.changes import MAX_TITLE, Registry
from datahub_assets.service.registry.errors import RegistryError
from datahub_assets.service.registry.paths import MAX_FILES
from datahub_assets.service.state.db import get_db

router = APIRouter(tags=["pipelines"])


class FileIn(BaseModel):
    path: str = Field(max_length=1000, description="Relative to the app folder.")
    content: str | None = Field(description="The file's new text; null deletes the file.")


class FilesIn(BaseModel):
    files: list[FileIn] = Field(min_length=1, max_length=MAX_FILES)


class ErrorOut(BaseModel):
    file: str = Field(
        description="App-relative for the app's files, else relative to the pipelines folder."
    )
    line: int
    column: int
    message: str


class ValidationOut(BaseModel):
    ok: bool
    errors: list[ErrorOut]


class PipelineRow(BaseModel):
    id: str
    layer: str
    path: str = Field(description="Relative to the app folder.")
    version: str | None
    assets: list[list[str]] = Field(description="Asset keys [app, layer, table].")
    error: str | None = Field(default=None, description="Set when the file cannot be read.")


class HistoryOut(BaseModel):
    commit: str
    author: str
    approver: str | None
    time: str
    message: str


class PipelineOut(PipelineRow):
    content: str = Field(description="The file at HEAD (secrets appear as *SecretRef names).")
    history: list[HistoryOut]


class RevertIn(BaseModel):
    commit: str = Field(max_length=64, description="The commit to undo (hex id).")
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE)


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def refused(exc: RegistryError) -> HTTPException:
    return HTTPException(exc.status_code, detail=exc.detail)


@router.get("/api/v1/apps/{app}/pipelines", response_model=list[PipelineRow])
async def list_pipelines(app: str, request: Request) -> Response:
    """Answered from the registry's cache (by HEAD commit) on the event loop; a miss (the
    first listing of a commit) is built in the thread pool."""
    registry = registry_of(request)
    try:
        body = registry.cached_pipelines_json(app)
        if body is None:
            body = await run_in_threadpool(registry.pipelines_json, app)
    except RegistryError as exc:
        raise refused(exc) from None
    return Response(content=body, media_type="application/json")


@router.get("/api/v1/apps/{app}/pipelines/{pipeline_id}", response_model=PipelineOut)
def get_pipeline(app: str, pipeline_id: str, request: Request) -> dict:
    try:
        found = registry_of(request).pipeline(app, pipeline_id)
    except RegistryError as exc:
        raise refused(exc) from None
    if found is None:
        raise HTTPException(404, detail=f"pipeline {pipeline_id[:100]!r} not found in app {app}")
    return found


@router.post("/api/v1/apps/{app}/validate", response_model=ValidationOut)
def validate_files(app: str, body: FilesIn, request: Request) -> dict:
    try:
        return registry_of(request).validate(app, [f.model_dump() for f in body.files])
    except RegistryError as exc:
        raise refused(exc) from None


@router.post("/api/v1/apps/{app}/revert", status_code=201)
def revert_commit(
    app: str,
    body: RevertIn,
    request: Request,
    db: Session = Depends(get_db, scope="function"),
    who: Principal = Depends(principal),
) -> dict:
    registry = registry_of(request)
    try:
        change = registry.revert(
            db,
            app,
            body.commit,
            who.username,
            body.title,
            allow_python=who.admin,
            client=client_of(request),
        )
    except RegistryError as exc:
        outcome = "denied" if exc.status_code == 403 else "invalid"
        record_request(
            request,
            db,
            "change.create",
            f"revert {body.commit[:64]}",
            outcome,
            app=app,
            detail=str(exc.detail)[:500],
        )
        raise refused(exc) from None
    return registry.view(change)
