"""Load-time rules of database and mongo sources and database targets (validate is the
truth), and the `:name` parameter scanner."""

from __future__ import annotations

import pytest

from datahub_assets.execute.jdbc import DIALECTS, JdbcError
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.sql_params import SqlScanError, dialect_of_url, find_params, render
from tests.unit.spec_helpers import find_error

APP_YAML = """connections:
  crm: {jdbcUrl: "jdbc:postgresql://crm:5432/crm", userSecretRef: CRM_DB}
  legacy: {jdbcUrl: "jdbc:oracle:thin:@db:1521/x"}
  mongo_nouri: {jdbcUrl: "jdbc:postgresql://x/y"}
  products: {uriSecretRef: CRM_PRODUCTS_URI}
"""


def _write(tmp_path, sources: str, targets: str) -> None:
    app = tmp_path / "crm"
    (app / "raw").mkdir(parents=True)
    (app / "app.yaml").write_text(APP_YAML)
    (app / "raw" / "p.xml").write_text(f"""<pipeline id="p" layer="raw">
  <sources>
    {sources}
  </sources>
  <targets>
    {targets}
  </targets>
</pipeline>
""")


def _errors(tmp_path, sources: str, targets: str = '<table table="t" mode="merge" keys="id"/>'):
    _write(tmp_path, sources, targets)
    with pytest.raises(SpecErrors) as exc:
        load_project(tmp_path)
    return exc.value.errors


def _loads(tmp_path, sources: str, targets: str = '<table table="t" mode="merge" keys="id"/>'):
    _write(tmp_path, sources, targets)
    return load_project(tmp_path).pipelines[0]


F = "crm/raw/p.xml"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("jdbc:oracle:thin:@db:1521/x", "not a JDBC URL"),
        ("jdbc:sqlserver://db:1433", "unsupported JDBC scheme"),
        ("jdbc:postgresql://bob:pw@db/x", "carries credentials"),
        ("jdbc:mysql://db/x?user=bob&amp;password=pw", "carries credentials"),
        ("postgresql://db/x", "not a JDBC URL"),
    ],
)
def test_unsupported_or_credential_bearing_urls_are_load_errors(tmp_path, url, fragment):
    errors = _errors(tmp_path, f'<database id="d" jdbcUrl="{url}"><table name="t"/></database>')
    err = find_error(errors, F, 3, fragment)
    assert "pw" not in err.message  # the error shows no credential of the URL


def test_connection_rules(tmp_path):
    errors = _errors(
        tmp_path,
        """<database id="a" connection="nope"><table name="t"/></database>
    <database id="b" connection="legacy"><table name="t"/></database>
    <mongo id="m" database="d" collection="c" connection="mongo_nouri"/>
    <mongo id="n" database="d" collection="c"/>""",
    )
    find_error(errors, F, 3, 'connection="nope"', "allowed: crm, legacy")
    find_error(errors, F, 4, 'from connection "legacy"', "not a JDBC URL")
    find_error(errors, F, 5, "needs uriSecretRef=", "has no uriSecretRef")
    find_error(errors, F, 6, "needs uriSecretRef=")


def test_sql_parameters_partitions_and_incremental_merge(tmp_path):
    errors = _errors(
        tmp_path,
        """<database id="a" connection="crm" partitionColumn="id">
      <sql>select * from x where d = :runDate and w > :watermark and c = :custom</sql>
    </database>
    <database id="b" connection="crm"><table name="t"/><incremental column="u"/></database>""",
        targets='<table table="t" mode="append"/>',
    )
    find_error(errors, F, 3, "partitionColumn= and numPartitions= go together")
    find_error(errors, F, 3, ":watermark", "allowed: :runDate")
    find_error(errors, F, 3, ":custom")
    find_error(errors, F, 6, 'must use mode="merge"')


