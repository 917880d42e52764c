"""The production catalog: pyiceberg's SQL catalog on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from pyspark.sql import Row

from datahub_assets.iceberg.read import read_table
from datahub_assets.iceberg.table import write_table
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings

pytestmark = pytest.mark.spark


@pytest.mark.usefixtures("settings")
def test_write_and_read_through_postgres_catalog(spark, postgres_url, monkeypatch):
    monkeypatch.setenv("DATAHUB_CATALOG_URI", postgres_url)
    catalog = load_catalog(Settings.from_env())
    ref = TableRef(app="shop", layer="bronze", table="orders")
    df = spark.createDataFrame([Row(order_id=1, amount=9.5), Row(order_id=2, amount=3.0)])
    first = write_table(spark, catalog, ref, df, TableTarget(table="orders"), "run-1")
    second = write_table(spark, catalog, ref, df.limit(1), TableTarget(table="orders"), "run-2")

    # a fresh catalog object (as another process would have) sees both commits
    table = load_catalog(Settings.from_env()).load_table("shop_bronze.orders")
    assert table.current_snapshot().snapshot_id == second.snapshot_id
    assert second.previous_snapshot_id == first.snapshot_id
    rows = sorted((r.order_id, r.amount) for r in read_table(spark, catalog, ref).collect())
    assert rows == [(1, 9.5), (1, 9.5), (2, 3.0)]
