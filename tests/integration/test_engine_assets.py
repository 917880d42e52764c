"""The engine choice through Dagster (issue #12): an asset body runs its pipeline on the engine
`engines.choice` gives, records which and why, and a run on DuckDB starts no Spark server.

No Spark here: the Spark resource points at a state folder of the test's own, and the test
asserts that no server was ever started there."""

from __future__ import annotations

import csv
import hashlib
from decimal import Decimal

import dagster as dg
import pytest

from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources import spark_server
from datahub_resources.deployment import resources
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw" engine="{engine}">
  <sources><csv id="orders" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <transformations>
    <derive source="orders" column="total" expr="CAST(quantity * price AS decimal(12,2))"/>
    <mask source="orders" columns="email" strategy="hash"/>
  </transformations>
  <targets><table table="orders" mode="overwrite"/></targets>
  <checks><notNull columns="order_id"/><unique columns="order_id"/></checks>
</pipeline>
"""
SILVER = """<pipeline id="orders_silver" version="1.0.0" layer="silver">
  <sources><table id="orders" ref="raw.orders"/></sources>
  <transformations>
    <aggregate source="orders" groupBy="email" metrics="count:orders,sum:total:spent"/>
  </transformations>
  <targets><table table="spend" mode="overwrite"/></targets>
</pipeline>
"""
ROWS = [(1, "a@x.org", 2, "2.50"), (2, "b@x.org", 1, "10.00"), (3, "a@x.org", 3, "1.25")]


def _app(settings: Settings, raw_engine: str, app_yaml: str = "engine: auto\n") -> None:
    app = settings.pipelines_dir / "shop"
    (app / "raw").mkdir(parents=True)
    (app / "silver").mkdir()
    (app / "app.yaml").write_text(app_yaml)
    (app / "raw" / "orders.xml").write_text(RAW.format(engine=raw_engine))
    (app / "silver" / "spend.xml").write_text(SILVER)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    with (landing / "o.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "email", "quantity", "price"])
        writer.writerows(ROWS)


@pytest.fixture
def no_spark(tmp_path, monkeypatch):
    """A Spark state folder of this test's own: any Spark session would start a server here."""
    state = tmp_path / "spark-state"
    monkeypatch.setenv("DATAHUB_SPARK_STATE", str(state))
    monkeypatch.delenv("DATAHUB_SPARK_REMOTE", raising=False)
    monkeypatch.setenv("DATAHUB_MASK_KEY", "engine-assets-key")
    yield state
    assert spark_server.status(state) is None, "a DuckDB-only run started a Spark server"


def _engines(result: dg.ExecuteInJobResult) -> dict[str, tuple[str, str]]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta = mat.metadata
        out[mat.asset_key.to_user_string()] = (
            meta["datahub/engine"].value,
            meta["datahub/engine_reason"].value,
        )
    return out


@pytest.mark.usefixtures("no_spark")
def test_auto_runs_small_inputs_on_duckdb_without_starting_spark(settings):
    _app(settings, raw_engine="auto")
    assets = build_assets(load_project(settings.pipelines_dir))
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, resources=resources(), instance=instance)
    assert result.success
    engines = _engines(result)
    assert engines["shop/raw/orders"][0] == "duckdb"
    assert engines["shop/raw/orders"][1].startswith("auto: inputs ")
    assert engines["shop/raw/orders"][1].endswith("≤ 2048 MB → duckdb")
    assert engines["shop/silver/spend"][0] == "duckdb"  # app.yaml engine: auto
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["notNull_order_id"]
    assert checks["unique_order_id"]

    spend = load_catalog(Settings.from_env()).load_table("shop_silver.spend").scan().to_arrow()
    got = {r["email"]: (r["orders"], r["spent"]) for r in spend.to_pylist()}

    def digest(email: str) -> str:
        return hashlib.sha256(("engine-assets-key" + email).encode()).hexdigest()

    assert got == {
        digest("a@x.org"): (2, Decimal("5.00") + Decimal("3.75")),
        digest("b@x.org"): (1, Decimal("10.00")),
    }


@pytest.mark.usefixtures("no_spark")
def test_run_tag_forces_duckdb_and_a_blocked_pipeline_is_refused(settings):
    _app(settings, raw_engine="spark", app_yaml="")
    mongo = settings.pipelines_dir / "shop" / "raw" / "products.xml"
    mongo.write_text(
        """<pipeline id="products_raw" version="1.0.0" layer="raw">
  <sources><mongo id="p" uriSecretRef="SHOP_NO_SUCH_URI" database="d" collection="c"/></sources>
  <targets><table table="products" mode="overwrite"/></targets>
</pipeline>
"""
    )
    assets = {
        a.key.to_user_string(): a
        for a in build_assets(load_project(settings.pipelines_dir))
        if len(a.keys) == 1
    }
    tags = {"datahub/engine": "duckdb"}
    with dg.instance_for_test() as instance:
        forced = dg.materialize(
            [assets["shop/raw/orders"]], resources=resources(), instance=instance, tags=tags
        )
        refused = dg.materialize(
            [assets["shop/raw/products"]],
            resources=resources(),
            instance=instance,
            tags=tags,
            raise_on_error=False,
        )
    engine, reason = _engines(forced)["shop/raw/orders"]
    assert (engine, reason) == ("duckdb", "engine=duckdb (run tag datahub/engine)")
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    text = str(failure.step_failure_data.error)
    assert "cannot run on DuckDB" in text
    assert "mongo" in text.lower()
