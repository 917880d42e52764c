"""`database` targets on real PostgreSQL and MariaDB servers: every mode's rows, atomic
failures (the reporting table exactly as before, no staging table left), idempotent re-runs,
and credentials that never reach an error or the run's outcome."""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass

import pytest

from datahub_assets.demo.local_servers import create_database
from datahub_assets.execute import jdbc
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.execute.writers.database import DatabaseTargetError, write_database
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import DatabaseTarget, TableRef
from datahub_resources.iceberg import load_catalog
from tests.conftest import APP_USER_PASSWORD
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

SECRET = "SHOP_TEST_REPORTING_DB"
REF = TableRef(app="shop", layer="service", table="orders_export")
SCHEMA = "id int, name string, amount double"


@dataclass
class Db:
    """One fresh database on a test server, queried independently of the writer (PostgreSQL
    as the trust superuser `datahub`, MariaDB as root)."""

    kind: str
    server: object
    name: str

    @property
    def pg(self) -> bool:
        return self.kind == "postgres"

    @property
    def url(self) -> str:
        return self.server.jdbc_url(self.name)

    def qualified(self, table: str) -> str:
        # PostgreSQL targets written schema-qualified, MariaDB ones bare (database from the URL)
        return f"public.{table}" if self.pg else table

    def _connect(self):
        if self.pg:
            import psycopg

            return psycopg.connect(
                host="127.0.0.1",
                port=self.server.port,
                user="datahub",
                dbname=self.name,
                autocommit=True,
            )
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.server.port,
            user="root",
            database=self.name,
            autocommit=True,
        )

    def run(self, *statements: str) -> list[tuple]:
        conn = self._connect()
        try:
            cur = conn.cursor()
            for s in statements:
                cur.execute(s)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.close()

    def rows(self, table: str, order: str = "id") -> list[tuple]:
        q = '"' if self.pg else "`"
        return self.run(f"SELECT * FROM {q}{table}{q} ORDER BY {order}")

    def columns(self, table: str) -> list[str]:
        schema = "public" if self.pg else self.name
        return [
            r[0]
            for r in self.run(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'{schema}' AND table_name = '{table}' ORDER BY ordinal_position"
            )
        ]

    def tables(self) -> list[str]:
        schema = "public" if self.pg else self.name
        return sorted(
            r[0]
            for r in self.run(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
            )
        )


@pytest.fixture(params=["postgres", "mariadb"])
def db(request, monkeypatch) -> Db:
    server = request.getfixturevalue(f"{request.param}_server")
    name = f"rep_{uuid.uuid4().hex[:8]}"
    create_database(server, name)
    d = Db(request.param, server, name)
    if not d.pg:  # a password user like PostgreSQL's app_user
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(
                "CREATE USER IF NOT EXISTS 'app_user'@'127.0.0.1' IDENTIFIED BY %s",
                (APP_USER_PASSWORD,),
            )
            cur.execute("GRANT ALL ON *.* TO 'app_user'@'127.0.0.1'")
        conn.close()
    monkeypatch.setenv(SECRET, f"app_user:{APP_USER_PASSWORD}")
    return d


def _target(
    db: Db, mode: str, table: str = "orders", keys: tuple[str, ...] = (), batch: int | None = None
) -> DatabaseTarget:
    return DatabaseTarget(
        jdbc_url=db.url,
        user_secret_ref=SECRET,
        mode=mode,
        keys=keys,
        table_name=db.qualified(table),
        write_batch_size=batch,
    )


def _write(spark, db: Db, rows, mode: str, schema: str = SCHEMA, **kw):
    df = spark.createDataFrame(rows, schema)
    return write_database(df, _target(db, mode, **kw), jdbc.endpoint(db.url, SECRET), REF)


def _no_secret(exc: BaseException) -> str:
    """The whole error as a UI would show it (causes and contexts included), checked clean."""
    text = "".join(traceback.format_exception(exc))
    assert APP_USER_PASSWORD not in text
    assert APP_USER_PASSWORD.split(":")[0] not in text  # no fragment either
    return text


