"""`GET /auth/verify`: nginx `auth_request` in front of the Dagster UI (contract section 6).
204 for an operator's (or admin's) session, 401 without a session, 403 otherwise; the
decision is `authorize`'s (rule: operator)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from datahub_assets.service.authz.decide import principal
from datahub_assets.service.authz.roles import Principal

router = APIRouter(tags=["verify"])


@router.get("/auth/verify", status_code=204)
def verify(who: Principal = Depends(principal)) -> Response:
    return Response(status_code=204, headers={"X-Datahub-User": who.username})
