"""What one DuckDB pipeline step no longer does per run (issue #12, per-asset overhead), and
that the shortcuts give the same answers as the long way: a table write without checks is ONE
catalog commit (no audit branch), Python UDFs are registered only when a query calls them,
a frame's schema is looked up once, a read view's schema is registered without DESCRIBE."""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any, cast

import pytest
from pydantic import TypeAdapter
from sqlglot import exp

from datahub_assets.engines.api import F, T, use
from datahub_assets.engines.duckdb import spark_sql as DX
from datahub_assets.engines.duckdb.session import DatahubDuckDBDataFrame, duckdb_engine
from datahub_assets.engines.duckdb.write import read_files
from datahub_assets.iceberg.schema_evolution import align
from datahub_assets.iceberg.tables import PipelineRunError, TableWrite, write_tables
from datahub_assets.spec.models import Check, TableRef, TableTarget
from datahub_resources.iceberg import load_catalog, spark_to_iceberg_schema
from tests.support.iceberg import table_rows

LOG = logging.getLogger("test")
REF = TableRef(app="shop", layer="silver", table="items")
CHECK = TypeAdapter(Check)


@pytest.fixture
def engine(settings):
    e = duckdb_engine(settings)
    with use(e):
        yield e
    e.connection.close()


def _derived(df) -> Any:
    """The schema as sqlframe derives it (DESCRIBE of a temp view), never the cached one."""
    return cast(Any, super(DatahubDuckDBDataFrame, df)).schema


def _frame(engine, rows):
    return engine.session.createDataFrame(rows, "id bigint, name string")


def _write(engine, catalog, rows, checks=(), run="r"):
    return write_tables(
        engine.session,
        catalog,
        [
            TableWrite(
                ref=REF,
                df=_frame(engine, rows),
                target=TableTarget(table="items", mode="append"),
                where="items.xml:1",
                checks=checks,
            )
        ],
        run_id=run,
        log=LOG,
    )


def _commits(catalog) -> int:
    """Catalog commits of the table so far (one metadata file each)."""
    return len(catalog.load_table((REF.namespace, REF.table)).metadata.metadata_log)


def _rows(catalog):
    return table_rows(catalog, REF)


def test_write_without_checks_is_one_commit_and_with_checks_still_audited(engine, settings):
    catalog = load_catalog(settings)
    _write(engine, catalog, [(1, "a")], run="r1")  # creates the table: audited
    before = _commits(catalog)
    (outcome,) = _write(engine, catalog, [(2, "b")], run="r2")
    table = catalog.load_table((REF.namespace, REF.table))
    assert _commits(catalog) == before + 1
    assert set(table.metadata.refs) == {"main"}
    current = table.current_snapshot()
    assert current is not None
    assert current.summary is not None
    assert current.snapshot_id == outcome.snapshot_id
    assert (outcome.rows, outcome.table_rows) == (1, 2)
    assert current.summary["datahub.run-id"] == "r2"
    assert _rows(catalog) == [(1, "a"), (2, "b")]

    check = CHECK.validate_python({"kind": "notNull", "columns": "name", "name": "nn"})
    before = _commits(catalog)
    (checked,) = _write(engine, catalog, [(3, "c")], checks=(check,), run="r3")
    assert [c.passed for c in checked.checks] == [True]
    assert _commits(catalog) == before + 3  # audit snapshot, audit branch, publish
    assert _rows(catalog) == [(1, "a"), (2, "b"), (3, "c")]


def test_direct_write_fails_whole_when_another_run_committed_first(engine, settings, monkeypatch):
    from datahub_assets.iceberg import tables

    catalog = load_catalog(settings)
    _write(engine, catalog, [(1, "a")], run="r1")
    original = tables.commit_tables

    def racing(cat, changes):
        if not racing.done:  # another run appends between staging and the commit
            racing.done = True
            catalog.load_table((REF.namespace, REF.table)).append(
                _frame(engine, [(9, "z")]).toArrow()
            )
        return original(cat, changes)

    racing.done = False
    monkeypatch.setattr(tables, "commit_tables", racing)
    with pytest.raises(PipelineRunError, match="another run published to these tables first"):
        _write(engine, catalog, [(2, "b")], run="r2")
    assert _rows(catalog) == [(1, "a"), (9, "z")]


