"""The Dagster names of a pipeline, the same at load time and at run time: asset keys, step
(op) names of assets and job ops, the pool of Spark steps."""

from __future__ import annotations

import re

import dagster as dg

from datahub_assets.spec.job_models import JobSpec, JobStep
from datahub_assets.spec.models import PipelineSpec, TableRef

SPARK_POOL = "spark"
"""The concurrency pool of every step that may run on the shared Spark server."""


def asset_key(ref: TableRef) -> dg.AssetKey:
    return dg.AssetKey(ref.asset_path)


def op_name(spec: PipelineSpec) -> str:
    """The pipeline's step name, as run pages and the launchpad show it: the asset it
    writes, `<app>__<layer>__<table>` (Dagster's own `AssetKey.to_python_identifier`), or
    for a pipeline with several targets `<app>__<layer>__<pipeline id>__<n>_targets`.

    Stable across runs (it only depends on the definition) and unique: asset keys are unique
    and a multi-target name ends in `_targets` after its pipeline id, unique per app."""
    if len(spec.targets) == 1:
        return _identifier(asset_key(spec.targets[0].ref).to_python_identifier())
    return _identifier(f"{spec.app}__{spec.layer}__{spec.pipeline.id}__{len(spec.targets)}_targets")


def job_op_name(job: JobSpec, step: JobStep) -> str:
    """The op of one `pipelineRef` of a job: `<job>__<node>`."""
    return f"{job.name}__{step.node}"


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
