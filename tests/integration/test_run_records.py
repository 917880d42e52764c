"""Run records (contract 8) against a real Dagster instance and a real Iceberg catalog.

Most tests run stand-in pipelines: Dagster multi_assets shaped exactly like the factory's
(op `<app>__<id>` tagged `datahub/pipeline=<app>.<id>`, targets `[app, layer, table]`,
materialisations with dagster/row_count, datahub/snapshot_id, datahub/iceberg_table, asset
checks) that do no Spark work, so runs take milliseconds. One test records real pipelines
run on Spark, so the factory's own metadata is what is read.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import dagster as dg
import pytest
from pyiceberg.exceptions import CommitFailedException

from datahub_assets.runs.defs import DASHBOARD_KEY, RUNS_KEY, SENSOR_NAME, ops_definitions
from datahub_assets.runs.store import CURSOR_PROPERTY, commit, cursor_of, ensure_table, read_rows
from datahub_assets.runs.sync import sync_all, sync_once
from datahub_assets.spec.models import Project
from datahub_resources.iceberg import IcebergResource


def stand_in(app: str, pid: str, layer: str, deps=(), checks=(), warn_fails=False):
    key = dg.AssetKey([app, layer, pid])

    @dg.multi_asset(
        name=f"{app}__{pid}",
        op_tags={"datahub/pipeline": f"{app}.{pid}"},
        specs=[dg.AssetSpec(key, deps=list(deps))],
        check_specs=[dg.AssetCheckSpec(c, asset=key) for c in checks],
        config_schema={"fail": dg.Field(bool, default_value=False)},
    )
    def _asset(context):
        if context.op_config["fail"]:
            raise RuntimeError(f"{app}/{layer}/{pid}.xml:4:5: table 12345 has no column x_9")
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": 10,
                "datahub/snapshot_id": "4242",
                "datahub/iceberg_table": f"{app}_{layer}.{pid}",
            },
        )
        for i, c in enumerate(checks):
            failing = warn_fails and i == 0
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=c,
                passed=not failing,
                severity=dg.AssetCheckSeverity.WARN if failing else dg.AssetCheckSeverity.ERROR,
            )

    return _asset


RAW = stand_in("shop", "orders_raw", "raw", checks=("not_null", "unique"), warn_fails=True)
SILVER = stand_in(
    "shop", "orders_silver", "silver", deps=[dg.AssetKey(["shop", "raw", "orders_raw"])]
)


@dg.asset(key=["other", "plain"])  # no datahub/pipeline op tag: not a pipeline
def plain():
    return None


def _run(instance, fail: str | None = None, tags=None, assets=(RAW, SILVER)):
    config = {
        "ops": {a.node_def.name: {"config": {"fail": a.node_def.name == fail}} for a in assets}
    }
    return dg.materialize(
        list(assets), instance=instance, run_config=config, tags=tags, raise_on_error=False
    )


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        yield inst


def _by(rows):
    return {(r["run_id"], r["pipeline"]): r for r in rows}


def test_one_row_per_pipeline_per_run(instance, catalog):
    ok = _run(instance, tags={"dagster/schedule_name": "nightly"})
    bad = _run(
        instance,
        fail="shop__orders_raw",
        tags={"dagster/sensor_name": "watch__shop__orders_raw__o"},
    )
    _run(instance, assets=(plain,))  # a run without a pipeline step records nothing
    results = sync_all(instance, catalog)
    assert sum(r.runs for r in results) == 3
    assert sum(r.rows for r in results) == 4
    rows = _by(read_rows(catalog))
    assert len(rows) == 4

    raw = rows[(ok.run_id, "shop.orders_raw")]
    assert (raw["status"], raw["run_status"], raw["app"], raw["layer"], raw["op"]) == (
        "success",
        "SUCCESS",
        "shop",
        "raw",
        "shop__orders_raw",
    )
    assert (raw["trigger"], raw["trigger_name"]) == ("schedule", "nightly")
    assert raw["rows_written"] == 10
    assert raw["rows_read"] is None
    assert raw["targets"] == [
        {
            "asset_key": "shop/raw/orders_raw",
            "rows_written": 10,
            "snapshot_id": 4242,
            "iceberg_table": "shop_raw.orders_raw",
        }
    ]
    assert (raw["checks_passed"], raw["checks_failed"], raw["checks_warned"]) == (1, 0, 1)
    assert raw["started_at"] <= raw["ended_at"]
    assert raw["duration_s"] >= 0
    assert raw["error_class"] is None
    assert raw["job"] == "__ephemeral_asset_job__"

    failed = rows[(bad.run_id, "shop.orders_raw")]
    assert (failed["status"], failed["run_status"], failed["trigger"]) == (
        "failed",
        "FAILURE",
        "file drop",
    )
    assert failed["error_class"] == "RuntimeError"
    assert failed["error_message"] == ("shop/raw/orders_raw.xml:4:5: table 12345 has no column x_9")
    assert failed["error_signature"] == "RuntimeError: <path>: table <n> has no column x_9"
    assert failed["targets"][0]["rows_written"] is None
    assert failed["rows_written"] is None
    skipped = rows[(bad.run_id, "shop.orders_silver")]
    assert (skipped["status"], skipped["duration_s"], skipped["error_class"]) == (
        "skipped",
        None,
        None,
    )


def test_syncing_again_or_from_a_restarted_sensor_adds_nothing(instance, catalog):
    for _ in range(3):
        _run(instance)
    first = sync_once(instance, catalog)
    assert (first.runs, first.rows, first.has_more) == (3, 6, False)
    again = sync_once(instance, catalog)
    assert (again.runs, again.rows, again.cursor) == (0, 0, first.cursor)
    # a sensor that lost its own cursor (reset, new deployment) resumes from the table's
    assert _tick(instance, cursor=None).skip_message
    rows = read_rows(catalog)
    assert len(rows) == len(_by(rows)) == 6
    snapshot = ensure_table(catalog).current_snapshot()
    assert snapshot.summary[CURSOR_PROPERTY] == str(first.cursor)


def test_a_backfill_in_small_batches_equals_one_pass(instance, catalog, tmp_path):
    for fail in (None, "shop__orders_silver", None, "shop__orders_raw", None):
        _run(instance, fail=fail)
    batches = sync_all(instance, catalog, max_runs=2)
    assert [b.runs for b in batches] == [2, 2, 1]
    other = load_catalog_at(tmp_path / "other")
    sync_all(instance, other)
    strip = {"recorded_at"}
    assert sorted(
        ({k: v for k, v in r.items() if k not in strip} for r in read_rows(catalog)),
        key=lambda r: (r["run_id"], r["pipeline"]),
    ) == sorted(
        ({k: v for k, v in r.items() if k not in strip} for r in read_rows(other)),
        key=lambda r: (r["run_id"], r["pipeline"]),
    )


def load_catalog_at(home: Path):
    from datahub_resources.iceberg import open_catalog

    return open_catalog(f"sqlite:///{home}/catalog.db", f"file://{home}/warehouse")


def test_a_racing_writer_fails_instead_of_recording_twice(instance, catalog):
    _run(instance)
    stale = ensure_table(catalog)
    sync_once(instance, catalog)
    with pytest.raises(CommitFailedException):
        commit(stale, [{"run_id": "dup", "pipeline": "shop.x"}], 999)
    assert {r["run_id"] for r in read_rows(catalog)} != {"dup"}
    assert len(read_rows(catalog)) == 2


def test_a_catch_up_that_loses_a_race_reads_again(instance, catalog, monkeypatch):
    import datahub_assets.runs.sync as sync

    _run(instance)
    real, calls = sync.commit, []

    def racing(table, rows, cursor):
        calls.append(cursor)
        if len(calls) == 1:  # the sensor commits the same runs first
            real(table, rows, cursor)
            raise CommitFailedException("main moved")
        return real(table, rows, cursor)

    monkeypatch.setattr(sync, "commit", racing)
    _run(instance, fail="shop__orders_raw")
    sync_all(instance, catalog, max_runs=1)
    rows = read_rows(catalog)
    # the retry started after the runs the winner recorded: each run was written once
    assert len(rows) == len(_by(rows)) == 4
    assert len(calls) == 2
    assert calls[0] < calls[1]


def test_rolling_the_table_back_records_the_runs_again(instance, catalog):
    from datahub_assets.cli.ops import parse_table, rollback

    _run(instance)
    sync_once(instance, catalog)
    _run(instance, fail="shop__orders_silver")
    second = sync_once(instance, catalog)
    before, after = rollback(catalog, parse_table("ops.gold.pipeline_runs"))
    assert cursor_of(ensure_table(catalog)) < second.cursor
    third = sync_once(instance, catalog)
    assert (third.runs, third.cursor) == (1, second.cursor)
    rows = read_rows(catalog)
    assert len(rows) == len(_by(rows)) == 4


def test_canceled_runs_and_failures_outside_any_step(instance, catalog):
    job = dg.Definitions(assets=[RAW, SILVER]).resolve_implicit_global_asset_job_def()
    canceled = instance.create_run_for_job(job, tags={"dagster/backfill": "bf1"})
    instance.report_run_canceled(canceled)
    crashed = instance.create_run_for_job(job)
    instance.report_run_failed(crashed, message="run worker 17 exited unexpectedly")
    sync_all(instance, catalog)
    rows = _by(read_rows(catalog))
    assert {r["status"] for k, r in rows.items() if k[0] == canceled.run_id} == {"canceled"}
    never_started = rows[(canceled.run_id, "shop.orders_raw")]
    assert never_started["trigger"] == "backfill"
    assert never_started["duration_s"] is None
    assert never_started["started_at"] is not None
    assert never_started["ended_at"] is not None
    lost = rows[(crashed.run_id, "shop.orders_silver")]
    assert (lost["status"], lost["run_status"], lost["error_class"]) == (
        "failed",
        "FAILURE",
        "RunFailure",
    )
    assert lost["error_signature"] == "RunFailure: run worker <n> exited unexpectedly"


def test_job_pipeline_steps_report_what_their_policy_swallowed(instance, catalog):
    """orchestration/jobs.py: a step whose pipeline failed under onFailure=continue succeeds
    and says so in an observation; a step a halt kept from starting observes `halted`."""

    def step(name: str, outcome: str | None):
        @dg.op(name=name, tags={"datahub/pipeline": f"shop.{name}"})
        def _op():
            key = dg.AssetKey(["shop", "gold", name])
            if outcome is None:
                yield dg.AssetMaterialization(key, metadata={"dagster/row_count": 3})
            else:
                yield dg.AssetObservation(
                    key,
                    metadata={
                        "datahub/job_outcome": outcome,
                        "datahub/error_class": "PipelineRunError",
                        "datahub/error": "shop/gold/a.xml: boom 7",
                    },
                )
            yield dg.Output(None)

        return _op

    @dg.job(name="shop__daily")
    def daily():
        step("a", "failed_continued")()
        step("b", "halted")()
        step("c", None)()

    result = daily.execute_in_process(instance=instance)
    sync_all(instance, catalog)
    rows = _by(read_rows(catalog))
    a, b, c = (rows[(result.run_id, f"shop.{n}")] for n in "abc")
    assert (a["status"], a["error_class"], a["error_signature"]) == (
        "failed",
        "PipelineRunError",
        "PipelineRunError: <path>: boom <n>",
    )
    assert (b["status"], b["error_class"]) == ("skipped", None)
    assert (c["status"], c["layer"], c["rows_written"], c["job"]) == (
        "success",
        "gold",
        3,
        "shop__daily",
    )


def _defs():
    ops_assets, sensor = ops_definitions(Project(root=".", apps={}, pipelines=()))
    return dg.Definitions(
        assets=[RAW, SILVER, *ops_assets],
        sensors=[sensor],
        resources={"iceberg": IcebergResource()},
    ), sensor


def _tick(instance, cursor=None):
    defs, sensor = _defs()
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"iceberg": IcebergResource()}
    ) as ctx:
        return sensor.evaluate_tick(ctx)


def test_the_sensor_reports_each_batch_as_a_materialisation(instance, catalog):
    _run(instance)
    _run(instance, fail="shop__orders_raw")
    result = _tick(instance)
    [event] = result.asset_events
    snapshot = ensure_table(catalog).current_snapshot()
    assert event.asset_key == RUNS_KEY
    assert event.metadata["datahub/snapshot_id"].value == str(snapshot.snapshot_id)
    assert event.metadata["dagster/row_count"].value == 4
    assert event.metadata["datahub/runs_recorded"].value == 2
    assert result.cursor == snapshot.summary[CURSOR_PROPERTY]
    idle = _tick(instance, result.cursor)
    assert not idle.asset_events
    assert "recorded 0 runs" in idle.skip_message
    assert _defs()[1].name == SENSOR_NAME


@pytest.mark.usefixtures("catalog")
def test_the_ops_assets_record_render_and_print(instance, settings, monkeypatch):
    _run(instance)
    _run(instance, fail="shop__orders_silver")
    defs, _ = _defs()
    ops = [a for a in defs.assets if a.node_def.name.startswith("ops__")]
    result = dg.materialize(ops, instance=instance, resources={"iceberg": IcebergResource()})
    assert result.success
    page = settings.home / "ops" / "dashboard.html"
    meta = result.asset_materializations_for_node("ops__dashboard")[0].metadata
    assert meta["dashboard"].value == str(page)
    assert page.exists()
    assert meta["runs"].value == 4
    assert meta["failed"].value == 1
    # Markdown rendered by the UI: every cell literal text, `_` escaped (runs/summary.md_cell)
    assert "| shop.orders\\_raw |" in meta["summary"].value
    assert 'id="kpi-failed"><span class="value bad" data-value="1"' in page.read_text()
    assert result.asset_materializations_for_node("ops__pipeline_runs")[0].asset_key == RUNS_KEY
    assert result.asset_materializations_for_node("ops__dashboard")[0].asset_key == DASHBOARD_KEY

    from datahub_assets.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(Path(instance.root_directory)))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["runs", "--since", "1d", "--sync"]) == 0
    text = out.getvalue()
    # the ops run just recorded by --sync counts too: 4 + 2 pipeline rows
    assert "6 runs, 5 succeeded, 1 failed" in text
    assert "RuntimeError: <path>: table <n> has no column x_<n>" not in text
    assert "RuntimeError: <path>: table <n> has no column x_9" in text
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["runs", "--failed"]) == 0
    assert "shop.orders_silver" in out.getvalue()
    assert "failed runs" in out.getvalue()


# ------------------------------------------------------------------ real pipelines (Spark)

RAW_XML = """<pipeline id="orders_raw" layer="raw">
  <sources><csv id="o" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
  <checks>
    <notNull columns="customer_id"/>
    <acceptedValues column="status" values="new,paid" severity="warn"/>
  </checks>
