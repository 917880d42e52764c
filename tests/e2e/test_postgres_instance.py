"""The production Dagster instance (deploy/dagster.yaml) on PostgreSQL, through the real daemon.

One private PostgreSQL cluster holds both the Dagster instance (runs, event logs, schedule and
sensor state) and the Iceberg catalog (DATAHUB_CATALOG_URI), as a production install does.
The daemon ingests a dropped file by its sensor, evaluates a pipeline's `<schedule>` (an
automation condition, evaluated by the `datahub_automation` sensor: this project has no
per-pipeline ScheduleDefinitions), and an operator stops a sensor that runs by default. The
daemon is stopped, and a fresh DagsterInstance on the same config still sees the run, its
events, the sensors' cursors and ticks, and the operator's stop. Restarted, the daemon goes
on from that state: the first file is not ingested again, the next one is, the automation
evaluations continue from the stored evaluation id, and the stopped sensor stays stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import APP_USER_PASSWORD
from tests.daemon import BIN, REPO, Daemon, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv"><watch pollSeconds="5" minAgeSeconds="1"/></csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>
"""
DAILY = """<pipeline id="orders_daily" version="1.0.0" layer="gold">
  <metadata><schedule>0 2 * * *</schedule></metadata>
  <sources><table id="o" ref="raw.orders"/></sources>
  <targets><table table="orders_daily" mode="overwrite"/></targets>
</pipeline>
"""
SENSOR = "watch__shop__orders_raw__orders"
AUTOMATION = "datahub_automation"  # evaluates every <schedule> of the project
STOPPED = "datahub_run_records"  # runs by default; the operator stops it


def _instance(dagster_home: Path):
    """A DagsterInstance built anew from the dagster.yaml in `dagster_home`."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home))


def _state(instance):
    """{name: InstigatorState} of every sensor and schedule the instance stores."""
    return {s.name: s for s in instance.all_instigator_state()}


def _ticks(instance, name: str) -> list:
    state = _state(instance).get(name)
    return instance.get_ticks(state.instigator_origin_id, state.selector_id) if state else []


def _evaluation_ids(instance) -> list[int]:
    """Evaluation ids of the automation sensor's ticks, as stored."""
    return [t.automation_condition_evaluation_id for t in _ticks(instance, AUTOMATION)]


def _succeeded(instance) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    return instance.get_runs(
        RunsFilter(statuses=[DagsterRunStatus.SUCCESS], tags={"dagster/sensor_name": SENSOR})
    )


def _row_count(catalog_uri: str, warehouse: str) -> int:
    from datahub_resources.iceberg import open_catalog

    table = open_catalog(catalog_uri, warehouse).load_table(("shop_raw", "orders"))
    return int(table.current_snapshot().summary.additional_properties["total-records"])


@pytest.fixture
def databases(postgres_server):
    """Two fresh databases on the private cluster: the Dagster instance's and the catalog's."""
    from datahub_assets.demo import local_servers

    suffix = uuid.uuid4().hex[:8]
    names = (f"dagster_{suffix}", f"catalog_{suffix}")
    for name in names:
        local_servers.create_database(postgres_server, name)
    return names


