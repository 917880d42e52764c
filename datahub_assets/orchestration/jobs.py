"""Job pipelines (contract section 6) → Dagster jobs and schedules.

A job `<app>__<id>` is an op graph with one op per `pipelineRef` (`<app>__<id>__<ref>`)
that runs the same `execute.runner.run_pipeline` as the pipeline's asset and reports what it
wrote as materialisations and asset-check evaluations of the pipeline's assets, so lineage,
history, checks and automation see job runs like asset runs. Each op waits, through
`Nothing` inputs, for its `dependsOn` refs and for the job's pipelines upstream of it in
data lineage. Why not an asset job: in an asset job the only step dependencies are asset
dependencies, so ordering beyond lineage would have to become fake lineage edges shared by
every job and by automation; the op graph orders exactly what the job says and leaves the
asset graph alone. It also keeps load linear: a job's graph and its schedule are built
from the job's own steps, never by resolving a selection against the asset graph.

onFailure, per op (the exception is classified first: transient failures are retried
everywhere, `runtime/retries.py`):
- `retry`: `dg.RetryRequested` (maxRetries, retryDelaySeconds doubling) reruns only this
  step; when retries are spent it behaves like `halt`. A failed blocking check is not
  retried (the same data gives the same verdict).
- `halt`: the step fails; Dagster skips everything downstream, and every op that has not
  started yet sees the failure in the run's event log and does not start (independent
  branches halt too; with the multiprocess executor, steps already running finish).
- `skip`: the step ends without its output: Dagster skips its dependents, independent
  branches finish, the run succeeds; the pipeline is recorded as skipped.
- `continue`: the step yields its output, so dependents run against the pipeline's last
  published data (a failed run publishes nothing); a final `<job>__outcome` op then fails
  the run, naming the pipelines that failed.
Skipped/continued/halted pipelines are recorded as `AssetObservation`s on their assets
(`datahub/job_outcome`), which the notification sensors read.
"""

# no `from __future__ import annotations`: Dagster reads the ops' context annotation
import dagster as dg

from datahub_assets.execute.outcomes import ChecksFailed
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.orchestration.factory import (
    FULL_REFRESH_TAG,
    SPARK_POOL,
    _drop_events,
    _result,
)
from datahub_assets.orchestration.keys import asset_key
from datahub_assets.runtime.engine import OpenEngine, open_engine
from datahub_assets.runtime.metadata import check_results
from datahub_assets.runtime.params import RUN_DATE_TAG, run_parameters
from datahub_assets.runtime.retries import transient_retry
from datahub_assets.spec.columns import column_descriptions
from datahub_assets.spec.job_models import JobSpec, JobStep
from datahub_assets.spec.models import PipelineSpec, Project
from datahub_resources import spark_watchdog
from datahub_resources.settings import Settings

OUTCOME_KEY = "datahub/job_outcome"
JOB_TAG = "datahub/job"


def _s3_client(s3):
    """A client factory from the `s3` resource: ops declared with required_resource_keys get
    what the resource yields (a boto3 client), not the `S3Resource` that assets see."""
    return s3.get_client if hasattr(s3, "get_client") else (lambda: s3)


def build_jobs(project: Project) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    specs = {s.key: s for s in project.pipelines}
    jobs, schedules = [], []
    for job in project.jobs:
        job_def = build_job(job, specs)
        jobs.append(job_def)
        if job.job.schedule:
            schedules.append(_schedule(job, job_def))
    return jobs, schedules


def op_name(job: JobSpec, step: JobStep) -> str:
    return f"{job.name}__{step.node}"


def build_job(job: JobSpec, specs: dict[str, PipelineSpec]) -> dg.JobDefinition:
    ops = [_step_op(job, step, specs[step.pipeline_key]) for step in job.steps]
    deps: dict[str, dict[str, dg.IDependencyDefinition]] = {
        op_name(job, step): {
            f"after_{up}": dg.DependencyDefinition(f"{job.name}__{up}", "done") for up in step.after
        }
        for step in job.steps
    }
    if any(step.ref.on_failure == "continue" for step in job.steps):
        outcome = _outcome_op(job)
        ops.append(outcome)
        deps[outcome.name] = {
            "after": dg.MultiDependencyDefinition(
                [dg.DependencyDefinition(op_name(job, step), "done") for step in job.steps]
            )
        }
    graph = dg.GraphDefinition(
        name=job.name,
        node_defs=ops,
        dependencies=deps,
        description=job.job.description
        or f"Job pipeline {job.app}.{job.job.id} ({job.file}:{job.line})",
    )
    return graph.to_job(
        name=job.name,
        config=_config_mapping(job),
        tags={JOB_TAG: f"{job.app}.{job.job.id}"},
        metadata={"datahub/definition": f"{job.file}:{job.line}"},
    )


def _config_mapping(job: JobSpec) -> dg.ConfigMapping:
    """The launchpad shows the job's parameters (with their defaults) as its run config; each
    op receives them all."""
    schema = {
        name: dg.Field(
            str,
            default_value=default or "",
            is_required=False,
            description=f"Job parameter :{name}",
        )
        for name, default in job.parameters.items()
    }

    def to_ops(config: dict) -> dict:
        return {
            "ops": {op_name(job, step): {"config": {"params": dict(config)}} for step in job.steps}
        }

    return dg.ConfigMapping(config_fn=to_ops, config_schema=schema)