def _orders_table(db: Db, table: str = "orders", extra: str = "") -> None:
    """A hand-made reporting table: primary key, NOT NULL, CHECK, a default, an index."""
    text = "text" if db.pg else "varchar(100)"
    db.run(
        f"CREATE TABLE {table} (id integer PRIMARY KEY, name {text} NOT NULL, "
        f"amount numeric(10,2) CHECK (amount >= 0), note {text} DEFAULT 'kept'{extra})",
        f"CREATE INDEX {table}_name_idx ON {table} (name)",
        f"INSERT INTO {table} (id, name, amount) VALUES (1, 'one', 1), (2, 'two', 2)",
    )


def _staging_left(db: Db) -> list[str]:
    return [t for t in db.tables() if "__dh" in t]


# ----------------------------------------------------------------------------- modes


def test_append_creates_the_table_then_appends(spark, db):
    out = _write(spark, db, [(1, "a", 1.5), (2, "b", 2.5)], "append")
    assert out.kind == "database"
    assert out.rows == 2
    assert out.extra["created"] is True
    assert out.extra["rows_in_table"] == 2
    out = _write(spark, db, [(3, "c", 3.5)], "append")
    assert out.rows == 1
    assert out.extra["rows_in_table"] == 3
    assert out.extra["created"] is False
    assert db.rows("orders") == [(1, "a", 1.5), (2, "b", 2.5), (3, "c", 3.5)]
    assert out.extra["mode"] == "append"
    assert out.extra["database"] == db.name
    assert out.extra["dialect"] == ("postgresql" if db.pg else "mariadb")
    assert _staging_left(db) == []


def test_append_into_a_hand_made_table_matches_columns_by_name(spark, db):
    _orders_table(db)
    # other order and case than the table; `note` is not in the data: its default applies
    df = spark.createDataFrame([(5.0, 3, "three")], "AMOUNT double, Id int, name string")
    write_database(df, _target(db, "append"), jdbc.endpoint(db.url, SECRET), REF)
    assert [r[0] for r in db.rows("orders")] == [1, 2, 3]
    assert db.rows("orders")[2][1:] == ("three", 5, "kept")


def test_overwrite_replaces_the_table_and_is_idempotent(spark, db):
    db.run("CREATE TABLE orders (id integer, legacy integer)", "INSERT INTO orders VALUES (9, 9)")
    rows = [(1, "a", 1.5), (2, "b", None)]
    for _ in range(2):
        out = _write(spark, db, rows, "overwrite")
        assert out.rows == 2
        assert out.extra["rows_in_table"] == 2
        assert db.columns("orders") == ["id", "name", "amount"]  # the schema follows the data
        assert db.rows("orders") == [(1, "a", 1.5), (2, "b", None)]
        assert _staging_left(db) == []


def test_truncate_insert_keeps_the_definition_and_is_idempotent(spark, db):
    _orders_table(db)
    for _ in range(2):
        out = _write(spark, db, [(7, "seven", 7.25), (8, "eight", 8.0)], "truncateInsert")
        assert out.rows == 2
        assert out.extra["rows_in_table"] == 2
        got = db.rows("orders")
        assert [(r[0], r[1], float(r[2]), r[3]) for r in got] == [
            (7, "seven", 7.25, "kept"),
            (8, "eight", 8.0, "kept"),
        ]
        assert db.columns("orders") == ["id", "name", "amount", "note"]
        assert _staging_left(db) == []
    # the index and the primary key are still there
    if db.pg:
        idx = db.run("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'")
    else:
        idx = db.run(
            "SELECT DISTINCT index_name FROM information_schema.statistics "
            f"WHERE table_schema = '{db.name}' AND table_name = 'orders'"
        )
    names = {r[0] for r in idx}
    assert "orders_name_idx" in names
    assert len(names) == 2


