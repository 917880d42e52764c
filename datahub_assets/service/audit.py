"""The audit log (contract section 2): every state change, every refusal and every sign-in,
append-only in `audit_events` (state/db.py and the migration's triggers refuse changes).

`record` adds a row to the caller's session: it commits with the change it describes (or,
for a refusal, with the request's session, which `get_db` commits on an HTTP error).
Outcomes: ok | denied | invalid | error. Never pass a secret (passwords, tokens) in any
field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request

from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import AuditEvent

OUTCOMES = ("ok", "denied", "invalid", "error")
_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def record(
    db: Session,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    client: str = "",
    app: str | None = None,
    detail: Any = None,
) -> AuditEvent:
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if detail is not None and not isinstance(detail, str):
        detail = json.dumps(detail, default=str, sort_keys=True)
    event = AuditEvent(
        time=utcnow(),
        actor=(actor or "anonymous")[:255],
        action=action[:64],
        target=(target or "")[:512],
        app=app[:64] if app else None,
        outcome=outcome,
        client=(client or "")[:64],
        detail=detail[:4000] if detail else None,
    )
    db.add(event)
    return event


def client_of(request: Request) -> str:
    """The caller's address (uvicorn sets it from X-Forwarded-For of a trusted proxy)."""
    return request.client.host if request.client else ""


def actor_of(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return principal.username if principal is not None else "anonymous"


def record_request(
    request: Request,
    db: Session,
    action: str,
    target: str,
    outcome: str,
    app: str | None = None,
    detail: Any = None,
) -> AuditEvent:
    """`record` with the actor and client of `request`."""
    return record(
        db,
        actor=actor_of(request),
        action=action,
        target=target,
        outcome=outcome,
        client=client_of(request),
        app=app if app is not None else getattr(request.state, "app", None),
        detail=detail,
    )


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`7d`, `24h`, `30m`, `2w`, `90s` before now, or an ISO date/time (UTC when naive)."""
    text = value.strip()
    m = _SINCE.match(text)
    if m:
        return (now or utcnow()) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"since={value!r}: write a duration such as 7d, 24h, 30m or an ISO time "
            "such as 2026-01-31T12:00"
        ) from None


def events(
    db: Session,
    since: datetime | None = None,
    app: str | None = None,
    apps: Iterable[str] | None = None,
    limit: int = 10_000,
) -> list[AuditEvent]:
    """The newest `limit` events, oldest first; `apps` (when given) keeps events of those
    apps only."""
    query = select(AuditEvent).order_by(AuditEvent.time.desc(), AuditEvent.id.desc())
    if since is not None:
        query = query.where(AuditEvent.time >= since)
    if app is not None:
        query = query.where(AuditEvent.app == app)
    if apps is not None:
        query = query.where(AuditEvent.app.in_(list(apps)))
    return list(reversed(db.scalars(query.limit(limit)).all()))


def as_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "time": as_utc(event.time).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "client": event.client,
        "app": event.app,
        "detail": event.detail,
    }