</pipeline>
"""
SILVER_XML = """<pipeline id="orders_silver" layer="silver">
  <sources><table id="o" ref="raw.orders"/></sources>
  <targets><table table="orders"/></targets>
</pipeline>
"""


@pytest.mark.spark
@pytest.mark.usefixtures("spark")
def test_real_pipeline_runs_are_recorded(settings, instance, catalog):
    from datahub_assets.orchestration.project import build_assets
    from datahub_assets.spec.loader import load_project
    from datahub_resources.deployment import resources

    pipes = settings.pipelines_dir / "shop"
    (pipes / "raw").mkdir(parents=True)
    (pipes / "silver").mkdir()
    (pipes / "raw" / "orders.xml").write_text(RAW_XML)
    (pipes / "silver" / "orders.xml").write_text(SILVER_XML)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("id,customer_id,status\n1,10,new\n2,11,lost\n")
    assets = build_assets(load_project(settings.pipelines_dir))
    good = dg.materialize(assets, resources=resources(), instance=instance)
    (landing / "a.csv").write_text("id,customer_id,status\n1,10,new\n2,,paid\n3,,paid\n")
    bad = dg.materialize(assets, resources=resources(), instance=instance, raise_on_error=False)
    assert not bad.success
    sync_all(instance, catalog)
    rows = _by(read_rows(catalog))
    assert len(rows) == 4

    raw = rows[(good.run_id, "shop.orders_raw")]
    table = catalog.load_table(("shop_raw", "orders"))
    assert (raw["status"], raw["layer"], raw["rows_written"]) == ("success", "raw", 2)
    assert raw["targets"][0]["snapshot_id"] == table.current_snapshot().snapshot_id
    assert raw["targets"][0]["iceberg_table"] == "shop_raw.orders"
    # schema_drift and notNull pass; acceptedValues (warn) fails on "lost"
    assert (raw["checks_passed"], raw["checks_failed"], raw["checks_warned"]) == (2, 0, 1)
    silver = rows[(good.run_id, "shop.orders_silver")]
    assert (silver["status"], silver["layer"], silver["rows_written"]) == ("success", "silver", 2)

    blocked = rows[(bad.run_id, "shop.orders_raw")]
    assert (blocked["status"], blocked["error_class"]) == ("failed", "Failure")
    assert "blocking checks failed" in blocked["error_message"]
    assert blocked["checks_failed"] == 1
    assert "<path>" in blocked["error_signature"]
    assert rows[(bad.run_id, "shop.orders_silver")]["status"] == "skipped"


def test_rows_read_is_reported_or_derived_from_a_file_drop_batch():
    from datahub_assets.runs.records import rows_read_of

    assert rows_read_of({"datahub/rows_read": dg.MetadataValue.int(7), "dagster/row_count": 5}) == 7
    drop = {
        "dagster/row_count": dg.MetadataValue.int(10),
        "datahub/files_ingested": 2,
        "datahub/malformed_rows": 2,
        "datahub/invalid_rows": 1,
    }
    assert rows_read_of(drop) == 13
    assert rows_read_of({**drop, "datahub/files_ingested": 0}) is None  # nothing ingested
    assert rows_read_of({"dagster/row_count": 10}) is None  # not a drop: nothing reported


DROP_XML = """<pipeline id="events_raw" layer="raw">
  <sources>
    <csv id="e" path="landing/events/*.csv"><watch pollSeconds="5" minAgeSeconds="0"/></csv>
  </sources>
  <targets><table table="events" mode="append"/></targets>
