"""The promise of file drops, through the real Dagster daemon: drop a file into landing while
the daemon runs, and it reaches raw, bronze and the service export with no manual step, and
leaves landing for processed/ (or rejected/ with its reason)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.daemon import REPO, Daemon, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv"><watch pollSeconds="5" minAgeSeconds="1"/></csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>
"""
BRONZE = """<pipeline id="orders" version="1.0.0" layer="bronze">
  <sources><table id="o" ref="raw.orders"/></sources>
  <transformations>
    <cast source="o" types="order_id:int,amount:double"/>
    <aggregate source="o" output="totals" groupBy="customer" metrics="sum:amount:total"/>
  </transformations>
  <targets>
    <table table="orders" source="o" mode="overwrite"/>
    <csv name="totals_export" source="totals" path="service/totals" mode="overwrite"/>
  </targets>
</pipeline>
"""


def _totals(folder: Path) -> dict[str, float]:
    out = {}
    for part in folder.glob("*.csv"):
        with part.open() as fh:
            for row in csv.DictReader(fh):
                out[row["customer"]] = float(row["total"])
    return out


def test_a_dropped_file_flows_to_the_service_export_while_the_daemon_runs(tmp_path):
    pipelines = tmp_path / "pipelines" / "shop"
    for layer, text in (("raw", RAW), ("bronze", BRONZE)):
        (pipelines / layer).mkdir(parents=True)
        (pipelines / layer / "orders.xml").write_text(text)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    data = tmp_path / "data"
    landing = data / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    env = os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(data),
        "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
    }
    log = tmp_path / "daemon.log"
    with Daemon(env, log):
        (landing / "a.csv.tmp").write_text("order_id,customer,amount\n1,ann,10\n2,bob,5\n")
        (landing / "a.csv.tmp").replace(landing / "a.csv")  # the usual atomic drop
        (landing / "bad.csv").write_text("")
        service = data / "shop" / "service" / "totals"
        wait_for(
            lambda: _totals(service) == {"ann": 10.0, "bob": 5.0},
            300,
            "the first file in the service export",
            log,
        )
        processed = data / "shop" / "processed"
        assert [p.name for p in processed.rglob("*.csv")] == ["a.csv"]
        (reason,) = (data / "shop" / "rejected").rglob("bad.csv.reason.json")
        assert json.loads(reason.read_text())["rule"] == "empty"

        (landing / "b.csv").write_text("order_id,customer,amount\n3,ann,7.5\n")
        wait_for(
            lambda: _totals(service) == {"ann": 17.5, "bob": 5.0},
            300,
            "the second file in the service export",
            log,
        )
        assert sorted(p.name for p in processed.rglob("*.csv")) == ["a.csv", "b.csv"]
        assert list(landing.iterdir()) == []
