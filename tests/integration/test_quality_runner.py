"""Checks in a whole run: audited snapshot, blocking `error` checks, reporting `warn` checks."""

from __future__ import annotations

import pytest

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.outcomes import ChecksFailed
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog

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
    ctx = ExecContext(spark=spark, settings=settings, app="shop", run_id="run-0001")
    return run_pipeline(spec, ctx, load_catalog(settings))


def test_warn_check_reports_but_publishes(spark, settings):
    (outcome,) = _run(spark, settings, GOOD)
    checks = {c.name: c for c in outcome.checks}
    assert checks["notNull_email"].passed and checks["notNull_email"].failing_rows == 0
    assert not checks["range_age"].passed  # 130 is above 120
    assert checks["range_age"].failing_rows == 1 and checks["range_age"].total_rows == 3
    table = load_catalog(settings).load_table("shop_bronze.customers")
    assert table.current_snapshot().snapshot_id == outcome.snapshot_id
    assert table.scan().to_arrow().num_rows == 3


def test_failing_error_check_publishes_nothing(spark, settings):
    (good,) = _run(spark, settings, GOOD)
    with pytest.raises(ChecksFailed) as failed:
        _run(spark, settings, BAD)
    (outcome,) = failed.value.outcomes
    checks = {c.name: c for c in outcome.checks}
    assert checks["notNull_email"].failing_rows == 2 and checks["notNull_email"].total_rows == 4
    assert "notNull_email" in str(failed.value)
    assert str(outcome.snapshot_id) in str(failed.value)

    table = load_catalog(settings).load_table("shop_bronze.customers")
    # readers stay on the previous snapshot and its rows
    assert table.current_snapshot().snapshot_id == good.snapshot_id
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]
    # the audited snapshot is kept for inspection, on no branch
    staged = table.snapshot_by_id(outcome.snapshot_id)
    assert staged is not None and staged.parent_snapshot_id == good.snapshot_id
    assert set(table.metadata.refs) == {"main"}
    rows = table.scan(snapshot_id=outcome.snapshot_id).to_arrow().column("email").to_pylist()
    assert rows.count(None) == 2


def test_first_write_failing_checks_leaves_no_table(spark, settings):
    with pytest.raises(ChecksFailed):
        _run(spark, settings, BAD)
    assert not load_catalog(settings).table_exists(("shop_bronze", "customers"))
