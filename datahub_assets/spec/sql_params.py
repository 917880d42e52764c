"""Named parameters (`:name`) in a database source's `<sql>`.

A scanner, not a parser: it walks the statement once the way the database's own lexer does
and reports each `:name` that stands outside string literals, quoted identifiers, comments
and PostgreSQL casts (`::type`). The loader uses it to refuse unknown names with file:line;
the database reader uses it to put a typed, escaped literal in place of each parameter
(execute/readers/database.py). Imports neither dagster nor pyspark.

The two dialects lex differently, so the caller names the one of the source's JDBC URL
(`dialect_of_url`):

| | PostgreSQL | MariaDB / MySQL |
|---|---|---|
| `'...'` | backslash is a plain character (standard_conforming_strings on) | backslash escapes |
| `E'...'` | backslash escapes | `E` is an identifier before a string |
| `"..."` | quoted identifier | string, backslash escapes (unless ANSI_QUOTES) |
| `` `...` `` | not a quote (an operator character) | quoted identifier |
| `$tag$...$tag$` | dollar-quoted string (at a token start) | `$` is an identifier character |
| `--` | comment to LF or CR | comment to LF before a space, control char or the end, else 2 minus |
| `#` | an operator | comment to the end of the line |
| `/* */` | nests | does not nest; `/*! ... */` and `/*M! ... */` run their content as SQL |

Some text reads differently under server settings or versions the loader cannot see: a
backslash before a quote in a PostgreSQL `'...'` (standard_conforming_strings off) or in a
MariaDB `'...'` / `"..."` (sql_mode NO_BACKSLASH_ESCAPES, ANSI_QUOTES), and a MariaDB
executable comment (skipped below its version, and by MySQL for `/*M!`). The scanner reads
such text both ways; when the readings differ and a parameter follows, it refuses the
statement (`SqlScanError`) rather than guess where the value would land. Unterminated
strings, quoted identifiers and comments are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

POSTGRESQL, MARIADB = "postgresql", "mariadb"
DIALECT_OF_SCHEME = {"postgresql": POSTGRESQL, "mariadb": MARIADB, "mysql": MARIADB}
BUILT_IN = ("runDate", "watermark")
_SCHEME = re.compile(r"^\s*jdbc:([a-z0-9]+):", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
"""A PostgreSQL dollar-quote delimiter: `$$` or `$tag$` (a tag never starts with a digit;
any non-ASCII character may be part of it)."""
_NO_NESTING, _ANY_NESTING = 0, 1 << 30


class SqlScanError(ValueError):
    """`<sql>` text the scanner cannot read the way the server will."""

    def __init__(self, sql: str, offset: int, what: str, rest: str) -> None:
        self.offset = offset
        self.line = sql.count("\n", 0, offset) + 1
        self.column = offset - sql.rfind("\n", 0, offset)
        super().__init__(
            f"{what} at line {self.line}, column {self.column} of the <sql> "
            f"(`{_excerpt(sql, offset)}`){rest}"
        )


@dataclass(frozen=True)
class Param:
    name: str
    start: int
    """Offset of the colon."""
    end: int
    """Offset just past the name."""


def dialect_of_url(url: str | None) -> str | None:
    """The scanner dialect of a JDBC URL (`postgresql` or `mariadb`; None: not a JDBC URL of
    a supported database, which the loader reports on its own)."""
    m = _SCHEME.match(url or "")
    return DIALECT_OF_SCHEME.get(m.group(1).lower()) if m else None


def find_params(sql: str, dialect: str) -> list[Param]:
    """Every `:name` parameter of `sql` as `dialect`'s server reads it, in order of
    appearance. Raises SqlScanError for unterminated text, and for text that reads
    differently under a server setting or version when a parameter follows it (where its
    value would land then depends on the server)."""
    scan = _Scanner(sql, _known(dialect))
    scan.run(0)
    doubt = scan.doubt
    if doubt is not None and any(p.start > doubt.offset for p in scan.params):
        raise doubt
    return scan.params


def render(sql: str, literal_of: Callable[[str], str], dialect: str) -> str:
    """`sql` with every parameter replaced by `literal_of(name)` (a SQL literal)."""
    out, last = [], 0
    for p in find_params(sql, dialect):
        literal = literal_of(p.name)
        if _known(dialect) == POSTGRESQL and sql[p.start - 1 : p.start] == "-" == literal[:1]:
            literal = " " + literal  # `1-:p` with -5: `1--5` would start a comment
        out += [sql[last : p.start], literal]
        last = p.end
    out.append(sql[last:])
    return "".join(out)


def _known(dialect: str) -> str:
    if dialect not in DIALECT_OF_SCHEME:
        raise ValueError(f"unknown SQL dialect {dialect!r}; allowed: postgresql, mariadb, mysql")
    return DIALECT_OF_SCHEME[dialect]


def _excerpt(sql: str, offset: int) -> str:
    text = sql[offset:].split("\n", 1)[0]
    return text if len(text) <= 30 else text[:30] + "..."


def _is_ident(c: str) -> bool:
    """A character of an unquoted identifier in both dialects (`$` and non-ASCII included)."""
    return not c.isascii() or c.isalnum() or c in "_$"


def _name_start(c: str) -> bool:
    """Whether a parameter name can start with `c` (a letter, `_` or non-ASCII)."""
    return c != "" and _is_ident(c) and c not in "0123456789$"


def _quoted_end(sql: str, quote: int, backslash: bool) -> int | None:
    """Offset past the literal/identifier whose opening quote is at `quote` (None: it is not
    closed). A doubled quote stands for one; with `backslash`, a backslash escapes the next
    character."""
    q, j, n = sql[quote], quote + 1, len(sql)
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c != q:
            j += 1
        elif sql.startswith(q, j + 1):
            j += 2
        else:
            return j + 1
    return None


def _comment_end(sql: str, j: int, nesting: int) -> int | None:
    """Offset past the block comment whose body starts at `j` (None: not closed). `nesting`:
    how many levels of `/*` inside it open inner comments (PostgreSQL: any; MariaDB: none,
    one in an executable comment it skips)."""
    depth, n = 1, len(sql)
    while j < n:
        if depth <= nesting and sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return None


# a quoted token: (name, backslash escapes by default, setting under which they are
# the other way round, or None when no setting changes them)
_PG_STRING = ("string", False, "standard_conforming_strings = off")
_PG_FIXED = {"E": ("string", True, None), "B": ("string", False, None)}
_PG_FIXED |= {"X": _PG_FIXED["B"], "U": _PG_FIXED["B"], '"': ("quoted identifier", False, None)}
_MARIA_QUOTES = {
    "'": ("string", True, "sql_mode NO_BACKSLASH_ESCAPES"),
    '"': ("string", True, "sql_mode NO_BACKSLASH_ESCAPES or ANSI_QUOTES"),
    "`": ("quoted identifier", False, None),
}
_QUOTE_ADVICE = {
    POSTGRESQL: "write a quote inside it as '', or make it an E'' string (which reads the "
    "same under every setting) with each backslash doubled",
    MARIADB: "write a quote inside it as '' (not \\'), and a backslash as \\\\",
}


class _Scanner:
    """One pass over `sql`: `params` found, and the first `doubt` (text another server
    setting or version reads differently; an error only if a parameter follows it)."""

    def __init__(self, sql: str, dialect: str) -> None:
        self.sql, self.n, self.dialect = sql, len(sql), dialect
        self.pg = dialect == POSTGRESQL
        self.quotes = "'\"" if self.pg else "'\"`"
        self.params: list[Param] = []
        self.doubt: SqlScanError | None = None
        self.executable: int | None = None
        """Where the MariaDB executable comment being scanned as SQL starts."""

    def run(self, i: int) -> int:
        """Scan from `i` to the end, or in an executable comment to just past its `*/`; the
        offset reached."""
        while i < self.n:
            if self.executable is not None and self.sql.startswith("*/", i):
                return i + 2
            i = self.step(i)
        if self.executable is not None:
            raise self.error(
                self.executable,
                "unterminated executable comment",
                ": close it with */ outside any string or line comment inside it",
            )
        return i

    def step(self, i: int) -> int:
        """Offset past the token (or character) at `i`."""
        sql, c = self.sql, self.sql[i]
        if c in self.quotes:
            return self.quoted(i, i)
        if c == "-" and self.dash_comment(i):
            return self.line_end(i)
        if c == "#" and not self.pg:
            return self.line_end(i)
        if c == "/" and sql.startswith("/*", i):
            return self.block_comment(i)
        if c == "$" and self.pg:
            return self.dollar_quoted(i)
        if c == ":":
            return self.colon(i)
        if self.pg and c in "0123456789":  # a PostgreSQL number ends before letters and `$`
            return i + 1
        if _is_ident(c):
            return self.word(i)
        return i + 1

    def error(self, offset: int, what: str, rest: str) -> SqlScanError:
        return SqlScanError(self.sql, offset, what, rest)

    def suspect(self, offset: int, what: str, rest: str) -> None:
        if self.doubt is None:
            self.doubt = self.error(offset, what, rest)

    # ------------------------------------------------------------------ quoted text

    def quoted(self, start: int, quote: int) -> int:
        """Past a string or quoted identifier opened at `quote` (its prefix from `start`)."""
        sql = self.sql
        if self.pg:
            prefix = sql[start].upper() if start < quote and sql[quote] == "'" else sql[quote]
            kind, backslash, setting = _PG_FIXED.get(prefix, _PG_STRING)
        else:
            kind, backslash, setting = _MARIA_QUOTES[sql[quote]]
        end = _quoted_end(sql, quote, backslash)
        if end is None:
            q = sql[quote]
            raise self.error(
                start, f"unterminated {kind}", f": close it with {q} (a {q} inside is {q}{q})"
            )
        # only the first doubt counts: reading on after it would make a long text quadratic
        if setting and self.doubt is None and _quoted_end(sql, quote, not backslash) != end:
            self.suspect(
                start,
                f"the {kind}",
                f" ends elsewhere when the server runs with {setting} (a backslash before a "
                f"quote), so where a :name value after it lands depends on the server: "
                + _QUOTE_ADVICE[self.dialect],
            )
        return end

    def dollar_quoted(self, i: int) -> int:
        m = _DOLLAR_TAG.match(self.sql, i)
        if not m:  # `$1`, or a lone `$`
            return i + 1
        end = self.sql.find(m.group(0), m.end())
        if end < 0:
            raise self.error(
                i, "unterminated dollar-quoted string", f": close it with {m.group(0)}"
            )
        return end + len(m.group(0))

    def word(self, i: int) -> int:
        """Past an identifier or keyword; a PostgreSQL string prefix (E'', B'', X'', N'',
        U&'', U&"") opens its string instead."""
        sql = self.sql
        if self.pg and sql[i] in "eEbBxXnN" and sql.startswith("'", i + 1):
            return self.quoted(i, i + 1)
        if self.pg and sql[i] in "uU" and sql[i + 1 : i + 3] in ("&'", '&"'):
            return self.quoted(i, i + 2)
        j = i + 1
        while j < self.n and _is_ident(sql[j]):
            j += 1
        return j

    # ------------------------------------------------------------------ comments

    def dash_comment(self, i: int) -> bool:
        """Whether `--` starts a comment at `i`: always on PostgreSQL; on MariaDB only when a
        space, a control character or the end of the text follows."""
        if not self.sql.startswith("--", i):
            return False
        after = self.sql[i + 2 : i + 3]
        return self.pg or after == "" or after <= " " or after == "\x7f"

    def line_end(self, i: int) -> int:
        """Where a line comment ends: at LF (PostgreSQL also at CR)."""
        ends = "\n\r" if self.pg else "\n"
        j = i
        while j < self.n and self.sql[j] not in ends:
            j += 1
        return j

    def block_comment(self, i: int) -> int:
        sql = self.sql
        if not self.pg and sql.startswith(("/*!", "/*M!"), i):
            if self.executable is not None:
                raise self.error(
                    i,
                    "executable comment inside another",
                    ": write the SQL without the inner comment's markers",
                )
            return self.executable_comment(i)
        end = _comment_end(sql, i + 2, _ANY_NESTING if self.pg else _NO_NESTING)
        if end is None:
            nests = " (comments nest: each /* inside needs its own */)" if self.pg else ""
            raise self.error(i, "unterminated comment", f": close it with */{nests}")
        if not self.pg and sql.startswith("/*+", i) and any(q in sql[i:end] for q in "'\"`"):
            self.suspect(
                i,
                "the optimizer hint",
                " holds a quote: MySQL 8 reads quoted names in a hint, so its end may differ "
                "from the first */; write the hint without quotes",
            )
        return end

    def executable_comment(self, i: int) -> int:
        """MariaDB runs `/*! ... */` (and `/*M! ... */`) as SQL, so quotes inside open real
        strings; below the version it names, or on MySQL for `/*M!`, it skips the comment
        up to the first `*/`. Both readings must agree and hold no parameter."""
        sql = self.sql
        body = i + (4 if sql.startswith("/*M!", i) else 3)
        version = re.match(r"[0-9]{5,6}", sql[body : body + 6])
        found = len(self.params)
        self.executable = i
        try:
            end = self.run(body + (version.end() if version else 0))
        finally:
            self.executable = None
        if self.doubt is None and (_comment_end(sql, body, 1) != end or len(self.params) > found):
            self.suspect(
                i,
                "the executable comment",
                " is run as SQL or skipped depending on the server's version and vendor, and "
                "holds a :name parameter or a quote that hides its end: move them out of "
                "the /*! ... */ comment",
            )
        return end

    # ------------------------------------------------------------------ parameters

    def colon(self, i: int) -> int:
        """Past `::` (a PostgreSQL cast), a `:name` parameter (recorded) or a lone `:`. A
        colon right after an identifier character (`t.x:y`, `a[1:n]`) starts none."""
        sql = self.sql
        if sql.startswith("::", i):
            return i + 2
        first = sql[i + 1 : i + 2]
        if (i and _is_ident(sql[i - 1])) or not _name_start(first):
            return i + 1
        end = i + 1
        while end < self.n and _is_ident(sql[end]):
            end += 1
        self.params.append(Param(sql[i + 1 : end], i, end))
        return end
