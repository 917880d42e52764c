"""Hostile names against real PostgreSQL and MariaDB servers (#19 findings 1 and 2): column
names that carry SQL (from a CSV header or a source table) are written and read as names,
never run; staging tables fit the identifier limits with their whole random suffix, never
equal the target, and the cleanup never drops a table it did not create."""

from __future__ import annotations

import logging

import pytest

from datahub_assets.execute import jdbc
from datahub_assets.execute.readers import SourceError, read_source
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.execute.writers import database
from datahub_assets.execute.writers.database import DatabaseTargetError, write_database
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import DatabaseSource, DatabaseTarget
from datahub_resources.iceberg import load_catalog
from tests.conftest import APP_USER_PASSWORD
from tests.integration import test_database_target as base
from tests.integration.test_database_target import REF, Db, _staging_left
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

db = base.db  # a fresh database per test on each server (PostgreSQL, MariaDB)
SECRET = "SHOP_REPORTING_DB"  # a secret of app "shop", as the whole runs here need


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv(SECRET, f"app_user:{APP_USER_PASSWORD}")


def _target(db: Db, mode: str, table: str = "report", keys=()) -> DatabaseTarget:
    return base._target(db, mode, table=table, keys=keys).model_copy(
        update={"user_secret_ref": SECRET}
    )


# the payloads: close the quoted name, end the CREATE TABLE, drop another table
PG_PAYLOAD = 'x" text); DROP TABLE public.keep; --'
MARIADB_PAYLOAD = "x` text); DROP TABLE keep; --"
HOSTILE = [PG_PAYLOAD, MARIADB_PAYLOAD, 'a"b`c', "dot.ted name"]


def _keep(db: Db) -> None:
    db.run("CREATE TABLE keep (id integer)", "INSERT INTO keep VALUES (42)")


def _kept(db: Db) -> None:
    assert "keep" in db.tables()
    assert db.run("SELECT id FROM keep") == [(42,)]


def _q(db: Db, name: str) -> str:
    q = '"' if db.pg else "`"
    return q + name.replace(q, q * 2) + q


def _hostile_frame(spark, rows=((1, "a", "b", "c", "d"), (2, None, "y", "z", "w"))):
    return spark.createDataFrame(list(rows), "id int, c1 string, c2 string, c3 string, c4 string")


def _renamed(df):
    return df.toDF("id", *HOSTILE)


def _write(spark, db: Db, mode: str, rows=None, keys=(), table="report"):
    df = _renamed(_hostile_frame(spark) if rows is None else _hostile_frame(spark, rows))
    return write_database(
        df, _target(db, mode, table=table, keys=keys), jdbc.endpoint(db.url, SECRET), REF
    )


def _report(db: Db) -> list[tuple]:
    cols = ", ".join(_q(db, c) for c in ["id", *HOSTILE])
    return db.run(f"SELECT {cols} FROM report ORDER BY id")


# ----------------------------------------------------------------------------- finding 1


def test_hostile_column_names_are_names_in_every_mode(spark, db):
    """overwrite creates the table with the names as written; append, truncateInsert and
    merge (on the hostile column as key) match them; `keep` survives all of it."""
    _keep(db)
    out = _write(spark, db, "overwrite")
    assert out.extra["created"] is True
    _kept(db)
    assert db.columns("report") == ["id", *HOSTILE]
    assert _report(db) == [(1, "a", "b", "c", "d"), (2, None, "y", "z", "w")]

    _write(spark, db, "overwrite")  # over an existing table
    _write(spark, db, "append", rows=[(3, "e", "f", "g", "h")])
    assert [r[0] for r in _report(db)] == [1, 2, 3]
    _write(spark, db, "truncateInsert", rows=[(4, "i", "j", "k", "l")])
    assert _report(db) == [(4, "i", "j", "k", "l")]
    if db.pg:
        db.run(f"ALTER TABLE report ADD PRIMARY KEY ({_q(db, PG_PAYLOAD)})")
    else:
        db.run(f"ALTER TABLE report MODIFY {_q(db, PG_PAYLOAD)} varchar(100) NOT NULL")
        db.run(f"ALTER TABLE report ADD PRIMARY KEY ({_q(db, PG_PAYLOAD)})")
    rows = [(5, "i", "J", "K", "L"), (6, "m", "n", "o", "p")]
    _write(spark, db, "merge", rows=rows, keys=(PG_PAYLOAD,))
    assert _report(db) == [(5, "i", "J", "K", "L"), (6, "m", "n", "o", "p")]
    _kept(db)
    assert _staging_left(db) == []


