"""Transformations on both engines (Spark Connect and DuckDB, the `engine_pair` fixture); every
expectation is written by hand and is the same on both."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from datahub_assets.execute.transforms import TRANSFORMS, TransformError, apply_steps
from datahub_assets.spec import models as m
from tests.support.frames import dtypes, row_tuples


@pytest.fixture
def session(engine_pair):
    """The session the test's frames are made from (Spark's or the DuckDB engine's)."""
    return engine_pair.session


@pytest.fixture
def ctx(engine_pair):
    return engine_pair.context()


def rows(df, order=True):
    out = row_tuples(df)
    return sorted(out, key=repr) if order else out


def run(ctx, step, **datasets):
    return apply_steps([step], datasets, ctx)[step.result]


def test_registry_has_all_fourteen():
    assert sorted(TRANSFORMS) == sorted(
        [
            "deduplicate",
            "sort",
            "join",
            "lookup",
            "merge",
            "aggregate",
            "mask",
            "filter",
            "select",
            "derive",
            "rename",
            "cast",
            "flatten",
            "sql",
        ]
    )


# ------------------------------------------------------------------------- deduplicate


@pytest.fixture
def events(session):
    return session.createDataFrame(
        [(1, "a", 10), (2, "b", 5), (1, "c", 30), (2, "d", None), (1, "e", 20), (3, "f", 1)],
        "id int, v string, ts int",
    ).coalesce(1)


def test_deduplicate_first_and_last_by_incoming_order(ctx, events):
    first = run(ctx, m.Deduplicate(source="e", keys="id"), e=events)
    assert rows(first) == [(1, "a", 10), (2, "b", 5), (3, "f", 1)]
    last = run(ctx, m.Deduplicate(source="e", keys="id", keep="last"), e=events)
    assert rows(last) == [(1, "e", 20), (2, "d", None), (3, "f", 1)]


def test_deduplicate_latest_by_order_by_nulls_never_win(ctx, events):
    step = m.Deduplicate(source="e", keys="id", keep="latest", order_by="ts")
    assert rows(run(ctx, step, e=events)) == [(1, "c", 30), (2, "b", 5), (3, "f", 1)]


def test_deduplicate_first_with_order_by_and_multi_keys(ctx, events):
    step = m.Deduplicate(source="e", keys="id", keep="first", order_by="v desc")
    assert rows(run(ctx, step, e=events)) == [(1, "e", 20), (2, "d", None), (3, "f", 1)]
    step = m.Deduplicate(source="e", keys="id", keep="last", order_by="v desc")
    assert rows(run(ctx, step, e=events)) == [(1, "a", 10), (2, "b", 5), (3, "f", 1)]


def test_deduplicate_latest_requires_order_by_and_known_keys(ctx, events):
    with pytest.raises(TransformError, match="keep='latest'.*needs orderBy"):
        run(ctx, m.Deduplicate(source="e", keys="id", keep="latest"), e=events)
    with pytest.raises(TransformError, match="column 'nope' not found in dataset 'e'"):
        run(ctx, m.Deduplicate(source="e", keys="nope"), e=events)


# -------------------------------------------------------------------------------- sort


def test_sort_mixed_directions_and_nulls(ctx, session):
    df = session.createDataFrame([("x", 2), ("y", None), ("x", 1), ("a", 3)], "g string, n int")
    out = run(ctx, m.Sort(source="d", order_by="g desc, n", nulls="last"), d=df)
    assert rows(out, order=False) == [("y", None), ("x", 1), ("x", 2), ("a", 3)]
    out = run(ctx, m.Sort(source="d", order_by="n", direction="desc", nulls="first"), d=df)
    assert rows(out, order=False) == [("y", None), ("a", 3), ("x", 2), ("x", 1)]


# -------------------------------------------------------------------------------- join


@pytest.fixture
def shop(session):
    orders = session.createDataFrame(
        [(1, 10, 5.0), (2, 11, 7.5), (3, 99, 1.0)], "order_id int, customer_id int, amount double"
    )
    customers = session.createDataFrame(
        [(10, "Ann", "DE"), (11, "Bob", "FR"), (12, "Cy", "XX")], "id int, name string, cc string"
    )
    return {"orders": orders, "customers": customers}


