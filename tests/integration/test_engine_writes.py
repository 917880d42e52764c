"""The write path and Iceberg reads on both engines: the same frame written by Spark and by
DuckDB gives the same Iceberg table (rows, Iceberg types, snapshots, summaries); tables
written by one engine are appended and read by the other; merge, write-audit-publish,
multi-table commits with quarantine, required columns, schema evolution and CSV exports
behave alike."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import logging
import os
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter
from pyiceberg.schema import Schema
from pyiceberg.table import TableProperties
from pyiceberg.types import LongType, NestedField, StringType

from datahub_assets.engines.api import T, use
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.engines.spark.session import spark_engine
from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.iceberg.read import read_table
from datahub_assets.iceberg.tables import (
    ChecksFailed,
    PipelineRunError,
    TableWrite,
    read_written,
    write_tables,
)
from datahub_assets.spec.models import Check, CsvTarget, TableRef, TableTarget
from datahub_resources.iceberg import load_catalog

pytestmark = pytest.mark.spark

LOG = logging.getLogger("test")
CHECK = TypeAdapter(Check)
UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
ENGINES = ("spark", "duckdb")

FIELDS = [
    ("id", "LongType", True),
    ("name", "StringType", True),
    ("amount", ("DecimalType", 12, 3), True),
    ("price", "DoubleType", True),
    ("qty", "IntegerType", True),
    ("at", "TimestampType", True),
    ("local", "TimestampNTZType", True),
    ("day", "DateType", True),
    ("region", "StringType", True),
]
ROWS_A = [
    (1, "Zoë 😀", Decimal("1.230"), 0.1, 3, dt.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
     dt.datetime(2024, 1, 1, 12, 0, 0, 5), dt.date(2024, 2, 29), "EU"),
    (2, None, None, None, None, None, None, None, "US"),
    (3, "", Decimal("-99999.999"), -1e300, -7, dt.datetime(2024, 6, 1, 0, 0, tzinfo=PLUS2),
     dt.datetime(1999, 12, 31, 23, 59, 59), dt.date(1970, 1, 1), None),
]  # fmt: skip
ROWS_B = [
    (3, "three again", Decimal("3.000"), 3.5, 30, dt.datetime(2024, 3, 3, tzinfo=UTC),
     dt.datetime(2024, 3, 3), dt.date(2024, 3, 3), None),
    (4, "naïve \"quoted\", comma", Decimal("4.400"), float("inf"), 40,
     dt.datetime(2024, 4, 4, 4, 4, tzinfo=PLUS2), None, None, "EU"),
    (4, "four last", Decimal("4.500"), 4.5, 41, None, None, None, "EU"),
]  # fmt: skip


def _type(spec):
    if isinstance(spec, tuple):
        return getattr(T, spec[0])(*spec[1:])
    return getattr(T, spec)()


def _schema(fields=FIELDS):
    return T.StructType([T.StructField(n, _type(t), nullable) for n, t, nullable in fields])


def _frame(session, rows, fields=FIELDS):
    return session.createDataFrame(rows, _schema(fields))


@pytest.fixture
def engines(request, settings):
    """name -> Engine: Spark over the shared server, DuckDB over a new connection."""

    def make(name):
        if name == "spark":
            return spark_engine(request.getfixturevalue("spark"))
        return duckdb_engine(settings)

    return make


def _ref(table: str) -> TableRef:
    return TableRef(app="shop", layer="silver", table=table)


def _write(engine, catalog, ref, rows, target, fields=FIELDS, **kw):
    with use(engine):
        df = _frame(engine.session, rows, fields)
        return write_tables(
            engine.session,
            catalog,
            [TableWrite(ref=ref, df=df, target=target, where=f"{ref.table}.xml:1", **kw)],
            run_id=f"run-{engine.name}",
            log=LOG,
        )


def _iceberg(catalog, ref):
    table = catalog.load_table((ref.namespace, ref.table))
    arrow = table.scan().to_arrow()
    rows = sorted(arrow.to_pylist(), key=lambda r: tuple(repr(v) for v in r.values()))
    return table, rows, arrow.schema, table.schema()


def _summary(snapshot, file_counts: bool = True):
    """The summary fields both engines must agree on; a merge rewrites whole files, so its
    added/deleted records depend on how the rows were spread over files (`file_counts`)."""
    keep = ("operation", "total-records", "datahub.mode")
    if file_counts:
        keep += ("added-records", "deleted-records")
    summary = snapshot.summary
    return {k: summary.get(k) if k != "operation" else summary.operation.value for k in keep}


def _same_tables(catalog, left: TableRef, right: TableRef, file_counts: bool = True) -> None:
    lt, lrows, larrow, lschema = _iceberg(catalog, left)
    rt, rrows, rarrow, rschema = _iceberg(catalog, right)
    assert lrows == rrows
    assert larrow == rarrow
    assert [(f.name, str(f.field_type), f.required) for f in lschema.fields] == [
        (f.name, str(f.field_type), f.required) for f in rschema.fields
    ]
    assert [_summary(s, file_counts) for s in lt.snapshots()] == [
        _summary(s, file_counts) for s in rt.snapshots()
    ]


MODES = {
    "append": TableTarget(table="t", mode="append"),
    "overwrite": TableTarget(table="t", mode="overwrite"),
    "partition_overwrite": TableTarget(table="t", mode="overwrite", partition_by=("region",)),
    "merge": TableTarget(table="t", mode="merge", keys=("id",)),
    "partitioned_merge": TableTarget(
        table="t", mode="merge", keys=("id",), partition_by=("region",)
    ),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_writes_the_same_table_on_both_engines(engines, settings, mode):
    catalog = load_catalog(settings)
    target = MODES[mode]
    first = TableTarget(table="t", mode="append", partition_by=target.partition_by)
    for name in ENGINES:
        engine = engines(name)
        ref = _ref(f"t_{name}")
        _write(engine, catalog, ref, ROWS_A, first)
        outcome = _write(engine, catalog, ref, ROWS_B, target)[0]
        merge = mode.endswith("merge")
        if not merge:  # a merge also rewrites the kept rows of the touched files
            assert outcome.rows == 3
    _same_tables(catalog, _ref("t_spark"), _ref("t_duckdb"), file_counts=not merge)
    _, rows, _, _ = _iceberg(catalog, _ref("t_duckdb"))
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    if mode.endswith("merge"):
        assert sorted(by_id) == [1, 2, 3, 4]
        assert all(len(v) == 1 for v in by_id.values())
        assert by_id[4][0]["name"] == "four last"  # last wins among incoming duplicates
        assert by_id[3][0]["name"] == "three again"
    elif mode == "overwrite":
        assert sorted(by_id) == [3, 4]
    elif mode == "partition_overwrite":
        # EU and null partitions replaced, US (id 2) kept
        assert sorted(r["id"] for r in rows) == [2, 3, 4, 4]
    else:
        assert len(rows) == 6
    # the values themselves: zone-aware timestamps in UTC, decimals exact, unicode kept
    if mode == "append":
        one = by_id[1][0]
        assert one["at"] == dt.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
        assert one["name"] == "Zoë 😀"
        assert by_id[3][0]["at"] == dt.datetime(2024, 5, 31, 22, 0, tzinfo=UTC)
        assert by_id[3][0]["amount"] == Decimal("-99999.999")


def _read_rows(engine, catalog, ref):
    with use(engine):
        arrow = read_table(engine.session, catalog, ref).toArrow()
    return arrow.schema, sorted(arrow.to_pylist(), key=lambda r: tuple(repr(v) for v in r.values()))


def test_tables_written_by_one_engine_are_appended_and_read_by_the_other(engines, settings):
    catalog = load_catalog(settings)
    spark, duck = engines("spark"), engines("duckdb")
    append = TableTarget(table="t", mode="append", partition_by=("region",))
    _write(duck, catalog, _ref("d_then_s"), ROWS_A, append)
    _write(spark, catalog, _ref("d_then_s"), ROWS_B, append)
    _write(spark, catalog, _ref("s_then_d"), ROWS_A, append)
    _write(duck, catalog, _ref("s_then_d"), ROWS_B, append)
    _, left, _, _ = _iceberg(catalog, _ref("d_then_s"))
    _, right, _, _ = _iceberg(catalog, _ref("s_then_d"))
    assert left == right
    assert len(left) == 6
    # read_table on each engine over files of both writers: the same rows and values
    s_schema, s_rows = _read_rows(spark, catalog, _ref("d_then_s"))
    d_schema, d_rows = _read_rows(duck, catalog, _ref("d_then_s"))
    assert [f.name for f in s_schema] == [f.name for f in d_schema] == [n for n, _, _ in FIELDS]
    assert len(s_rows) == len(d_rows) == 6

    def normal(rows):  # Spark Connect gives session-zone timestamps, sqlframe naive UTC
        out = []
        for r in rows:
            at = r["at"]
            if at is not None and at.tzinfo is not None:
                at = at.astimezone(UTC).replace(tzinfo=None)
            out.append({**r, "at": at})
        return sorted(out, key=lambda r: tuple(repr(v) for v in r.values()))

    assert normal(s_rows) == normal(d_rows)
    assert {r["id"] for r in d_rows} == {1, 2, 3, 4}


def _main(catalog, ref):
    snapshot = catalog.load_table((ref.namespace, ref.table)).current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


@pytest.mark.parametrize("name", ENGINES)
def test_blocking_check_leaves_main_unmoved(engines, settings, name):
    engine = engines(name)
    catalog = load_catalog(settings)
    ref = _ref("audited")
    _write(engine, catalog, ref, ROWS_A, TableTarget(table="audited", mode="append"))
    before = _main(catalog, ref)
    failing = CHECK.validate_python(
        {"kind": "acceptedValues", "column": "region", "values": "EU,US", "name": "region"}
    )
    rows_b = [(*r[:-1], "ASIA") for r in ROWS_B]
    with pytest.raises(ChecksFailed) as info:
        _write(
            engine, catalog, ref, rows_b, TableTarget(table="audited", mode="merge", keys=("id",)),
            checks=(failing,),
        )  # fmt: skip
    assert "region" in str(info.value)
    table = catalog.load_table((ref.namespace, ref.table))
    assert _main(catalog, ref) == before
    assert sorted(r["id"] for r in table.scan().to_arrow().to_pylist()) == [1, 2, 3]
    assert set(table.refs()) == {"main"}  # the audit branch is gone


def test_multi_table_commit_with_quarantine_is_equal(engines, settings):
    catalog = load_catalog(settings)
    for name in ENGINES:
        engine = engines(name)
        with use(engine):
            s = engine.session
            orders = _frame(s, ROWS_A)
            items = s.createDataFrame(
                [(3, "c"), (1, "A"), (1, "B")],
                T.StructType(
                    [T.StructField("id", T.LongType()), T.StructField("sku", T.StringType())]
                ),
            )  # fmt: skip
            bad = s.createDataFrame(
                [("x", "not a number", "f1.csv", "r1"), ("y", None, None, None)],
                T.StructType(
                    [
                        T.StructField(c, T.StringType())
                        for c in ("raw", "_reason", "_source_file", "_rule")
                    ]
                ),
            )
            writes = [
                TableWrite(
                    ref=_ref(f"orders_{name}"),
                    df=orders,
                    target=TableTarget(table="o", mode="append"),
                    where="o.xml:1",
                    quarantine=((_ref(f"orders_{name}__quarantine"), bad),),
                ),
                TableWrite(
                    ref=_ref(f"items_{name}"),
                    df=items,
                    target=TableTarget(table="i", mode="merge", keys=("id",)),
                    where="i.xml:1",
                ),
            ]
            outcomes = write_tables(s, catalog, writes, run_id=f"multi-{name}", log=LOG)
            assert [o.rows for o in outcomes] == [3, 2]
            assert outcomes[0].invalid_by_file == {"f1.csv": 1}
            written = read_written(
                s, outcomes[0], T.StructType([T.StructField("id", T.LongType())])
            )
            assert sorted(r["id"] for r in written.collect()) == [1, 2, 3]
    for table in ("orders", "items", "orders_{}__quarantine"):
        left = table.format("spark") if "{" in table else f"{table}_spark"
        right = table.format("duckdb") if "{" in table else f"{table}_duckdb"
        _same_tables(catalog, _ref(left), _ref(right), file_counts=table != "items")
    _, items, _, _ = _iceberg(catalog, _ref("items_duckdb"))
    assert items == [{"id": 1, "sku": "B"}, {"id": 3, "sku": "c"}]


@pytest.mark.parametrize("name", ENGINES)
def test_required_column_null_and_empty_frame(engines, settings, name):
    engine = engines(name)
    catalog = load_catalog(settings)
    ref = _ref("strict")
    # a required column (created here: sqlframe frames carry no nullability, see the report
    # of engine differences, so a DuckDB frame never creates one)
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "note", StringType(), required=False),
    )
    catalog.create_namespace_if_not_exists(ref.namespace)
    catalog.create_table(
        (ref.namespace, ref.table),
        schema=schema,
        properties={TableProperties.DEFAULT_NAME_MAPPING: schema.name_mapping.model_dump_json()},
    )
    nullable = [("id", "LongType", True), ("note", "StringType", True)]
    _write(engine, catalog, ref, [(1, "a")], TableTarget(table="strict", mode="append"), nullable)
    with pytest.raises(PipelineRunError, match="required column id has a null value"):
        _write(
            engine, catalog, ref, [(None, "b")], TableTarget(table="strict", mode="append"),
            nullable,
        )  # fmt: skip
    # an empty frame: a snapshot with no new file, the rows unchanged
    outcome = _write(engine, catalog, ref, [], TableTarget(table="strict", mode="append"), nullable)
    assert outcome[0].rows == 0
    assert outcome[0].extra["files_added"] == 0
    _, rows, _, _ = _iceberg(catalog, ref)
    assert rows == [{"id": 1, "note": "a"}]


def test_schema_evolution_reads_old_files_widened_on_both_engines(engines, settings):
    catalog = load_catalog(settings)
    spark, duck = engines("spark"), engines("duckdb")
    ref = _ref("evolving")
    narrow = [("id", "IntegerType", True), ("x", "FloatType", True)]
    wide = [("id", "LongType", True), ("x", "DoubleType", True), ("extra", "StringType", True)]
    append = TableTarget(table="evolving", mode="append")
    _write(duck, catalog, ref, [(1, 1.5)], append, narrow)
    _write(duck, catalog, ref, [(2_000_000_000_000, 2.25, "new")], append, wide)
    schema = catalog.load_table((ref.namespace, ref.table)).schema()
    assert [(f.name, str(f.field_type)) for f in schema.fields] == [
        ("id", "long"),
        ("x", "double"),
        ("extra", "string"),
    ]
    expected = [
        {"id": 1, "x": 1.5, "extra": None},
        {"id": 2_000_000_000_000, "x": 2.25, "extra": "new"},
    ]
    for engine in (spark, duck):
        arrow_schema, rows = _read_rows(engine, catalog, ref)
        assert rows == expected
        assert [str(f.type) for f in arrow_schema] == ["int64", "double", "string"]


def _csv_lines(paths, ordered: bool):
    """Per file: the header and the lines (sorted when the row order is Spark's own:
    `partitionBy` sorts each task's rows by the partition columns, not stably)."""
    out = []
    for p in sorted(paths):
        opener = gzip.open if p.endswith(".gz") else bz2.open if p.endswith(".bz2") else open
        with opener(p, "rb") as fh:
            data: bytes = fh.read()  # type: ignore[assignment]
        lines = data.split(b"\n")
        out.append(lines if ordered else [lines[0], *sorted(lines[1:])])
    return out


def _layout(folder: Path) -> list[str]:
    """Relative file paths with the job uuid blanked (Spark's and DuckDB's differ)."""
    out = []
    for root, _, names in os.walk(folder):
        for n in names:
            rel = str((Path(root) / n).relative_to(folder))
            parts = rel.rsplit("part-00000-", 1)
            out.append(parts[0] + "part-00000-UUID" + parts[1][36:] if len(parts) == 2 else rel)
    return sorted(out)


CSV_FIELDS = [
    ("s", "StringType", True),
    ("d", "DoubleType", True),
    ("f", "FloatType", True),
    ("ts", "TimestampType", True),
    ("ntz", "TimestampNTZType", True),
    ("dec", ("DecimalType", 12, 3), True),
    ("b", "BooleanType", True),
    ("day", "DateType", True),
    ("small", ("DecimalType", 20, 10), True),
]
CSV_ROWS = [
    ("plain", 1.0, 1.5, dt.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
     dt.datetime(2024, 1, 1, 12, 0, 0, 999999), Decimal("1.230"), True, dt.date(2024, 2, 29),
     Decimal("0")),
    ("", 1e7, 1e7, dt.datetime(2024, 1, 1, tzinfo=PLUS2), dt.datetime(2024, 1, 1),
     Decimal("-0.001"), False, None, Decimal("0.0000001")),
    (None, 1e-3, 1e-4, None, None, None, None, None, Decimal("-0.0000012345")),
    (" lead trail ", 123456789.125, 3.4028235e38, None, None, Decimal("123456789.000"), None,
     None, Decimal("0.000001")),
    ("a,b", -2.5, float("nan"), None, None, None, True, None, Decimal("1234.1234567890")),
    ('q"uote', float("inf"), float("-inf"), None, None, None, None, None,
     Decimal("-0.0000000001")),
    ("back\\slash", 1e22, 0.1, None, None, None, None, None, None),
    ("new\nline", 1.234e-5, 100.0, None, None, None, None, None, Decimal("0.0000001000")),
    ("é ünï 😀", 0.1 + 0.2, 1e-3, None, None, None, False, None, None),
    ("tab\tx", 9999999.0, 2.5e-7, None, None, None, None, None, None),
    ('"', 12345678.9, None, None, None, None, None, None, None),
    ("cr\rx", -1.5e-300, None, None, None, None, None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("partition_by", "compression"), [((), "none"), ((), "gzip"), (("b",), "bzip2")]
)
def test_csv_export_is_byte_identical(engines, tmp_path, partition_by, compression):
    results = {}
    for name in ENGINES:
        engine = engines(name)
        with use(engine):
            df = _frame(engine.session, CSV_ROWS, CSV_FIELDS)
            if name == "spark":
                df = df.coalesce(1)  # one file per folder, as DuckDB writes
            target = CsvTarget(
                path=f"out_{name}", partition_by=partition_by, compression=compression
            )
            run = dt.date(2024, 3, 1)
            results[name] = write_csv(
                engine.session, df, target, str(tmp_path / f"out_{name}"), run
            )
    spark_r, duck_r = results["spark"], results["duckdb"]
    assert spark_r.rows == duck_r.rows == len(CSV_ROWS)
    assert _layout(Path(spark_r.path)) == _layout(Path(duck_r.path))
    ordered = not partition_by
    assert _csv_lines(spark_r.files, ordered) == _csv_lines(duck_r.files, ordered)


def _footer_types(table) -> list[tuple[str, str, str]]:
    """(column, physical type, logical type) of the first data file's Parquet footer (the
    explicit Int annotations DuckDB adds to plain INT32/INT64 columns left out)."""
    path = next(iter(table.scan().plan_files())).file.file_path.removeprefix("file://")
    schema = pq.ParquetFile(path).schema
    out = []
    for i in range(len(schema)):
        c = schema.column(i)
        logical = str(c.logical_type)
        out.append(
            (c.name, c.physical_type, "" if logical.startswith(("Int(", "None")) else logical)
        )
    return out


def test_parquet_written_by_duckdb_has_sparks_physical_types(engines, settings):
    catalog = load_catalog(settings)
    for name in ENGINES:
        _write(engines(name), catalog, _ref(f"p_{name}"), ROWS_A, TableTarget(table="p"))
    spark_types = _footer_types(catalog.load_table(("shop_silver", "p_spark")))
    duck_types = _footer_types(catalog.load_table(("shop_silver", "p_duckdb")))
    assert spark_types == duck_types
    at = dict((n, (p, lt)) for n, p, lt in duck_types)["at"]
    assert at[0] == "INT64"
    assert "isAdjustedToUTC=true" in at[1]
    assert "microseconds" in at[1]


def test_nested_columns_written_by_duckdb_read_alike_on_both_engines(engines, settings):
    """Structs, arrays and maps (pyiceberg's own scan cannot project lists/maps through a
    name mapping, on Spark-written files too: read with read_table)."""
    catalog = load_catalog(settings)
    spark, duck = engines("spark"), engines("duckdb")
    ref = _ref("nested")
    duck.connection.execute(
        "CREATE TABLE src AS SELECT * FROM (VALUES "
        "(1::BIGINT, {'a': 1, 'b': 'x'}::STRUCT(a INTEGER, b VARCHAR), ['p', NULL]::VARCHAR[], "
        "MAP {'k': 1::BIGINT}), (2, NULL, NULL, NULL)) t(id, s, arr, m)"
    )
    with use(duck):
        write_tables(
            duck.session,
            catalog,
            [
                TableWrite(
                    ref=ref, df=duck.session.table("src"), target=TableTarget(table="n"),
                    where="n:1",
                )
            ],
            run_id="nested",
            log=LOG,
        )  # fmt: skip
    schema = catalog.load_table((ref.namespace, ref.table)).schema()
    assert [str(f.field_type) for f in schema.fields] == [
        "long",
        "struct<5: a: optional int, 6: b: optional string>",
        "list<string>",
        "map<string, long>",
    ]
    with use(spark):
        s_rows = sorted(
            (r["id"], r["s"] and r["s"].asDict(), r["arr"], r["m"])
            for r in read_table(spark.session, catalog, ref).collect()
        )
    with use(duck):
        d_rows = sorted(
            (r["id"], r["s"], r["arr"], r["m"] and dict(r["m"]))
            for r in read_table(duck.session, catalog, ref).toArrow().to_pylist()
        )
    assert (
        s_rows == d_rows == [(1, {"a": 1, "b": "x"}, ["p", None], {"k": 1}), (2, None, None, None)]
    )
