"""Job pipelines (contract section 6) → Dagster jobs and schedules.

A job `<app>__<id>` is an op graph with one op per `pipelineRef` (`<app>__<id>__<ref>`)
whose body is the pipeline's step (`runtime.step.job_step`, the wrapper the pipeline's asset
runs too): it reports what the pipeline wrote as materialisations and asset-check
evaluations of the pipeline's assets, so lineage, history, checks and automation see job
runs like asset runs. Each op waits, through `Nothing` inputs, for its `dependsOn` refs and
for the job's pipelines upstream of it in data lineage. Why not an asset job: in an asset
job the only step dependencies are asset dependencies, so ordering beyond lineage would have
to become fake lineage edges shared by every job and by automation; the op graph orders
exactly what the job says and leaves the asset graph alone. It also keeps load linear: a
job's graph and its schedule are built from the job's own steps, never by resolving a
selection against the asset graph.

onFailure, per op, applied at run time by `runtime.step.job_step` (the exception is
classified first: transient failures are retried everywhere, `runtime/retries.py`):
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

from datahub_assets.runtime.keys import SPARK_POOL, job_op_name
from datahub_assets.runtime.params import RUN_DATE_TAG
from datahub_assets.runtime.step import PipelineStep, job_step, outcome_step
from datahub_assets.spec.job_models import JobSpec, JobStep
from datahub_assets.spec.models import PipelineSpec, Project
from datahub_resources.settings import Settings

JOB_TAG = "datahub/job"


def build_jobs(project: Project) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    specs = {s.key: s for s in project.pipelines}
    jobs, schedules = [], []
    for job in project.jobs:
        job_def = build_job(job, specs)
        jobs.append(job_def)
        if job.job.schedule:
            schedules.append(_schedule(job, job_def))
    return jobs, schedules


def build_job(job: JobSpec, specs: dict[str, PipelineSpec]) -> dg.JobDefinition:
    ops = [_step_op(job, step, specs[step.pipeline_key]) for step in job.steps]
    deps: dict[str, dict[str, dg.IDependencyDefinition]] = {
        job_op_name(job, step): {
            f"after_{up}": dg.DependencyDefinition(f"{job.name}__{up}", "done") for up in step.after
        }
        for step in job.steps
    }
    if any(step.ref.on_failure == "continue" for step in job.steps):
        outcome = _outcome_op(job)
        ops.append(outcome)
        deps[outcome.name] = {
            "after": dg.MultiDependencyDefinition(
                [dg.DependencyDefinition(job_op_name(job, step), "done") for step in job.steps]
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
            "ops": {
                job_op_name(job, step): {"config": {"params": dict(config)}} for step in job.steps
            }
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


def _step_op(job: JobSpec, step: JobStep, spec: PipelineSpec) -> dg.OpDefinition:
    ref = step.ref
    pipeline = PipelineStep.of(spec, Settings.from_env())  # settings read at load, never in a run

    @dg.op(
        name=job_op_name(job, step),
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
        yield from job_step(pipeline, job, ref, context)

    return _op


def _outcome_op(job: JobSpec) -> dg.OpDefinition:
    @dg.op(
        name=f"{job.name}__outcome",
        ins={"after": dg.In(dg.Nothing)},
        description="Fails the run when a pipeline with onFailure=continue failed.",
    )
    def _outcome(context: dg.OpExecutionContext):
        outcome_step(context)

    return _outcome
