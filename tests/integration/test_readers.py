"""Source readers on both engines (Spark Connect and DuckDB, the `engine_pair` fixture), and
schemaRef conversion; every expectation is written by hand and is the same on both."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from datahub_assets.execute.readers import SourceError, read_source
from datahub_assets.execute.schemas import SchemaError, avro_to_struct, json_schema_to_struct
from datahub_assets.spec import models as m
from tests.support.context import exec_context
from tests.support.frames import dtypes, row_tuples
from tests.support.net import free_port


@pytest.fixture
def ctx(engine_pair, settings):
    (settings.data_dir / "shop").mkdir(parents=True)
    (settings.pipelines_dir / "shop" / "schemas").mkdir(parents=True)
    return engine_pair.context()


@pytest.fixture
def session(engine_pair):
    """The session the test's frames are made from (Spark's or the DuckDB engine's)."""
    return engine_pair.session


def write(ctx, rel: str, text: str, app_folder: bool = False):
    base = ctx.app_dir if app_folder else ctx.settings.data_dir / "shop"
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows(df):
    return sorted(row_tuples(df), key=repr)


AVRO = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": ["null", "string"]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "paid", "type": "boolean"},
    ],
}
JSON_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "born": {"type": "string", "format": "date"},
        "score": {"type": "number"},
        "vip": {"type": "boolean"},
    },
}


def test_csv_with_header_all_strings(ctx):
    write(ctx, "landing/c.csv", "id,name\n1,Ann\n2,Bob\n")
    df = read_source(m.CsvSource(id="c", path="landing/c.csv"), ctx)
    assert dtypes(df) == [("id", "string"), ("name", "string")]
    assert rows(df) == [("1", "Ann"), ("2", "Bob")]


def test_csv_without_header_delimiter_null_value_infer(ctx):
    write(ctx, "landing/c.txt", "1;Ann;NA\n2;NA;3.5\n")
    src = m.CsvSource(
        id="c",
        path="landing/c.txt",
        header=False,
        delimiter=";",
        null_value="NA",
        infer_schema=True,
    )
    df = read_source(src, ctx)
    assert dtypes(df) == [("_c0", "int"), ("_c1", "string"), ("_c2", "double")]
    assert rows(df) == [(1, "Ann", None), (2, None, 3.5)]


def test_csv_schema_ref_avro(ctx):
    write(ctx, "schemas/orders.avsc", json.dumps(AVRO), app_folder=True)
    write(
        ctx,
        "landing/o.csv",
        "id,customer,day,at,amount,paid\n7,,2024-03-01,2024-03-01 10:11:12,12.50,true\n",
    )
    src = m.CsvSource(id="o", path="landing/o.csv", schema_ref="schemas/orders.avsc")
    df = read_source(src, ctx)
    assert dtypes(df) == [
        ("id", "bigint"),
        ("customer", "string"),
        ("day", "date"),
        ("at", "timestamp"),
        ("amount", "decimal(12,2)"),
        ("paid", "boolean"),
    ]
    assert rows(df) == [
        (7, None, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 10, 11, 12), Decimal("12.50"), True)
    ]


def test_csv_schema_ref_json_schema_and_date_format(ctx):
    write(ctx, "schemas/people.json", json.dumps(JSON_SCHEMA), app_folder=True)
    write(ctx, "landing/p.csv", "id|name|born|score|vip\n1|Ann|03/02/1990|1.5|false\n")
    src = m.CsvSource(
        id="p",
        path="landing/p.csv",
        delimiter="|",
        date_format="dd/MM/yyyy",
        schema_ref="schemas/people.json",
    )
    df = read_source(src, ctx)
    assert dtypes(df) == [
        ("id", "bigint"),
        ("name", "string"),
        ("born", "date"),
        ("score", "double"),
        ("vip", "boolean"),
    ]
    assert rows(df) == [(1, "Ann", dt.date(1990, 2, 3), 1.5, False)]


def test_glob_over_several_files_and_missing_path(ctx):
    write(ctx, "landing/2024/a.csv", "id\n1\n")
    write(ctx, "landing/2024/b.csv", "id\n2\n")
    write(ctx, "landing/2024/c.txt", "id\n3\n")
    df = read_source(m.CsvSource(id="c", path="landing/2024/*.csv"), ctx)
    assert rows(df) == [("1",), ("2",)]
    with pytest.raises(SourceError, match="source 'c': no file matches path .*nothing/\\*.csv"):
        read_source(m.CsvSource(id="c", path="landing/nothing/*.csv"), ctx)
    with pytest.raises(SourceError, match="source 'j': no file matches path '/nope/x.json'"):
        read_source(m.JsonSource(id="j", path="/nope/x.json"), ctx)