def test_a_merge_creating_the_table_keys_a_hostile_column(spark, db):
    _keep(db)
    _write(spark, db, "merge", keys=(MARIADB_PAYLOAD,))
    _write(spark, db, "merge", rows=[(9, "q", "b", "r", "s")], keys=(MARIADB_PAYLOAD,))
    assert _report(db) == [(2, None, "y", "z", "w"), (9, "q", "b", "r", "s")]
    _kept(db)
    assert _staging_left(db) == []


def test_duplicate_keys_of_a_hostile_key_column_are_reported(spark, db):
    with pytest.raises(DatabaseTargetError, match="occur more than once"):
        _write(spark, db, "merge", rows=[(1, "a", "b", "c", "d")] * 2, keys=(PG_PAYLOAD,))
    assert db.tables() == []


PIPELINE = """<pipeline id="orders" version="1.0.0" layer="gold">
  <sources><csv id="orders" path="landing/orders/*.csv"/></sources>
  <targets>
    <database id="orders_report" connection="reporting" source="orders" mode="overwrite">
      <table name="{table}"/>
    </database>
  </targets>
</pipeline>
"""


def _project(settings, db: Db, header: str):
    app = settings.pipelines_dir / "shop"
    (app / "gold").mkdir(parents=True, exist_ok=True)
    (app / "app.yaml").write_text(
        f'connections:\n  reporting: {{jdbcUrl: "{db.url}", userSecretRef: {SECRET}}}\n'
    )
    (app / "gold" / "orders.xml").write_text(PIPELINE.format(table=db.qualified("report")))
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "a.csv").write_text(f"{header}\n1,one\n2,two\n")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def test_a_dropped_csv_header_cannot_drop_a_table(spark, settings, db):
    """The issue's reproduction: a CSV whose header is `id,x" text); DROP TABLE public.keep; --`
    exported with mode="overwrite". (The backtick form reaches MariaDB from a source table
    below and as a frame above: a CSV header with a backtick fails the csv source itself,
    in malformed.check's column references.)"""
    _keep(db)
    payload = PG_PAYLOAD
    spec = _project(settings, db, f"id,{payload}")
    ctx = exec_context(spark, settings, app="shop", run_id="r1")
    (out,) = run_pipeline(spec, ctx, load_catalog(settings))
    assert out.rows == 2
    _kept(db)
    assert db.columns("report") == ["id", payload]
    assert db.run(f"SELECT id, {_q(db, payload)} FROM report ORDER BY id") == [
        ("1", "one"),
        ("2", "two"),
    ]


@pytest.mark.parametrize(
    ("name", "pg_why", "mariadb_why"),
    [
        ("", "empty", "empty"),
        ("a\x00b", "NUL", "NUL"),
        ("x" * 64, "64 bytes", None),
        ("é" * 32, "64 bytes", None),
        ("y" * 65, "65 bytes", "65 characters"),
        ("trailing ", None, "ends with a space"),
        ("emoji 😀", None, "outside the Basic Multilingual Plane"),
    ],
)
def test_a_column_name_the_database_cannot_hold_is_refused(spark, db, name, pg_why, mariadb_why):
    why = pg_why if db.pg else mariadb_why
    df = spark.createDataFrame([(1, "a")], "id int, v string").toDF("id", name)
    target = _target(db, "overwrite", table="report")
    if why is None:  # this database holds it: written as is
        write_database(df, target, jdbc.endpoint(db.url, SECRET), REF)
        assert db.columns("report") == ["id", name]
        return
    with pytest.raises(DatabaseTargetError) as err:
        write_database(df, target, jdbc.endpoint(db.url, SECRET), REF)
    text = str(err.value)
    assert repr(name) in text
    assert why in text
    assert db.qualified("report") in text
    assert "<rename>" in text
    assert db.tables() == []


# ----------------------------------------------------------------------------- sources


def _source_table(db: Db) -> None:
    cols = ", ".join(f"{_q(db, c)} varchar(20)" for c in HOSTILE)
    db.run(
        f"CREATE TABLE src (id integer, {cols})",
        "INSERT INTO src VALUES (1, 'a', 'b', 'c', 'd'), (2, 'e', 'f', 'g', 'h')",
    )


SOURCE_PIPELINE = """<pipeline id="people" layer="raw">
  <sources>
    <database id="src" jdbcUrl="{url}" userSecretRef="{secret}" {extra}>{body}</database>
  </sources>
  <targets><table table="people" mode="overwrite"/></targets>
</pipeline>
"""


