"""The unified diff of a change: per file, base text against the new text (difflib)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

MAX_DIFF_CHARS = 2_000_000


def file_diff(path: str, old: str | None, new: str | None) -> str:
    """`git diff`-style unified diff of one app-relative file (None: absent)."""
    before = (old or "").splitlines(keepends=True)
    after = (new or "").splitlines(keepends=True)
    lines = list(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
        )
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def change_diff(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> str:
    """Every file's diff, in path order (capped at MAX_DIFF_CHARS: a note says so)."""
    text = "".join(file_diff(p, before.get(p), after.get(p)) for p in sorted(after))
    if len(text) > MAX_DIFF_CHARS:
        return text[:MAX_DIFF_CHARS] + "\n... (diff cut at 2,000,000 characters)\n"
    return text
