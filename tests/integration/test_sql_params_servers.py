"""The `:name` scanner against the real servers' lexers (issue #19 finding 9).

For each construct the review named (MariaDB `#` and `-- ` comments, `"..."` strings,
backticks, `$` in identifiers and executable comments; PostgreSQL standard and E'' strings,
nested comments, dollar quoting, `$` in identifiers, `::` casts) a statement holds `:x`
inside the construct and a real parameter `:p` outside it. The scanner must report exactly
the real parameters, and the server, running the rendered statement, must return the
construct's text unchanged and the bound value for `:p`. Where the server's own reading
depends on a setting the loader cannot see (standard_conforming_strings, sql_mode
NO_BACKSLASH_ESCAPES / ANSI_QUOTES, the version of an executable comment), the test shows
both readings on the server and the scanner refuses the statement instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from datahub_assets.execute.jdbc import DIALECTS
from datahub_assets.spec.sql_params import SqlScanError, find_params, render

Query = Callable[..., Any]


def _pg_query(server) -> Query:
    import psycopg

    def query(sql: str, *setup: str):
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user="datahub", dbname="postgres", autocommit=True
        ) as conn:
            for stmt in setup:
                conn.execute(stmt.encode())
            return conn.execute(sql.encode()).fetchall()  # bytes: psycopg never formats it

    return query


def _mariadb_query(server) -> Query:
    import pymysql

    def query(sql: str, *setup: str):
        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                for stmt in setup:
                    cur.execute(stmt)
                cur.execute(sql)  # no args: PyMySQL sends the text as it is
                return [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()

    return query


@pytest.fixture(scope="module")
def pg(postgres_server) -> Query:
    return _pg_query(postgres_server)


@pytest.fixture(scope="module")
def maria(mariadb_server) -> Query:
    return _mariadb_query(mariadb_server)


def _names(sql: str, dialect: str) -> list[str]:
    return [p.name for p in find_params(sql, dialect)]


def _rendered(sql: str, dialect: str, **values: Any) -> str:
    return render(sql, lambda name: DIALECTS[dialect].literal(values[name]), dialect)


# (construct, SQL with `:x` inside the construct and `:p` outside, the row the server returns)
PG_AGREE = [
    ("nested comment", "SELECT 1 AS a /* outer /* inner */ :x */, :p AS v", (1, "P")),
    ("dollar in identifier", "SELECT 1 AS a$b$, ':x' AS s, :p AS v", (1, ":x", "P")),
    ("dollar quote", "SELECT $q$ :x 'it $q $Q$ $q$ AS s, :p AS v", (" :x 'it $q $Q$ ", "P")),
    ("E string", "SELECT E'it\\'s :x\\\\' AS s, :p AS v", ("it's :x\\", "P")),
    ("standard string", "SELECT 'C:\\temp :x' AS s, :p AS v", ("C:\\temp :x", "P")),
    ("quoted identifier", 'SELECT 1 AS "a"":x", :p AS v', (1, "P")),
    ("cast", "SELECT '5'::int AS n, :p::text AS v, 2::int AS m", (5, "P", 2)),
    ("line comment", "SELECT 1 AS a -- it's :x\n, :p AS v", (1, "P")),
    ("line comment ends at CR", "SELECT 1 AS a -- :x\r, :p AS v", (1, "P")),
    ("hash is an operator", "SELECT 6 # 3 AS a, :p AS v", (5, "P")),
]

MARIA_AGREE = [
    ("hash comment", "SELECT 1 AS a # it's :x\n, :p AS v", (1, "P")),
    ("dash-dash-space comment", "SELECT 1 AS a -- it's :x\n, :p AS v", (1, "P")),
    ("dash-dash is two minus signs", "SELECT 2--:p AS v", (7,)),
    ("comment runs past CR", "SELECT 1 AS a -- it's :x\r, 3 AS b\n, :p AS v", (1, "P")),
    ("double-quoted string", 'SELECT "say "":x\\\\" AS s, :p AS v', ('say ":x\\', "P")),
    ("backtick identifier", "SELECT 1 AS `a``:x`, :p AS v", (1, "P")),
    ("dollar in identifier", "SELECT 1 AS $a$, ':x $a$' AS s, :p AS v", (1, ":x $a$", "P")),
    ("no nested comments", "SELECT 1 AS a /* /* :x */, :p AS v", (1, "P")),
    ("executable comment", "SELECT 1 AS a /*! , ':x' AS s */, :p AS v", (1, ":x", "P")),
    ("string with backslash", "SELECT 'it''s \\\\ :x' AS s, :p AS v", ("it's \\ :x", "P")),
]


@pytest.mark.parametrize(("construct", "sql", "row"), PG_AGREE, ids=[c[0] for c in PG_AGREE])
def test_postgres_reads_the_statement_as_the_scanner_does(pg, construct, sql, row):
    assert _names(sql, "postgresql") == ["p"], construct
    assert pg(_rendered(sql, "postgresql", p="P")) == [row]


@pytest.mark.parametrize(("construct", "sql", "row"), MARIA_AGREE, ids=[c[0] for c in MARIA_AGREE])
def test_mariadb_reads_the_statement_as_the_scanner_does(maria, construct, sql, row):
    assert _names(sql, "mariadb") == ["p"], construct
    p = 5 if row == (7,) else "P"  # 2 - (-5)
    assert maria(_rendered(sql, "mariadb", p=p)) == [row]


# -- values crafted to escape: with the construct misread, the value leaves its literal


def test_postgres_value_cannot_leave_a_nested_comment(pg):
    """`:p` inside a nested comment is comment text: a value closing the comment (the old
    scanner took the first `*/` as the end and bound `:p`) must never run."""
    sql = "SELECT 1 AS a /* note /* nested */ :p */, 2 AS b"
    rendered = _rendered(sql, "postgresql", p="*/, current_user AS leak /*")
    assert pg(rendered) == [(1, 2)]
    assert _names(sql, "postgresql") == []


def test_postgres_negative_number_after_minus_is_not_a_comment(pg):
    sql = "SELECT 10-:p AS v, 'tail' AS t"
    assert pg(_rendered(sql, "postgresql", p=-5)) == [(15, "tail")]


def test_postgres_backslash_quote_in_a_standard_string_is_refused_before_a_parameter(pg):
    """`'\\'` ends at its second quote when standard_conforming_strings is on (the
    default) and runs on when it is off, so a value bound after it is one literal on one
    server and SQL on the other (the old scanner bound it either way): refused."""
    sql = "SELECT '\\' AS a, :p AS v -- '\n"
    bound = sql.replace(":p", DIALECTS["postgresql"].literal("||current_user||"))
    assert pg(bound) == [("\\", "||current_user||")]
    off = "SET standard_conforming_strings = off"
    assert pg(bound, off) == [("' AS a, Edatahub AS v -- ",)]  # the value ran as SQL
    with pytest.raises(
        SqlScanError, match=r"string at line 1, column 8 .*conforming_strings = off"
    ):
        find_params(sql, "postgresql")
    # a parameter before it, or none at all, lands in the same place under both settings
    assert _names("SELECT :p AS v, '\\' AS a", "postgresql") == ["p"]
    text = "SELECT '\\' AS a, ' :x ' AS b"
    assert _names(text, "postgresql") == []
    assert pg(text) == [("\\", " :x ")]
    with pytest.raises(Exception, match='at or near ":"'):  # off: `:x` is SQL, sent as is
        pg(text, off)


def test_postgres_backslash_elsewhere_reads_the_same_under_both_settings(pg):
    sql = "SELECT 'C:\\new :x' AS s, :p AS v"
    assert _names(sql, "postgresql") == ["p"]
    rendered = _rendered(sql, "postgresql", p="P")
    assert pg(rendered) == [("C:\\new :x", "P")]
    assert pg(rendered, "SET standard_conforming_strings = off") == [("C:\new :x", "P")]


def test_mariadb_backslash_quote_is_refused_before_a_parameter(maria):
    """`'a\\', '` is one string by default and `'a\\'` plus the start of another under
    sql_mode NO_BACKSLASH_ESCAPES: a value bound after it is SQL on such a server."""
    sql = "SELECT 'a\\', ' AS x, :p AS v -- '\n"
    bound = sql.replace(":p", DIALECTS["mariadb"].literal(", user() AS leak, "))
    assert maria(bound) == [("a', ", ", user() AS leak, ")]
    nbe = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
    assert maria(bound, nbe) == [("a\\", " AS x, ", "root@localhost", " AS v -- ")]
    with pytest.raises(SqlScanError, match=r"string at line 1, column 8 .*NO_BACKSLASH_ESCAPES"):
        find_params(sql, "mariadb")
    assert _names("SELECT 'it\\'s' AS a", "mariadb") == []


def test_mariadb_escaped_backslash_reads_the_same_in_every_sql_mode(maria):
    sql = "SELECT 'a\\\\b :x' AS s, \"q\\\\\" AS t, :p AS v"
    assert _names(sql, "mariadb") == ["p"]
    rendered = _rendered(sql, "mariadb", p="P")
    assert maria(rendered) == [("a\\b :x", "q\\", "P")]
    nbe = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
    assert maria(rendered, nbe) == [("a\\\\b :x", "q\\\\", "P")]


def test_mariadb_executable_comment_hiding_a_quote_is_refused_before_a_parameter(maria):
    """MariaDB runs `/*! ... */` as SQL, where a quote opens a real string and a `*/`
    inside it does not end the comment; below the version it names (and on MySQL for
    `/*M!`) it skips the comment up to the first `*/`. Read as SQL, `:p` below is outside
    any string; this server skips the comment and reads `:p` inside one: refused."""
    sql = "SELECT 1 AS a /*!99999 '*/, ' */, :p AS v -- '\n"
    bound = sql.replace(":p", DIALECTS["mariadb"].literal(", user() AS leak, "))
    assert maria(bound) == [(1, " */, ", "root@localhost", " AS v -- ")]  # the value ran
    with pytest.raises(SqlScanError, match=r"executable comment at line 1, column 15"):
        find_params(sql, "mariadb")
    # run as SQL here: `/*!` without a version; the comment's text is a string
    text = "SELECT 1 AS a /*!, '*/, :x, /*' AS s */"
    assert _names(text, "mariadb") == []
    assert maria(text) == [(1, "*/, :x, /*")]


def test_mariadb_double_quoted_string_keeps_a_hostile_value_inside(maria):
    """`"..."` is a string on MariaDB: the old scanner read `"a\\"` as a quoted identifier
    and bound `:p` inside the server's string, where a `"` in the value ends it."""
    sql = 'SELECT "a\\" :p " AS s'
    assert maria(_rendered(sql, "mariadb", p='" AS s, user() AS leak, "')) == [('a" :p ',)]
    assert _names(sql, "mariadb") == []


@pytest.mark.parametrize(
    ("dialect", "sql", "what"),
    [
        ("postgresql", "SELECT ':p", "string"),
        ("postgresql", "SELECT 1 /* a /* b */ :p", "comment"),
        ("postgresql", "SELECT $t$ :p $T$", "dollar-quoted"),
        ("postgresql", 'SELECT 1 AS "a :p', "quoted identifier"),
        ("mariadb", 'SELECT "abc :p', "string"),
        ("mariadb", "SELECT 1 /* :p", "comment"),
        ("mariadb", "SELECT 1 AS `a :p", "quoted identifier"),
        ("mariadb", "SELECT 1 /*! , 2 -- */\n, :p", "executable comment"),
    ],
)
def test_unterminated_text_is_refused_like_the_server_refuses_it(pg, maria, dialect, sql, what):
    with pytest.raises(SqlScanError, match=f"unterminated {what}"):
        find_params(sql, dialect)
    query = pg if dialect == "postgresql" else maria
    with pytest.raises(Exception, match="unterminated|error in your SQL syntax"):
        query(sql)
