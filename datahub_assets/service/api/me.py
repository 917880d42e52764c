"""`GET /api/v1/health`, `GET /api/v1/me`, `GET /api/v1/apps` (contract section 3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal

router = APIRouter(tags=["me"])


@router.get("/api/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/v1/me")
def me(who: Principal = Depends(principal)) -> dict[str, Any]:
    return {
        "username": who.username,
        "admin": who.admin,
        "operator": who.operator,
        "grants": [
            {"app": app, "role": grant.role.name, "pii": grant.pii}
            for app, grant in sorted(who.grants.items())
        ],
    }


@router.get("/api/v1/apps")
def apps(request: Request, who: Principal = Depends(principal)) -> list[dict[str, Any]]:
    """The apps the caller can see, with their role and number of pipelines."""
    registry = request.app.state.registry
    if registry is None:
        raise HTTPException(501, "the pipelines registry is not available in this build")
    counts: dict[str, int] = registry.apps()
    return [
        {"app": app, "role": role.name, "pipelines": counts[app]}
        for app in sorted(counts)
        if (role := who.role_on(app)) is not None
    ]