def test_mongo_filter_projection_json(tmp_path):
    errors = _errors(
        tmp_path,
        """<mongo id="m" database="d" collection="c" connection="products">
      <filter>{"type": 'click'}</filter><projection>[1, 2]</projection></mongo>""",
    )
    find_error(errors, F, 3, "<filter> is not valid JSON")
    find_error(errors, F, 3, "<projection> must be a JSON object")


def test_database_target_rules(tmp_path):
    errors = _errors(
        tmp_path,
        '<database id="a" connection="crm"><table name="t"/></database>',
        targets="""<database jdbcUrl="jdbc:postgresql://r/x" mode="merge">
      <table name="report"/></database>
    <database connection="crm" mode="append" keys="id"><table name="r2"/></database>
    <database mode="append"><table name="r3"/></database>""",
    )
    find_error(errors, F, 6, 'mode="merge"', "requires keys=")
    find_error(errors, F, 8, "keys= on a <database> target")
    find_error(errors, F, 9, "needs jdbcUrl= or connection=")


def test_valid_definition_resolves_connections(tmp_path):
    spec = _loads(
        tmp_path,
        """<database id="a" connection="crm" partitionColumn="id"
      numPartitions="4"><sql>select * from x where d >= :runDate::date and s = ':x'</sql>
      <incremental column="u"/></database>""",
    )
    ep = spec.endpoint(spec.pipeline.sources[0])
    assert (ep.jdbc_url, ep.user_secret_ref) == ("jdbc:postgresql://crm:5432/crm", "CRM_DB")
    assert set(spec.connections) == {"crm"}


def _names(sql: str, dialect: str) -> list[str]:
    return [p.name for p in find_params(sql, dialect)]


def test_parameter_scanner_skips_literals_comments_and_casts():
    sql = """select ':a', "x:y", `q:z`, $$ :d $$, $t$ :e $t$, x::int, E'\\' :f'
             -- :g
             /* :h */ from t where a = :one and b=:two_2 and c = t.x:three"""
    assert _names(sql, "postgresql") == ["one", "two_2"]
    # MariaDB: `$` is an identifier character (no dollar quoting); `'\'` runs on by default
    # and ends at its second quote under NO_BACKSLASH_ESCAPES: refused
    with pytest.raises(SqlScanError, match="NO_BACKSLASH_ESCAPES"):
        find_params(sql, "mariadb")
    plain = sql.replace("E'\\' :f'", "'it''s :f'")
    assert _names(plain, "mariadb") == ["d", "e", "one", "two_2"]
    lit = lambda _n: "42"  # noqa: E731
    assert render("a = :one and b = ':one'", lit, "mysql") == "a = 42 and b = ':one'"


@pytest.mark.parametrize(
    ("dialect", "sql", "names"),
    [
        ("postgresql", "select $€$ :x $€$, :p", ["p"]),  # any non-ASCII char may be a tag
        ("postgresql", "select 1$a$ :x $a$, :p", ["p"]),  # a number, then a dollar quote
        ("postgresql", "select a$b$ :p, b$ :q", ["p", "q"]),  # `$` inside identifiers
        ("postgresql", "select U&\"d:x\" , U&'\\0041 :x', :p", ["p"]),
        ("postgresql", "select x'1F', b'10', n':x', :p", ["p"]),
        ("postgresql", "select `:p`", ["p"]),  # a backtick is an operator character
        ("postgresql", "select 1 # :p", ["p"]),  # `#` is an operator
        ("postgresql", "select /* a /* b /* c */ :x */ :x */ :p", ["p"]),
        ("postgresql", "select 1 -- :x\r:p", ["p"]),
        ("postgresql", "select a[1:n], :p$x, :é", ["p$x", "é"]),
        ("mariadb", "select 1 -- :x\r:x\n, :p", ["p"]),
        ("mariadb", "select 1 --\t:x\n, 2--:p, 3 --", ["p"]),
        ("mariadb", 'select 1 # :x\n, `a``:x`, "a"":x", :p', ["p"]),
        ("mariadb", "select 1 /* /* :x */ :p", ["p"]),
        ("mariadb", "select 1 /*!50100 , ':x' */ /*M!100400 , 2 */, :p", ["p"]),
        ("mariadb", "select @a:=1, :p", ["p"]),
    ],
)
def test_parameter_scanner_reads_each_dialect_like_its_server(dialect, sql, names):
    assert _names(sql, dialect) == names


