"""Checks in a whole run: audited snapshot, blocking `error` checks, reporting `warn` checks."""

from __future__ import annotations

import pytest

from datahub_assets.execute.outcomes import ChecksFailed
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="customers" version="1.0.0" layer="bronze">
  <sources><csv id="c" path="landing/c/*.csv" inferSchema="true"/></sources>
  <targets><table table="customers" mode="overwrite"/></targets>
  <checks>
    <notNull columns="email"/>
    <range column="age" min="0" max="120" severity="warn"/>
  </checks>
</pipeline>
"""
GOOD = "id,email,age\n1,a@x.io,30\n2,b@x.io,41\n3,c@x.io,130\n"
BAD = "id,email,age\n1,a@x.io,30\n2,,41\n3,,50\n4,d@x.io,20\n"


def _run(spark, settings, rows: str):
    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.xml").write_text(PIPELINE)
    landing = settings.data_dir / "shop" / "landing" / "c"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "c.csv").write_text(rows)
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = exec_context(spark, settings, app="shop", run_id="run-0001")
    return run_pipeline(spec, ctx, load_catalog(settings))


def test_warn_check_reports_but_publishes(spark, settings):
    (outcome,) = _run(spark, settings, GOOD)
    checks = {c.name: c for c in outcome.checks}
    assert checks["notNull_email"].passed
    assert checks["notNull_email"].failing_rows == 0
    assert not checks["range_age"].passed  # 130 is above 120
    assert checks["range_age"].failing_rows == 1
    assert checks["range_age"].total_rows == 3
    table = load_catalog(settings).load_table("shop_bronze.customers")
    assert table.current_snapshot().snapshot_id == outcome.snapshot_id
    assert table.scan().to_arrow().num_rows == 3


def test_failing_error_check_publishes_nothing(spark, settings):
    (good,) = _run(spark, settings, GOOD)
    with pytest.raises(ChecksFailed) as failed:
        _run(spark, settings, BAD)
    (outcome,) = failed.value.outcomes
    checks = {c.name: c for c in outcome.checks}
    assert checks["notNull_email"].failing_rows == 2
    assert checks["notNull_email"].total_rows == 4
    assert "notNull_email" in str(failed.value)
    assert str(outcome.snapshot_id) in str(failed.value)

    table = load_catalog(settings).load_table("shop_bronze.customers")
    # readers stay on the previous snapshot and its rows
    assert table.current_snapshot().snapshot_id == good.snapshot_id
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]
    # the audited snapshot is kept for inspection, on no branch
    staged = table.snapshot_by_id(outcome.snapshot_id)
    assert staged is not None
    assert staged.parent_snapshot_id == good.snapshot_id
    assert set(table.metadata.refs) == {"main"}
    rows = table.scan(snapshot_id=outcome.snapshot_id).to_arrow().column("email").to_pylist()
    assert rows.count(None) == 2


def test_first_write_failing_checks_leaves_no_table(spark, settings):
    with pytest.raises(ChecksFailed):
        _run(spark, settings, BAD)
    assert not load_catalog(settings).table_exists(("shop_bronze", "customers"))


QUARANTINE = """<pipeline id="orders" version="1.0.0" layer="raw">
  <sources>
    <csv id="o" path="landing/o/*.csv" onInvalid="quarantine">
      <schemaRef>schemas/orders.avsc</schemaRef>
    </csv>
  </sources>
  <targets><table table="orders" onInvalid="drop"/></targets>
  <checks><range column="amount" min="0" severity="warn"/></checks>
</pipeline>
"""
AVSC = """{"type": "record", "name": "orders", "fields": [
  {"name": "id", "type": "long"},
  {"name": "amount", "type": ["null", "double"]}]}"""


def test_bad_rows_are_quarantined_with_reasons(spark, settings):
    folder = settings.pipelines_dir / "shop" / "raw"
    folder.mkdir(parents=True)
    (folder / "orders.xml").write_text(QUARANTINE)
    (settings.pipelines_dir / "shop" / "schemas").mkdir()
    (settings.pipelines_dir / "shop" / "schemas" / "orders.avsc").write_text(AVSC)
    landing = settings.data_dir / "shop" / "landing" / "o"
    landing.mkdir(parents=True)
    # x is not a long, abc not a double, -5 breaks the row-level range rule at the target
    (landing / "o.csv").write_text("id,amount\n1,10.5\nx,3\n3,abc\n4,-5\n5,\n")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = exec_context(spark, settings, app="shop", run_id="run-q")
    (outcome,) = run_pipeline(spec, ctx, load_catalog(settings))

    catalog = load_catalog(settings)
    kept = catalog.load_table("shop_raw.orders").scan().to_arrow().to_pylist()
    assert sorted((r["id"], r["amount"]) for r in kept) == [(1, 10.5), (5, None)]
    assert outcome.extra["invalid_rows"] == 3  # 2 quarantined at the source, 1 dropped
    assert outcome.extra["quarantine_table"] == "shop_raw.orders__quarantine"
    bad = catalog.load_table("shop_raw.orders__quarantine").scan().to_arrow().to_pylist()
    reasons = {r["id"]: r["_reason"] for r in bad}
    assert set(reasons) == {"x", "3"}
    assert "column 'id': value 'x' is not" in reasons["x"]
    assert "column 'amount': value 'abc' is not" in reasons["3"]
    assert {r["_run_id"] for r in bad} == {"run-q"}


DRIFT = """<pipeline id="c" version="1.0.0" layer="bronze">
  <sources><csv id="c" path="landing/c/*.csv" inferSchema="true"/></sources>
  <targets><table table="c" onSchemaChange="{policy}"/></targets>
</pipeline>
"""


@pytest.mark.parametrize("policy", ["evolve", "fail"])
def test_schema_drift_policy(spark, settings, policy):
    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True)
    (folder / "c.xml").write_text(DRIFT.format(policy=policy))
    landing = settings.data_dir / "shop" / "landing" / "c"
    landing.mkdir(parents=True)
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = exec_context(spark, settings, app="shop", run_id="run-d")
    (landing / "c.csv").write_text("id,name\n1,a\n")
    (first,) = run_pipeline(spec, ctx, load_catalog(settings))
    (landing / "c.csv").write_text("id,name,extra\n2,b,x\n")
    if policy == "evolve":
        (second,) = run_pipeline(spec, ctx, load_catalog(settings))
        drift = {c.name: c for c in second.checks}["schema_drift"]
        assert drift.passed
        assert "extra" in drift.description
        rows = load_catalog(settings).load_table("shop_bronze.c").scan().to_arrow().to_pylist()
        assert sorted(rows, key=lambda r: r["id"]) == [
            {"id": 1, "name": "a", "extra": None},
            {"id": 2, "name": "b", "extra": "x"},
        ]
    else:
        with pytest.raises(ChecksFailed, match="extra") as failed:
            run_pipeline(spec, ctx, load_catalog(settings))
        (outcome,) = failed.value.outcomes
        assert [c.passed for c in outcome.checks] == [False]
        table = load_catalog(settings).load_table("shop_bronze.c")
        assert table.current_snapshot().snapshot_id == first.snapshot_id
        assert [f.name for f in table.schema().fields] == ["id", "name"]