def _schedule(job: JobSpec, job_def: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Running by default; a tick's run carries `datahub/run_date` = the tick's date (UTC)."""

    def tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(tags={RUN_DATE_TAG: day})

    return dg.ScheduleDefinition(
        name=f"{job.name}__schedule",
        cron_schedule=job.job.schedule,
        job=job_def,
        execution_fn=tick,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"<schedule> of {job.file}",
    )


def _observe(spec: PipelineSpec, outcome: str, error: BaseException | None, note: str):
    meta: dict[str, str] = {OUTCOME_KEY: outcome, "datahub/note": note}
    if error is not None:
        root = root_error(error)
        meta["datahub/error_class"] = type(root).__name__
        meta["datahub/error"] = str(error)[:2000]
    for t in spec.targets:
        yield dg.AssetObservation(asset_key=dg.AssetKey(t.ref.asset_path), metadata=meta)


def root_error(exc: BaseException) -> BaseException:
    """The innermost exception of the chain Python prints (`raise ... from` wins over the
    implicit context; a suppressed context ends the chain)."""
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None:
            return exc
        exc = inner


def _halted_by(context: dg.OpExecutionContext) -> str | None:
    """The step whose failure halts this run (None: no step failed)."""
    records = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return records[0].event_log_entry.step_key if records else None


def _step_op(job: JobSpec, step: JobStep, spec: PipelineSpec) -> dg.OpDefinition:
    ref = step.ref
    descriptions = {t.ref: column_descriptions(spec, t) for t in spec.targets}

    settings = Settings.from_env()  # read at load, never in a run

    @dg.op(
        name=op_name(job, step),
        ins={f"after_{up}": dg.In(dg.Nothing) for up in step.after},
        out={"done": dg.Out(dg.Nothing, is_required=False)},
        config_schema={
            "params": dg.Field(
                dg.Permissive(),
                is_required=False,
                default_value={},
                description="The job's parameters (run config).",
            )
        },
        required_resource_keys={"spark", "iceberg", "s3"},
        pool=SPARK_POOL,
        tags={"datahub/pipeline": spec.key, "datahub/on_failure": ref.on_failure},
        description=f"Runs pipeline {spec.key} ({spec.file}); onFailure={ref.on_failure}",
    )
    def _op(context: dg.OpExecutionContext):
        halted = _halted_by(context)
        if halted is not None:
            context.log.warning(f"{spec.key}: not started, step {halted} failed (halt)")
            yield from _observe(spec, "halted", None, f"not started: {halted} failed")
            return
        error = None
        engine: OpenEngine | None = None
        try:
            run_date, params = run_parameters(
                context.run.tags, job.parameters, context.op_config.get("params")
            )
            catalog = context.resources.iceberg.catalog()
            with open_engine(
                spec,
                settings,
                context.resources.spark,
                catalog,
                context.run.tags,
                None,
                context.log,
            ) as engine:
                ctx = engine.exec_context(
                    settings=settings,
                    app=spec.app,
                    run_id=context.run_id,
                    run_date=run_date,
                    log=context.log,
                    s3_client=_s3_client(context.resources.s3) if spec.watched_sources else None,
                    spec=spec,
                    params=params,
                    full_refresh=context.run.tags.get(FULL_REFRESH_TAG, "").lower() == "true",
                )
                outcomes = run_pipeline(spec, ctx, catalog)
        except ChecksFailed as failed:
            for outcome in failed.outcomes:
                for r in check_results(outcome, published=False):
                    yield _evaluation(r)
            error = failed
        except Exception as exc:  # noqa: BLE001 - the policy decides below
            session = engine.spark_session if engine else None
            error = spark_watchdog.explain(exc, session)  # a dead server: SparkServerDied
        except BaseException:  # terminated (DagsterExecutionInterruptedError): stop Spark's work
            spark_watchdog.interrupt(engine.spark_session if engine else None, context.log)
            raise
        if error is None:
            if ctx.drops is not None:
                yield from _drop_events(spec, ctx.drops, materialized=bool(outcomes))
            for outcome in outcomes:
                yield dg.AssetMaterialization(
                    asset_key=asset_key(outcome.ref),
                    metadata=_result(
                        outcome,
                        descriptions.get(outcome.ref, {}),
                        engine.metadata() if engine else None,
                    ).metadata,
                )
                for r in check_results(outcome, published=True):
                    yield _evaluation(r)
            yield dg.Output(None, "done")
            return
        if not isinstance(error, ChecksFailed):
            retry = ref.on_failure == "retry"
            transient_retry(
                context,
                error,
                engine.spark_session if engine else None,
                at_least=ref.max_retries if retry else 0,
                policy_wait=ref.retry_delay_seconds if retry else None,
            )
        if ref.on_failure in ("halt", "retry"):
            raise error
        context.log.error(
            f"{spec.key} failed ({type(error).__name__}: {error}); onFailure={ref.on_failure}"
        )
        if ref.on_failure == "skip":
            yield from _observe(
                spec, "skipped", error, "failed; onFailure=skip: dependents skipped"
            )
            return
        yield from _observe(
            spec,
            "failed_continued",
            error,
            "failed; onFailure=continue: dependents read its last published data",
        )
        yield dg.Output(None, "done")

    return _op


def _evaluation(result: dg.AssetCheckResult) -> dg.AssetCheckEvaluation:
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


def _outcome_op(job: JobSpec) -> dg.OpDefinition:
    @dg.op(
        name=f"{job.name}__outcome",
        ins={"after": dg.In(dg.Nothing)},
        description="Fails the run when a pipeline with onFailure=continue failed.",
    )
    def _outcome(context: dg.OpExecutionContext):
        failed = continued_failures(context.instance, context.run_id)
        if failed:
            raise dg.Failure(
                description="pipelines failed (onFailure=continue; their dependents ran on "
                f"their last published data): {', '.join(sorted(failed))}",
                metadata={"datahub/failed_pipelines": sorted(failed)},
                allow_retries=False,
            )

    return _outcome


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
