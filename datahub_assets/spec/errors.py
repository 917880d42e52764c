"""Load errors: every problem carries file, line and column; all are reported together.

`LocMap` maps a path in the plain dict tree a reader builds (alias keys, list indexes,
no union tags) to where it was written and, for elements, the element's name. It lets a
pydantic ValidationError point at the offending line with a readable message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

TreePath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class SpecError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SpecErrors(Exception):
    """All problems found in one load, sorted by file and line."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = sorted(set(errors))
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{count} problem{'s' if count != 1 else ''} in pipeline definitions:"
        return "\n".join([head, *(f"  {e}" for e in self.errors)])


@dataclass(frozen=True)
class Where:
    line: int
    column: int
    element: str | None = None  # set for element (mapping) nodes


LocMap = dict[TreePath, Where]


def _normalize(data: Any, loc: tuple[str | int, ...]) -> TreePath:
    """Drop the discriminator tags pydantic inserts after a list index."""
    out: list[str | int] = []
    node = data
    skip_tag = False
    for part in loc:
        if skip_tag and isinstance(node, dict) and part == node.get("kind"):
            skip_tag = False
            continue
        skip_tag = False
        out.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            node = node[part]
            skip_tag = True
        else:
            node = None
    return tuple(out)


def _quoted_list(expected: str) -> str:
    found = re.findall(r"'([^']*)'", expected)
    return ", ".join(found) if found else expected


def _label(element: str | None, style: str) -> str:
    if element is None:
        return "the file"
    return f"<{element}>" if style == "xml" else f"'{element}'"


def locate(locs: LocMap, path: TreePath) -> tuple[Where, str | None]:
    """Closest recorded position for `path`, and the name of the element containing it."""
    where, element = Where(0, 0), None
    for end in range(len(path), -1, -1):
        hit = locs.get(path[:end])
        if hit is None:
            continue
        if where.line == 0:
            where = hit
        if hit.element is not None:
            element = hit.element
            break
    return where, element


def _message(err: Any, field: str | int | None, element: str, allowed: list[str]) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if isinstance(value, str) and len(value) > 200:  # a huge value: its start and its length
        value = f"{value[:200]}... ({len(value):,} characters)"
    if kind == "missing":
        return f'{element} is missing required field "{field}"'
    if kind == "extra_forbidden":
        extra = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f'unknown field "{field}" on {element}{extra}'
    if kind == "literal_error":
        return (
            f'{field}="{value}" is not allowed on {element}; '
            f"allowed: {_quoted_list(ctx.get('expected', ''))}"
        )
    if kind == "union_tag_invalid":
        return (
            f'unknown element "{ctx.get("tag", value)}" in {element}; '
            f"allowed: {_quoted_list(ctx.get('expected_tags', ''))}"
        )
    msg = str(err["msg"]).removeprefix("Value error, ")  # our validators' own text
    if field is None or isinstance(field, int):
        return f"{element}: {msg}"
    shown = value if isinstance(value, str | int | float | bool) else type(value).__name__
    return f'{field}="{shown}" on {element} is not valid: {msg}'


def from_validation_error(
    exc: ValidationError,
    data: Any,
    locs: LocMap,
    file: str,
    style: str,
    allowed_fields: Any = None,
) -> list[SpecError]:
    """Turn pydantic errors into SpecErrors at the offending element's line.

    `allowed_fields(path)` (optional) lists the valid field names at an element path, used
    for unknown-field messages.
    """
    out: list[SpecError] = []
    for err in exc.errors():
        path = _normalize(data, tuple(err["loc"]))
        where, element = locate(locs, path)
        field = path[-1] if path else None
        if err["type"] == "union_tag_invalid":
            field = None
        parent = path[:-1] if err["type"] in ("extra_forbidden", "missing") else path
        allowed = list(allowed_fields(parent)) if allowed_fields else []
        msg = _message(err, field, _label(element, style), allowed)
        out.append(SpecError(file, where.line, where.column, msg))
    return out
