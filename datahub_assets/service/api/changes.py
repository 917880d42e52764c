"""Change requests (contract section 3).

    POST /api/v1/changes                        editor (python/ files: admin): open a change
                                                {"app", "title", "files"} -> 201
    GET  /api/v1/changes?app=&status=           the caller's visible changes, newest first
    GET  /api/v1/changes/{change_id}            viewer: with diff, validation and plan
    POST /api/v1/changes/{change_id}/approve    approver, not the author: merge (one commit),
                                                reload the Dagster code location
    POST /api/v1/changes/{change_id}/reject     approver: {"reason"}

(The preview routes are api/preview.py.) Every state change and refusal is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datahub_assets.service.api.pipelines import (
    FileIn,
    ValidationOut,
    refused,
    registry_of,
)
from datahub_assets.service.audit import client_of, record_request
from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal
from datahub_assets.service.registry.changes import MAX_REASON, MAX_TITLE, STATUSES
from datahub_assets.service.registry.errors import RegistryError
from datahub_assets.service.registry.paths import MAX_FILES
from datahub_assets.service.state.db import get_db

router = APIRouter(tags=["changes"])


class ChangeIn(BaseModel):
    app: str = Field(max_length=64)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    files: list[FileIn] = Field(min_length=1, max_length=MAX_FILES)


class PlanOut(BaseModel):
    added: list[list[str]]
    removed: list[list[str]]
    changed: list[list[str]]


class ChangeSummary(BaseModel):
    id: str
    app: str
    title: str
    author: str
    status: str = Field(description="open | invalid | merging | merged | rejected")
    created_at: str
    base_commit: str
    paths: list[str]
    valid: bool
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    commit: str | None
    reverts: str | None


class ChangeOut(ChangeSummary):
    files: list[FileIn]
    diff: str = Field(description="Unified diff of every file against the change's base.")
    validation: ValidationOut
    plan: PlanOut


class ReloadOut(BaseModel):
    ok: bool
    message: str
    seconds: float


class ApproveOut(BaseModel):
    status: str
    commit: str
    reload: ReloadOut


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON)


def _audit_refusal(
    request: Request, db: Session, action: str, target: str, exc: RegistryError, app: Any
) -> None:
    outcome = "denied" if exc.status_code in (403, 404) else "invalid"
    record_request(
        request,
        db,
        action,
        target,
        outcome,
        app=app if isinstance(app, str) else None,
        detail=str(exc.detail)[:500],
    )


@router.post("/api/v1/changes", status_code=201, response_model=ChangeOut)
def create_change(
    body: ChangeIn,
    request: Request,
    db: Session = Depends(get_db, scope="function"),
    who: Principal = Depends(principal),
) -> dict:
    registry = registry_of(request)
    try:
        change = registry.create_change(
            db,
            body.app,
            body.title,
            [f.model_dump() for f in body.files],
            who.username,
            allow_python=who.admin,
            client=client_of(request),
        )
    except RegistryError as exc:
        _audit_refusal(request, db, "change.create", body.app[:64], exc, body.app)
        raise refused(exc) from None
    return registry.view(change)


@router.get("/api/v1/changes", response_model=list[ChangeSummary])
def list_changes(
    request: Request,
    app: str | None = Query(default=None, max_length=64),
    status: str | None = Query(default=None, description=" | ".join(STATUSES)),
    db: Session = Depends(get_db, scope="function"),
    who: Principal = Depends(principal),
) -> list[dict]:
    if app is not None and not who.can_see(app):
        raise HTTPException(404, detail=f"app {app!r} not found")
    try:
        return registry_of(request).list_changes(db, app=app, status=status, visible=who.can_see)
    except RegistryError as exc:
        raise refused(exc) from None


@router.get("/api/v1/changes/{change_id}", response_model=ChangeOut)
def get_change(
    change_id: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> dict:
    registry = registry_of(request)
    try:
        return registry.view(registry.get(db, change_id))
    except RegistryError as exc:
        raise refused(exc) from None


@router.post("/api/v1/changes/{change_id}/approve", response_model=ApproveOut)
def approve_change(
    change_id: str,
    request: Request,
    db: Session = Depends(get_db, scope="function"),
    who: Principal = Depends(principal),
) -> dict:
    try:
        return registry_of(request).approve(db, change_id, who.username, client=client_of(request))
    except RegistryError as exc:
        raise refused(exc) from None  # audited by the registry


@router.post("/api/v1/changes/{change_id}/reject", response_model=ChangeOut)
def reject_change(
    change_id: str,
    body: RejectIn,
    request: Request,
    db: Session = Depends(get_db, scope="function"),
    who: Principal = Depends(principal),
) -> dict:
    try:
        return registry_of(request).reject(
            db, change_id, who.username, body.reason, client=client_of(request)
        )
    except RegistryError as exc:
        if exc.status_code == 422:
            _audit_refusal(request, db, "change.reject", change_id[:64], exc, None)
        raise refused(exc) from None
