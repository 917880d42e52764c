"""Named parameters (`:name`) in a database source's `<sql>`.

A scanner, not a parser: it walks the statement once and reports each `:name` that stands
outside string literals ('...', E'...', $tag$...$tag$), quoted identifiers ("..." and
`...`), comments (-- and /* */) and PostgreSQL casts (`::type`). The loader uses it to refuse
unknown names with file:line; the database reader uses it to put a typed, escaped literal in
place of each parameter (execute/readers/database.py). Imports neither dagster nor pyspark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
BUILT_IN = ("runDate", "watermark")


@dataclass(frozen=True)
class Param:
    name: str
    start: int
    """Offset of the colon."""
    end: int
    """Offset just past the name."""


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Offset past the literal/identifier opened by `quote` at `i`."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:  # doubled quote
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def find_params(sql: str) -> list[Param]:
    """Every `:name` parameter of `sql`, in order of appearance."""
    found: list[Param] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "'":
            # E'...' (PostgreSQL) and MariaDB strings treat backslash as an escape: skipping
            # \' as escaped is right for both, and harmless for standard strings
            i = _skip_quoted(sql, i, "'", backslash=True)
        elif c in '"`':
            i = _skip_quoted(sql, i, c, backslash=False)
        elif c == "$" and (m := DOLLAR_TAG.match(sql, i)):
            end = sql.find(m.group(0), m.end())
            i = n if end < 0 else end + len(m.group(0))
        elif c == ":":
            if sql.startswith("::", i):  # PostgreSQL cast, or `:` of `::` never a parameter
                i += 2
                continue
            m = NAME.match(sql, i + 1)
            prev = sql[i - 1] if i else " "
            if m and not (prev.isalnum() or prev == "_"):
                found.append(Param(m.group(0), i, m.end()))
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return found


def render(sql: str, literal_of) -> str:
    """`sql` with every parameter replaced by `literal_of(name)` (a SQL literal)."""
    out, last = [], 0
    for p in find_params(sql):
        out.append(sql[last : p.start])
        out.append(literal_of(p.name))
        last = p.end
    out.append(sql[last:])
    return "".join(out)