def test_merge_upserts_on_keys_and_is_idempotent(spark, db):
    _orders_table(db)
    for _ in range(2):
        out = _write(spark, db, [(2, "TWO", 20.0), (3, "three", 3.0)], "merge", keys=("id",))
        assert out.rows == 2
        assert out.extra["rows_in_table"] == 3
        got = [(r[0], r[1], float(r[2]), r[3]) for r in db.rows("orders")]
        assert got == [(1, "one", 1.0, "kept"), (2, "TWO", 20.0, "kept"), (3, "three", 3.0, "kept")]
        assert _staging_left(db) == []


def test_merge_creates_a_missing_table_with_a_primary_key(spark, db):
    schema = "code string, region string, total double"
    _write(
        spark,
        db,
        [("a", "eu", 1.0), ("b", "us", 2.0)],
        "merge",
        schema,
        table="totals",
        keys=("code", "region"),
    )
    out = _write(
        spark,
        db,
        [("a", "eu", 10.0), ("a", "us", 5.0)],
        "merge",
        schema,
        table="totals",
        keys=("code", "region"),
    )
    assert out.extra["created"] is False
    assert out.extra["rows_in_table"] == 3
    assert db.rows("totals", order="code, region") == [
        ("a", "eu", 10.0),
        ("a", "us", 5.0),
        ("b", "us", 2.0),
    ]
    if db.pg:
        pk = db.run(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
            "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = "
            "'totals'::regclass AND i.indisprimary"
        )
    else:
        pk = db.run(
            "SELECT column_name FROM information_schema.statistics WHERE "
            f"table_schema = '{db.name}' AND table_name = 'totals' "
            "AND index_name = 'PRIMARY'"
        )
    assert sorted(r[0] for r in pk) == ["code", "region"]


def test_write_batch_size_is_honoured(spark, db):
    rows = [(i, f"n{i}", float(i)) for i in range(25)]
    out = _write(spark, db, rows, "append", batch=7)
    assert out.rows == 25
    assert len(db.rows("orders")) == 25


# ----------------------------------------------------------------------------- failures


def _unchanged(db: Db, before: list[tuple]) -> None:
    assert db.rows("orders") == before
    assert _staging_left(db) == []


@pytest.mark.parametrize("mode", ["merge", "truncateInsert", "append"])
def test_a_constraint_violation_leaves_the_table_exactly_as_before(spark, db, mode):
    _orders_table(db)
    before = db.rows("orders")
    # the other rows go in fine (row 2 is an update, except for append), row 4 breaks the
    # CHECK (amount >= 0)
    rows = [(2 if mode != "append" else 5, "TWO", 20.0), (3, "three", 3.0), (4, "four", -1.0)]
    with pytest.raises(DatabaseTargetError, match="(?i)check|constraint") as err:
        _write(spark, db, rows, mode, keys=("id",) if mode == "merge" else ())
    _no_secret(err.value)
    _unchanged(db, before)


def test_a_null_into_not_null_fails_the_merge_and_changes_nothing(spark, db):
    _orders_table(db)
    before = db.rows("orders")
    with pytest.raises(DatabaseTargetError, match="(?i)null"):
        _write(spark, db, [(1, "ONE", 1.0), (5, None, 5.0)], "merge", keys=("id",))
    _unchanged(db, before)


def test_a_type_error_fails_and_changes_nothing(spark, db):
    db.run(
        "CREATE TABLE orders (id integer PRIMARY KEY, name varchar(100), amount integer)",
        "INSERT INTO orders VALUES (1, 'one', 1)",
    )
    before = db.rows("orders")
    # a string into an integer column: PostgreSQL refuses text -> integer, MariaDB (strict)
    # refuses the value
    with pytest.raises(DatabaseTargetError):
        _write(
            spark,
            db,
            [(1, "x", "not a number")],
            "merge",
            "id int, name string, amount string",
            keys=("id",),
        )
    _unchanged(db, before)