@pytest.mark.parametrize(
    ("dialect", "sql", "fragments"),
    [
        ("postgresql", "select 1,\n  'abc :p", ["unterminated string at line 2, column 3", "''"]),
        ("postgresql", "select E'\\' :p", ["unterminated string at line 1, column 8"]),
        ("postgresql", "select $a$ :p $A$", ["unterminated dollar-quoted string", "$a$"]),
        ("postgresql", "/* /* */ :p", ["unterminated comment", "comments nest"]),
        ("mariadb", "select `a :p", ["unterminated quoted identifier", "``"]),
        ("mariadb", "select 1 /*! 2 # */\n, :p", ["unterminated executable comment"]),
        ("mariadb", "select 1 /*! 2 /*!3 */ */", ["executable comment inside another"]),
        (
            "postgresql",
            "select '\\', :p",
            ["the string at line 1, column 8", "standard_conforming_strings = off", "E''"],
        ),
        (
            "mariadb",
            'select "a\\" :x", :p',
            ["the string at line 1, column 8", "NO_BACKSLASH_ESCAPES or ANSI_QUOTES"],
        ),
        ("mariadb", "select /*! :p */", ["the executable comment at line 1, column 8"]),
        ("mariadb", "select /*+ BKA(`t`) */ 1, :p", ["the optimizer hint", "MySQL 8"]),
    ],
)
def test_parameter_scanner_refuses_what_it_cannot_place_safely(dialect, sql, fragments):
    with pytest.raises(SqlScanError) as exc:
        find_params(sql, dialect)
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_parameter_scanner_doubts_matter_only_before_a_parameter():
    assert _names("select :p, '\\'", "postgresql") == ["p"]
    assert _names("select '\\'", "postgresql") == []
    assert _names("select :p, /*! ':x */' */", "mariadb") == ["p"]


def test_parameter_scanner_survives_hostile_shapes():
    deep = "select " + "/*" * 50_000 + "*/" * 50_000 + ", :p"
    assert _names(deep, "postgresql") == ["p"]
    assert _names("select " + "'x'" * 50_000 + ", :p", "mariadb") == ["p"]
    # each string read both ways would be quadratic: only the first doubt is read on
    with pytest.raises(SqlScanError, match="standard_conforming_strings"):
        find_params("select '" + "\\'" * 200_000 + "', :p", "postgresql")
    with pytest.raises(ValueError, match="unknown SQL dialect 'oracle'"):
        find_params("select 1", "oracle")


def test_render_keeps_a_negative_value_out_of_a_comment():
    assert render("select 10-:p", lambda _n: "-5", "postgresql") == "select 10- -5"
    # MariaDB: `--` starts a comment only before a space: no space added there
    assert render("select 2--:p", lambda _n: "-5", "mariadb") == "select 2---5"


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("jdbc:postgresql://h/db", "postgresql"),
        ("jdbc:mariadb://h/db", "mariadb"),
        ("JDBC:MySQL://h/db", "mariadb"),
        ("jdbc:oracle:thin:@h", None),
        (None, None),
    ],
)
def test_dialect_of_url(url, dialect):
    assert dialect_of_url(url) == dialect


