"""The registry (contract section 3): pipelines of each app, changes and their approval.

A change is validated when it is opened (status `open` or `invalid`) against the branch's
HEAD; approving it (an approver who is not its author) claims it with one conditional
UPDATE (open -> merging: of two racing approvals exactly one wins), then, under the repo's
merge lock, refuses with 409 when any of its files differs at HEAD from the version it was
opened against, validates it again at HEAD, and commits it as one commit. The Dagster code
location is reloaded after the merge; a failed reload is reported and audited, never undone.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datahub_assets.service.audit import record
from datahub_assets.service.registry import validate as validation
from datahub_assets.service.registry.diff import change_diff
from datahub_assets.service.registry.errors import Conflict, Invalid, NotAllowed, NotFound
from datahub_assets.service.registry.index import PipelineIndex
from datahub_assets.service.registry.paths import (
    FileChange,
    check_app,
    check_files,
    target_in_tree,
)
from datahub_assets.service.registry.plan import plan
from datahub_assets.service.registry.reload import reload_location
from datahub_assets.service.registry.repo import PipelinesRepo, commit_message
from datahub_assets.service.state.db import as_utc, utcnow
from datahub_assets.service.state.models import Change

if TYPE_CHECKING:
    from datahub_assets.service.settings import ServiceSettings

MAX_TITLE = 200
MAX_REASON = 2000
STALE_MERGE = timedelta(minutes=10)
"""A claim (status merging) older than this was left by a process that died mid-merge."""
STATUSES = ("open", "invalid", "merging", "merged", "rejected")


def check_title(title: object) -> str:
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
        raise Invalid(f"title: give 1 to {MAX_TITLE} characters")
    return title.strip()


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


class Registry:
    """One per service process (app.state.registry); thread-safe."""

    def __init__(self, settings: ServiceSettings, *, warm: bool = True) -> None:
        """`warm`: load the project once in the background (fills the parse cache and the
        base's errors, so the first validation is as quick as the next ones)."""
        self.settings = settings
        self.root = Path(settings.pipelines_dir).absolute()
        self.repo = PipelinesRepo(self.root)
        self.index = PipelineIndex(self.repo)
        self._base: tuple[str, set] | None = None
        self._base_lock = threading.Lock()
        if warm:
            threading.Thread(target=self._base_errors, name="registry-warm", daemon=True).start()

    # ------------------------------------------------------------------ pipelines
    def apps(self) -> dict[str, int]:
        return self.index.apps()

    def pipelines(self, app: str) -> list[dict]:
        return self.index.rows(check_app(app))

    def pipelines_json(self, app: str) -> bytes:
        """`pipelines(app)` as the encoded JSON answer (cached by HEAD)."""
        return self.index.rows_json(check_app(app))

    def cached_pipelines_json(self, app: str) -> bytes | None:
        """`pipelines_json(app)` if already built for HEAD, else None (never blocks)."""
        return self.index.cached_json(check_app(app))

    def pipeline(self, app: str, pipeline_id: str) -> dict | None:
        """The pipeline with its file's text at HEAD (secrets appear there only as
        *SecretRef names: definitions never hold values) and the commits that changed it."""
        row = self.index.row(check_app(app), pipeline_id)
        if row is None:
            return None
        path = f"{app}/{row['path']}"
        return {
            **row,
            "content": _text(self.repo.blob(path)) or "",
            "history": [h.as_dict() for h in self.repo.history(path)],
        }

    def history(self, app: str, max_count: int = 100) -> list[dict]:
        """The commits that changed anything of `app`, newest first."""
        return [h.as_dict() for h in self.repo.history(check_app(app), max_count)]

    # ------------------------------------------------------------------ validation
    def _base_errors(self) -> set:
        """Errors of the work tree as it stands (computed once per HEAD and state of the
        tree's files, only when needed: an uncommitted edit in a checkout counts too)."""
        with self._base_lock:
            key = f"{self.repo.head()}:{validation.tree_signature(self.root)}"
            cached = self._base
            if cached is not None and cached[0] == key:
                return cached[1]
            keys = validation.base_error_keys(self.root)
            self._base = (key, keys)
            return keys

    def _validate(self, app: str, files: list[FileChange]) -> dict:
        result, _ = validation.validate_change(self.root, app, files, self._base_errors)
        return result

    def validate(self, app: str, files: Any) -> dict:
        """{"ok", "errors"} of draft files of `app`; writes nothing."""
        app = check_app(app)
        checked = check_files(files)
        for change in checked:
            target_in_tree(self.root, app, change.path)
        return self._validate(app, checked)

    @contextlib.contextmanager
    def overlay(self, app: str, files: Any) -> Iterator[Path]:
        """A scratch pipelines tree with the files applied (removed afterwards)."""
        app = check_app(app)
        checked = check_files(files)
        for change in checked:
            target_in_tree(self.root, app, change.path)
        with validation.overlay(self.root, app, checked) as tree:
            yield tree

    # ------------------------------------------------------------------ changes
    def create_change(
        self,
        db: Session,
        app: str,
        title: str,
        files: Any,
        author: str,
        *,
        allow_python: bool = True,
        client: str = "",
        reverts: str | None = None,
    ) -> Change:
        """Open a change (status open or invalid) against HEAD. Raises PathRefused (422) for
        a path or content it may not write, NotAllowed (403) for python/ files without
        `allow_python`; nothing is written then."""
        app = check_app(app)
        title = check_title(title)
        checked = check_files(files)
        if not allow_python and any(f.path.startswith("python/") for f in checked):
            raise NotAllowed("changes to python/ files (code that runs at load) need admin")
        for change in checked:
            target_in_tree(self.root, app, change.path)
        head = self.repo.head()
        before = {f.path: _text(self.repo.blob(f"{app}/{f.path}", head)) for f in checked}
        after = {f.path: f.content for f in checked}
        result = self._validate(app, checked)
        row = Change(
            id=uuid.uuid4().hex,
            app=app,
            title=title,
            author=author,
            status="open" if result["ok"] else "invalid",
            created_at=utcnow(),
            base_commit=head,
            files=[
                {
                    "path": f.path,
                    "content": f.content,
                    "base": self.repo.blob_id(f"{app}/{f.path}", head),
                }
                for f in checked
            ],
            validation=result,
            plan=plan(app, before, after),
            diff=change_diff(before, after),
            reverts=reverts,
        )
        db.add(row)
        record(
            db,
            actor=author,
            action="change.create",
            target=row.id,
            outcome="ok" if result["ok"] else "invalid",
            client=client,
            app=app,
            detail={"files": [f.path for f in checked], "errors": len(result["errors"])},
        )
        db.flush()
        return row

    def get(self, db: Session, change_id: str) -> Change:
        row = db.get(Change, change_id) if isinstance(change_id, str) else None
        if row is None:
            raise NotFound(f"change {str(change_id)[:64]} not found")
        return row

    def list_changes(
        self,
        db: Session,
        *,
        app: str | None = None,
        status: str | None = None,
        visible: Callable[[str], bool] | None = None,
        limit: int = 500,
    ) -> list[dict]:
        """Changes, newest first, as summaries (no files, diff or plan)."""
        query = select(Change).order_by(Change.created_at.desc())
        if app is not None:
            query = query.where(Change.app == check_app(app))
        if status is not None:
            if status not in STATUSES:
                raise Invalid(f'status "{status[:40]}" is not one of {", ".join(STATUSES)}')
            query = query.where(Change.status == status)
        out = []
        for row in db.scalars(query.limit(limit * 4 if visible else limit)):
            if visible is None or visible(row.app):
                out.append(self.summary(row))
            if len(out) >= limit:
                break
        return out

    def summary(self, change: Change) -> dict:
        return {
            "id": change.id,
            "app": change.app,
            "title": change.title,
            "author": change.author,
            "status": change.status,
            "created_at": as_utc(change.created_at).isoformat(),
            "base_commit": change.base_commit,
            "paths": [f["path"] for f in change.files],
            "valid": bool(change.validation.get("ok")),
            "decided_by": change.decided_by,
            "decided_at": as_utc(change.decided_at).isoformat() if change.decided_at else None,
            "reason": change.reason,
            "commit": change.commit,
            "reverts": change.reverts,
        }

    def view(self, change: Change) -> dict:
        """The change as the contract shows it: with its files, diff, validation and plan."""
        return {
            **self.summary(change),
            "files": [{"path": f["path"], "content": f["content"]} for f in change.files],
            "diff": change.diff,
            "validation": change.validation,
            "plan": change.plan,
        }

    # ------------------------------------------------------------------ decisions
    def approve(self, db: Session, change_id: str, approver: str, *, client: str = "") -> dict:
        """Merge the change: {"status": "merged", "commit", "reload"}. NotAllowed (403) for
        its author; Conflict (409) when it is not open, invalid at HEAD, or its files
        changed on the branch since it was opened."""
        change = self.get(db, change_id)
        app = change.app

        def audit(outcome: str, detail: Any) -> None:
            record(
                db,
                actor=approver,
                action="change.approve",
                target=change.id,
                outcome=outcome,
                client=client,
                app=app,
                detail=detail,
            )

        if change.author == approver:
            audit("denied", "the author of a change cannot approve it")
            raise NotAllowed("the author of a change cannot approve it; ask another approver")
        if change.status == "merging":
            self._recover_stale(db, change)
        if change.status != "open":
            audit("invalid", f"change is {change.status}")
            raise Conflict(f"change {change.id} is {change.status}; only an open change merges")
        claimed = db.execute(
            update(Change)
            .where(Change.id == change.id, Change.status == "open")
            .values(status="merging", decided_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            audit("invalid", "already being merged or decided")
            raise Conflict(f"change {change.id} is already being merged or was decided")
        db.commit()  # the claim is visible to every other session from here on
        try:
            sha = self._merge(change, approver)
        except Conflict as exc:
            self._set(db, change.id, status="open", decided_at=None)
            audit("invalid", exc.detail)
            db.commit()
            raise
        except Exception as exc:
            self._set(db, change.id, status="open", decided_at=None)
            audit("error", f"{type(exc).__name__}: {str(exc)[:300]}")
            db.commit()
            raise
        self._set(
            db, change.id, status="merged", commit=sha, decided_by=approver, decided_at=utcnow()
        )
        audit("ok", {"commit": sha})
        db.commit()
        # the app's listing at the new HEAD, built while Dagster reloads
        threading.Thread(target=self.index.rows, args=(app,), daemon=True).start()
        reloaded = reload_location(self.settings.dagster_url)
        if not reloaded["ok"]:
            record(
                db,
                actor=approver,
                action="change.reload",
                target=change.id,
                outcome="error",
                client=client,
                app=app,
                detail=reloaded["message"],
            )
        db.refresh(change)
        return {"status": "merged", "commit": sha, "reload": reloaded}

    def _recover_stale(self, db: Session, change: Change) -> None:
        """A claim left by a process that died while merging (older than STALE_MERGE): the
        change is merged if the branch has its commit (its Change-Id trailer), else open."""
        claimed = change.decided_at
        if claimed is not None and utcnow() - as_utc(claimed) < STALE_MERGE:
            return
        found = self.repo.change_commit(change.id)
        if found is not None:
            values: dict[str, Any] = {
                "status": "merged",
                "commit": found.commit,
                "decided_by": found.approver,
            }
        else:
            values = {"status": "open", "decided_at": None}
        db.execute(
            update(Change)
            .where(Change.id == change.id, Change.status == "merging")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        db.refresh(change)

    def _set(self, db: Session, change_id: str, **values: Any) -> None:
        db.execute(
            update(Change)
            .where(Change.id == change_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def _merge(self, change: Change, approver: str) -> str:
        app = change.app
        files = [FileChange(f["path"], f["content"]) for f in change.files]
        with self.repo.merge_lock():
            for f in change.files:
                path = f"{app}/{f['path']}"
                now = self.repo.blob_id(path)
                if now != f.get("base"):
                    raise Conflict(
                        f"{f['path']} changed on the branch since the change was opened: "
                        "open a new change against the current version"
                    )
                if self.repo.work_blob_id(path) != now:
                    raise Conflict(
                        f"{f['path']} has edits in the pipelines folder that are not "
                        "committed: commit or discard them first"
                    )
                target_in_tree(self.root, app, f["path"])
            result = self._validate(app, files)
            if not result["ok"]:
                shown = "; ".join(
                    f"{e['file']}:{e['line']}:{e['column']}: {e['message']}"
                    for e in result["errors"][:5]
                )
                raise Conflict(f"the change is not valid at the branch's head: {shown}")
            writes = {f"{app}/{f.path}": f.data for f in files}
            message = commit_message(change.title, change.id, change.author, approver)
            return self.repo.commit_files(writes, message, change.author)

    def reject(
        self, db: Session, change_id: str, approver: str, reason: str, *, client: str = ""
    ) -> dict:
        """Close the change unmerged (status rejected, with the reason)."""
        change = self.get(db, change_id)
        if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= MAX_REASON:
            raise Invalid(f"reason: give 1 to {MAX_REASON} characters")
        done = db.execute(
            update(Change)
            .where(Change.id == change.id, Change.status.in_(("open", "invalid")))
            .values(
                status="rejected", decided_by=approver, decided_at=utcnow(), reason=reason.strip()
            )
            .execution_options(synchronize_session=False)
        )
        outcome = "ok" if getattr(done, "rowcount", 0) == 1 else "invalid"
        record(
            db,
            actor=approver,
            action="change.reject",
            target=change.id,
            outcome=outcome,
            client=client,
            app=change.app,
            detail=reason.strip()[:500],
        )
        if outcome != "ok":
            raise Conflict(f"change {change.id} is {change.status}; only an open change rejects")
        db.flush()
        db.refresh(change)
        return self.view(change)

    def revert(
        self,
        db: Session,
        app: str,
        commit: str,
        author: str,
        title: str | None = None,
        *,
        allow_python: bool = True,
        client: str = "",
    ) -> Change:
        """A new change restoring, for the files of `app` that `commit` changed, their text
        before it (files it added are deleted, files it deleted come back)."""
        app = check_app(app)
        found = self.repo.resolve_commit(commit)
        prefix = f"{app}/"
        paths = [p for p in self.repo.changed_paths(found) if p.startswith(prefix)]
        if not paths:
            raise NotFound(f"commit {found.hexsha[:12]} changes no file of app {app}")
        parent = found.parents[0].hexsha if found.parents else None
        files = [
            {
                "path": p.removeprefix(prefix),
                "content": _text(self.repo.blob(p, parent)) if parent else None,
            }
            for p in paths
        ]
        summary = str(found.summary)
        return self.create_change(
            db,
            app,
            title or f'Revert "{summary}"'[:MAX_TITLE],
            files,
            author,
            allow_python=allow_python,
            client=client,
            reverts=found.hexsha,
        )