</pipeline>
"""


@pytest.mark.spark
@pytest.mark.usefixtures("spark")
def test_a_file_drop_run_records_the_rows_it_read(settings, instance, catalog):
    """Two files, 5 data lines, one of them malformed (an extra field: quarantined): the run
    record reads 5 rows and writes 4, as the file ledger counts them."""
    from datahub_assets.orchestration.project import build_assets
    from datahub_assets.spec.loader import load_project
    from datahub_resources.deployment import resources

    pipes = settings.pipelines_dir / "shop" / "raw"
    pipes.mkdir(parents=True)
    (pipes / "events.xml").write_text(DROP_XML)
    landing = settings.data_dir / "shop" / "landing" / "events"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("id,kind\n1,a\n2,b\n3,c,extra\n")
    (landing / "b.csv").write_text("id,kind\n4,d\n5,e\n")
    assets = build_assets(load_project(settings.pipelines_dir))
    run = dg.materialize(assets, resources=resources(), instance=instance)
    sync_all(instance, catalog)
    (row,) = [r for r in read_rows(catalog) if r["run_id"] == run.run_id]
    assert (row["status"], row["rows_written"], row["rows_read"]) == ("success", 4, 5)
    ledger = catalog.load_table("shop_raw.events_raw__files").scan().to_arrow().to_pylist()
    assert sum(e["rows"] + e["invalid_rows"] for e in ledger) == row["rows_read"]
