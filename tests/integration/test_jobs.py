"""Job pipelines as real Dagster runs on the shared Spark server: each onFailure policy, with a
pipeline failing on purpose (a row that makes Spark raise), and the transient retries."""

from __future__ import annotations

import dagster as dg
import pytest

from datahub_assets.orchestration.jobs import build_jobs
from datahub_assets.runtime import step as jobs_module
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources
from datahub_resources.iceberg import load_catalog

pytestmark = pytest.mark.spark

CSV = """<pipeline id="{pid}" layer="bronze">
  <sources><csv id="src" path="landing/{pid}/*.csv" inferSchema="true"/></sources>
  <transformations>
    <derive source="src" column="y" expr="IF(x = 99, raise_error('boom in {pid}'), x * 10)"/>
  </transformations>
  <targets><table table="{pid}" mode="overwrite"/></targets>
</pipeline>
"""
READS_B = """<pipeline id="c" layer="silver">
  <sources><table id="b" ref="bronze.b"/></sources>
  <targets><table table="c" mode="overwrite"/></targets>
</pipeline>
"""
JOB = """<jobPipeline id="nightly">
  <pipelines>
    <pipelineRef id="a"/>
    <pipelineRef id="b" dependsOn="a" onFailure="{policy}"{extra}/>
    <pipelineRef id="c"/>
    <pipelineRef id="d1"/>
    <pipelineRef id="d2" dependsOn="d1"/>
  </pipelines>
</jobPipeline>
"""


def _project(settings, policy: str, extra: str = "", bad_b: bool = False):
    app = settings.pipelines_dir / "shop"
    for folder in ("bronze", "silver", "jobs"):
        (app / folder).mkdir(parents=True, exist_ok=True)
    for pid in ("a", "b", "d1", "d2"):
        (app / "bronze" / f"{pid}.xml").write_text(CSV.format(pid=pid))
        landing = settings.data_dir / "shop" / "landing" / pid
        landing.mkdir(parents=True, exist_ok=True)
        rows = "x\n1\n2\n" + ("99\n" if pid == "b" and bad_b else "")
        (landing / "f.csv").write_text(rows)
    (app / "silver" / "c.xml").write_text(READS_B)
    (app / "jobs" / "nightly.xml").write_text(JOB.format(policy=policy, extra=extra))
    project = load_project(settings.pipelines_dir)
    (job,) = build_jobs(project)[0]
    return job


