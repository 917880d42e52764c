"""Build layer: pipelines → Dagster assets (keys, deps, groups, kinds, automation), no Spark."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <metadata><owner>sales-team</owner><description>Orders as dropped</description>
    <tags><tag key="domain" value="sales"/><tag key="note" value="has spaces here"/></tags>
  </metadata>
  <sources><csv id="orders" path="landing/orders/*.csv"><watch/></csv></sources>
  <targets><table table="orders"/></targets>
</pipeline>
"""
BRONZE = """<pipeline id="orders_bronze" version="1.0.0" layer="bronze">
  <sources><table id="orders" ref="raw.orders"/></sources>
  <transformations><deduplicate source="orders" keys="order_id"/></transformations>
  <targets><table table="orders" mode="overwrite"/></targets>
</pipeline>
"""
GOLD = """<pipeline id="daily" version="2.0.0" layer="gold">
  <metadata><owner>bi@example.com</owner><schedule>0 6 * * *</schedule></metadata>
  <sources><table id="orders" ref="shop.bronze.orders"/></sources>
  <transformations>
    <aggregate source="orders" groupBy="status" metrics="count:orders"/>
  </transformations>
  <targets>
    <table table="gold.daily_orders"/>
    <csv name="daily_orders_export" path="service/daily_orders/%Y/%m/%d"/>
  </targets>
</pipeline>
"""


def _project(tmp_path: Path):
    for layer, text in (("raw", RAW), ("bronze", BRONZE), ("gold", GOLD)):
        folder = tmp_path / "shop" / layer
        folder.mkdir(parents=True)
        (folder / f"{layer}.xml").write_text(text)
    return load_project(tmp_path)


def _specs(tmp_path: Path) -> dict[dg.AssetKey, tuple[dg.AssetsDefinition, dg.AssetSpec]]:
    assets = build_assets(_project(tmp_path))
    return {spec.key: (a, spec) for a in assets for spec in a.specs}


def test_one_multi_asset_per_pipeline_one_spec_per_target(tmp_path):
    assets = build_assets(_project(tmp_path))
    # step names: the asset a pipeline writes, or its id and target count for several
    assert sorted(a.node_def.name for a in assets) == [
        "shop__bronze__orders",
        "shop__gold__daily__2_targets",
        "shop__raw__orders",
    ]
    keys = {k.to_user_string() for a in assets for k in a.keys}
    assert keys == {
        "shop/raw/orders",
        "shop/bronze/orders",
        "shop/gold/daily_orders",
        "shop/gold/daily_orders_export",
    }


def test_keys_groups_deps_kinds(tmp_path):
    specs = _specs(tmp_path)
    _, raw = specs[dg.AssetKey(["shop", "raw", "orders"])]
    _, bronze = specs[dg.AssetKey(["shop", "bronze", "orders"])]
    _, gold = specs[dg.AssetKey(["shop", "gold", "daily_orders"])]
    assert raw.group_name == "raw"
    assert bronze.group_name == "bronze"
    assert gold.group_name == "gold"
    assert [d.asset_key for d in bronze.deps] == [dg.AssetKey(["shop", "raw", "orders"])]
    assert [d.asset_key for d in gold.deps] == [dg.AssetKey(["shop", "bronze", "orders"])]
    assert raw.kinds == {"spark", "iceberg"}
    assert raw.metadata["dagster/table_name"] == "datahub.shop_raw.orders"
    _, export = specs[dg.AssetKey(["shop", "gold", "daily_orders_export"])]
    assert export.kinds == {"spark", "csv"}
    assert export.metadata["datahub/export_path"] == "service/daily_orders/%Y/%m/%d"


def test_owner_tags_and_code_reference(tmp_path):
    specs = _specs(tmp_path)
    _, raw = specs[dg.AssetKey(["shop", "raw", "orders"])]
    _, gold = specs[dg.AssetKey(["shop", "gold", "daily_orders"])]
    assert raw.owners == ["team:sales-team"]
    assert gold.owners == ["bi@example.com"]
    assert raw.tags["domain"] == "sales"
    assert raw.tags["datahub/layer"] == "raw"
    # a tag value Dagster refuses is kept as metadata, not dropped
    assert raw.metadata["datahub/tag/note"] == "has spaces here"
    refs = raw.metadata["dagster/code_references"].code_references
    assert refs[0].file_path == str(tmp_path / "shop" / "raw" / "raw.xml")
    assert refs[0].line_number == 1
    assert raw.metadata["datahub/definition"] == "shop/raw/raw.xml:6"
    # the full key path first: lineage nodes show only the last part of the key
    assert raw.description == "shop/raw/orders: Orders as dropped"
    assert raw.metadata["datahub/asset"] == "shop/raw/orders"


def test_cron_and_eager_automation(tmp_path):
    specs = _specs(tmp_path)
    _, raw = specs[dg.AssetKey(["shop", "raw", "orders"])]
    _, bronze = specs[dg.AssetKey(["shop", "bronze", "orders"])]
    _, gold = specs[dg.AssetKey(["shop", "gold", "daily_orders"])]
    assert raw.automation_condition is None  # started by its file-drop sensor (issue 4)
    assert bronze.automation_condition.get_label() == "after upstream changes"
    assert gold.automation_condition.get_label() == "on schedule 0 6 * * *"


def test_definitions_resolve_as_one_graph(tmp_path):
    defs = dg.Definitions(assets=build_assets(_project(tmp_path)), resources=resources())
    graph = defs.resolve_asset_graph()
    bronze = dg.AssetKey(["shop", "bronze", "orders"])
    assert graph.get(bronze).parent_keys == {dg.AssetKey(["shop", "raw", "orders"])}
    assert dg.AssetKey(["shop", "gold", "daily_orders"]) in graph.get(bronze).child_keys


CHECKED = """<pipeline id="customers" version="1.0.0" layer="silver">
  <metadata><sla>PT2H</sla></metadata>
  <sources><table id="orders" ref="bronze.orders"/></sources>
  <targets><table table="customers"/></targets>
  <checks>
    <notNull columns="customer_id,email"/>
    <unique columns="customer_id" severity="warn"/>
    <referential column="order_id" ref="bronze.orders.order_id" name="orders_exist"/>
  </checks>
</pipeline>
"""


def test_checks_become_asset_checks_blocking_on_error(tmp_path):
    folder = tmp_path / "shop" / "silver"
    folder.mkdir(parents=True)
    (folder / "customers.xml").write_text(CHECKED)
    for layer, text in (("raw", RAW), ("bronze", BRONZE)):
        (tmp_path / "shop" / layer).mkdir(parents=True)
        (tmp_path / "shop" / layer / f"{layer}.xml").write_text(text)
    assets = build_assets(load_project(tmp_path))
    (silver,) = [a for a in assets if a.node_def.name == "shop__silver__customers"]
    specs = {c.name: c for c in silver.check_specs}
    key = dg.AssetKey(["shop", "silver", "customers"])
    assert set(specs) == {
        "notNull_customer_id_email",
        "unique_customer_id",
        "orders_exist",
        "schema_drift",
    }
    assert all(c.asset_key == key for c in specs.values())
    assert specs["notNull_customer_id_email"].blocking is True
    assert specs["unique_customer_id"].blocking is False
    assert specs["schema_drift"].blocking is False
    assert [d.asset_key for d in specs["orders_exist"].additional_deps] == [
        dg.AssetKey(["shop", "bronze", "orders"])
    ]
    (spec,) = silver.specs
    assert spec.freshness_policy.fail_window.to_timedelta().total_seconds() == 7200
