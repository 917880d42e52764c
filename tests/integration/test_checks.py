"""The check engine on both engines (Spark Connect and DuckDB, the `engine_pair` fixture): every
kind passing and failing with exact counts (checked against plain Python over the same rows),
samples, and one aggregation job for the column checks."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from pydantic import TypeAdapter

from datahub_assets.execute.checks import aggregate, evaluate_checks
from datahub_assets.spec.models import Check, TableRef, TableTarget

NOW = datetime(2024, 6, 1, 12, 0, 0)
COLS = ["id", "line", "email", "amount", "status", "qty", "price", "total", "updated_at", "cust"]
DDL = (
    "id long, line int, email string, amount double, status string, qty int, price double, "
    "total double, updated_at timestamp, cust long"
)
ROWS = [
    (1, 1, "a@x.org", 10.0, "new", 2, 5.0, 10.0, NOW - timedelta(hours=1), 100),
    (1, 2, "b@x.org", 0.0, "paid", 1, 3.0, 3.0, NOW - timedelta(hours=2), 101),
    (2, 1, None, -5.0, "paid", 3, 1.0, 4.0, NOW - timedelta(hours=3), 102),
    (2, 1, "bad-email", 250.0, "lost", 1, 2.0, 2.0, NOW - timedelta(hours=9), None),
    (3, 1, "c@x.org", None, None, 2, 2.0, None, None, 999),
    (None, 1, "d@x.org", 99.5, "cancelled", 4, 1.5, 6.0, NOW - timedelta(days=2), 100),
    (4, 1, "e@x.org", 100.0, "shipped", 1, 1.0, 1.0, NOW - timedelta(minutes=5), 998),
    (4, 1, "***", 1.0, "new", 1, 1.0, 1.0, NOW - timedelta(hours=4), 101),
]
DICTS = [dict(zip(COLS, r, strict=True)) for r in ROWS]
CHECK = TypeAdapter(Check)


def chk(**kw):
    return CHECK.validate_python(kw)


@pytest.fixture
def session(engine_pair):
    """The session the test's frames are made from (Spark's or the DuckDB engine's)."""
    return engine_pair.session


@pytest.fixture
def df(session):
    return session.createDataFrame(ROWS, DDL)


@pytest.fixture
def ctx(engine_pair):
    return engine_pair.context(run_id="test")


def run(session, df, ctx, *checks, **kw):
    return evaluate_checks(session, df, list(checks), ctx, now=NOW, **kw)


def count(pred):
    return sum(1 for r in DICTS if pred(r))


def test_row_checks_exact_counts(session, df, ctx):
    accepted = {"new", "paid", "shipped", "cancelled"}
    pattern = r"^[^@]+@[^@]+$"
    cases = [
        (
            chk(kind="notNull", columns="id,email"),
            count(lambda r: r["id"] is None or r["email"] is None),
        ),
        (chk(kind="notNull", columns="line"), 0),
        (
            chk(kind="range", column="amount", min=0, max=100),
            count(lambda r: r["amount"] is not None and not 0 <= r["amount"] <= 100),
        ),
        (chk(kind="range", column="amount", min=-10), 0),
        (
            chk(kind="acceptedValues", column="status", values="new,paid,shipped,cancelled"),
            count(lambda r: r["status"] is not None and r["status"] not in accepted),
        ),
        (chk(kind="acceptedValues", column="line", values="1,2"), 0),  # compared as strings
        (
            chk(kind="regex", column="email", pattern=pattern),
            count(lambda r: r["email"] is not None and not re.search(pattern, r["email"])),
        ),
        (chk(kind="regex", column="email", pattern="."), 0),
        (
            chk(kind="expression", name="total_ok", expr="total = qty * price"),
            count(lambda r: r["total"] is None or r["total"] != r["qty"] * r["price"]),
        ),
        (chk(kind="expression", expr="qty > 0"), 0),
    ]
    outcomes = run(session, df, ctx, *[c for c, _ in cases])
    for (check, expected), o in zip(cases, outcomes, strict=True):
        assert (o.name, o.failing_rows, o.total_rows) == (check.check_name, expected, 8), o
        assert o.passed == (expected == 0)
        assert len(o.sample) == min(expected, 5)
        json.dumps([o.sample, o.metadata])
    assert [o.failing_rows for o in outcomes[::2]] == [2, 2, 1, 2, 2]
    assert outcomes[2].description == "2 of 8 rows have amount outside [0, 100]"
    assert outcomes[3].description == "0 of 8 rows have amount outside [-10, +inf)"
    assert outcomes[8].name == "total_ok"
    assert outcomes[8].kind == "expression"


