"""The step of a pipeline: one wrapper around `execute.runner.run_pipeline`, shared by the
body of the pipeline's multi_asset and by every job op that runs the pipeline.

`step_events` runs the pipeline on the opened engine and yields what the UI shows of it, in
the form the step's context takes (one event iterator, as dagster-dbt's `stream()`): in an
asset step `MaterializeResult`s and `AssetCheckResult`s, in a job op `AssetMaterialization`s
and `AssetCheckEvaluation`s of the pipeline's assets; in both, one observation per rejected
dropped file and, when nothing was materialised, one of the batch. It classifies failures: a
failed blocking check yields its check results (of the audited, unpublished snapshot) and
raises `ChecksFailed`; any other failure becomes `SparkServerDied` when the local Spark server
died under it (`datahub_resources.spark_watchdog`) and `dg.RetryRequested` when it is transient
and retries are left (`runtime/retries.py`); a terminated step cancels its Spark work.

`asset_step` is the multi_asset's body: a failed blocking check fails the step without
retries; a run started by hand that finds nothing new in its file drop materialises the
current tables. `job_step` is a job op's body: it applies the pipelineRef's onFailure policy
(retry, halt, skip, continue; `orchestration/jobs.py` describes them) and records skipped,
continued and halted pipelines as observations `datahub/job_outcome` on their assets;
`outcome_step` fails a job run whose pipelines failed under onFailure=continue.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg

from datahub_assets.execute.drops import REJECTED
from datahub_assets.execute.outcomes import ChecksFailed, TargetOutcome
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.runtime.engine import OpenEngine, open_engine
from datahub_assets.runtime.keys import asset_key
from datahub_assets.runtime.metadata import ROWS_WRITTEN, check_results, table_metadata
from datahub_assets.runtime.params import run_parameters
from datahub_assets.runtime.retries import transient_retry
from datahub_assets.spec.columns import column_descriptions
from datahub_assets.spec.job_models import JobSpec, PipelineRef
from datahub_assets.spec.models import PipelineSpec, TableRef
from datahub_resources import spark_watchdog
from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import Settings

FULL_REFRESH_TAG = "datahub/full_refresh"
OUTCOME_KEY = "datahub/job_outcome"

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext
StepEvent = (
    dg.MaterializeResult
    | dg.AssetMaterialization
    | dg.AssetCheckResult
    | dg.AssetCheckEvaluation
    | dg.AssetObservation
    | dg.Output
)


@dataclass(frozen=True)
class PipelineStep:
    """What a pipeline's step knows from load time: its spec, the settings read at load
    (never in a run), whether it ingests file drops, and the column descriptions of its
    targets (schemaRef files and `<columns>`, `spec.columns.column_descriptions`)."""

    spec: PipelineSpec
    settings: Settings
    is_drop: bool
    descriptions: Mapping[TableRef, Mapping[str, str]]

    @classmethod
    def of(cls, spec: PipelineSpec, settings: Settings) -> PipelineStep:
        descriptions = {t.ref: column_descriptions(spec, t) for t in spec.targets}
        return cls(spec, settings, bool(spec.watched_sources), descriptions)


@dataclass(frozen=True)
class StepRun:
    """What a run hands the step: its date and `:name` parameters (`runtime/params.py`), the
    file-drop batch (None: the oldest settled files), full refresh, the S3 client factory."""

    run_date: date
    params: dict[str, str]
    files: dict[str, list[str]] | None = None
    full_refresh: bool = False
    s3_client: Callable[[], Any] | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """A job's onFailure="retry": its budget and first wait apply to any failure (transient
    failures are retried with their own budget everywhere, the larger budget wins)."""

    at_least: int = 0
    first_wait: float | None = None

    @classmethod
    def of(cls, ref: PipelineRef) -> RetryPolicy:
        if ref.on_failure != "retry":
            return NO_POLICY
        return cls(ref.max_retries, ref.retry_delay_seconds)


NO_POLICY = RetryPolicy()


def full_refresh_tagged(tags: Mapping[str, str]) -> bool:
    """The run tag datahub/full_refresh=true."""
    return tags.get(FULL_REFRESH_TAG, "").lower() == "true"


def _op_context(context: StepContext) -> dg.OpExecutionContext:
    if isinstance(context, dg.AssetExecutionContext):
        return context.op_execution_context
    return context


def classify_failure(
    context: StepContext, exc: Exception, session: Any, policy: RetryPolicy = NO_POLICY
) -> BaseException:
    """The failure as the step reports it: `SparkServerDied` when the local Spark server died
    under `exc`, else `exc`; raises `dg.RetryRequested` when it is transient (or `policy`
    retries any failure) and the step has retries left."""
    error = spark_watchdog.explain(exc, session)
    transient_retry(
        _op_context(context),
        error,
        session,
        at_least=policy.at_least,
        policy_wait=policy.first_wait,
    )
    return error


def step_events(
    step: PipelineStep,
    context: StepContext,
    engine: OpenEngine,
    catalog: Any,
    run: StepRun,
    policy: RetryPolicy = NO_POLICY,
) -> Generator[StepEvent, None, list[TargetOutcome]]:
    """Run the pipeline on `engine` and yield what the UI shows of it (see the module
    docstring); returns the targets' outcomes."""
    spec = step.spec
    ctx = engine.exec_context(
        settings=step.settings,
        app=spec.app,
        run_id=context.run.run_id,
        run_date=run.run_date,
        log=context.log,
        s3_client=run.s3_client,
        spec=spec,
        params=run.params,
        full_refresh=run.full_refresh,
    )
    as_asset = context.has_assets_def
    try:
        outcomes = run_pipeline(spec, ctx, catalog, files=run.files)
    except ChecksFailed as failed:
        # write-audit-publish: the audited snapshots were not published; report why
        for outcome in failed.outcomes:
            yield from _checks(outcome, published=False, as_asset=as_asset)
        if ctx.drops is not None:
            yield from _drop_events(spec, ctx.drops, materialized=False)
        raise
    except Exception as exc:
        exc = classify_failure(context, exc, engine.spark_session, policy)
        raise exc
    except BaseException:  # terminated (DagsterExecutionInterruptedError): stop Spark's work
        spark_watchdog.interrupt(engine.spark_session, context.log)
        raise
    if ctx.drops is not None:
        yield from _drop_events(spec, ctx.drops, materialized=bool(outcomes))
    for outcome in outcomes:
        metadata = table_metadata(outcome, step.descriptions.get(outcome.ref, {}))
        metadata.update({f"datahub/{k}": v for k, v in engine.metadata().items()})
        key = asset_key(outcome.ref)
        if as_asset:
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        else:
            yield dg.AssetMaterialization(asset_key=key, metadata=metadata)
        yield from _checks(outcome, published=True, as_asset=as_asset)
    return outcomes


