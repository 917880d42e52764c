"""`datahub launch` (what `make demo` runs): the run belongs to the workspace's code location.

`dg launch` / `dagster asset materialize -m` execute in process from a Python module: the
run has no remote origin, so the UI warns "loaded from a different code location" on
re-execution and leaves the run off the Overview timeline. Checked here in the run storage.
"""

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
pytestmark = [pytest.mark.slow, pytest.mark.spark]

PIPELINE = """<pipeline id="orders_load" layer="bronze">
  <sources><csv id="src" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
</pipeline>
"""


def test_launch_runs_under_the_workspace_location(tmp_path, spark):
    del spark  # the shared server is up: the run's step connects to it
    home, data, pipelines = tmp_path / "home", tmp_path / "data", tmp_path / "pipelines"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    (pipelines / "shop" / "bronze").mkdir(parents=True)
    (pipelines / "shop" / "bronze" / "orders_load.xml").write_text(PIPELINE)
    (data / "shop" / "landing" / "orders").mkdir(parents=True)
    (data / "shop" / "landing" / "orders" / "a.csv").write_text("id,amount\n1,10\n2,20\n3,5\n")
    env = os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(data),
        "DATAHUB_PIPELINES_DIR": str(pipelines),
    }
    proc = subprocess.run(
        [str(BIN / "datahub"), "launch", "--assets", 'key:"shop/*"'],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (record,) = instance.get_run_records()
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        origin = run.remote_job_origin
        assert origin is not None  # `-m` runs have none
        assert origin.location_name == "datahub"  # workspace.yaml's and dg's location name
        assert run.asset_selection == {dg.AssetKey(["shop", "bronze", "orders"])}
        assert f'run {run.run_id} (datahub, key:"shop/*"): SUCCESS' in proc.stdout
        # the step is named after the asset it writes
        assert run.step_keys_to_execute == ["shop__bronze__orders"]
        materialized = instance.get_latest_materialization_event(
            dg.AssetKey(["shop", "bronze", "orders"])
        )
        assert materialized is not None
        assert materialized.run_id == run.run_id