def test_samples_hold_failing_rows_as_given(session, df, ctx):
    (o,) = run(session, df, ctx, chk(kind="regex", column="email", pattern=r"^[^@]+@[^@]+$"))
    assert sorted(s["email"] for s in o.sample) == ["***", "bad-email"]  # masked stays masked
    assert list(o.sample[0])[:6] == ["email", "id", "line", "amount", "status", "qty"]
    (o,) = run(session, df, ctx, chk(kind="notNull", columns="amount"))
    assert o.sample == [
        {"amount": None, "id": 3, "line": 1, "email": "c@x.org", "status": None, "qty": 2}
    ]


def test_unique_over_two_columns(session, df, ctx):
    keys = [(r["id"], r["line"]) for r in DICTS if r["id"] is not None]
    dup_rows = sum(1 for k in keys if keys.count(k) > 1)
    dup_keys = len({k for k in keys if keys.count(k) > 1})
    bad, good, single = run(
        session,
        df,
        ctx,
        chk(kind="unique", columns="id,line"),
        chk(kind="unique", columns="id,line,email"),
        chk(kind="unique", columns="id"),
    )
    assert (bad.failing_rows, bad.metadata["duplicate_keys"]) == (dup_rows, dup_keys) == (4, 2)
    assert not bad.passed
    assert len(bad.sample) == 4
    assert {(s["id"], s["line"]) for s in bad.sample} == {(2, 1), (4, 1)}
    assert good.passed
    assert good.failing_rows == 0
    ids = [r["id"] for r in DICTS if r["id"] is not None]
    assert single.failing_rows == sum(1 for i in ids if ids.count(i) > 1) == 6


def test_row_count_bounds(session, df, ctx):
    outcomes = run(
        session,
        df,
        ctx,
        chk(kind="rowCount", min=1, max=8),
        chk(kind="rowCount", min=9),
        chk(kind="rowCount", max=7),
    )
    assert [(o.passed, o.failing_rows) for o in outcomes] == [(True, 0), (False, 8), (False, 8)]
    assert outcomes[1].description == "8 rows, expected at least 9"


def test_freshness_with_fixed_now(session, df, ctx):
    fresh, stale = run(
        session,
        df,
        ctx,
        chk(kind="freshness", column="updated_at", maxAge="PT6H"),
        chk(kind="freshness", column="updated_at", maxAge="PT1M"),
    )
    newest = max(r["updated_at"] for r in DICTS if r["updated_at"])
    assert fresh.passed
    assert fresh.metadata["max_age_s"] == (NOW - newest).total_seconds() == 300
    assert fresh.metadata["limit_s"] == 21600
    assert not stale.passed
    assert stale.failing_rows == 8
    assert stale.sample[0]["updated_at"] == str(newest)
    assert stale.description == "newest updated_at is 5m old (limit PT1M)"


def test_invalid_checks_fail_with_a_reason(session, df, ctx):
    missing, bad_expr = run(
        session,
        df,
        ctx,
        chk(kind="notNull", columns="nope"),
        chk(kind="expression", expr="qty + 1"),
    )
    assert not missing.passed
    assert "nope" in missing.description
    assert not bad_expr.passed
    assert "not boolean" in bad_expr.description


