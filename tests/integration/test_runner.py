"""A whole pipeline run: sources → steps → staged writes → commits; failures leave tables as
they were."""

from __future__ import annotations

import pytest

from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="orders" version="1.0.0" layer="bronze">
  <sources><csv id="orders" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <transformations>
    <derive source="orders" column="total" expr="{total_expr}"/>
    <filter source="orders" output="big" condition="total >= 10"/>
  </transformations>
  <targets>
    <table table="orders" source="orders" mode="overwrite"/>
    <table table="big_orders" source="big" mode="append"/>
    <csv name="big_export" source="big" path="service/big" mode="{csv_mode}"/>
  </targets>
</pipeline>
"""
GOOD = "quantity * price"
# fails inside Spark while writing the *second* table, after the first one was staged
BAD = "IF(order_id = 3, raise_error('boom'), quantity * price)"


def _setup(settings, total_expr: str, csv_mode: str = "overwrite"):
    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders.xml").write_text(PIPELINE.format(total_expr=total_expr, csv_mode=csv_mode))
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "a.csv").write_text("order_id,quantity,price\n1,1,5.0\n2,3,4.0\n3,10,2.5\n")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _state(catalog):
    out = {}
    for name in ("orders", "big_orders"):
        ident = ("shop_bronze", name)
        if catalog.table_exists(ident):
            snap = catalog.load_table(ident).current_snapshot()
            out[name] = snap.snapshot_id if snap else None
    return out


def _ctx(spark, settings):
    return exec_context(spark, settings, run_id="test")


def test_run_writes_every_target(spark, settings):
    spec = _setup(settings, GOOD)
    catalog = load_catalog(settings)
    outcomes = run_pipeline(spec, _ctx(spark, settings), catalog)
    by_name = {o.ref.table: o for o in outcomes}
    assert by_name["orders"].rows == 3
    assert by_name["big_orders"].rows == 2  # totals 5.0, 12.0, 25.0 -> two >= 10
    assert by_name["big_export"].rows == 2
    rows = catalog.load_table("shop_bronze.big_orders").scan().to_arrow().to_pylist()
    assert sorted((r["order_id"], r["total"]) for r in rows) == [(2, 12.0), (3, 25.0)]
    exported = sorted((settings.data_dir / "shop" / "service" / "big").glob("*.csv"))
    lines = [line for p in exported for line in p.read_text().splitlines()[1:]]
    assert sorted(lines) == ["2,3,4.0,12.0", "3,10,2.5,25.0"]
    assert by_name["big_orders"].table_rows == 2
    assert by_name["big_export"].table_rows is None

    # a second run appends 2 more rows: rows is what the run wrote, table_rows the total
    again = {o.ref.table: o for o in run_pipeline(spec, _ctx(spark, settings), catalog)}
    assert again["big_orders"].rows == 2
    assert again["big_orders"].table_rows == 4
    assert again["orders"].rows == 3
    assert again["orders"].table_rows == 3  # overwrite


def test_failed_write_leaves_every_table_as_it_was(spark, settings):
    catalog = load_catalog(settings)
    run_pipeline(_setup(settings, GOOD), _ctx(spark, settings), catalog)
    before = _state(catalog)
    assert set(before) == {"orders", "big_orders"}

    with pytest.raises(PipelineRunError, match="boom"):
        run_pipeline(_setup(settings, BAD), _ctx(spark, settings), catalog)
    assert _state(catalog) == before
    rows = catalog.load_table("shop_bronze.big_orders").scan().to_arrow().num_rows
    assert rows == 2


def test_failed_export_rolls_back_committed_tables(spark, settings):
    catalog = load_catalog(settings)
    run_pipeline(_setup(settings, GOOD), _ctx(spark, settings), catalog)
    before = _state(catalog)
    # mode="error" refuses to write over the export of the first run
    with pytest.raises(PipelineRunError, match="csv export failed"):
        run_pipeline(_setup(settings, GOOD, csv_mode="error"), _ctx(spark, settings), catalog)
    assert _state(catalog) == before
    assert catalog.load_table("shop_bronze.big_orders").scan().to_arrow().num_rows == 2