def test_json_lines_multiline_and_nested_schema(ctx):
    write(ctx, "landing/e.jsonl", '{"id": 1, "actor": {"login": "octo"}}\n{"id": 2}\n')
    df = read_source(m.JsonSource(id="e", path="landing/e.jsonl"), ctx)
    assert rows(df.select("id", "actor.login")) == [(1, "octo"), (2, None)]
    write(ctx, "landing/m.json", '[\n {"id": 1,\n  "tags": ["a", "b"]},\n {"id": 2, "tags": []}\n]')
    df = read_source(m.JsonSource(id="m", path="landing/m.json", multiline=True), ctx)
    assert rows(df.select("id", "tags")) == [(1, ["a", "b"]), (2, [])]
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    write(ctx, "schemas/m.json", json.dumps(schema), app_folder=True)
    src = m.JsonSource(id="m", path="landing/m.json", multiline=True, schema_ref="schemas/m.json")
    df = read_source(src, ctx)
    assert dtypes(df) == [("id", "bigint"), ("tags", "array<string>")]


def test_parquet_and_eager_load_policy(ctx, settings):
    # the input folder is written with pyarrow, the same for both engines
    out = settings.data_dir / "shop" / "landing" / "pq"
    out.mkdir(parents=True)
    schema = pa.schema([("id", pa.int32()), ("v", pa.string())])
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "y"]}, schema), out / "part-0.parquet")
    df = read_source(m.ParquetSource(id="p", path="landing/pq", load_policy="eager"), ctx)
    assert rows(df) == [(1, "x"), (2, "y")]


def test_lookup_reads_from_app_folder(ctx):
    write(ctx, "lookups/countries.csv", "code,name\n007,Bond\nDE,Germany\n", app_folder=True)
    df = read_source(m.LookupSource(id="cc", path="lookups/countries.csv"), ctx)
    assert rows(df) == [("007", "Bond"), ("DE", "Germany")]
    bare = read_source(m.LookupSource(id="cc", path="countries.csv", load_policy="eager"), ctx)
    assert rows(bare) == [("007", "Bond"), ("DE", "Germany")]


def test_table_source_uses_read_table(ctx, session):
    ref = m.TableRef(app="shop", layer="silver", table="orders")
    seen = []
    ctx.read_table = lambda r: seen.append(r) or session.createDataFrame([(1,)], "id int")
    df = read_source(m.TableSource(id="o", ref="silver.orders"), ctx, ref)
    assert rows(df) == [(1,)]
    assert seen == [ref]
    with pytest.raises(SourceError, match="given no resolved TableRef"):
        read_source(m.TableSource(id="o", ref="silver.orders"), ctx)


# Spark only by nature: DuckDB has no database (JDBC) reader (a <database> source keeps a
# pipeline on Spark, spec/engine_rules.py)
@pytest.mark.spark
def test_unreachable_database_names_source_url_and_reason(spark, settings):
    ctx = exec_context(spark, settings)
    url = f"jdbc:postgresql://127.0.0.1:{free_port()}/y"  # nothing listens there
    with pytest.raises(SourceError, match=f"source 'd': cannot connect to {url}: .*refused"):
        read_source(m.DatabaseSource(id="d", jdbc_url=url, table_name="t"), ctx)


def test_bad_schema_ref_names_source_and_file(ctx):
    write(ctx, "landing/c.csv", "id\n1\n")
    with pytest.raises(SourceError, match="source 'c': schema file not found: .*nope.avsc"):
        read_source(m.CsvSource(id="c", path="landing/c.csv", schema_ref="nope.avsc"), ctx)


# ----------------------------------------------------------------- schema conversion


def test_avro_nested_records_arrays_maps_and_nullability():
    doc = {
        "type": "record",
        "name": "E",
        "fields": [
            {
                "name": "actor",
                "type": {
                    "type": "record",
                    "name": "Actor",
                    "fields": [
                        {"name": "id", "type": "long"},
                        {"name": "login", "type": ["null", "string"]},
                    ],
                },
            },
            {"name": "prev", "type": ["null", "Actor"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": ["null", "int"]}},
            {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
    actor = T.StructType(
        [T.StructField("id", T.LongType(), False), T.StructField("login", T.StringType(), True)]
    )
    assert avro_to_struct(doc) == T.StructType(
        [
            T.StructField("actor", actor, False),
            T.StructField("prev", actor, True),
            T.StructField("tags", T.ArrayType(T.StringType(), False), False),
            T.StructField("attrs", T.MapType(T.StringType(), T.IntegerType(), True), False),
            T.StructField("kind", T.StringType(), False),
            T.StructField("at", T.TimestampType(), False),
        ]
    )
    with pytest.raises(SchemaError, match='unsupported Avro type \\["null", "int", "string"\\]'):
        avro_to_struct(
            {
                "type": "record",
                "name": "X",
                "fields": [{"name": "a", "type": ["null", "int", "string"]}],
            }
        )


def test_json_schema_nested_objects_refs_and_required():
    doc = {
        "type": "object",
        "required": ["id"],
        "$defs": {"addr": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "home": {"$ref": "#/$defs/addr"},
            "scores": {"type": "array", "items": {"type": "number"}},
        },
    }
    addr = T.StructType([T.StructField("city", T.StringType(), True)])
    assert json_schema_to_struct(doc) == T.StructType(
        [
            T.StructField("id", T.LongType(), False),
            T.StructField("at", T.TimestampType(), True),
            T.StructField("home", addr, True),
            T.StructField("scores", T.ArrayType(T.DoubleType(), True), True),
        ]
    )
