"""Iceberg writes (Spark stages Parquet, pyiceberg commits) and reads, on a private catalog."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datahub_assets.iceberg.read import TableNotFoundError, read_table
from datahub_assets.iceberg.schema_evolution import SchemaMismatchError
from datahub_assets.iceberg.table import (
    abort,
    commit,
    rollback,
    stage_write,
    write_table,
)
from datahub_assets.spec.models import TableRef, TableTarget
from tests.support.iceberg import frame_rows

pytestmark = pytest.mark.spark

REF = TableRef(app="shop", layer="silver", table="orders")


def _rows(spark, catalog, ref=REF, snapshot_id=None, order="id"):
    return frame_rows(spark, catalog, ref, snapshot_id=snapshot_id, order=order)


def _table_files(settings) -> list[str]:
    root = str(settings.home / "warehouse")
    return sorted(
        str(Path(d) / f)
        for d, _, fs in os.walk(root)
        for f in fs
        if f.endswith(".parquet") and "/data/" in d
    )


def test_append_twice_makes_two_snapshots(spark, catalog):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string")
    first = write_table(spark, catalog, REF, df, TableTarget(table="orders"), "r1")
    second = write_table(spark, catalog, REF, df, TableTarget(table="orders"), "r2")
    assert first.rows == 2
    assert second.rows == 2
    assert first.previous_snapshot_id is None
    assert second.previous_snapshot_id == first.snapshot_id
    assert second.schema == [("id", "int", True), ("name", "string", True)]
    table = catalog.load_table(REF.identifier)
    assert len(table.snapshots()) == 2
    assert table.current_snapshot().summary["datahub.run-id"] == "r2"
    assert _rows(spark, catalog) == [(1, "a"), (1, "a"), (2, "b"), (2, "b")]
    assert _rows(spark, catalog, snapshot_id=first.snapshot_id) == [(1, "a"), (2, "b")]
    props = table.properties
    assert "schema.name-mapping.default" in props


def test_overwrite_replaces_everything(spark, catalog):
    target = TableTarget(table="orders", mode="overwrite")
    schema = "id int, name string"
    write_table(
        spark, catalog, REF, spark.createDataFrame([(1, "a"), (2, "b")], schema), target, "r1"
    )
    result = write_table(
        spark, catalog, REF, spark.createDataFrame([(3, "c")], schema), target, "r2"
    )
    assert result.files_removed >= 1
    assert result.rows == 1
    assert _rows(spark, catalog) == [(3, "c")]


def test_overwrite_with_partition_by_replaces_only_present_partitions(spark, catalog):
    target = TableTarget(table="orders", mode="overwrite", partition_by="region")
    long_region = "r" * 5000  # too long for a directory name and for Parquet statistics
    first = spark.createDataFrame(
        [(1, "EU"), (2, "EU"), (3, "US"), (4, long_region), (5, None)], "id int, region string"
    )
    write_table(spark, catalog, REF, first, target, "r1")
    table = catalog.load_table(REF.identifier)
    assert [f.name for f in table.spec().fields] == ["region"]
    before = {f.file.partition[0]: f.file.file_path for f in table.scan().plan_files()}
    second = spark.createDataFrame([(10, "EU"), (11, long_region)], "id int, region string")
    result = write_table(spark, catalog, REF, second, target, "r2")
    assert result.files_removed >= 2
    assert result.files_added == 2
    kept = {f.file.file_path for f in catalog.load_table(REF.identifier).scan().plan_files()}
    assert before["US"] in kept
    assert before[None] in kept
    assert _rows(spark, catalog) == [(3, "US"), (5, None), (10, "EU"), (11, long_region)]
    table = catalog.load_table(REF.identifier)
    partitions = {f.partition[0] for f in (t.file for t in table.scan().plan_files())}
    assert partitions == {"US", None, "EU", long_region}
    # pyiceberg prunes by the inferred partition values
    assert [r["id"] for r in table.scan(row_filter="region = 'EU'").to_arrow().to_pylist()] == [10]


def test_merge_upserts_and_leaves_untouched_files(spark, catalog):
    target = TableTarget(table="orders", mode="merge", keys="id")
    write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string").coalesce(1),
        target,
        "r1",
    )
    write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(3, "c"), (4, "d")], "id int, name string").coalesce(1),
        target,
        "r2",
    )
    before = {f.file.file_path for f in catalog.load_table(REF.identifier).scan().plan_files()}
    assert len(before) == 2
    incoming = spark.createDataFrame(
        [(3, "c-old"), (3, "C"), (5, "e")], "id int, name string"
    ).coalesce(1)
    result = write_table(spark, catalog, REF, incoming, target, "r3")
    assert _rows(spark, catalog) == [(1, "a"), (2, "b"), (3, "C"), (4, "d"), (5, "e")]
    assert result.files_removed == 1
    after = {f.file.file_path for f in catalog.load_table(REF.identifier).scan().plan_files()}
    untouched = before & after
    assert len(untouched) == 1  # the file holding ids 1, 2 was not rewritten
    summary = catalog.load_table(REF.identifier).current_snapshot().summary
    assert summary["deleted-data-files"] == "1"
    assert summary["deleted-records"] == "2"
    assert summary["added-records"] == "3"


def test_schema_evolution_adds_column_old_rows_null(spark, catalog):
    write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(1, 1.5)], "id int, amount float"),
        TableTarget(table="orders"),
        "r1",
    )
    newer = spark.createDataFrame([(2, 2.5, "x")], "id long, amount double, note string")
    result = write_table(spark, catalog, REF, newer, TableTarget(table="orders"), "r2")
    assert result.schema == [
        ("id", "long", True),
        ("amount", "double", True),
        ("note", "string", True),
    ]
    assert _rows(spark, catalog) == [(1, 1.5, None), (2, 2.5, "x")]
    # a frame without the (nullable) new column writes nulls
    write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(3, 0.5)], "id int, amount double"),
        TableTarget(table="orders"),
        "r3",
    )
    assert _rows(spark, catalog)[-1] == (3, 0.5, None)


def test_incompatible_type_change_is_an_error(spark, catalog):
    write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(1, "a")], "id int, name string"),
        TableTarget(table="orders"),
        "r1",
    )
    bad = spark.createDataFrame([("1", "a")], "id string, name string")
    with pytest.raises(
        SchemaMismatchError,
        match=r"column id cannot change type from int to "
        r"string",
    ):
        write_table(spark, catalog, REF, bad, TableTarget(table="orders"), "r2")


def test_failing_frame_leaves_table_and_storage_unchanged(spark, catalog, settings):
    first = write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string"),
        TableTarget(table="orders"),
        "r1",
    )
    files_before = _table_files(settings)
    bad = spark.range(0, 1000, 1, 4).select(
        F.col("id").cast("int").alias("id"),
        F.when(F.col("id") == 977, F.raise_error(F.lit("boom")))
        .otherwise(F.lit("x"))
        .alias("name"),
    )
    with pytest.raises(Exception, match="boom"):
        write_table(spark, catalog, REF, bad, TableTarget(table="orders", mode="overwrite"), "r2")
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == first.snapshot_id
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]
    assert _table_files(settings) == files_before
    data_dir = table.location().removeprefix("file://") + "/data"
    assert len(list(Path(data_dir).iterdir())) == 1  # only the first commit's folder


def test_failed_first_write_creates_no_table(spark, catalog):
    bad = spark.range(3).select(F.raise_error(F.lit("boom")).cast("int").alias("id"))
    with pytest.raises(Exception, match="boom"):
        write_table(spark, catalog, REF, bad, TableTarget(table="orders"), "r1")
    assert not catalog.table_exists(REF.identifier)


def test_abort_and_rollback(spark, catalog, settings):
    df = spark.createDataFrame([(1, "a")], "id int, name string")
    first = write_table(spark, catalog, REF, df, TableTarget(table="orders"), "r1")
    staged = stage_write(spark, catalog, REF, df, TableTarget(table="orders"), "r2")
    assert len(_table_files(settings)) == 2
    abort(staged)
    assert len(_table_files(settings)) == 1
    second = commit(stage_write(spark, catalog, REF, df, TableTarget(table="orders"), "r3"))
    assert _rows(spark, catalog) == [(1, "a"), (1, "a")]
    rollback(catalog, REF, second.previous_snapshot_id)
    assert catalog.load_table(REF.identifier).current_snapshot().snapshot_id == first.snapshot_id
    assert _rows(spark, catalog) == [(1, "a")]


def test_types_survive_round_trip(spark, catalog):
    ts = datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    ntz = datetime(2024, 3, 1, 23, 59, 59, 999999)
    df = spark.createDataFrame(
        [
            (
                1,
                ts,
                ntz,
                date(1999, 12, 31),
                Decimal("12345678.90"),
                Decimal("1.000000000000000001"),
                b"\x00\xff",
                True,
                {"k": 1},
                [1, 2],
                ("x", 2),
            )
        ],
        "id int, ts timestamp, ntz timestamp_ntz, d date, amount decimal(10,2), "
        "big decimal(38,18), raw binary, flag boolean, m map<string,int>, xs array<int>, "
        "s struct<a:string,b:int>",
    )
    result = write_table(spark, catalog, REF, df, TableTarget(table="orders"), "r1")
    types = {name: t for name, t, _ in result.schema}
    assert types["ts"] == "timestamptz"
    assert types["ntz"] == "timestamp"
    assert types["amount"] == "decimal(10, 2)"
    assert types["big"] == "decimal(38, 18)"
    row = read_table(spark, catalog, REF).collect()[0]
    assert row.ts.replace(tzinfo=UTC) == ts or row.ts.astimezone(UTC) == ts
    assert row.ntz == ntz
    assert row.d == date(1999, 12, 31)
    assert row.amount == Decimal("12345678.90")
    assert row.big == Decimal("1.000000000000000001")
    assert bytes(row.raw) == b"\x00\xff"
    assert row.flag is True
    assert row.m == {"k": 1}
    assert row.xs == [1, 2]
    assert (row.s.a, row.s.b) == ("x", 2)
    # pyiceberg reads Spark's files too (name mapping, micros timestamps)
    scan = catalog.load_table(REF.identifier).scan(selected_fields=("ts", "amount"))
    arrow = scan.to_arrow().to_pylist()[0]
    assert arrow["ts"] == ts
    assert arrow["amount"] == Decimal("12345678.90")


def test_empty_and_missing_tables(spark, catalog):
    with pytest.raises(TableNotFoundError, match="table shop_silver.orders does not exist yet"):
        read_table(spark, catalog, REF)
    empty = spark.createDataFrame([], "id int, name string")
    write_table(spark, catalog, REF, empty, TableTarget(table="orders"), "r1")
    df = read_table(spark, catalog, REF)
    assert df.columns == ["id", "name"]
    assert df.count() == 0
