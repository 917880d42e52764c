"""One finished Dagster run → one run record per Data Hub pipeline it executed (contract 8).

What a run executed comes from its execution plan snapshot: every step whose op carries the
tag `datahub/pipeline=<app>.<id>` is a pipeline, and the asset keys of its outputs are its
targets (`[app, layer, table]`, so the layer too). Plan snapshots are content-addressed and
shared by every run of the same selection, so they are cached per process. What happened
comes from the run's own event log, read once with one query filtered to the few event types
used:

    STEP_START / STEP_SUCCESS / STEP_FAILURE   start, end, status, error of the pipeline
    ASSET_MATERIALIZATION                      datahub/rows_written (else the older events'
                                               dagster/row_count), datahub/snapshot_id,
                                               datahub/iceberg_table per target; rows read:
                                               datahub/rows_read, else a file-drop batch's
                                               rows + malformed/invalid rows (rows_read_of)
    ASSET_CHECK_EVALUATION                     passed / failed (error) / warned (warn) counts
    ASSET_OBSERVATION datahub/job_outcome      a job pipeline's step that caught its pipeline's
                                               failure (onFailure skip/continue: failed, with
                                               the error) or did not start it (halt: skipped)

A pipeline step that never started is `skipped` (an upstream step failed), or `canceled` in a
canceled run; when a run failed without any step failure (its worker died, it never started)
its unfinished pipelines are `failed` with the run's own error. Runs without a pipeline step
(a plain asset, a job of other ops) give no record. Error messages are kept as the
exception raised in the asset body said them (Dagster's wrapper exceptions skipped), and
`signature` normalises one into the key the dashboard groups failures by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

PIPELINE_TAG = "datahub/pipeline"
SUCCESS, FAILED, SKIPPED, CANCELED = "success", "failed", "skipped", "canceled"

E = dg.DagsterEventType
TERMINAL = (E.RUN_SUCCESS, E.RUN_FAILURE, E.RUN_CANCELED)
_RUN_STATUS = {E.RUN_SUCCESS: "SUCCESS", E.RUN_FAILURE: "FAILURE", E.RUN_CANCELED: "CANCELED"}
_STEP_EVENTS = {
    E.STEP_START,
    E.STEP_SUCCESS,
    E.STEP_FAILURE,
    E.ASSET_MATERIALIZATION,
    E.ASSET_CHECK_EVALUATION,
    E.ASSET_OBSERVATION,
}
# a job pipeline's step that swallowed its pipeline's failure (onFailure skip / continue) or
# did not start it (halt) succeeds, and says so in an observation (runtime/step.py (`job_step`))
JOB_OUTCOME = "datahub/job_outcome"
_JOB_OUTCOMES = {"skipped": FAILED, "failed_continued": FAILED, "halted": SKIPPED}
MESSAGE_MAX = 4000


@dataclass(frozen=True)
class PlannedPipeline:
    step_key: str
    pipeline: str
    targets: tuple[tuple[str, ...], ...]


# ------------------------------------------------------------------------------ trigger


def trigger_of(tags: Mapping[str, str]) -> tuple[str, str | None]:
    """(trigger, name) of a run from its tags: `schedule` (a Dagster schedule, or the
    `datahub_automation` sensor that evaluates `<schedule>` crons), `file drop` (a `watch__`
    sensor), `automation` (`datahub_follow_*`: after upstream changes), `sensor` (any other
    sensor), `backfill`, or `manual` (launched by hand; a re-execution names its parent)."""
    if name := tags.get("dagster/schedule_name"):
        return "schedule", name
    if name := tags.get("dagster/sensor_name"):
        if name.startswith("watch__"):
            return "file drop", name
        if name == "datahub_automation":
            return "schedule", name
        if name.startswith("datahub_follow_") or tags.get("dagster/from_automation_condition"):
            return "automation", name
        return "sensor", name
    if tags.get("dagster/from_automation_condition"):
        return "automation", None
    if backfill := tags.get("dagster/backfill"):
        return "backfill", backfill
    return "manual", tags.get("dagster/parent_run_id")


# ------------------------------------------------------------------------------ errors

_WRAPPER = re.compile(r"^Dagster\w*Error$")


def error_of(info: Any) -> tuple[str, str] | None:
    """(class, message) of the exception the asset body raised: the first error in the cause
    chain that is not one of Dagster's wrappers, its message without the `module.Class: `
    prefix Dagster puts in front."""
    chain = []
    while info is not None and len(chain) < 20:
        chain.append(info)
        info = info.cause or info.context
    if not chain:
        return None
    own = next((e for e in chain if not _WRAPPER.match(e.cls_name or "")), chain[0])
    cls = own.cls_name or "Error"
    message = (own.message or "").strip()
    message = re.sub(rf"^[\w.]*{re.escape(cls)}: ", "", message, count=1)
    return cls, message[:MESSAGE_MAX]


_SIGNATURE_RULES = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+"), "<uri>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[('\"`=]))(?:[\w.-]*/)+[\w.*-]+(?::\d+)*"), "<path>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w.])"), "<n>"),
)


def signature(error_class: str | None, message: str | None) -> str | None:
    """The failure's group key: class + first line of the message with URIs, paths (with
    :line:col), UUIDs, hex ids and numbers replaced by placeholders, at most 200 chars."""
    if not error_class and not message:
        return None
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    for pattern, placeholder in _SIGNATURE_RULES:
        first = pattern.sub(placeholder, first)
    first = re.sub(r"\s+", " ", first).strip()
    return f"{error_class or 'Error'}: {first}"[:200]


# ------------------------------------------------------------------------------ plans

_PLANS: dict[str, tuple[PlannedPipeline, ...]] = {}
_PLANS_MAX = 512


def planned_pipelines(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> tuple[PlannedPipeline, ...]:
    """The pipeline steps the run planned to execute (cached per plan snapshot id)."""
    snapshot_id = run.execution_plan_snapshot_id
    if snapshot_id is None:
        return ()
    if snapshot_id not in _PLANS:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        try:
            plan = instance.get_execution_plan_snapshot(snapshot_id)
        except Exception:  # a snapshot the storage no longer holds
            return ()
        selected = set(plan.step_keys_to_execute or [s.key for s in plan.steps])
        _PLANS[snapshot_id] = tuple(
            PlannedPipeline(
                step_key=s.key,
                pipeline=(s.tags or {})[PIPELINE_TAG],
                targets=tuple(
                    tuple(o.properties.asset_key.path)
                    for o in s.outputs
                    if o.properties and o.properties.asset_key
                ),
            )
            for s in plan.steps
            if s.key in selected and (s.tags or {}).get(PIPELINE_TAG)
        )
    planned = _PLANS[snapshot_id]
    if run.step_keys_to_execute is not None:
        keys = set(run.step_keys_to_execute)
        planned = tuple(p for p in planned if p.step_key in keys)
    return planned


# ------------------------------------------------------------------------------ records


def _ts(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def _meta(metadata: Mapping[str, Any], key: str) -> Any:
    value = metadata.get(key)
    return getattr(value, "value", value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


ROWS_WRITTEN = "datahub/rows_written"


def rows_written_of(metadata: Mapping[str, Any]) -> int | None:
    """Rows a target's materialisation wrote: `datahub/rows_written`; events recorded before
    it existed carried them in `dagster/row_count` (now the table's total rows)."""
    written = _int(_meta(metadata, ROWS_WRITTEN))
    return written if written is not None else _int(_meta(metadata, "dagster/row_count"))


ROWS_READ = "datahub/rows_read"
# a file-drop batch's materialisation (execute/drops.py DropBatch.metadata via the outcome's
# extra) and the counts of records that did not reach the table (bad_records.py, quality.py)
FILES_INGESTED = "datahub/files_ingested"
NOT_LOADED = ("datahub/malformed_rows", "datahub/invalid_rows")


def rows_read_of(metadata: Mapping[str, Any]) -> int | None:
    """Rows a target's step read: `datahub/rows_read` when the runner reports it; else, for a
    file-drop batch (`datahub/files_ingested` > 0), the records of the ingested files that were
    written (`dagster/row_count`) or counted bad (`datahub/malformed_rows`, quarantined or
    dropped, and `datahub/invalid_rows`, quarantined by validation): the file ledger's `rows`
    + `invalid_rows` of the batch. Rows a raw pipeline's own transformation filtered out are
    not in that figure. Other targets report none (null)."""
    read = _int(_meta(metadata, ROWS_READ))
    if read is not None:
        return read
    if not _int(_meta(metadata, FILES_INGESTED)):
        return None
    written = rows_written_of(metadata)
    if written is None:
        return None
    return written + sum(_int(_meta(metadata, key)) or 0 for key in NOT_LOADED)


class _Step:
    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.status: str | None = None
        self.error: tuple[str, str] | None = None
        self.targets: dict[tuple[str, ...], dict[str, Any]] = {}
        self.rows_read: int | None = None
        self.checks = {"passed": 0, "failed": 0, "warned": 0}
        self.outcome: str | None = None


def _steps(entries: Iterable[Any]) -> dict[str, _Step]:
    steps: dict[str, _Step] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        step = steps.setdefault(entry.step_key, _Step())
        kind, data = event.event_type, event.event_specific_data
        if kind == E.STEP_START:
            step.start = entry.timestamp
        elif kind == E.STEP_SUCCESS:
            step.end, step.status = entry.timestamp, SUCCESS
        elif kind == E.STEP_FAILURE:
            step.end, step.status = entry.timestamp, FAILED
            step.error = error_of(data.error) if data and data.error else None
            user = getattr(data, "user_failure_data", None)
            if user is not None and user.description and step.error:
                step.error = (step.error[0], user.description[:MESSAGE_MAX])
        elif kind == E.ASSET_MATERIALIZATION:
            mat = data.materialization
            md = mat.metadata
            step.targets[tuple(mat.asset_key.path)] = {
                "rows_written": rows_written_of(md),
                "snapshot_id": _int(_meta(md, "datahub/snapshot_id")),
                "iceberg_table": _meta(md, "datahub/iceberg_table"),
            }
            read = rows_read_of(md)
            if read is not None:
                step.rows_read = max(step.rows_read or 0, read)
        elif kind == E.ASSET_OBSERVATION:
            md = data.asset_observation.metadata
            outcome = _JOB_OUTCOMES.get(_meta(md, JOB_OUTCOME))
            if outcome is not None:
                step.outcome = outcome
                if outcome == FAILED:
                    step.error = (
                        str(_meta(md, "datahub/error_class") or "Error"),
                        str(_meta(md, "datahub/error") or "")[:MESSAGE_MAX],
                    )
        elif kind == E.ASSET_CHECK_EVALUATION:
            if data.passed:
                step.checks["passed"] += 1
            elif data.severity == dg.AssetCheckSeverity.WARN:
                step.checks["warned"] += 1
            else:
                step.checks["failed"] += 1
    return steps


def run_rows(
    instance: dg.DagsterInstance, terminal: Any, run_record: Any, recorded_at: datetime
) -> list[dict[str, Any]]:
    """The records of one finished run: `terminal` is its RUN_SUCCESS / RUN_FAILURE /
    RUN_CANCELED EventLogRecord, `run_record` its RunRecord."""
    run = run_record.dagster_run
    planned = planned_pipelines(instance, run)
    if not planned:
        return []
    entries = instance.get_records_for_run(run.run_id, of_type=_STEP_EVENTS).records
    steps = _steps(r.event_log_entry for r in entries)
    kind = terminal.event_log_entry.dagster_event.event_type
    run_data = terminal.event_log_entry.dagster_event.event_specific_data
    run_error = error_of(getattr(run_data, "error", None)) if run_data else None
    if run_error is None and kind == E.RUN_FAILURE:  # e.g. marked failed by run monitoring
        message = terminal.event_log_entry.dagster_event.message or "the run failed"
        run_error = ("RunFailure", message[:MESSAGE_MAX])
    any_step_failed = any(s.status == FAILED for s in steps.values())
    trigger, trigger_name = trigger_of(run.tags)
    run_end = run_record.end_time or terminal.event_log_entry.timestamp
    run_start = run_record.start_time or run_end  # a run canceled while queued never started
    rows = []
    for p in planned:
        step = steps.get(p.step_key) or _Step()
        status, error = step.status, step.error
        if status == SUCCESS and step.outcome is not None:
            status = step.outcome
        if status is None:
            if kind == E.RUN_CANCELED:
                status = CANCELED
            elif kind == E.RUN_FAILURE and (step.start is not None or not any_step_failed):
                status, error = FAILED, run_error
            elif kind == E.RUN_FAILURE:
                status = SKIPPED
            else:
                status = SKIPPED  # a successful run that did not execute the step
        start = step.start
        end = step.end if step.end is not None else (run_end if start is not None else None)
        # planned outputs, and materialisations an op job's step reported on its own
        keys = [*p.targets, *(k for k in step.targets if k not in p.targets)]
        targets = [{"asset_key": "/".join(key), **step.targets.get(key, {})} for key in keys]
        written = [t["rows_written"] for t in targets if t.get("rows_written") is not None]
        app = p.pipeline.split(".", 1)[0]
        layer = next((key[1] for key in keys if len(key) == 3 and key[0] == app), None)
        error_class, message = error if error else (None, None)
        rows.append(
            {
                "run_id": run.run_id,
                "pipeline": p.pipeline,
                "app": app,
                "layer": layer,
                "op": p.step_key,
                "job": run.job_name,
                "trigger": trigger,
                "trigger_name": trigger_name,
                "status": status,
                "run_status": _RUN_STATUS[kind],
                "started_at": _ts(start if start is not None else run_start),
                "ended_at": _ts(end if end is not None else run_end),  # never null
                "duration_s": round(end - start, 3)
                if start is not None and end is not None
                else None,
                "rows_read": step.rows_read,
                "rows_written": sum(written) if written else None,
                "targets": targets,
                "checks_passed": step.checks["passed"],
                "checks_failed": step.checks["failed"],
                "checks_warned": step.checks["warned"],
                "error_class": error_class,
                "error_message": message,
                "error_signature": signature(error_class, message),
                "event_id": terminal.storage_id,
                "recorded_at": recorded_at,
            }
        )
    return rows
