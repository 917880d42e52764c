"""The pipelines of each app as the contract lists them, read from git at HEAD and cached by
HEAD commit: a request costs one look at HEAD and a dictionary lookup (no load, no git log).

A row: {"id", "layer", "path" (app-relative), "version", "assets": [[app, layer, table]]}.
Each file is read alone (the service's parse cache and the targets it resolves), so one
broken file elsewhere in the project hides nothing: a file that cannot be read is listed
with its file name as id, no assets and "error".
"""

from __future__ import annotations

import json
import threading
from pathlib import PurePosixPath

from datahub_assets.service.registry.parsing import PARSE_CACHE
from datahub_assets.service.registry.paths import APP
from datahub_assets.service.registry.plan import PIPELINE_FOLDERS, is_pipeline_path
from datahub_assets.service.registry.repo import PipelinesRepo
from datahub_assets.spec.validate import PipelineCheck, canonical_layer


def pipeline_row(app: str, path: str, data: bytes) -> dict:
    """The contract row of one app-relative pipeline file."""
    file = f"{app}/{path}"
    folder = PurePosixPath(path).parts[0]
    try:
        pipeline = PARSE_CACHE(data.decode("utf-8"), file)
        targets = PipelineCheck(pipeline, file).resolve_targets(app)
    except Exception as exc:  # noqa: BLE001 - one unreadable file is its row's "error"
        first = str(exc).splitlines()[-1].strip() if str(exc) else type(exc).__name__
        return {
            "id": PurePosixPath(path).stem,
            "layer": canonical_layer(folder),
            "path": path,
            "version": None,
            "assets": [],
            "error": first[:300],
        }
    return {
        "id": pipeline.id,
        "layer": pipeline.layer,
        "path": path,
        "version": pipeline.version,
        "assets": [[t.ref.app, t.ref.layer, t.ref.table] for t in targets],
    }


class _AppIndex:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.by_id = {row["id"]: row for row in rows}
        self.json = json.dumps(rows, separators=(",", ":")).encode()


class PipelineIndex:
    """Rows per app and pipeline counts per app, cached for the current HEAD only."""

    def __init__(self, repo: PipelinesRepo) -> None:
        self.repo = repo
        self._lock = threading.Lock()
        self._head: str | None = None
        self._apps: dict[str, _AppIndex] = {}
        self._counts: dict[str, int] | None = None
        self._building: dict[str, threading.Lock] = {}

    def _current(self) -> str:
        head = self.repo.head_fast()
        with self._lock:
            if head != self._head:
                self._head, self._apps, self._counts, self._building = head, {}, None, {}
        return head

    def _app(self, app: str) -> _AppIndex:
        head = self._current()
        with self._lock:
            hit = self._apps.get(app)
            if hit is not None:
                return hit
            build_lock = self._building.setdefault(app, threading.Lock())
        with build_lock:  # concurrent misses build once
            with self._lock:
                hit = self._apps.get(app)
            if hit is not None:
                return hit
            built = _AppIndex(self._build(app, head))
            with self._lock:
                if self._head == head:
                    self._apps[app] = built
            return built

    def _build(self, app: str, head: str) -> list[dict]:
        files = self.repo.files_under(app, head)
        rows = []
        for full, data in sorted(files.items()):
            path = full.removeprefix(f"{app}/")
            if is_pipeline_path(path):
                rows.append(pipeline_row(app, path, data))
        return rows

    def cached_json(self, app: str) -> bytes | None:
        """The answer of `rows_json(app)` when it is built for the current HEAD, else None:
        never waits for git or a build (for the event loop)."""
        self._current()
        with self._lock:
            hit = self._apps.get(app)
        return hit.json if hit is not None else None

    def rows(self, app: str) -> list[dict]:
        return self._app(app).rows

    def rows_json(self, app: str) -> bytes:
        """The rows as the JSON answer (encoded once per HEAD)."""
        return self._app(app).json

    def row(self, app: str, pipeline_id: str) -> dict | None:
        return self._app(app).by_id.get(pipeline_id)

    def apps(self) -> dict[str, int]:
        """app -> number of pipeline files, for every app folder at HEAD."""
        head = self._current()
        with self._lock:
            if self._counts is not None:
                return dict(self._counts)
        counts: dict[str, int] = {}
        for app in self.repo.top_folders(head):
            if not APP.match(app):
                continue
            counts[app] = sum(
                1
                for folder in PIPELINE_FOLDERS
                for path in self.repo.paths_under(f"{app}/{folder}", head)
                if is_pipeline_path(path.removeprefix(f"{app}/"))
            )
        with self._lock:
            if self._head == head:
                self._counts = counts
        return dict(counts)
