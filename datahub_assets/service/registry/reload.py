"""Reload the Dagster code location after a merge (Dagster's GraphQL client against
DATAHUB_DAGSTER_URL), so the new assets appear. A failure never undoes the merge: it is
returned (and the caller audits it)."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

LOCATION = "datahub"
_log = logging.getLogger(__name__)


def reload_location(dagster_url: str | None, location: str = LOCATION, timeout: int = 300) -> dict:
    """{"ok": bool, "message": str, "seconds": float}; ok without a call when no URL is set."""
    if not dagster_url:
        return {
            "ok": True,
            "message": "no Dagster URL configured (DATAHUB_DAGSTER_URL)",
            "seconds": 0.0,
        }
    started = time.monotonic()
    try:
        from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

        parts = urlsplit(dagster_url)
        client = DagsterGraphQLClient(
            parts.hostname or "127.0.0.1",
            port_number=parts.port,
            use_https=parts.scheme == "https",
            timeout=timeout,
            path_prefix=parts.path.rstrip("/"),
        )
        info = client.reload_repository_location(location)
    except Exception as exc:  # noqa: BLE001 - any failure to reach Dagster is reported, not raised
        _log.warning("reloading code location %s failed: %s", location, exc)
        return {
            "ok": False,
            "message": f"reload of code location {location} failed: {type(exc).__name__}: "
            f"{str(exc)[:300]}",
            "seconds": round(time.monotonic() - started, 3),
        }
    seconds = round(time.monotonic() - started, 3)
    if info.status == ReloadRepositoryLocationStatus.SUCCESS:
        return {"ok": True, "message": f"code location {location} reloaded", "seconds": seconds}
    return {
        "ok": False,
        "message": f"reload of code location {location} failed: {info.failure_type}: "
        f"{(info.message or '')[:300]}",
        "seconds": seconds,
    }
