"""Read a finished run's timings back from a Dagster instance's event log.

Per step (multiprocess executor): STEP_WORKER_STARTING -> STEP_WORKER_STARTED is the process
start (`step_process_start_s`), STEP_WORKER_STARTED -> STEP_START loading the code location
and resources in that process (`step_init_s`), both together `step_spawn_s`; STEP_START ->
STEP_SUCCESS is the asset body (`step_s`). `gap_between_steps_s` is the time from one step's
end to the next step's start, which in a chain is the whole per-step overhead.
"""

from __future__ import annotations

import statistics
from pathlib import Path


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "sum": round(sum(values), 3),
    }


def _engine_of(event) -> str:
    """The engine a materialisation records (`datahub/engine` metadata), else "-"."""
    metadata = event.event_specific_data.materialization.metadata or {}
    value = metadata.get("datahub/engine")
    return str(getattr(value, "value", value)) if value is not None else "-"


def read_run(dagster_home: Path) -> dict:
    """Timings of the newest run in the instance at dagster_home, from its event log."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        records = instance.get_run_records(limit=1)
        if not records:
            return {"error": "no run recorded"}
        run = records[0].dagster_run
        events = instance.all_logs(run.run_id)
    finally:
        instance.dispose()
    worker: dict[str, float] = {}
    started: dict[str, float] = {}
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    failed: list[str] = []
    run_start = run_end = None
    materialized = 0
    engines: dict[str, int] = {}
    for e in events:
        ev = e.dagster_event
        if ev is None:
            continue
        # Enum names, not event_type_value: RUN_START's stored value is "PIPELINE_START".
        kind, key, ts = ev.event_type.name, e.step_key, e.timestamp
        if kind == "RUN_START":
            run_start = ts
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = ts
        elif kind == "STEP_WORKER_STARTING":
            worker[key] = ts
        elif kind == "STEP_WORKER_STARTED":
            started[key] = ts
        elif kind == "STEP_START":
            start[key] = ts
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            end[key] = ts
            if kind == "STEP_FAILURE":
                failed.append(key)
        elif kind == "ASSET_MATERIALIZATION":
            materialized += 1
            engine = _engine_of(ev)
            engines[engine] = engines.get(engine, 0) + 1
    steps = sorted((k for k in end if k in start), key=lambda k: start[k])
    durations = [end[k] - start[k] for k in steps]
    spawn = [start[k] - worker[k] for k in steps if k in worker]
    process = [started[k] - worker[k] for k in steps if k in worker and k in started]
    init = [start[k] - started[k] for k in steps if k in started]
    gaps = [start[b] - end[a] for a, b in zip(steps, steps[1:], strict=False)]
    run_s = (run_end - run_start) if run_start and run_end else None
    return {
        "run_id": run.run_id,
        "status": str(run.status.value),
        "run_s": round(run_s, 3) if run_s else None,
        "steps": len(steps),
        "failed_steps": failed,
        "materialized_assets": materialized,
        "engines": engines,
        "step_s": _stats(durations),
        "step_spawn_s": _stats(spawn),
        "step_process_start_s": _stats(process),
        "step_init_s": _stats(init),
        "gap_between_steps_s": _stats(gaps),
        "step_durations_s": {k: round(end[k] - start[k], 3) for k in steps},
        "slowest_steps": sorted(
            ({"step": k, "s": round(end[k] - start[k], 3)} for k in steps),
            key=lambda d: -d["s"],
        )[:3],
    }