@pytest.mark.parametrize(
    ("body", "extra"),
    [
        ('<table name="src"/>', ""),
        ("<sql>SELECT * FROM src</sql>", 'partitionColumn="id" numPartitions="2"'),
    ],
)
def test_a_source_table_with_hostile_column_names_is_read_as_is(spark, settings, db, body, extra):
    """Spark lists the columns it reads by name: they are the table's, quoted by the
    platform; the rows arrive under the same names and `keep` survives."""
    _keep(db)
    _source_table(db)
    folder = settings.pipelines_dir / "shop" / "raw"
    folder.mkdir(parents=True)
    (folder / "people.xml").write_text(
        SOURCE_PIPELINE.format(url=db.url, secret=SECRET, body=body, extra=extra)
    )
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = exec_context(spark, settings, app="shop", run_id="r1")
    (out,) = run_pipeline(spec, ctx, load_catalog(settings))
    assert out.rows == 2
    _kept(db)
    rows = load_catalog(settings).load_table("shop_raw.people").scan().to_arrow().to_pylist()
    assert sorted([r["id"], *(r[c] for c in HOSTILE)] for r in rows) == [
        [1, "a", "b", "c", "d"],
        [2, "e", "f", "g", "h"],
    ]


# ----------------------------------------------------------------------------- finding 2


def _pg_bytes(name: str) -> int:
    return len(name.encode())


def test_a_63_byte_non_ascii_target_is_not_dropped_by_a_write(spark, db):
    """PostgreSQL cuts identifiers at 63 bytes: `name[:40] + __dhstage_...` of a 63-byte name
    used to be the target itself, and the failed write's cleanup dropped it."""
    name = "é" * 31 + "x" if db.pg else "é" * 64
    assert _pg_bytes(name) == 63 or not db.pg
    db.run(f"CREATE TABLE {_q(db, name)} (id integer, v varchar(10))")
    db.run(f"INSERT INTO {_q(db, name)} VALUES (1, 'one')")
    df = spark.createDataFrame([(2, "two")], "id int, v string")
    target = _target(db, "append", table=name)
    error = None
    try:
        write_database(df, target, jdbc.endpoint(db.url, SECRET), REF)
    except DatabaseTargetError as exc:
        error = exc
    assert name in db.tables(), f"the target was dropped; the write said: {error}"
    assert error is None
    assert db.run(f"SELECT id, v FROM {_q(db, name)} ORDER BY id") == [(1, "one"), (2, "two")]
    assert _staging_left(db) == []


@pytest.mark.parametrize("name", ["é" * 31 + "x", "é" * 30, "a" * 53, "orders", "ü" * 21])
def test_staging_names_fit_and_keep_the_whole_suffix(name):
    for tag in (database.STAGE_TAG, database.OLD_TAG):
        made = {database._side_name(name, tag) for _ in range(20)}
        assert len(made) == 20  # unique per call
        for n in made:
            assert _pg_bytes(n) <= 63
            assert len(n) <= 64
            head, _, tail = n.rpartition(tag)
            assert len(tail) == 10
            int(tail, 16)
            assert name.startswith(head)
            assert n != name


def test_staging_uses_a_fresh_name_and_never_drops_a_table_it_did_not_create(
    spark, db, monkeypatch, caplog
):
    """A table already named like the staging table is someone else's: the write stages under
    another name and leaves it alone."""
    import uuid

    fixed = uuid.UUID("0123456789abcdef0123456789abcdef")
    real = uuid.uuid4
    calls = iter([fixed])
    monkeypatch.setattr(database.uuid, "uuid4", lambda: next(calls, None) or real())
    squatter = f"report{database.STAGE_TAG}0123456789"
    db.run(f"CREATE TABLE {squatter} (id integer)", f"INSERT INTO {squatter} VALUES (7)")
    error = None
    with caplog.at_level(logging.INFO, logger="datahub"):
        try:
            _write(spark, db, "overwrite")
        except DatabaseTargetError as exc:
            error = exc
    assert squatter in db.tables(), f"the write dropped a table it did not create: {error}"
    assert db.run(f"SELECT id FROM {squatter}") == [(7,)]
    assert error is None
    assert [r[0] for r in _report(db)] == [1, 2]
    assert squatter not in caplog.text


@pytest.mark.parametrize(
    ("name", "why"),
    [("t" * 64, "64 bytes"), ("s" * 64 + ".orders", "64 bytes"), ("é" * 32, "64 bytes")],
)
def test_a_postgresql_name_longer_than_63_bytes_is_refused(spark, db, name, why):
    """PostgreSQL would create the table under its first 63 bytes; every later run would then
    look for the whole name, miss it, and fail creating it again."""
    if not db.pg:
        pytest.skip("PostgreSQL's limit")
    df = spark.createDataFrame([(1, "a")], "id int, v string")
    target = _target(db, "overwrite").model_copy(update={"table_name": name})
    for _ in range(2):
        with pytest.raises(DatabaseTargetError) as err:
            write_database(df, target, jdbc.endpoint(db.url, SECRET), REF)
        assert why in str(err.value)
        assert "63" in str(err.value)
    assert db.tables() == []