def _checks(outcome: TargetOutcome, published: bool, as_asset: bool) -> Iterator[StepEvent]:
    for result in check_results(outcome, published=published):
        yield result if as_asset else _evaluation(result)


def _evaluation(result: dg.AssetCheckResult) -> dg.AssetCheckEvaluation:
    """A check result as an op (not an asset) reports it."""
    key, name = result.asset_key, result.check_name
    if key is None or name is None:
        raise ValueError(f"an asset check result names no asset or check: {result!r}")
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=name,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
    )


def _drop_events(spec: PipelineSpec, drops, materialized: bool) -> Iterator[dg.AssetObservation]:
    """What the UI shows of a file-drop batch: one observation per rejected file, and, when
    nothing was materialised, one observation of the batch on each target."""
    for f in drops.with_status(REJECTED):
        for t in spec.targets:
            yield dg.AssetObservation(
                asset_key=asset_key(t.ref),
                metadata={
                    "datahub/file": f.info.path,
                    "datahub/rejected_rule": f.rejection.rule,
                    "datahub/rejected_reason": f.rejection.message,
                    "datahub/moved_to": f.moved_to or "(still in landing)",
                },
            )
    if not materialized:
        meta = {f"datahub/{k}": v for k, v in drops.metadata().items()}
        for t in spec.targets:
            yield dg.AssetObservation(asset_key=asset_key(t.ref), metadata=meta)