def _udfs(engine) -> set[str]:
    rows = engine.connection.execute(
        "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE '__datahub_%'"
    ).fetchall()
    return {r[0] for r in rows}


def test_udfs_registered_only_when_a_query_calls_them(engine):
    df = _frame(engine, [(1, "abc"), (2, None)])
    plain = df.withColumn("x", DX.expr("id * 2 + 1", df))
    assert [r["x"] for r in plain.orderBy("id").collect()] == [3, 5]
    assert _udfs(engine) == set()
    hashed = df.withColumn("h", DX.expr("sha2(name, 512)", df))
    assert _udfs(engine) == {"__datahub_sha512"}
    got = [r["h"] for r in hashed.orderBy("id").collect()]
    assert got == [hashlib.sha512(b"abc").hexdigest(), None]
    query = DX.spark_query("SELECT crc32(name) AS c FROM t", {"t": df})
    assert not isinstance(query, str)
    assert _udfs(engine) == {"__datahub_sha512", "__datahub_crc32"}


def test_schema_cached_per_frame_and_not_inherited(engine):
    df = _frame(engine, [(1, "a")])
    first = df.schema
    assert first == _derived(df)
    first.fields.append(T.StructField("junk", T.StringType()))  # the caller's copy only
    assert df.schema == _derived(df)
    wider = df.withColumn("amount", F.lit(Decimal("1.50")))
    assert [f.name for f in wider.schema.fields] == ["id", "name", "amount"]
    assert wider.schema == _derived(wider)


def test_read_view_schema_without_describe_equals_sqlframes(engine, tmp_path):
    schema = T.StructType(
        [
            T.StructField("i", T.IntegerType()),
            T.StructField("l", T.LongType()),
            T.StructField("s", T.StringType()),
            T.StructField("d", T.DoubleType()),
            T.StructField("f", T.FloatType()),
            T.StructField("dec", T.DecimalType(18, 4)),
            T.StructField("dt", T.DateType()),
            T.StructField("ts", T.TimestampType()),
            T.StructField("tsn", T.TimestampNTZType()),
            T.StructField("b", T.BooleanType()),
            T.StructField("bin", T.BinaryType()),
            T.StructField("ti", T.ByteType()),
            T.StructField("sm", T.ShortType()),
            T.StructField("arr", T.ArrayType(T.IntegerType())),
            T.StructField("m", T.MapType(T.StringType(), T.LongType())),
            T.StructField("st", T.StructType([T.StructField("a", T.IntegerType())])),
        ]
    )
    path = str(tmp_path / "one.parquet")
    engine.connection.execute(f"COPY (SELECT 1::BIGINT AS l, 'x' AS s) TO '{path}'")
    for paths, file_column in (([path], "__file"), ([], None)):
        view = read_files(engine.session, paths, schema, file_column)
        assert view.schema == _derived(view)
        assert view.select("*").schema == view.schema  # a frame sqlframe resolves itself
        # the catalog entry sqlframe makes itself, by its lookup, for a copy of the view
        catalog = engine.session.catalog
        name = view.expression.args["from_"].this.name
        engine.connection.execute(f'CREATE VIEW "{name}_copy" AS SELECT * FROM "{name}"')
        engine.session.table(f"{name}_copy")
        registered = dict(catalog._schema.find(catalog.ensure_table(name)))
        derived = dict(catalog._schema.find(catalog.ensure_table(f"{name}_copy")))
        assert registered.keys() == derived.keys()
        for key, text in registered.items():
            built = exp.DataType.build(text, dialect="spark")
            assert built == exp.DataType.build(derived[key], dialect="spark"), key
    rows = read_files(engine.session, [path], schema).select("l", "s", "i").collect()
    assert [(r["l"], r["s"], r["i"]) for r in rows] == [(1, "x", None)]


def test_align_keeps_a_matching_frame_and_projects_otherwise(engine):
    df = _frame(engine, [(1, "a")])
    table = spark_to_iceberg_schema(df.schema)
    assert align(df, table, "t") is df
    narrow = engine.session.createDataFrame([(1, "a")], "id int, name string")
    widened = align(narrow, table, "t")
    assert widened is not narrow
    assert [(f.name, type(f.dataType).__name__) for f in widened.schema.fields] == [
        ("id", "LongType"),
        ("name", "StringType"),
    ]
