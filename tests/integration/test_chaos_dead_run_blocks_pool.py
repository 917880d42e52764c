"""Found by bench/chaos.py (issue #13), fixed by run monitoring in both dagster.yaml files
(max_runtime_seconds, free_slots_after_run_end_seconds). Before: a run whose process is
killed (kill -9 of the run worker, or of the daemon's process group: an OOM kill, a lost
node, a container restart) halts every later run of the code location. No row is lost or
duplicated; ingestion stops.

1. The repo's dagster.yaml has no `run_monitoring`, and the DefaultRunLauncher cannot check a
   run worker's health anyway (deploy/dagster.yaml enables monitoring, which for that launcher
   still only watches starting/canceling runs): the killed run stays STARTED forever. Its files
   stay "in flight" in the sensor, and `datahub/ingest` (1 run per pipeline) queues every later
   batch of that pipeline behind it. Run monitoring with `max_runtime_seconds` (or a
   `dagster/max_runtime` tag on drop runs) would fail it.
2. Even once the run is marked failed (by an operator), the `spark` pool slot its step claimed
   stays claimed: op-granularity slots are freed by the step's own process, which is dead.
   After two such kills (`pools.default_limit: 2`) every run of the code location stays QUEUED
   ("blocked by global concurrency limits"). Dagster frees them only with
   `run_monitoring.free_slots_after_run_end_seconds`, which neither dagster.yaml sets.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import dagster as dg
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRun
from dagster._daemon.monitoring import concurrency
from dagster._time import get_current_datetime

REPO = Path(__file__).resolve().parents[2]


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(tmp_path))


def test_the_spark_slot_of_a_killed_run_is_freed_once_the_run_has_failed(tmp_path):
    instance = _instance(tmp_path)
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("spark")
    run = instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=str(uuid.uuid4()),
            run_config=None,
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    claim = storage.claim_concurrency_slot("spark", run.run_id, "chaos__events_raw", 0)
    assert claim.slot_status.value == "CLAIMED"
    # kill -9 of the step's process: nothing frees the slot; the run is then marked failed
    instance.report_run_failed(run, "run worker killed")
    # the daemon's concurrency monitoring, a day later
    with mock.patch.object(
        concurrency,
        "get_current_datetime",
        return_value=get_current_datetime() + datetime.timedelta(days=1),
    ):
        list(
            concurrency.execute_concurrency_slots_iteration(
                SimpleNamespace(instance=instance), logging.getLogger(__name__)
            )
        )
    assert storage.get_concurrency_info("spark").claimed_slots == []


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_a_run_whose_worker_died_is_eventually_failed(config):
    """The DefaultRunLauncher has no worker health check, so only a maximum runtime (run
    monitoring's `max_runtime_seconds`) ends such a run; and its slots need
    `free_slots_after_run_end_seconds`."""
    monitoring = (yaml.safe_load((REPO / config).read_text()) or {}).get("run_monitoring") or {}
    assert monitoring.get("enabled")
    assert monitoring.get("max_runtime_seconds", 0) > 0
    assert monitoring.get("free_slots_after_run_end_seconds", 0) > 0