def test_loader_scans_sql_in_the_dialect_of_its_url(tmp_path):
    errors = _errors(
        tmp_path,
        """<database id="a" jdbcUrl="jdbc:mariadb://h/db">
      <sql>select 1 # it's :x
        , :runDate</sql></database>
    <database id="b" connection="crm"><sql>select 1 # it's :x
        , :runDate</sql></database>
    <database id="c" connection="crm"><sql>select '\\', :runDate</sql></database>""",
    )
    assert not [e for e in errors if e.line == 3]  # MariaDB: `#` starts a comment
    find_error(errors, F, 6, '<database> source "b"', "unterminated string at line 1, column 14")
    find_error(errors, F, 8, '"c"', "standard_conforming_strings = off")


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_literals_are_single_typed_tokens(dialect):
    import datetime as dt
    from decimal import Decimal

    d = DIALECTS[dialect]
    assert d.literal(5) == "5"
    assert d.literal(Decimal("1.50")) == "1.50"
    assert d.literal(dt.date(2024, 1, 2)) == "DATE '2024-01-02'"
    assert (
        d.literal(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
        == "TIMESTAMP '2024-01-02 03:04:05.000000'"
    )
    for payload in ("it's \\'; DROP TABLE x; --", "\\", "''", 'ünï ✓ "dq" `b`'):
        assert _read_literal(d.literal(payload)) == payload
    with pytest.raises(JdbcError):
        d.literal("nul\x00byte")


def _read_literal(text: str) -> str:
    """Read one string literal as both databases do (E'' / MariaDB: backslash escapes, ''
    is a quote); fails if the literal ends before the text does (a value broke out)."""
    assert text.startswith(("'", "E'"))
    assert text.endswith("'")
    body, out, i = text[text.index("'") + 1 : -1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            out.append(body[i + 1])
            i += 2
        elif c == "'":
            assert body[i + 1] == "'", f"literal ends early in {text!r}"
            out.append("'")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_app_yaml_connection_values_expand_environment_variables(tmp_path, monkeypatch):
    app = tmp_path / "crm"
    (app / "raw").mkdir(parents=True)
    (app / "app.yaml").write_text(
        "connections:\n"
        '  crm: {jdbcUrl: "jdbc:postgresql://${CRM_TEST_ADDR:-127.0.0.1:5432}/crm"}\n'
        '  other: {jdbcUrl: "jdbc:postgresql://${CRM_TEST_UNSET}/x"}\n'
    )
    (app / "raw" / "p.xml").write_text("""<pipeline id="p" layer="raw">
  <sources><database id="a" connection="crm"><table name="t"/></database></sources>
  <targets><table table="t"/></targets>
</pipeline>
""")
    monkeypatch.delenv("CRM_TEST_UNSET", raising=False)
    with pytest.raises(SpecErrors) as exc:
        load_project(tmp_path)
    find_error(exc.value.errors, "crm/app.yaml", 3, "CRM_TEST_UNSET is not set")
    monkeypatch.setenv("CRM_TEST_UNSET", "db:1")
    spec = load_project(tmp_path).pipelines[0]
    assert (
        spec.endpoint(spec.pipeline.sources[0]).jdbc_url == "jdbc:postgresql://127.0.0.1:5432/crm"
    )
    monkeypatch.setenv("CRM_TEST_ADDR", "db.prod:6432")
    spec = load_project(tmp_path).pipelines[0]
    assert spec.endpoint(spec.pipeline.sources[0]).jdbc_url == "jdbc:postgresql://db.prod:6432/crm"


def test_table_names_the_database_would_cut_or_refuse_are_load_errors(tmp_path):
    """#19 finding 2: a PostgreSQL name over 63 bytes (cut by the server: the write's table
    is never found again) or a MariaDB name over 64 characters is refused at file:line."""
    long_pg = "é" * 32  # 64 bytes in UTF-8, 32 characters
    errors = _errors(
        tmp_path,
        f'<database id="a" connection="crm"><table name="public.{long_pg}"/></database>',
        targets=f"""<database jdbcUrl="jdbc:mariadb://r/x" mode="append">
      <table name="db.{"t" * 65}"/></database>
    <database id="ok" connection="crm" mode="append"><table name="{"é" * 31}x"/></database>""",
    )
    find_error(errors, F, 3, f'"{long_pg}" is 64 bytes long', "shorten it")
    find_error(errors, F, 6, f'"{"t" * 65}" is 65 characters long', "shorten it")
    assert not [e for e in errors if e.line == 8], errors  # 63 bytes: PostgreSQL holds it