def test_join_types(ctx, shop):
    cond = "orders.customer_id = customers.id"
    inner = run(ctx, m.Join(left="orders", right="customers", condition=cond, output="j"), **shop)
    assert inner.columns == ["order_id", "customer_id", "amount", "id", "name", "cc"]
    assert rows(inner) == [(1, 10, 5.0, 10, "Ann", "DE"), (2, 11, 7.5, 11, "Bob", "FR")]
    left = m.Join(left="orders", right="customers", condition=cond, type="left", output="j")
    assert rows(run(ctx, left, **shop))[-1] == (3, 99, 1.0, None, None, None)
    full = m.Join(left="orders", right="customers", condition=cond, type="full", output="j")
    assert len(rows(run(ctx, full, **shop))) == 4
    semi = m.Join(left="orders", right="customers", condition=cond, type="semi", output="j")
    assert rows(run(ctx, semi, **shop)) == [(1, 10, 5.0), (2, 11, 7.5)]
    anti = m.Join(
        left="orders",
        right="customers",
        condition=cond,
        type="anti",
        broadcast="right",
        output="j",
    )
    assert rows(run(ctx, anti, **shop)) == [(3, 99, 1.0)]


def test_join_duplicate_columns_need_select_or_prefix(ctx, session, shop):
    people = session.createDataFrame([(10, "Ann")], "id int, name string")
    data = {**shop, "people": people}
    step = m.Join(left="customers", right="people", condition="customers.id = people.id")
    with pytest.raises(TransformError, match="both have column\\(s\\) id, name"):
        run(ctx, step, **data)
    sel = step.model_copy(update={"select": "customers.*, people.name as person"})
    assert rows(run(ctx, sel, **data)) == [(10, "Ann", "DE", "Ann")]
    pre = step.model_copy(update={"right_prefix": "p_", "broadcast": True})
    out = run(ctx, pre, **data)
    assert out.columns == ["id", "name", "cc", "p_id", "p_name"]
    assert rows(out) == [(10, "Ann", "DE", 10, "Ann")]


# ------------------------------------------------------------------------------ lookup


def test_lookup_left_with_defaults_and_inner(ctx, session):
    src = session.createDataFrame([(1, "DE"), (2, "FR"), (3, "ZZ"), (4, None)], "id int, cc string")
    ref = session.createDataFrame(
        [("DE", "Germany", 83), ("FR", "France", 68)], "code string, country string, pop int"
    )
    step = m.Lookup(
        source="s",
        reference="r",
        on="cc=code",
        output_fields="country,pop",
        defaults="country:unknown,pop:0",
    )
    out = run(ctx, step, s=src, r=ref)
    assert out.columns == ["id", "cc", "country", "pop"]
    assert rows(out) == [
        (1, "DE", "Germany", 83),
        (2, "FR", "France", 68),
        (3, "ZZ", "unknown", 0),
        (4, None, "unknown", 0),
    ]
    inner = m.Lookup(
        source="s", reference="r", on="cc = code", output_fields="country", join_type="inner"
    )
    assert rows(run(ctx, inner, s=src, r=ref)) == [(1, "DE", "Germany"), (2, "FR", "France")]


def test_lookup_errors_name_the_value(ctx, session):
    src = session.createDataFrame([(1, "DE")], "id int, cc string")
    ref = session.createDataFrame([("DE", "Germany")], "code string, country string")
    bad = m.Lookup(source="s", reference="r", on="cc=kode", output_fields="country")
    with pytest.raises(TransformError, match="column 'kode' not found in dataset 'r'"):
        run(ctx, bad, s=src, r=ref)
    bad = m.Lookup(
        source="s", reference="r", on="cc=code", output_fields="country", defaults="pop:0"
    )
    with pytest.raises(TransformError, match="defaults name pop"):
        run(ctx, bad, s=src, r=ref)


# ------------------------------------------------------------------------------- merge


def test_merge_modes(ctx, session):
    a = session.createDataFrame([(1, "x")], "id int, v string")
    b = session.createDataFrame([("y", 2)], "v string, id int")
    c = session.createDataFrame([(3,)], "id int")
    by_name = m.Merge(sources="a,b", output="all")
    assert rows(run(ctx, by_name, a=a, b=b)) == [(1, "x"), (2, "y")]
    missing = m.Merge(sources="a, c", output="all", allow_missing_columns=True)
    assert rows(run(ctx, missing, a=a, c=c)) == [(1, "x"), (3, None)]
    with pytest.raises(TransformError, match="differ in columns v"):
        run(ctx, m.Merge(sources="a,c", output="all"), a=a, c=c)
    swapped = session.createDataFrame([(5, "z")], "k int, w string")
    by_pos = m.Merge(sources="a,s", output="all", mode="union")
    out = run(ctx, by_pos, a=a, s=swapped)
    assert out.columns == ["id", "v"]
    assert rows(out) == [(1, "x"), (5, "z")]
    with pytest.raises(TransformError, match="'c' has 1 columns but 'a' has 2"):
        run(ctx, m.Merge(sources="a,c", output="all", mode="union"), a=a, c=c)


