"""Row-level validation on ingest: casts, required fields, row rules and the onInvalid policies,
with exact rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import TypeAdapter
from pyspark.sql import types as T

from datahub_assets.execute.quarantine import (
    InvalidRowsError,
    apply_policy,
    quarantine_ref,
    row_rules,
    validate_rows,
)
from datahub_assets.spec.models import Check, TableRef

pytestmark = pytest.mark.spark

CHECK = TypeAdapter(Check)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("amount", T.DecimalType(12, 2), True),
        T.StructField("day", T.DateType(), True),
        T.StructField("ts", T.TimestampType(), True),
        T.StructField("status", T.StringType(), True),
    ]
)
RAW = [  # all strings, as a CSV read without a schema gives them
    ("1", "10.50", "2024-01-31", "2024-01-31 10:00:00", "new"),
    ("x2", "1.00", "2024-02-01", "2024-02-01 00:00:00", "paid"),
    ("3", "abc", "2024-02-30", "not a time", "paid"),
    (None, "5", None, None, None),
    ("5", None, "2024-03-01", "2024-03-01 12:30:00", "lost"),
    ("6", "-1", "2024-03-02", None, "paid"),
]
COLS = ["id", "amount", "day", "ts", "status"]


def chk(**kw):
    return CHECK.validate_python(kw)


@pytest.fixture
def raw(spark):
    return spark.createDataFrame(RAW, ", ".join(f"{c} string" for c in COLS))


def rows(df, order="id"):
    return [tuple(r) for r in df.orderBy(order).collect()]


def test_casts_and_required(raw):
    valid, invalid = validate_rows(raw, SCHEMA)
    assert [(f.name, f.dataType) for f in valid.schema.fields] == [
        (f.name, f.dataType) for f in SCHEMA.fields
    ]
    assert rows(valid) == [
        (1, Decimal("10.50"), dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, 10), "new"),
        (5, None, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 12, 30), "lost"),
        (6, Decimal("-1.00"), dt.date(2024, 3, 2), None, "paid"),
    ]
    assert invalid.columns == [*COLS, "_reason", "_rule"]
    got = {r["_reason"]: (r["id"], r["amount"], r["_rule"]) for r in invalid.collect()}
    assert got == {
        "column 'id': value 'x2' is not int": ("x2", "1.00", "cast"),
        "column 'amount': value 'abc' is not decimal(12,2); "
        "column 'day': value '2024-02-30' is not date; "
        "column 'ts': value 'not a time' is not timestamp": ("3", "abc", "cast"),
        "column 'id' is required": (None, "5", "required"),
    }


def test_decimal_overflow_and_typed_input(spark):
    df = spark.createDataFrame([(1, 123456789012.5), (2, 7.25), (3, None)], "n long, v double")
    schema = T.StructType(
        [T.StructField("n", T.IntegerType()), T.StructField("v", T.DecimalType(12, 2))]
    )
    valid, invalid = validate_rows(df, schema)
    assert rows(valid, "n") == [(2, Decimal("7.25")), (3, None)]
    assert [(r["n"], r["v"], r["_reason"]) for r in invalid.collect()] == [
        ("1", "1.234567890125E11", "column 'v': value '1.234567890125E11' is not decimal(12,2)")
    ]


def test_rules_name_the_check_and_extras_pass_through(raw):
    checks = [
        chk(kind="notNull", columns="amount"),
        chk(kind="range", column="amount", min=0),
        chk(kind="acceptedValues", column="status", values="new,paid"),
        chk(kind="regex", column="status", pattern="^[a-z]+$", name="lower"),
        chk(kind="expression", name="positive_id", expr="id > 0"),
        chk(kind="unique", columns="id"),  # table-level: ignored
    ]
    assert len(row_rules(checks)) == 5
    extra = raw.withColumn("note", raw.status)
    valid, invalid = validate_rows(extra.where("id in ('1', '5', '6')"), SCHEMA, checks)
    assert valid.columns == [*COLS, "note"]
    assert [r["id"] for r in valid.collect()] == [1]
    got = sorted((r["id"], r["_rule"], r["_reason"], r["note"]) for r in invalid.collect())
    assert got == [
        (
            "5",
            "notNull_amount",
            "notNull_amount: null in amount; acceptedValues_status: "
            "column 'status' value 'lost' is not one of new, paid",
            "lost",
        ),
        (
            "6",
            "range_amount",
            "range_amount: column 'amount' value '-1.00' is outside [0.0, ]",
            "paid",
        ),
    ]


def test_expression_null_fails_and_missing_declared_column(spark):
    df = spark.createDataFrame([("a", 1), ("b", None)], "k string, q int")
    schema = T.StructType(
        [
            T.StructField("k", T.StringType()),
            T.StructField("q", T.LongType()),
            T.StructField("r", T.StringType(), False),
        ]
    )
    valid, invalid = validate_rows(df, schema, [chk(kind="expression", name="q_pos", expr="q > 0")])
    assert valid.count() == 0
    assert sorted((r["k"], r["_reason"]) for r in invalid.collect()) == [
        ("a", "column 'r' is required"),
        ("b", "column 'r' is required; q_pos: (q > 0) is false or null"),
    ]


def test_policy_fail_shows_first_reasons(raw):
    valid, invalid = validate_rows(raw, SCHEMA)
    with pytest.raises(InvalidRowsError) as info:
        apply_policy("fail", valid, invalid, "sales.raw.orders source orders", limit=2)
    err = info.value
    assert err.count == 3
    assert len(err.reasons) == 2
    msg = str(err)
    assert msg.startswith(
        'sales.raw.orders source orders: 3 invalid row(s) (onInvalid="fail"); first 2:\n  - '
    )
    assert all(r in msg for r in err.reasons)
    ok_valid, ok_invalid = validate_rows(raw.where("id = '1'"), SCHEMA)
    out, quarantined, n = apply_policy("fail", ok_valid, ok_invalid, "x")
    assert (quarantined, n, out.count()) == (None, 0, 1)


def test_policy_drop_counts(raw):
    valid, invalid = validate_rows(raw, SCHEMA)
    out, quarantined, n = apply_policy("drop", valid, invalid, "x")
    assert (quarantined, n) == (None, 3)
    assert sorted(r["id"] for r in out.collect()) == [1, 5, 6]


def test_policy_quarantine_rows_have_lineage(raw):
    valid, invalid = validate_rows(raw, SCHEMA)
    out, quarantined, n = apply_policy("quarantine", valid, invalid, "src:orders", run_id="run-1")
    assert n == 3
    assert out.count() == 3
    assert quarantined.columns == [
        *COLS,
        "_reason",
        "_rule",
        "_run_id",
        "_source",
        "_quarantined_at",
    ]
    got = sorted(
        (r["id"] or "", r["_rule"], r["_run_id"], r["_source"]) for r in quarantined.collect()
    )
    assert got == [
        ("", "required", "run-1", "src:orders"),
        ("3", "cast", "run-1", "src:orders"),
        ("x2", "cast", "run-1", "src:orders"),
    ]
    assert all(r["_quarantined_at"] is not None for r in quarantined.collect())
    clean_valid, clean_invalid = validate_rows(raw.where("id = '1'"), SCHEMA)
    assert apply_policy("quarantine", clean_valid, clean_invalid, "x")[1:] == (None, 0)


def test_unknown_policy_and_quarantine_ref(raw):
    valid, invalid = validate_rows(raw, SCHEMA)
    with pytest.raises(ValueError, match="not one of fail, quarantine, drop"):
        apply_policy("skip", valid, invalid, "x")
    ref = quarantine_ref(TableRef(app="sales", layer="raw", table="orders"))
    assert ref == TableRef(app="sales", layer="raw", table="orders__quarantine")
    assert ref.identifier == "sales_raw.orders__quarantine"