# ------------------------------------------------------------------------------ asset step


def asset_step(
    step: PipelineStep,
    context: dg.AssetExecutionContext,
    spark: Any,
    iceberg: IcebergResource,
    s3_client: Callable[[], Any] | None = None,
) -> Iterator[StepEvent]:
    """The body of a pipeline's multi_asset: all its targets materialise in this one step.

    A file-drop pipeline takes its batch from the run config (`files`) and must have all its
    targets selected; a run started by hand (no files in the config) that finds nothing new
    materialises the current tables instead (`_nothing_new`)."""
    spec = step.spec
    if step.is_drop and len(context.selected_asset_keys) != len(spec.targets):
        raise dg.Failure(
            f"{spec.file}: a file-drop pipeline writes all its targets in one "
            "commit; select all of them"
        )
    config = context.op_config or {}
    files = config.get("files") if step.is_drop else None
    tags = context.run.tags
    catalog = iceberg.catalog()
    with open_engine(spec, step.settings, spark, catalog, tags, files, context.log) as engine:
        # run date and :name parameters from the run's tags (runtime/params.py)
        run_date, params = run_parameters(tags)
        full_refresh = bool(config.get("full_refresh")) or full_refresh_tagged(tags)
        run = StepRun(run_date, params, files, full_refresh, s3_client)
        try:
            outcomes = yield from step_events(step, context, engine, catalog, run)
        except ChecksFailed as failed:
            raise dg.Failure(description=str(failed), allow_retries=False) from None
        if step.is_drop and not outcomes and files is None:
            yield from _nothing_new(spec, context, iceberg)


def _nothing_new(spec: PipelineSpec, context, iceberg: IcebergResource):
    """A run started by hand (UI, CLI, a job) found no new file: the raw step is a no-op that
    still materialises its current tables, so the downstream assets selected in the run are
    recomputed from them. Sensor runs (their files in the run config) never get here: a
    batch with nothing new must not re-run downstream."""
    sources = ", ".join(s.id for s in spec.watched_sources)
    catalog = iceberg.catalog()
    for t in spec.targets:
        ident = (t.ref.namespace, t.ref.table)
        if t.target.kind != "table" or not catalog.table_exists(ident):
            context.log.info(
                "%s: file-drop source(s) %s had nothing new and %s holds no data "
                "yet; nothing to recompute from",
                spec.key,
                sources,
                t.ref,
            )
            continue
        snapshot = catalog.load_table(ident).current_snapshot()
        context.log.info(
            "%s: file-drop source(s) %s had nothing new; %s is unchanged (snapshot "
            "%s) and downstream assets in this run recompute from it",
            spec.key,
            sources,
            t.ref,
            snapshot.snapshot_id if snapshot else "-",
        )
        total = (snapshot.summary or {}).get("total-records") if snapshot else None
        yield dg.MaterializeResult(
            asset_key=asset_key(t.ref),
            metadata={
                **({"dagster/row_count": int(total)} if total is not None else {}),
                ROWS_WRITTEN: 0,
                "datahub/nothing_new": True,
                "datahub/sources_without_new_files": sources,
                "datahub/snapshot_id": dg.MetadataValue.text(
                    str(snapshot.snapshot_id) if snapshot else ""
                ),
            },
        )


# -------------------------------------------------------------------------------- job step


def _s3_client(s3) -> Callable[[], Any]:
    """A client factory from the `s3` resource: ops declared with required_resource_keys get
    what the resource yields (a boto3 client), not the `S3Resource` that assets see."""
    return s3.get_client if hasattr(s3, "get_client") else (lambda: s3)


