"""Schema drift: detection (added, removed, widening, narrowing, incompatible, nested) and the
onSchemaChange policies evolve / freeze / fail, with exact rows."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import types as T

from datahub_assets.execute.drift import (
    Drift,
    SchemaDriftError,
    apply_schema_policy,
    detect_drift,
)

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("spark")]  # DDL parsing needs it


def schema(ddl: str) -> T.StructType:
    return T.StructType.fromDDL(ddl)


TABLE_DDL = "id bigint, qty int, name string, price decimal(10,2)"


def test_no_drift_and_new_table():
    same = detect_drift(
        schema(TABLE_DDL), schema("id bigint not null, qty int, name string, price decimal(10,2)")
    )
    assert same == Drift()
    assert not same.changed
    assert same.description() == "no schema change"
    # short is stored as int by Iceberg: no drift
    assert not detect_drift(schema("a int"), schema("a smallint")).changed
    new = detect_drift(None, schema(TABLE_DDL))
    assert new.new_table
    assert not new.changed
    assert new.check_passed("fail")


def test_detects_added_removed_and_retyped():
    incoming = schema("id int, qty bigint, name int, extra string, price decimal(12,2)")
    drift = detect_drift(schema(TABLE_DDL), incoming)
    assert drift.added == ("extra",)
    assert drift.removed == ()
    assert drift.retyped == (
        ("id", "bigint", "int", False),
        ("qty", "int", "bigint", True),
        ("name", "string", "int", False),
        ("price", "decimal(10,2)", "decimal(12,2)", True),
    )
    assert [c for c, *_ in drift.narrowing] == ["id", "name"]
    removed = detect_drift(schema(TABLE_DDL), schema("id bigint, qty int"))
    assert removed.removed == ("name", "price")
    assert removed.added == ()
    assert removed.description() == "removed column name; removed column price"


def test_nested_and_metadata():
    table = schema("id bigint, addr struct<city: string, zip: int>")
    drift = detect_drift(
        table, schema("id bigint, addr struct<city: string, zip: bigint, street: string>")
    )
    assert drift.added == ("addr.street",)
    assert drift.retyped == (("addr.zip", "int", "bigint", True),)
    meta = drift.as_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta == {
        "changed": True,
        "new_table": False,
        "added": ["addr.street"],
        "removed": [],
        "retyped": [{"column": "addr.zip", "old": "int", "new": "bigint", "widening": True}],
        "description": "added column addr.street; column addr.zip changed type int -> bigint "
        "(widening)",
    }


def test_check_passed():
    added = detect_drift(schema(TABLE_DDL), schema(TABLE_DDL + ", x int"))
    assert added.check_passed("evolve")
    assert not added.check_passed("freeze")
    assert not added.check_passed("fail")
    widened = detect_drift(
        schema(TABLE_DDL), schema("id bigint, qty bigint, name string, price decimal(10,2)")
    )
    assert not widened.check_passed("evolve")


@pytest.fixture
def frame(spark):
    return spark.createDataFrame(
        [(1, 5, "new"), (2, None, "x")], "id int, qty bigint, extra string"
    )


def test_evolve(frame):
    table = schema("id bigint, qty int, gone string")
    drift = detect_drift(table, frame.schema)
    assert drift.removed == ("gone",)
    assert drift.added == ("extra",)
    with pytest.raises(SchemaDriftError) as info:  # id bigint -> int narrows
        apply_schema_policy(frame, drift, "evolve", table, "sales_raw.orders")
    msg = str(info.value)
    assert msg.startswith(
        "table sales_raw.orders: schema drift not allowed by "
        'onSchemaChange="evolve": column id changed type bigint -> int'
    )
    assert "qty" not in msg
    ok_table = schema("id int, qty int, gone string")
    ok = detect_drift(ok_table, frame.schema)
    out = apply_schema_policy(frame, ok, "evolve", ok_table, "t")
    assert out is frame  # the writer adds `extra`, widens qty, writes `gone` as null
    incompatible = schema("id int, qty int, extra int")
    with pytest.raises(SchemaDriftError, match="column extra changed type int -> string"):
        apply_schema_policy(
            frame, detect_drift(incompatible, frame.schema), "evolve", incompatible, "t"
        )


def test_freeze(frame):
    table = schema("id bigint, qty bigint, gone string")
    drift = detect_drift(table, frame.schema)
    out = apply_schema_policy(frame, drift, "freeze", table, "t")
    assert [(f.name, f.dataType) for f in out.schema.fields] == [
        (f.name, f.dataType) for f in table.fields
    ]
    assert sorted(tuple(r) for r in out.collect()) == [(1, 5, None), (2, None, None)]
    narrow = schema("id int, qty int")
    with pytest.raises(SchemaDriftError) as info:  # bigint qty into an int column loses
        apply_schema_policy(frame, detect_drift(narrow, frame.schema), "freeze", narrow, "t")
    assert "column qty is bigint, the table's int cannot hold it without loss" in str(info.value)
    text = schema("id int, qty bigint, extra int")
    with pytest.raises(SchemaDriftError, match="column extra is string"):
        apply_schema_policy(frame, detect_drift(text, frame.schema), "freeze", text, "t")


def test_freeze_nested_raises(spark):
    df = spark.createDataFrame([(1, ("a", 2))], "id int, s struct<a: string, b: int>")
    table = schema("id int, s struct<a: string>")
    with pytest.raises(SchemaDriftError, match="nested field s.b changed"):
        apply_schema_policy(df, detect_drift(table, df.schema), "freeze", table, "t")


def test_fail_names_every_difference(frame):
    table = schema("id bigint, qty bigint, gone string")
    with pytest.raises(SchemaDriftError) as info:
        apply_schema_policy(frame, detect_drift(table, frame.schema), "fail", table, "t")
    assert str(info.value) == (
        'table t: schema drift not allowed by onSchemaChange="fail": added column extra; '
        "removed column gone; column id changed type bigint -> int (narrowing)"
    )
    same = schema("id int, qty bigint, extra string")
    assert apply_schema_policy(frame, detect_drift(same, frame.schema), "fail", same, "t") is frame
    assert apply_schema_policy(frame, detect_drift(None, frame.schema), "fail", None, "t") is frame
    with pytest.raises(ValueError, match="not one of evolve, freeze, fail"):
        apply_schema_policy(frame, Drift(), "merge", table, "t")
