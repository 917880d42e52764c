"""A file-drop pipeline with nothing new (issue 13 item 3): a run started by hand still
materialises the raw table (a no-op) so the downstream assets it selected recompute, and the
log names the sources without new files; a sensor run with nothing new materialises nothing,
so downstream is not re-run for nothing."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.integration.test_watch_sensor import _drop, project  # noqa: F401 - fixture

pytestmark = pytest.mark.spark

RAW_KEY = dg.AssetKey(["shop", "raw", "orders"])
BRONZE_KEY = dg.AssetKey(["shop", "bronze", "orders"])


def _keys(result) -> set:
    return {
        e.event_specific_data.materialization.asset_key
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }


def test_a_manual_run_with_nothing_new_recomputes_downstream(project):  # noqa: F811
    defs, instance, landing = project
    job = defs.resolve_implicit_global_asset_job_def()
    _drop(landing, "a.csv", "id,amount\n1,10\n")
    first = job.execute_in_process(instance=instance, asset_selection=[RAW_KEY, BRONZE_KEY])
    assert first.success
    assert _keys(first) == {RAW_KEY, BRONZE_KEY}

    again = job.execute_in_process(instance=instance, asset_selection=[RAW_KEY, BRONZE_KEY])

    assert again.success
    assert _keys(again) == {RAW_KEY, BRONZE_KEY}
    raw = next(
        e
        for e in again.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == RAW_KEY
    )
    assert raw.event_specific_data.materialization.metadata["datahub/nothing_new"].value is True
    logs = [entry.user_message for entry in instance.all_logs(again.run_id)]
    assert any("source(s) orders had nothing new" in m for m in logs)


def test_a_sensor_run_with_nothing_new_materialises_nothing(project):  # noqa: F811
    defs, instance, landing = project
    job = defs.resolve_implicit_global_asset_job_def()
    config = {"ops": {"shop__raw__orders": {"config": {"files": {"orders": []}}}}}
    result = job.execute_in_process(
        instance=instance, run_config=config, asset_selection=[RAW_KEY, BRONZE_KEY]
    )
    assert result.success
    assert _keys(result) == set()
