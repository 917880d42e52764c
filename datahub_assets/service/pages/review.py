"""What the review page of a change shows, and which decisions it offers the caller: an
approver who is not the author may approve an open change; an approver may reject an open or
invalid one; editors and approvers may preview it (the registry decides again on POST)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from datahub_assets.service.authz.roles import Role
from datahub_assets.service.pages import history
from datahub_assets.service.pages.render import me
from datahub_assets.service.state.models import Change

PLAN_LABELS = ("added", "removed", "changed")


def load_change(db: Session, change_id: str) -> Change:
    change = db.get(Change, change_id)
    if change is None:
        raise HTTPException(status_code=404, detail=f"no change {change_id!r}")
    return change


def change_context(request: Request, change: Change) -> dict[str, Any]:
    principal = me(request)
    view = request.app.state.registry.view(change)
    role = principal.role_on(change.app)
    is_author = principal.username == change.author
    return {
        "change": change,
        "view": view,
        "diff_lines": history.diff_lines(str(view.get("diff") or change.diff or "")),
        "can_preview": role is not None and role >= Role.editor,
        "can_approve": role == Role.approver and not is_author and change.status == "open",
        "can_reject": role == Role.approver and change.status in ("open", "invalid"),
        "is_author": is_author,
        "plan_rows": plan_rows(view.get("plan") or change.plan or {}),
    }


def _label(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        key = item.get("asset_key") or item.get("key") or item.get("asset")
        if key is not None:
            return _label(key)
        return ", ".join(f"{k}: {v}" for k, v in item.items())
    if isinstance(item, list | tuple):
        return "/".join(str(p) for p in item)
    return str(item)


def plan_rows(plan: Any) -> list[tuple[str, list[str]]]:
    """(added|removed|changed, [asset key as a/b/c, ...]) of a change's plan."""
    if not isinstance(plan, dict):
        return []
    return [(label, [_label(i) for i in plan.get(label) or []]) for label in PLAN_LABELS]