def test_merge_without_a_unique_key_says_what_to_add(spark, db):
    db.run(
        "CREATE TABLE orders (id integer, name varchar(100), amount double precision)",
        "INSERT INTO orders VALUES (1, 'one', 1)",
    )
    before = db.rows("orders")
    with pytest.raises(DatabaseTargetError, match="no primary key or unique constraint") as err:
        _write(spark, db, [(1, "x", 2.0)], "merge", keys=("id",))
    assert "ADD CONSTRAINT" in str(err.value) if db.pg else "ADD UNIQUE KEY" in str(err.value)
    _unchanged(db, before)


def test_duplicate_keys_in_the_data_fail_the_merge(spark, db):
    _orders_table(db)
    before = db.rows("orders")
    with pytest.raises(DatabaseTargetError, match="occur more than once") as err:
        _write(spark, db, [(2, "a", 1.0), (2, "b", 2.0), (3, "c", 3.0)], "merge", keys=("id",))
    assert "id=2 (2 rows)" in str(err.value)
    assert "<deduplicate" in str(err.value)
    _unchanged(db, before)


def test_columns_the_table_lacks_are_an_error_not_dropped(spark, db):
    _orders_table(db)
    before = db.rows("orders")
    df = spark.createDataFrame([(3, "c", 1.0, "x")], SCHEMA + ", surprise string")
    with pytest.raises(DatabaseTargetError, match="lacks: surprise"):
        write_database(df, _target(db, "truncateInsert"), jdbc.endpoint(db.url, SECRET), REF)
    _unchanged(db, before)


def test_overwrite_failing_leaves_the_old_table(spark, db):
    _orders_table(db)
    before = db.rows("orders")
    if not db.pg:
        pytest.skip("MariaDB's overwrite is one RENAME TABLE statement: nothing to provoke")
    # PostgreSQL refuses to drop a table a view depends on (no CASCADE): the DROP + RENAME
    # transaction rolls back
    db.run("CREATE VIEW orders_v AS SELECT id FROM orders")
    with pytest.raises(DatabaseTargetError, match="depend"):
        _write(spark, db, [(1, "a", 1.0)], "overwrite")
    _unchanged(db, before)


def test_a_wrong_password_gives_an_error_without_it(spark, db, monkeypatch):
    wrong = "Wr0ng-Pa55word-xyz"
    monkeypatch.setenv(SECRET, f"app_user:{wrong}")
    with pytest.raises(DatabaseTargetError) as err:
        _write(spark, db, [(1, "a", 1.0)], "append")
    text = "".join(traceback.format_exception(err.value))
    assert wrong not in text
    assert "app_user" in text  # says who could not log in
    assert db.tables() == []


# ----------------------------------------------------------------------------- whole runs

PIPELINE = """<pipeline id="orders" version="1.0.0" layer="gold">
  <sources><csv id="orders" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets>
    <table table="orders" source="orders" mode="overwrite"/>
    <database id="orders_report" connection="reporting" source="orders" mode="merge"
              keys="order_id" writeBatchSize="2">
      <table name="{table}"/>
    </database>
  </targets>
</pipeline>
"""


def _project(settings, db: Db, csv: str):
    app = settings.pipelines_dir / "shop"
    (app / "gold").mkdir(parents=True, exist_ok=True)
    (app / "app.yaml").write_text(
        f'connections:\n  reporting: {{jdbcUrl: "{db.url}", userSecretRef: {SECRET}}}\n'
    )
    (app / "gold" / "orders.xml").write_text(PIPELINE.format(table=db.qualified("report")))
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "a.csv").write_text(csv)
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _snapshot(catalog) -> int:
    return catalog.load_table(("shop_gold", "orders")).current_snapshot().snapshot_id