def _run(job, instance=None):
    return job.execute_in_process(
        resources=resources(),
        raise_on_error=False,
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


def _steps(result, kind: dg.DagsterEventType) -> set[str]:
    return {
        e.step_key.split("__")[-1] for e in result.all_events if e.event_type == kind and e.step_key
    }


def _ran(result) -> set[str]:
    return _steps(result, dg.DagsterEventType.STEP_SUCCESS) - _outcomes(result).keys()


def _outcomes(result) -> dict[str, str]:
    out = {}
    for e in result.all_events:
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            meta = e.event_specific_data.asset_observation.metadata
            if jobs_module.OUTCOME_KEY in meta:
                out[e.step_key.split("__")[-1]] = meta[jobs_module.OUTCOME_KEY].value
    return out


def _rows(settings, ident: str) -> int:
    return len(load_catalog(settings).load_table(ident).scan().to_arrow())


@pytest.mark.usefixtures("spark")
def test_job_runs_in_dependency_order_and_materializes_assets(settings):
    job = _project(settings, "halt")
    result = _run(job)
    assert result.success
    assert _ran(result) == {"a", "b", "c", "d1", "d2"}
    mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert mats == {
        "shop/bronze/a",
        "shop/bronze/b",
        "shop/silver/c",
        "shop/bronze/d1",
        "shop/bronze/d2",
    }
    order = [
        e.step_key.split("__")[-1]
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_START
    ]
    assert order.index("a") < order.index("b") < order.index("c")  # dependsOn, then lineage
    assert _rows(settings, "shop_silver.c") == 2


@pytest.mark.usefixtures("spark")
def test_halt_fails_the_run_and_starts_nothing_more(settings):
    result = _run(_project(settings, "halt", bad_b=True))
    assert not result.success
    assert _steps(result, dg.DagsterEventType.STEP_FAILURE) == {"b"}
    assert "c" not in _steps(result, dg.DagsterEventType.STEP_START)  # downstream: skipped
    # the independent branch: whatever had not started when b failed does not start
    outcomes = _outcomes(result)
    assert outcomes.get("d2") == "halted", (outcomes, _ran(result))
    assert not load_catalog(settings).table_exists("shop_silver.c")


@pytest.mark.usefixtures("spark")
def test_skip_lets_independent_branches_finish(settings):
    result = _run(_project(settings, "skip", bad_b=True))
    assert result.success  # a skipped pipeline does not fail the run
    assert _outcomes(result)["b"] == "skipped"
    assert _ran(result) == {"a", "d1", "d2"}
    assert "c" in _steps(result, dg.DagsterEventType.STEP_SKIPPED)
    assert not load_catalog(settings).table_exists("shop_silver.c")


@pytest.mark.usefixtures("spark")
def test_continue_runs_dependents_on_the_last_published_data(settings):
    assert _run(_project(settings, "continue")).success  # b's good data is published
    before = load_catalog(settings).load_table("shop_bronze.b").current_snapshot().snapshot_id
    result = _run(_project(settings, "continue", bad_b=True))
    assert _outcomes(result)["b"] == "failed_continued"
    assert {"a", "c", "d1", "d2"} <= _ran(result)  # c ran, reading b's last good table
    assert not result.success  # ...and the run still reports the failure
    assert _steps(result, dg.DagsterEventType.STEP_FAILURE) == {"outcome"}
    catalog = load_catalog(settings)
    assert catalog.load_table("shop_bronze.b").current_snapshot().snapshot_id == before
    assert _rows(settings, "shop_silver.c") == 2


@pytest.mark.usefixtures("spark")
def test_retry_reruns_only_the_failed_step(settings, monkeypatch):
    job = _project(settings, "retry", ' maxRetries="2" retryDelaySeconds="0"')
    calls: list[str] = []
    real = jobs_module.run_pipeline

    def flaky(spec, ctx, catalog, **kw):
        calls.append(spec.pipeline.id)
        if spec.pipeline.id == "b" and calls.count("b") == 1:
            raise RuntimeError("injected failure of b's first attempt")
        return real(spec, ctx, catalog, **kw)

    monkeypatch.setattr(jobs_module, "run_pipeline", flaky)
    result = _run(job)
    assert result.success
    assert _steps(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == {"b"}
    assert sorted(calls) == ["a", "b", "b", "c", "d1", "d2"]  # only b ran twice


@pytest.mark.usefixtures("spark")
def test_retry_then_halt_when_retries_are_spent(settings):
    result = _run(_project(settings, "retry", ' maxRetries="1" retryDelaySeconds="0"', bad_b=True))
    assert not result.success
    retries = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retries) == 1
    assert _steps(result, dg.DagsterEventType.STEP_FAILURE) == {"b"}
    assert "c" not in _steps(result, dg.DagsterEventType.STEP_START)


@pytest.mark.usefixtures("spark")
def test_run_date_and_parameters_reach_the_pipeline(settings):
    job = _project(settings, "halt")
    seen = {}
    real = jobs_module.run_pipeline

    def spy(spec, ctx, catalog, **kw):
        seen[spec.pipeline.id] = (ctx.run_date.isoformat(), dict(ctx.params))
        return real(spec, ctx, catalog, **kw)

    jobs_module.run_pipeline = spy
    try:
        result = job.execute_in_process(
            resources=resources(),
            instance=dg.DagsterInstance.ephemeral(),
            run_config={"runDate": "2026-01-31"},
            tags={"datahub/param/region": "us"},
        )
    finally:
        jobs_module.run_pipeline = real
    assert result.success
    assert seen["a"] == ("2026-01-31", {"runDate": "2026-01-31", "region": "us"})


# ------------------------------------------------------- transient failures, every step


def _asset_project(settings):
    _project(settings, "halt")
    from datahub_assets.orchestration.project import build_assets

    project = load_project(settings.pipelines_dir)
    return {a.node_def.name: a for a in build_assets(project)}


@pytest.mark.usefixtures("spark")
def test_commit_conflict_is_retried(settings, monkeypatch):
    """Another writer commits to the table between this run's staging and its publish: the
    step fails with a real catalog conflict, is retried, and the retry publishes."""
    from datahub_assets.execute import runner
    from datahub_assets.runtime import retries

    monkeypatch.setattr(retries, "COMMIT_CONFLICT", retries.RetryClass("commit_conflict", 3, 0))
    asset = _asset_project(settings)["shop__bronze__a"]
    assert dg.materialize([asset], resources=resources()).success
    real, calls = runner.write_tables, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # "another run wrote first"
            table = load_catalog(settings).load_table("shop_bronze.a")
            table.append(table.scan().to_arrow().slice(0, 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "write_tables", racing)
    result = dg.materialize([asset], resources=resources(), raise_on_error=False)
    retried = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retried) == 1
    assert result.success
    assert len(calls) == 2
    assert _rows(settings, "shop_bronze.a") == 2  # overwrite: the retry's rows only


SPARK_DROP = """
import dagster as dg
from datahub_assets.runtime import step as factory
from datahub_assets.runtime import retries
from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources
from datahub_resources.settings import Settings

retries.SPARK_SESSION = retries.RetryClass("spark_session", 3, 0)
real, calls = factory.run_pipeline, []

def dropping(spec, ctx, catalog, **kw):
    calls.append(id(ctx.spark))
    if len(calls) == 1:
        ctx.spark.client.release_session()  # the server forgets the session
    return real(spec, ctx, catalog, **kw)

factory.run_pipeline = dropping
assets = {a.node_def.name: a for a in build_assets(load_project(Settings.from_env().pipelines_dir))}
result = dg.materialize([assets["shop__bronze__a"]], resources=resources(), raise_on_error=False)
kinds = [e.event_type_value for e in result.all_events]
print("RESULT", result.success, kinds.count("STEP_UP_FOR_RETRY"), len(calls),
      calls[0] != calls[-1])
"""


@pytest.mark.usefixtures("spark")
def test_dropped_spark_session_is_retried_on_a_new_session(settings):
    """In a separate process (stopping a session there cannot disturb this one's)."""
    import subprocess
    import sys

    _project(settings, "halt")
    proc = subprocess.run(
        [sys.executable, "-c", SPARK_DROP], capture_output=True, text=True, timeout=300
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert line == ["RESULT True 1 2 True"], proc.stdout[-2000:] + proc.stderr[-3000:]