def test_referential_against_iceberg_table(session, df, ctx, settings):
    from datahub_assets.iceberg.read import read_table
    from datahub_assets.iceberg.table import write_table
    from datahub_resources.iceberg import load_catalog

    catalog = load_catalog(settings)
    ref = TableRef(app="shop", layer="silver", table="customers")
    known = [100, 101, 102, 998]
    write_table(
        session,
        catalog,
        ref,
        session.createDataFrame([(k, f"c{k}") for k in known], "customer_id long, name string"),
        TableTarget(table="customers", mode="overwrite"),
        "test",
    )
    check = chk(kind="referential", column="cust", ref="silver.customers.customer_id")
    (o,) = run(
        session,
        df,
        ctx,
        check,
        read_table=lambda r: read_table(session, catalog, r),
        referenced={check.check_name: ref},
    )
    expected = count(lambda r: r["cust"] is not None and r["cust"] not in known)
    assert (o.failing_rows, o.total_rows, o.passed) == (expected, 8, False) == (1, 8, False)
    assert [s["cust"] for s in o.sample] == [999]
    ok = chk(kind="referential", column="cust", ref="silver.customers.customer_id", name="ok")
    (o,) = run(
        session,
        df.where("cust <> 999"),
        ctx,
        ok,
        read_table=lambda r: read_table(session, catalog, r),
        referenced={"ok": ref},
    )
    assert o.passed
    assert o.failing_rows == 0
    assert o.sample == []


def _avsc(tmp_path, fields):
    path = tmp_path / "s.avsc"
    path.write_text(json.dumps({"type": "record", "name": "r", "fields": fields}))
    return str(path)


def test_schema_check(session, df, ctx, tmp_path):
    ok = _avsc(
        tmp_path,
        [
            {"name": "id", "type": ["null", "long"]},
            {"name": "email", "type": ["null", "string"]},
            {"name": "line", "type": "int"},
        ],
    )
    (o,) = run(session, df, ctx, chk(kind="schema", schemaRef=ok))
    assert o.passed
    assert o.failing_rows == 0
    assert "extra_columns" in o.metadata
    nn = _avsc(tmp_path, [{"name": "id", "type": "long"}, {"name": "email", "type": "string"}])
    (o,) = run(session, df, ctx, chk(kind="schema", schemaRef=nn))
    expected = count(lambda r: r["id"] is None or r["email"] is None)
    assert (o.passed, o.failing_rows) == (False, expected) == (False, 2)
    assert {(s["id"], s["email"]) for s in o.sample} == {(2, None), (None, "d@x.org")}
    bad = _avsc(tmp_path, [{"name": "id", "type": "string"}, {"name": "gone", "type": "long"}])
    (o,) = run(session, df, ctx, chk(kind="schema", schemaRef=bad))
    assert (o.passed, o.failing_rows) == (False, 8)
    assert o.metadata["issues"] == ["column id is bigint, expected string", "column gone missing"]


def test_ten_passing_column_checks_are_one_job(session, df, ctx, tmp_path, monkeypatch):
    calls = []
    real = aggregate.run_aggregation
    monkeypatch.setattr(aggregate, "run_aggregation", lambda f: calls.append(1) or real(f))
    sampled = []
    monkeypatch.setattr(
        "datahub_assets.execute.checks.samples.collect_sample", lambda *_: sampled.append(1) or []
    )
    schema = _avsc(tmp_path, [{"name": "line", "type": "int"}])
    checks = [
        chk(kind="notNull", columns="line"),
        chk(kind="unique", columns="line,cust,id"),
        chk(kind="rowCount", min=1),
        chk(kind="range", column="qty", min=1),
        chk(kind="acceptedValues", column="line", values="1,2"),
        chk(kind="regex", column="status", pattern="^[a-z]+$"),
        chk(kind="freshness", column="updated_at", maxAge="P1D"),
        chk(kind="expression", expr="qty >= 1"),
        chk(kind="schema", schemaRef=schema),
        chk(kind="range", column="price", max=5),
    ]
    outcomes = run(session, df, ctx, *checks)
    assert all(o.passed for o in outcomes), [o.description for o in outcomes if not o.passed]
    assert (len(calls), len(sampled)) == (1, 0)
