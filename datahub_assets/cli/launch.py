"""`datahub launch --assets SELECTION`: a run of the workspace's code location, as the UI makes.

`dg launch` and `dagster asset materialize` (Dagster 1.13) execute the assets in the calling
process from a Python module: the run has no remote origin, so the UI warns that it was
"loaded from a different code location" on re-execution and leaves it off the Overview
timeline. This loads `workspace.yaml` (location `datahub`) through a code server, creates the
run from that location's asset job with its remote origin, and launches it with the
instance's run launcher (no daemon needed: the queue is bypassed), then waits for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


class LaunchError(RuntimeError):
    pass


def launch_assets(
    instance: dg.DagsterInstance,
    workspace_file: Path,
    select: str,
    location: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.DagsterRun:
    """Create and launch a run of the assets `select` names (Dagster selection syntax, e.g.
    `*`, `key:"ecommerce/*"`, `group:gold`) in `location` of `workspace_file`."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_file)])) as process:
        workspace = process.create_request_context()
        names = list(workspace.get_code_location_entries())
        name = location or (names[0] if len(names) == 1 else None)
        if name is None or name not in names:
            raise LaunchError(
                f"{workspace_file}: no code location {location!r} (locations: {names}); "
                "pass --location"
            )
        error = workspace.get_code_location_error(name)
        if error is not None:
            raise LaunchError(f"code location {name!r} failed to load:\n{error.to_string()}")
        code_location = workspace.get_code_location(name)
        (repo,) = code_location.get_repositories().values()
        keys = dg.AssetSelection.from_string(select).resolve(repo.asset_graph)
        if not keys:
            raise LaunchError(f"the selection {select!r} matches no asset in {name!r}")
        job_name = "__ASSET_JOB"  # the implicit job of all assets (not partitioned here)
        remote_job = code_location.get_job(
            JobSubsetSelector(
                location_name=name,
                repository_name=repo.name,
                job_name=job_name,
                op_selection=None,
                asset_selection=keys,
            )
        )
        plan = code_location.get_execution_plan(
            remote_job, {}, step_keys_to_execute=None, known_state=None, instance=instance
        )
        run = instance.create_run(
            job_name=job_name,
            run_id=None,
            run_config={},
            resolved_op_selection=None,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            op_selection=None,
            status=dg.DagsterRunStatus.NOT_STARTED,
            root_run_id=None,
            parent_run_id=None,
            tags={**remote_job.tags, **(tags or {})},
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(keys),
            asset_check_selection=None,
            asset_graph=repo.asset_graph,
        )
        instance.launch_run(run.run_id, workspace)
        return _wait(instance, run.run_id)


def _wait(instance: dg.DagsterInstance, run_id: str, poll: float = 0.5) -> dg.DagsterRun:
    """The run once it finished (the code server that started it stays up until then)."""
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            return run
        time.sleep(poll)
