"""Preview routes (contract section 3): a draft's or a change's pipelines run on a sample.

    POST /api/v1/apps/{app}/preview              body {"files": [{"path", "content"}],
                                                 "sample_rows"?}: the wizard's draft
    POST /api/v1/changes/{change_id}/preview     the change's files

Both: editor (decided by `authorize`, installed app-wide). The files are applied to a
temporary copy of the project (`Registry.overlay`), whose pipelines run on DuckDB
(`registry.preview`); nothing is written where the platform reads. Audited as
"change.preview" (it runs code). Columns marked pii come back null unless the caller has
the pii grant on the app.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datahub_assets.service.audit import record_request
from datahub_assets.service.authz.decide import principal
from datahub_assets.service.registry.errors import RegistryError
from datahub_assets.service.registry.preview import SAMPLE_ROWS_MAX, preview
from datahub_assets.service.state.db import get_db
from datahub_assets.service.state.models import Change

router = APIRouter(tags=["registry"])


class DraftFile(BaseModel):
    path: str = Field(max_length=300)
    content: str | None = None


class PreviewBody(BaseModel):
    files: list[DraftFile] = Field(min_length=1, max_length=50)
    sample_rows: int = Field(default=200, ge=1, le=SAMPLE_ROWS_MAX)


class ChangePreviewBody(BaseModel):
    sample_rows: int = Field(default=200, ge=1, le=SAMPLE_ROWS_MAX)


def run_preview(
    request: Request, db: Session, app: str, files: list[dict], target: str, sample_rows: int
) -> dict[str, Any]:
    """Apply `files` in an overlay of the project, preview it, audit the call."""
    caller = principal(request)
    registry = request.app.state.registry
    settings = request.app.state.settings
    try:
        with registry.overlay(app, files) as tree:
            result = preview(tree, app, files, settings, sample_rows, pii=caller.pii_on(app))
    except RegistryError as exc:
        record_request(request, db, "change.preview", target, "invalid", app=app)
        raise HTTPException(exc.status, detail=exc.detail) from None
    except Exception:
        record_request(request, db, "change.preview", target, "error", app=app)
        raise
    detail = (
        f"tables={len(result['tables'])} checks={len(result['checks'])} "
        f"errors={len(result['errors'])}"
    )
    outcome = "invalid" if result["errors"] else "ok"
    record_request(request, db, "change.preview", target, outcome, app=app, detail=detail)
    return result


@router.post("/api/v1/apps/{app}/preview")
def preview_draft(
    app: str, body: PreviewBody, request: Request, db: Session = Depends(get_db, scope="function")
) -> dict[str, Any]:
    """Run the draft's pipelines on a sample of their sources; writes nothing."""
    files = [{"path": f.path, "content": f.content} for f in body.files]
    return run_preview(request, db, app, files, f"app:{app}", body.sample_rows)


@router.post("/api/v1/changes/{change_id}/preview")
def preview_change(
    change_id: str,
    request: Request,
    body: ChangePreviewBody | None = None,
    db: Session = Depends(get_db, scope="function"),
) -> dict[str, Any]:
    """Run the change's pipelines on a sample of their sources; writes nothing."""
    change = db.get(Change, change_id)
    if change is None:
        raise HTTPException(404, detail=f"no change {change_id!r}")
    files = [{"path": f["path"], "content": f.get("content")} for f in change.files]
    rows = body.sample_rows if body else 200
    return run_preview(request, db, change.app, files, f"change:{change_id}", rows)
