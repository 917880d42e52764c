"""`GET /api/v1/audit?since=&app=`: the audit log, admins all of it, approvers their apps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal, Role
from datahub_assets.service.state.db import get_db

router = APIRouter(tags=["audit"])


def audited_apps(who: Principal) -> list[str] | None:
    """The apps whose events `who` may read (None: every event, admins)."""
    if who.admin:
        return None
    return sorted(app for app, grant in who.grants.items() if grant.role >= Role.approver)


@router.get("/api/v1/audit")
def read_audit(
    since: str | None = Query(None, description="7d, 24h, 30m or an ISO time (default 7d)"),
    app: str | None = Query(None, description="only this app's events"),
    limit: int = Query(1000, ge=1, le=10_000),
    who: Principal = Depends(principal),
    db: Session = Depends(get_db, scope="function"),
) -> list[dict[str, Any]]:
    try:
        start = audit.parse_since(since or "7d")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    allowed = audited_apps(who)
    if app is not None and allowed is not None and app not in allowed:
        raise HTTPException(404, f"app {app!r} not found")
    rows = audit.events(db, since=start, app=app, apps=allowed, limit=limit)
    return [audit.as_json(row) for row in rows]