def test_runs_events_and_instigator_state_persist_across_a_daemon_restart(
    tmp_path, postgres_server, databases, monkeypatch
):
    from dagster import AssetKey
    from dagster._core.scheduler.instigation import InstigatorStatus

    dagster_db, catalog_db = databases
    pipelines = tmp_path / "pipelines" / "shop"
    (pipelines / "raw").mkdir(parents=True)
    (pipelines / "raw" / "orders.xml").write_text(RAW)
    (pipelines / "gold").mkdir()
    (pipelines / "gold" / "orders_daily.xml").write_text(DAILY)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    data = tmp_path / "data"
    landing = data / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    catalog_uri = f"postgresql+psycopg://datahub@127.0.0.1:{postgres_server.port}/{catalog_db}"
    warehouse = f"file://{tmp_path / 'warehouse'}"
    instance_env = {  # what deploy/dagster.yaml reads; the password needs quoting in a URL
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_USER": "app_user",
        "DAGSTER_PG_PASSWORD": APP_USER_PASSWORD,
        "DAGSTER_PG_DB": dagster_db,
    }
    for key, value in instance_env.items():
        monkeypatch.setenv(key, value)
    env = (
        os.environ
        | instance_env
        | {
            "DATAHUB_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": str(dagster_home),
            "DATAHUB_DATA_DIR": str(data),
            "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
            "DATAHUB_CATALOG_URI": catalog_uri,
            "DATAHUB_WAREHOUSE": warehouse,
        }
    )
    log = tmp_path / "daemon.log"
    daemon = Daemon(env, log)
    try:
        # ---------------------------------------------------------------- first daemon
        daemon.start()
        (landing / "a.csv").write_text("order_id,customer,amount\n1,ann,10\n2,bob,5\n")
        (first,) = wait_for(
            lambda: _succeeded(_instance(dagster_home)), 300, "the sensor's run of a.csv", log
        )
        wait_for(
            lambda: _evaluation_ids(_instance(dagster_home)),
            120,
            "an evaluation of the automation sensor",
            log,
        )
        stop = subprocess.run(
            [str(BIN / "dagster"), "sensor", "stop", STOPPED, "-m", "datahub_assets.definitions"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stop.returncode == 0, stop.stdout + stop.stderr
        daemon.stop()

        # ------------------------------------------- stopped: a fresh instance reads it all
        instance = _instance(dagster_home)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert not list(dagster_home.rglob("*.db")), "no SQLite storage beside PostgreSQL"
        assert instance.get_run_by_id(first.run_id).is_success
        materialized = instance.fetch_materializations(
            AssetKey(["shop", "raw", "orders"]), limit=10
        ).records
        assert [r.run_id for r in materialized] == [first.run_id]
        assert instance.all_logs(first.run_id), "the run's event log"
        state = _state(instance)
        sensor = state[SENSOR]
        assert sensor.instigator_data.cursor, "the file-drop sensor's cursor"
        last_run_key = sensor.instigator_data.last_run_key
        assert last_run_key == first.tags["dagster/run_key"]
        assert instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id)
        ticks = len(instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id))
        evaluated = _evaluation_ids(instance)
        assert state[AUTOMATION].instigator_data.cursor, "the automation sensor's cursor"
        assert state[STOPPED].status == InstigatorStatus.STOPPED
        stopped_ticks = len(_ticks(instance, STOPPED))
        assert _row_count(catalog_uri, warehouse) == 2

        # ----------------------------------- second daemon: goes on from the stored state
        daemon.start()
        (landing / "b.csv").write_text("order_id,customer,amount\n3,ann,7.5\n")
        runs = wait_for(
            lambda: (r := _succeeded(_instance(dagster_home))) and len(r) >= 2 and r,
            300,
            "the sensor's run of b.csv",
            log,
        )
        time.sleep(12)  # two more sensor ticks: a.csv must not come back
        daemon.stop()

        instance = _instance(dagster_home)
        runs = _succeeded(instance)
        assert len(runs) == 2
        assert first.run_id in {r.run_id for r in runs}
        state = _state(instance)
        sensor = state[SENSOR]
        assert sensor.instigator_data.cursor  # the planner's cursor (idle again: no batch open)
        assert sensor.instigator_data.last_run_key not in (None, last_run_key)
        assert len(instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id)) > ticks
        after = _evaluation_ids(instance)
        assert set(evaluated) < set(after)
        assert min(set(after) - set(evaluated)) > max(evaluated)
        assert state[STOPPED].status == InstigatorStatus.STOPPED
        assert len(_ticks(instance, STOPPED)) == stopped_ticks
        assert _row_count(catalog_uri, warehouse) == 3
        assert sorted(p.name for p in (data / "shop" / "processed").rglob("*.csv")) == [
            "a.csv",
            "b.csv",
        ]
    finally:
        daemon.stop()