def test_a_mariadb_name_longer_than_64_characters_is_refused(spark, db):
    if db.pg:
        pytest.skip("MariaDB's limit")
    df = spark.createDataFrame([(1, "a")], "id int, v string")
    with pytest.raises(DatabaseTargetError, match="65 characters.*64"):
        write_database(
            df, _target(db, "overwrite", table="é" * 65), jdbc.endpoint(db.url, SECRET), REF
        )
    assert db.tables() == []


def test_a_failed_whole_run_names_the_target_element(spark, settings, db):
    """A refused column name fails the run with the <database> element's file:line."""
    spec = _project(settings, db, "id," + "z" * 70)
    ctx = exec_context(spark, settings, app="shop", run_id="r1")
    with pytest.raises(PipelineRunError) as err:
        run_pipeline(spec, ctx, load_catalog(settings))
    loc = spec.targets[0].target.loc
    assert loc is not None
    line = loc.line
    assert str(err.value).startswith(f"{spec.file}:{line}: database export to ")
    assert "z" * 70 in str(err.value)


def test_spark_is_given_only_names_it_quotes_right(spark, settings, db, monkeypatch):
    """Spark before 4.1 (SPARK-52832) put a name between quotes without doubling a quote in
    it: whatever the server's version, the frames Spark writes and reads over JDBC have
    plain names, and the platform's own SQL carries the real ones."""
    from datahub_assets.execute.readers import database as reader

    spark_names: list[list[str]] = []
    stage, jdbc_read = database._stage, reader._Reader._jdbc

    def spy_stage(df, target, endpoint, stage_table, staged, *rest):
        spark_names.append(list(staged.values()))
        return stage(df, target, endpoint, stage_table, staged, *rest)

    def spy_read(self, statement, extra, aliases):
        out = jdbc_read(self, statement, extra, aliases)
        spark_names.append(out.columns)
        return out

    monkeypatch.setattr(database, "_stage", spy_stage)
    monkeypatch.setattr(reader._Reader, "_jdbc", spy_read)
    _keep(db)
    _write(spark, db, "overwrite")
    src = DatabaseSource(id="r", jdbc_url=db.url, user_secret_ref=SECRET, table_name="report")
    df = reader.read_database(src, exec_context(spark, settings, app="shop"))
    assert df.columns == ["id", *HOSTILE]
    assert sorted(tuple(r) for r in df.collect()) == [
        (1, "a", "b", "c", "d"),
        (2, None, "y", "z", "w"),
    ]
    assert spark_names[0] == ["id", "_dh_c1", "_dh_c2", "_dh_c3", "dot.ted name"]
    assert spark_names[-1] == spark_names[0]  # the read Spark runs names the aliases
    _kept(db)


def test_a_schema_ref_types_hostile_source_columns(spark, settings, db):
    """customSchema names the aliased columns by their aliases: the declared types apply."""
    import json

    _keep(db)
    name = 'a"b`c'
    db.run(f"CREATE TABLE src (id integer, {_q(db, name)} numeric(5,0))")
    db.run("INSERT INTO src VALUES (1, 7)")
    schemas = settings.pipelines_dir / "shop" / "schemas"
    schemas.mkdir(parents=True)
    (schemas / "src.json").write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"id": {"type": "integer"}, name: {"type": "integer"}},
            }
        )
    )
    src = DatabaseSource(
        id="r",
        jdbc_url=db.url,
        user_secret_ref=SECRET,
        table_name="src",
        schema_ref="schemas/src.json",
    )
    ctx = exec_context(spark, settings, app="shop")
    df = read_source(src, ctx)
    assert df.dtypes == [("id", "bigint"), (name, "bigint")]
    assert [tuple(r) for r in df.collect()] == [(1, 7)]
    _kept(db)


def test_a_source_table_name_longer_than_63_bytes_is_refused(spark, settings, db):
    """PostgreSQL would read whichever table has the name's first 63 bytes."""
    if not db.pg:
        pytest.skip("PostgreSQL's limit")
    db.run(f"CREATE TABLE {'t' * 63} (id integer)", f"INSERT INTO {'t' * 63} VALUES (1)")
    src = DatabaseSource(id="r", jdbc_url=db.url, user_secret_ref=SECRET, table_name="t" * 64)
    with pytest.raises(SourceError, match="64 bytes long in UTF-8; PostgreSQL keeps only"):
        read_source(src, exec_context(spark, settings, app="shop"))
