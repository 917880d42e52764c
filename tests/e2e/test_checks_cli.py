"""Blocking checks through the dagster CLI: a failing error check keeps readers on the old
snapshot, records the staged snapshot in the check result, and stops downstream assets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]

RAW = """<pipeline id="orders_raw" layer="raw">
  <sources><csv id="o" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
  <checks>
    <notNull columns="customer_id"/>
    <acceptedValues column="status" values="new,paid" severity="warn"/>
  </checks>
</pipeline>
"""
SILVER = """<pipeline id="orders_silver" layer="silver">
  <sources><table id="o" ref="raw.orders"/></sources>
  <targets><table table="orders"/></targets>
</pipeline>
"""


def _materialize(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "datahub_assets.definitions",
            "--select",
            "*",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_failing_error_check_blocks_publish_and_downstream(tmp_path):
    pipes = tmp_path / "pipes" / "shop"
    (pipes / "raw").mkdir(parents=True)
    (pipes / "silver").mkdir()
    (pipes / "raw" / "orders.xml").write_text(RAW)
    (pipes / "silver" / "orders.xml").write_text(SILVER)
    landing = tmp_path / "data" / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipes"),
    }

    (landing / "a.csv").write_text("id,customer_id,status\n1,10,new\n2,11,lost\n")
    first = _materialize(env)
    assert first.returncode == 0, first.stderr[-4000:]

    (landing / "a.csv").write_text("id,customer_id,status\n1,10,new\n2,,paid\n3,,paid\n")
    second = _materialize(env)
    assert second.returncode != 0
    assert "notNull_customer_id" in second.stdout + second.stderr

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    raw_key = dg.AssetKey(["shop", "raw", "orders"])
    silver_key = dg.AssetKey(["shop", "silver", "orders"])
    runs = instance.get_runs()
    assert runs[0].status == dg.DagsterRunStatus.FAILURE
    # downstream did not run in the failing run
    latest_silver = instance.get_latest_materialization_event(silver_key)
    assert latest_silver.run_id == runs[1].run_id
    # the blocking check result carries the staged snapshot; readers stay on the first one
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(raw_key, "notNull_customer_id")]
    )[dg.AssetCheckKey(raw_key, "notNull_customer_id")]
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.metadata["datahub/failing_rows"].value == 2
    staged = evaluation.metadata["datahub/staged_snapshot_id"].value

    from datahub_resources.iceberg import open_catalog

    catalog = open_catalog(f"sqlite:///{home}/catalog.db", f"file://{home}/warehouse")
    table = catalog.load_table("shop_raw.orders")
    published = instance.get_latest_materialization_event(raw_key).asset_materialization
    assert (
        str(table.current_snapshot().snapshot_id) == published.metadata["datahub/snapshot_id"].value
    )
    assert str(table.current_snapshot().snapshot_id) != staged
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
