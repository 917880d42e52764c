"""The last run of each pipeline of an app, from the run records (`ops_gold.pipeline_runs`,
datahub_assets/runs/store.py), for the app page. Read at most once per `TTL_S` per process
and only over the last `WINDOW`; when the catalog or the table cannot be read the page shows
no last run (None) instead of failing."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

TTL_S = 30.0
WINDOW = timedelta(days=30)
COLUMNS = ("pipeline", "app", "status", "started_at", "ended_at", "rows_written")
_log = logging.getLogger("datahub.service.pages")
_lock = threading.Lock()
_cache: dict[str, tuple[float, list[dict[str, Any]] | None]] = {}  # catalog → (read at, rows)


def _read(platform: Any) -> list[dict[str, Any]] | None:
    from datahub_assets.runs.store import read_rows
    from datahub_resources.iceberg import load_catalog

    try:
        catalog = load_catalog(platform)
        return read_rows(catalog, since=datetime.now(UTC) - WINDOW, columns=COLUMNS)
    except Exception as exc:  # noqa: BLE001 - the page works without run records
        _log.warning("run records not readable: %s", type(exc).__name__)
        return None


def _rows(settings: Any) -> list[dict[str, Any]] | None:
    platform = getattr(settings, "platform", None)
    key = str(getattr(platform, "catalog_uri", "") or "env")
    with _lock:
        read_at, rows = _cache.get(key, (0.0, None))
        if time.monotonic() - read_at > TTL_S or not read_at:
            rows = _read(platform)
            _cache[key] = (time.monotonic(), rows)
        return rows


def last_runs(settings: Any, app: str) -> dict[str, dict[str, Any]] | None:
    """pipeline id → its newest record ({"status", "started_at", "ended_at", "rows_written"});
    None when the run records could not be read."""
    rows = _rows(settings)
    if rows is None:
        return None
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("app") != app or not row.get("pipeline"):
            continue
        pipeline_id = str(row["pipeline"]).split(".", 1)[-1]
        seen = newest.get(pipeline_id)
        started = row.get("started_at")
        if started is not None and (seen is None or (seen.get("started_at") or started) <= started):
            newest[pipeline_id] = row
    return newest
