"""XML -> Python -> XML through the CLIs users run: `dg check defs` and `dg list defs` show the
Python asset between XML ones, `dagster asset materialize` runs the chain and the rows arrive
(a CSV drop -> XML raw table -> Python asset (Iceberg IO manager) -> XML CSV export);
`datahub validate` and `dg check defs` of a broken Python asset name its file and line.

Costs about 60-70 s (three dg loads, one three-step run on the shared Spark server)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]

RAW = """<pipeline id="orders_raw" layer="raw">
  <sources><csv id="o" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
</pipeline>
"""
EXPORT = """<pipeline id="totals_export" layer="service">
  <sources><table id="t" ref="gold.customer_totals"/></sources>
  <transformations><sort source="t" orderBy="customer"/></transformations>
  <targets><csv name="totals_csv" path="service/totals" mode="overwrite"/></targets>
</pipeline>
"""
PYTHON = '''"""Totals per customer, in pandas."""
import pandas as pd

from datahub_assets.python import checks as c
from datahub_assets.python import table_asset


@table_asset(
    layer="gold",
    ins={"orders": "raw.orders"},
    checks=[c.unique("customer"), c.range_("total", min=0)],
)
def customer_totals(orders: pd.DataFrame) -> pd.DataFrame:
    totals = orders.groupby("customer", as_index=False)["amount"].sum()
    return totals.rename(columns={"amount": "total"})
'''


def _run(cmd: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    if ok:
        assert proc.returncode == 0, (
            f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture
def project(tmp_path):
    app = tmp_path / "pipes" / "shop"
    for folder in ("raw", "service", "python"):
        (app / folder).mkdir(parents=True)
    (app / "raw" / "orders.xml").write_text(RAW)
    (app / "service" / "totals_export.xml").write_text(EXPORT)
    (app / "python" / "customer_totals.py").write_text(PYTHON)
    landing = tmp_path / "data" / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("id,customer,amount\n1,ann,10\n2,bob,5\n3,ann,7\n4,cid,1\n")
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return tmp_path, os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipes"),
    }


def test_xml_python_xml_through_the_cli(project):
    root, env = project
    _run([str(BIN / "dg"), "check", "defs"], env)
    listed = json.loads(_run([str(BIN / "dg"), "list", "defs", "--json"], env).stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) >= {
        "shop/raw/orders",
        "shop/gold/customer_totals",
        "shop/service/totals_csv",
    }
    python = assets["shop/gold/customer_totals"]
    assert python["dependency_keys"] == ["shop/raw/orders"]
    assert assets["shop/service/totals_csv"]["dependency_keys"] == ["shop/gold/customer_totals"]
    assert set(python["kinds"]) == {"python", "iceberg"}

    proc = _run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "datahub_assets.definitions",
            "--select",
            "*",
        ],
        env,
    )
    assert "unique_customer" in proc.stdout + proc.stderr  # the check ran in the step
    files = sorted((root / "data" / "shop" / "service" / "totals").glob("*.csv"))
    assert files, "no CSV export"
    rows = [r for f in files for r in csv.DictReader(f.open())]
    assert [(r["customer"], int(r["total"])) for r in rows] == [("ann", 17), ("bob", 5), ("cid", 1)]


def test_validate_and_dg_check_name_the_broken_python_file_and_line(project):
    root, env = project
    path = root / "pipes" / "shop" / "python" / "customer_totals.py"
    path.write_text(PYTHON.replace('layer="gold"', 'layer="gold", mode="upsert"'))
    proc = _run([str(BIN / "datahub"), "validate"], env, ok=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "shop/python/customer_totals.py:8:" in out, out
    assert "mode 'upsert' is not one of append, overwrite, merge" in out, out
    proc = _run([str(BIN / "dg"), "check", "defs"], env, ok=False)
    assert proc.returncode != 0
    assert "shop/python/customer_totals.py:8:" in proc.stdout + proc.stderr