def test_a_run_exports_and_a_failing_export_rolls_the_iceberg_table_back(spark, settings, db):
    spec = _project(settings, db, "order_id,amount\n1,5.0\n2,7.5\n3,1.0\n")
    catalog = load_catalog(settings)
    ctx = exec_context(spark, settings, app="shop", run_id="run1")
    outcomes = run_pipeline(spec, ctx, catalog)
    by_kind = {o.kind: o for o in outcomes}
    assert by_kind["database"].rows == 3
    assert by_kind["database"].ref.table == "orders_report"
    assert by_kind["database"].extra["rows_in_table"] == 3
    assert APP_USER_PASSWORD not in repr(outcomes)
    assert db.rows("report", order="order_id") == [(1, 5.0), (2, 7.5), (3, 1.0)]
    first = _snapshot(catalog)

    # the reporting table refuses the next run's rows: the export fails, Iceberg rolls back
    check = "ALTER TABLE report ADD CONSTRAINT amount_small CHECK (amount < 100)"
    db.run(check)
    spec = _project(settings, db, "order_id,amount\n1,6.0\n4,500.0\n")
    ctx = exec_context(spark, settings, app="shop", run_id="run2")
    with pytest.raises(PipelineRunError) as err:
        run_pipeline(spec, ctx, catalog)
    text = _no_secret(err.value)
    line = spec.targets[1].target.loc.line  # where the <database> element is
    assert str(err.value).startswith(f"{spec.file}:{line}: database export to ")
    assert "amount_small" in text
    assert _snapshot(catalog) == first
    rows = catalog.load_table("shop_gold.orders").scan().to_arrow().to_pylist()
    assert sorted((r["order_id"], r["amount"]) for r in rows) == [(1, 5.0), (2, 7.5), (3, 1.0)]
    assert db.rows("report", order="order_id") == [(1, 5.0), (2, 7.5), (3, 1.0)]
    assert _staging_left(db) == []


@pytest.mark.usefixtures("spark")
def test_a_dagster_run_shows_no_credentials(settings, db):
    """Everything Dagster records of a good and a failing run (events, metadata, the error
    and its causes) is free of the password."""
    import dagster as dg
    from dagster._serdes import serialize_value

    from datahub_assets.orchestration.project import build_assets
    from datahub_resources.deployment import resources

    _project(settings, db, "order_id,amount\n1,5.0\n")
    with dg.instance_for_test() as instance:
        good = dg.materialize(
            build_assets(load_project(settings.pipelines_dir)),
            resources=resources(),
            instance=instance,
        )
        (mat,) = [
            m
            for m in good.asset_materializations_for_node("shop__gold__orders__2_targets")
            if m.asset_key.path[-1] == "orders_report"
        ]
        assert mat.metadata["datahub/rows_in_table"].value == 1
        assert mat.metadata["datahub/mode"].value == "merge"
        db.run("ALTER TABLE report ADD CONSTRAINT amount_small CHECK (amount < 100)")
        _project(settings, db, "order_id,amount\n2,500.0\n")
        bad = dg.materialize(
            build_assets(load_project(settings.pipelines_dir)),
            resources=resources(),
            instance=instance,
            raise_on_error=False,
        )
        assert not bad.success
        for run in (good, bad):
            text = "".join(serialize_value(e) for e in instance.all_logs(run.run_id))
            assert APP_USER_PASSWORD not in text
            assert "s3cr3t-P@ss" not in text
        assert "amount_small" in text  # the failure is reported, only without the secret
    assert db.rows("report", order="order_id") == [(1, 5.0)]


def test_a_non_transactional_mariadb_table_is_refused(spark, db):
    if db.pg:
        pytest.skip("MariaDB engines only")
    db.run(
        "CREATE TABLE orders (id integer PRIMARY KEY, name varchar(100), amount double) "
        "ENGINE=MyISAM",
        "INSERT INTO orders VALUES (1, 'one', 1)",
    )
    with pytest.raises(DatabaseTargetError, match="MyISAM engine, which cannot roll"):
        _write(spark, db, [(2, "two", 2.0)], "append")
    _unchanged(db, [(1, "one", 1.0)])