# --------------------------------------------------------------------------- aggregate


def test_aggregate_metrics(ctx, session):
    df = session.createDataFrame(
        [("a", 1, 10.0), ("a", 2, 20.0), ("a", 2, None), ("b", 5, 4.0)],
        "g string, u int, amount double",
    )
    step = m.Aggregate(
        source="d",
        group_by="g",
        metrics="count:n,count_distinct:u,sum:amount:total,avg:amount,min:u,max:u:top,"
        "count:amount:priced",
    )
    out = run(ctx, step, d=df)
    assert out.columns == [
        "g",
        "n",
        "count_distinct_u",
        "total",
        "avg_amount",
        "min_u",
        "top",
        "priced",
    ]
    assert rows(out) == [("a", 3, 2, 30.0, 15.0, 1, 2, 2), ("b", 1, 1, 4.0, 4.0, 5, 5, 1)]
    sd = run(ctx, m.Aggregate(source="d", group_by="g", metrics="stddev:u:sd"), d=df)
    assert [round(r[1], 6) if r[1] is not None else None for r in rows(sd)] == [0.57735, None]


def test_aggregate_windows(ctx, session):
    df = session.createDataFrame(
        [
            ("a", dt.datetime(2024, 1, 3, 10)),
            ("a", dt.datetime(2024, 1, 3, 23)),
            ("a", dt.datetime(2024, 1, 4, 1)),
            ("a", dt.datetime(2024, 2, 1, 0)),
        ],
        "g string, ts timestamp",
    )
    daily = m.Aggregate(
        source="d", group_by="g", metrics="count:n", window="daily", time_column="ts"
    )
    out = run(ctx, daily, d=df)
    assert out.columns == ["g", "window_start", "n"]
    assert rows(out) == [
        ("a", dt.date(2024, 1, 3), 2),
        ("a", dt.date(2024, 1, 4), 1),
        ("a", dt.date(2024, 2, 1), 1),
    ]
    weekly = daily.model_copy(update={"window": "weekly"})  # weeks start on Monday
    assert rows(run(ctx, weekly, d=df)) == [
        ("a", dt.date(2024, 1, 1), 3),
        ("a", dt.date(2024, 1, 29), 1),
    ]
    monthly = daily.model_copy(update={"window": "monthly"})
    assert rows(run(ctx, monthly, d=df)) == [
        ("a", dt.date(2024, 1, 1), 3),
        ("a", dt.date(2024, 2, 1), 1),
    ]


def test_aggregate_bad_metric(ctx, session):
    df = session.createDataFrame([("a", 1)], "g string, u int")
    with pytest.raises(TransformError, match="metric 'median:u'"):
        run(ctx, m.Aggregate(source="d", group_by="g", metrics="median:u"), d=df)


# ------------------------------------------------- filter, select, derive, rename, cast


def test_filter_select_derive(ctx, session):
    df = session.createDataFrame(
        [(1, "ann", "a,b"), (2, "bob", None), (3, None, "c")], "id int, name string, tags string"
    )
    out = run(ctx, m.Filter(source="d", condition="id >= 2 AND name IS NOT NULL"), d=df)
    assert rows(out) == [(2, "bob", None)]
    sel = m.Select(
        source="d",
        columns="id, upper(name) as name, coalesce(tags, 'x,y') as tags, "
        "concat_ws('-', id, 'z') as k",
    )
    assert rows(run(ctx, sel, d=df)) == [
        (1, "ANN", "a,b", "1-z"),
        (2, "BOB", "x,y", "2-z"),
        (3, None, "c", "3-z"),
    ]
    der = run(ctx, m.Derive(source="d", column="id", expr="id * 10"), d=df)
    assert der.columns == ["id", "name", "tags"]
    assert [r[0] for r in rows(der)] == [10, 20, 30]


def test_rename_and_errors(ctx, session):
    df = session.createDataFrame([(1, "ann")], "id int, name string")
    out = run(
        ctx, m.Rename(source="customers", mapping="id:customer_id, name:full_name"), customers=df
    )
    assert out.columns == ["customer_id", "full_name"]
    with pytest.raises(
        TransformError,
        match="rename: column 'custid' not found in dataset 'customers'; available: id, name",
    ):
        run(ctx, m.Rename(source="customers", mapping="custid:x"), customers=df)
    with pytest.raises(TransformError, match="new name 'name' would duplicate"):
        run(ctx, m.Rename(source="customers", mapping="id:name"), customers=df)


