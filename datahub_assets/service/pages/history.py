"""A pipeline's history with the diff of its file in each commit (the registry's git work
tree: the blob at the commit against the blob at its first parent, diffed like a change's
files), and unified diffs as classified lines for the templates. Commit ids come from the
registry's history and the path from its listing: neither is user text."""

from __future__ import annotations

import logging
from typing import Any

from datahub_assets.service.registry.diff import file_diff

MAX_COMMITS = 20
MAX_DIFF_CHARS = 200_000
_log = logging.getLogger("datahub.service.pages")


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def commit_diff(registry: Any, app: str, rel_path: str, commit: str) -> str:
    """The unified diff of the app's file `rel_path` in `commit` ("" when git cannot tell)."""
    path = f"{app}/{rel_path}"
    try:
        found = registry.repo.resolve_commit(commit)
        parent = found.parents[0].hexsha if found.parents else None
        old = _text(registry.repo.blob(path, parent)) if parent else None
        new = _text(registry.repo.blob(path, found.hexsha))
    except Exception as exc:  # noqa: BLE001 - the page shows the history without this diff
        _log.warning("no diff of %s in %s: %s", path, commit, type(exc).__name__)
        return ""
    return file_diff(rel_path, old, new)[:MAX_DIFF_CHARS]


def with_diffs(registry: Any, app: str, pipeline: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's history entries (newest first, at most MAX_COMMITS), each with
    `diff_lines`."""
    rel_path = str(pipeline.get("path") or "")
    out = []
    for entry in list(pipeline.get("history") or [])[:MAX_COMMITS]:
        diff = commit_diff(registry, app, rel_path, str(entry.get("commit") or ""))
        out.append({**entry, "diff_lines": diff_lines(diff)})
    return out


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, line) of each line of a unified diff: add, del, hunk, meta or ctx."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ", "new file", "deleted file")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out
