"""How often a run loads each table from the catalog: once by the run, plus the read of the
catalog row each commit compare-and-swaps (pyiceberg's SqlCatalog.commit_table and
multi_commit re-read it; that read is the concurrency guard)."""

from __future__ import annotations

from collections import Counter

import pytest

from datahub_assets.execute.runner import run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="orders" version="1.0.0" layer="bronze">
  <sources><csv id="orders" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <transformations>
    <filter source="orders" output="big" condition="price >= 4"/>
  </transformations>
  <targets>
    <table table="orders" source="orders" mode="append"/>
    <table table="big_orders" source="big" mode="merge" keys="order_id"/>
  </targets>
  <checks>
    <rowCount target="orders" min="1"/><unique target="big_orders" columns="order_id"/>
  </checks>
</pipeline>
"""


def _counting(catalog) -> Counter:
    counts: Counter = Counter()
    load = catalog.load_table

    def counted(identifier):
        counts[identifier if isinstance(identifier, str) else ".".join(identifier)] += 1
        return load(identifier)

    catalog.load_table = counted
    return counts


def test_each_table_is_loaded_a_bounded_number_of_times_per_run(spark, settings):
    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True)
    (folder / "orders.xml").write_text(PIPELINE)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("order_id,price\n1,5.0\n2,3.0\n3,4.5\n")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    catalog = load_catalog(settings)
    ctx = exec_context(spark, settings, app="shop", run_id="first")
    run_pipeline(spec, ctx, catalog)  # creates the tables
    counts = _counting(catalog)
    ctx = exec_context(spark, settings, app="shop", run_id="second")
    run_pipeline(spec, ctx, catalog)
    # measured: 10 loads per table before the one write path, now 4 per table: the runner's
    # one load (watermarks, drift and the write share it) + the catalog's own read of the
    # row it compare-and-swaps in each of the 3 commits (audit snapshot, audit branch, the
    # publish of all tables together)
    assert dict(counts) == {"shop_bronze.orders": 4, "shop_bronze.big_orders": 4}