def job_step(
    step: PipelineStep, job: JobSpec, ref: PipelineRef, context: dg.OpExecutionContext
) -> Iterator[StepEvent]:
    """The body of the job op that runs `step`'s pipeline for `ref`: the pipeline's events,
    then `Output("done")` unless the pipeline failed or halted under its onFailure policy."""
    spec = step.spec
    halted = halted_by(context)
    if halted is not None:
        context.log.warning(f"{spec.key}: not started, step {halted} failed (halt)")
        yield from _observe(spec, "halted", None, f"not started: {halted} failed")
        return
    policy = RetryPolicy.of(ref)
    error: BaseException | None = None
    try:
        tags = context.run.tags
        run_date, params = run_parameters(tags, job.parameters, context.op_config.get("params"))
        catalog = context.resources.iceberg.catalog()
        resources = context.resources
        with open_engine(
            spec, step.settings, resources.spark, catalog, tags, None, context.log
        ) as engine:
            s3_client = _s3_client(resources.s3) if spec.watched_sources else None
            run = StepRun(run_date, params, None, full_refresh_tagged(tags), s3_client)
            error = yield from _failure_of(step_events(step, context, engine, catalog, run, policy))
    except dg.RetryRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - opening the engine failed; the policy decides
        error = classify_failure(context, exc, None, policy)
    if error is None:
        yield dg.Output(None, "done")
        return
    if ref.on_failure in ("halt", "retry"):
        raise error
    context.log.error(
        f"{spec.key} failed ({type(error).__name__}: {error}); onFailure={ref.on_failure}"
    )
    if ref.on_failure == "skip":
        yield from _observe(spec, "skipped", error, "failed; onFailure=skip: dependents skipped")
        return
    yield from _observe(
        spec,
        "failed_continued",
        error,
        "failed; onFailure=continue: dependents read its last published data",
    )
    yield dg.Output(None, "done")


def _failure_of(
    events: Generator[StepEvent, None, Any],
) -> Generator[StepEvent, None, Exception | None]:
    """Yield the step's events; return its failure (already classified by `step_events`: a
    transient one with retries left was raised as `dg.RetryRequested`), None when it ran."""
    try:
        yield from events
    except dg.RetryRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - the policy decides
        return exc
    return None


def _observe(spec: PipelineSpec, outcome: str, error: BaseException | None, note: str):
    meta: dict[str, str] = {OUTCOME_KEY: outcome, "datahub/note": note}
    if error is not None:
        root = root_error(error)
        meta["datahub/error_class"] = type(root).__name__
        meta["datahub/error"] = str(error)[:2000]
    for t in spec.targets:
        yield dg.AssetObservation(asset_key=asset_key(t.ref), metadata=meta)


def root_error(exc: BaseException) -> BaseException:
    """The innermost exception of the chain Python prints (`raise ... from` wins over the
    implicit context; a suppressed context ends the chain)."""
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None:
            return exc
        exc = inner


def halted_by(context: dg.OpExecutionContext) -> str | None:
    """The step whose failure halts this run (None: no step failed)."""
    records = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return records[0].event_log_entry.step_key if records else None


def outcome_step(context: dg.OpExecutionContext) -> None:
    """The body of a job's `<job>__outcome` op: fail the run when a pipeline with
    onFailure=continue failed."""
    failed = continued_failures(context.instance, context.run_id)
    if failed:
        raise dg.Failure(
            description="pipelines failed (onFailure=continue; their dependents ran on "
            f"their last published data): {', '.join(sorted(failed))}",
            metadata={"datahub/failed_pipelines": sorted(failed)},
            allow_retries=False,
        )


def continued_failures(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> job outcome of every recorded skipped/continued/halted pipeline."""
    out: dict[str, str] = {}
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
    ).records
    for record in records:
        entry = record.event_log_entry
        if entry.dagster_event is None or entry.step_key is None:
            continue
        obs = entry.dagster_event.asset_observation_data.asset_observation
        value = obs.metadata.get(OUTCOME_KEY)
        if value is not None and value.value == "failed_continued":
            out[entry.step_key] = "failed_continued"
    return out