def test_cast(ctx, session):
    df = session.createDataFrame(
        [("12.345", "2024-01-02 03:04:05", "7")], "amount string, ts string, n string"
    )
    step = m.Cast(source="d", types="amount:decimal(12,2), ts:timestamp,n:int")
    out = run(ctx, step, d=df)
    assert dtypes(out) == [("amount", "decimal(12,2)"), ("ts", "timestamp"), ("n", "int")]
    assert rows(out) == [(Decimal("12.35"), dt.datetime(2024, 1, 2, 3, 4, 5), 7)]
    with pytest.raises(TransformError, match="column 'amt' not found in dataset 'd'"):
        run(ctx, m.Cast(source="d", types="amt:int"), d=df)


# every type name the loader accepts (spec/mini.py) is one Spark's cast accepts, and the
# names it refuses are refused by Spark too: the loader's check is neither looser nor stricter
LOADER_ACCEPTS = [
    "boolean", "tinyint", "byte", "smallint", "short", "int", "INTEGER", "bigint", "long",
    "float", "real", "double", "decimal", "decimal(10)", "Decimal(12, 2)", "dec(5,1)",
    "numeric(38,0)", "string", "char(3)", "varchar(20)", "binary", "date", "timestamp",
    "timestamp_ntz", "timestamp_ltz", "array<int>", "map<string, decimal(3,1)>",
    "struct<a:int, b string not null comment 'x'>", "interval day to second",
    "interval year to month",
]  # fmt: skip
LOADER_REFUSES = ["integr", "array<int", "decimal(2,3)", "decimal(39,0)", "int int", "varchar"]


# Spark only by nature: it holds the loader's cast types against Spark's own type parser
@pytest.mark.spark
def test_spark_accepts_exactly_the_cast_types_the_loader_accepts(spark):
    """A null literal casts to any type, so only the type name is under test."""
    from pyspark.sql import functions as F

    from datahub_assets.spec.mini import spark_type_problem

    assert [t for t in LOADER_ACCEPTS if spark_type_problem(t)] == []
    assert [t for t in LOADER_REFUSES if not spark_type_problem(t)] == []
    df = spark.range(1)
    casts = [F.lit(None).cast(t).alias(f"c{i}") for i, t in enumerate(LOADER_ACCEPTS)]
    assert len(df.select(*casts).schema.fields) == len(LOADER_ACCEPTS)
    refused_by_spark = []
    for t in LOADER_REFUSES:
        try:
            assert df.select(F.lit(None).cast(t)).schema
        except Exception:  # noqa: BLE001 - any refusal counts; the type of error varies
            refused_by_spark.append(t)
    assert refused_by_spark == LOADER_REFUSES


def test_bad_expression_names_step_and_dataset(ctx, session):
    df = session.createDataFrame([(1,)], "id int")
    with pytest.raises(TransformError, match="<filter> -> 'd'.*dataset 'd'"):
        run(ctx, m.Filter(source="d", condition="nope > 1"), d=df)
    with pytest.raises(TransformError, match="dataset 'zz' does not exist; known datasets: d"):
        run(ctx, m.Filter(source="zz", condition="true"), d=df)


# --------------------------------------------------------------------------------- sql


def test_sql_over_datasets_by_id_is_pinned(ctx, shop):
    q = m.Sql(
        output="report",
        query="SELECT c.name, sum(o.amount) AS total FROM orders o "
        "JOIN customers c ON o.customer_id = c.id GROUP BY c.name",
    )
    f = m.Filter(source="orders", condition="amount > 6")
    q2 = m.Sql(output="big", query="SELECT count(*) AS n FROM orders")
    out = apply_steps([q, f, q2], shop, ctx)
    # `report` was computed before the filter replaced `orders`, and stays so.
    assert rows(out["report"]) == [("Ann", 5.0), ("Bob", 7.5)]
    assert rows(out["big"]) == [(1,)]
    assert rows(out["report"]) == [("Ann", 5.0), ("Bob", 7.5)]


# ----------------------------------------------------------------------- apply_steps


def test_apply_steps_written_order_and_forward_outputs(ctx, session):
    df = session.createDataFrame([(1, 5), (2, 50)], "id int, amount int")
    steps = [
        m.Filter(source="big", condition="amount > 10", output="big2"),  # waits for `big`
        m.Derive(source="d", column="amount", expr="amount * 2", output="big"),
        m.Derive(source="d", column="amount", expr="amount + 1"),  # replaces d
    ]
    out = apply_steps(steps, {"d": df}, ctx)
    assert rows(out["d"]) == [(1, 6), (2, 51)]
    assert rows(out["big"]) == [(1, 10), (2, 100)]
    assert rows(out["big2"]) == [(2, 100)]
