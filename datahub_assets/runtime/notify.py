"""What a notification says, built when it is sent (a sensor tick): the summary of a finished
job run, an SLA miss, the Slack-compatible text and the e-mail body; `notify_delivery.py`
sends them.

A finished job run is summarised from its event log (per pipeline: status and duration;
failed and skipped pipelines; the root error) and sent to the job's targets whose `on` takes
the outcome. An SLA miss is one notification per asset and last materialisation, to the
app's default targets. The run's link is `$DATAHUB_UI_URL/runs/<run id>` (default
http://localhost:3000).

A notification leaves the platform (a chat channel, a mailbox), so it carries an error as its
class and `notice(message)`: the first line, without the values it quotes (a duplicate-key
sample, Spark's `The value '...'`, a repr), at most 300 characters. The full error stays in
the run's log behind the run's link.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime

import dagster as dg

from datahub_assets.runtime.keys import job_op_name
from datahub_assets.runtime.notify_delivery import deliver, wants
from datahub_assets.runtime.step import OUTCOME_KEY
from datahub_assets.spec.job_models import JobSpec, SmtpServer
from datahub_assets.spec.models import Project
from datahub_resources.settings import Settings

UI_URL_ENV = "DATAHUB_UI_URL"
DEFAULT_UI_URL = "http://localhost:3000"
NOTICE_CHARS = 300
_SAMPLE = re.compile(r"\be\.g\. .*\(\d+ rows?\)")  # writers/database.py: duplicate-key samples
# quoted text, left to right: '...' is a value (Spark, SQL, Python's repr); "..." a name
# or type, unless it holds a ' (Python's repr of such a str)
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"[^"\n]*"')
_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
    dg.DagsterEventType.ASSET_OBSERVATION,
}


def _root(error) -> tuple[str, str]:
    while error.cause is not None or error.context is not None:
        error = error.cause or error.context
    return error.cls_name or "Error", error.message.strip()


def notice(message: str) -> str:
    """`message` as a notification carries it: its first line, with the values it quotes and
    the duplicate-key samples the writers name left out, at most NOTICE_CHARS characters."""
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    line = _SAMPLE.sub("e.g. <values left out>", line)
    line = _QUOTED.sub(_without_value, line)
    return line if len(line) <= NOTICE_CHARS else line[: NOTICE_CHARS - 1] + "…"


def _without_value(m: re.Match) -> str:
    quoted = m.group(0)
    if quoted[0] == '"' and "'" not in quoted:
        return quoted
    return f"{quoted[0]}…{quoted[0]}"


def summarize(
    instance: dg.DagsterInstance, run: dg.DagsterRun, job: JobSpec, ui_url: str = DEFAULT_UI_URL
) -> dict:
    """The notification payload of a finished job run (Slack-compatible `text` first);
    `ui_url` is DATAHUB_UI_URL (`Settings.ui_url`)."""
    steps = {
        job_op_name(job, s): {
            "pipeline": s.pipeline_key,
            "status": "not started",
            "duration_s": None,
        }
        for s in job.steps
    }
    started: dict[str, float] = {}
    error = None
    for entry in instance.all_logs(run.run_id, of_type=_EVENTS):
        key = entry.step_key
        event, step = entry.dagster_event, steps.get(key or "")
        if event is None or step is None or key is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            started.setdefault(key, entry.timestamp)
            step["status"] = "running"
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            if key in started:
                step["duration_s"] = round(entry.timestamp - started[key], 3)
            if kind == dg.DagsterEventType.STEP_FAILURE:
                step["status"] = "failed"
                info = event.step_failure_data.error
                if error is None and info is not None:
                    cls, message = _root(info)
                    error = {
                        "class": cls,
                        "message": notice(message),
                        "summary": notice(info.message),
                        "pipeline": step["pipeline"],
                    }
            elif step["status"] == "running":
                step["status"] = "succeeded"
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            step["status"] = "skipped"
        else:
            meta = event.asset_observation_data.asset_observation.metadata
            outcome = meta.get(OUTCOME_KEY)
            if outcome is not None:
                step["status"] = outcome.value
                if error is None and "datahub/error_class" in meta:
                    error = {
                        "class": meta["datahub/error_class"].value,
                        "message": notice(str(meta["datahub/error"].value)),
                        "summary": notice(str(meta["datahub/error"].value)),
                        "pipeline": step["pipeline"],
                    }
    failed = [
        s["pipeline"] for s in steps.values() if s["status"] in ("failed", "failed_continued")
    ]
    skipped = [
        s["pipeline"] for s in steps.values() if s["status"] in ("skipped", "halted", "not started")
    ]
    status = run.status.value
    link = f"{ui_url}/runs/{run.run_id}"
    text = f"Data Hub job {job.name}: {status}"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    if error:
        text += f"; error {error['class']}: {error['message']}"
    return {
        "text": slack_text(f"{text} ({link})"),
        "job": job.name,
        "app": job.app,
        "run_id": run.run_id,
        "status": status,
        "failed_pipelines": failed,
        "skipped_pipelines": skipped,
        "error": error,
        "steps": list(steps.values()),
        "run_url": link,
        "run_date": run.tags.get("datahub/run_date"),
    }


def slack_text(text: str) -> str:
    """`text` as Slack-compatible message text: `&`, `<` and `>` escaped as Slack documents,
    so names and error text never become `<!channel>` mentions or `<url|label>` links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _body(payload: dict) -> str:
    """The e-mail body: the message as written (the webhook `text` unescaped), the steps."""
    lines = [html.unescape(payload["text"]), "", f"run: {payload.get('run_url', '')}"]
    for step in payload.get("steps", []):
        lines.append(
            f"  {step['pipeline']}: {step['status']}"
            + (f" ({step['duration_s']} s)" if step.get("duration_s") is not None else "")
        )
    if payload.get("error"):
        lines += ["", f"error: {payload['error']['class']}: {payload['error']['message']}"]
    return "\n".join(lines)


def _smtp(project: Project, app: str) -> SmtpServer:
    config = project.apps.get(app)
    notes = config.notifications if config else None
    return notes.smtp if notes else SmtpServer()


def notify_run(
    instance,
    run,
    jobs: dict[str, JobSpec],
    project: Project,
    log,
    attempts: int = 3,
    ui_url: str = DEFAULT_UI_URL,
    settings: Settings | None = None,
) -> list[str]:
    """Notify the targets of a finished job run; returns the deliveries that failed.
    `settings`: the delivery policy read at load (default: from the environment)."""
    job = jobs.get(run.job_name)
    if job is None:
        return []
    outcome = "success" if run.status == dg.DagsterRunStatus.SUCCESS else "failure"
    targets = [t for t in job.notifications if wants(t, outcome)]
    if not targets:
        return []
    payload = summarize(instance, run, job, ui_url)
    subject = f"[Data Hub] {job.name} {payload['status']}"
    smtp = _smtp(project, job.app)
    return deliver(
        targets,
        smtp,
        payload,
        subject,
        _body(payload),
        log,
        attempts=attempts,
        app=job.app,
        settings=settings,
    )


def check_sla(
    instance,
    project: Project,
    watched: dict,
    cursor: dict,
    log,
    now: float | None = None,
    attempts: int = 3,
    ui_url: str = DEFAULT_UI_URL,
    settings: Settings | None = None,
) -> dict:
    """Notify each newly overdue asset once per last materialisation; returns the cursor."""
    now = now if now is not None else time.time()
    records = instance.get_asset_records(list(watched))
    for record in records:
        key = record.asset_entry.asset_key
        last = record.asset_entry.last_materialization
        if last is None or key not in watched:
            continue
        app, seconds = watched[key]
        name = key.to_user_string()
        if now - last.timestamp <= seconds or cursor.get(name) == last.timestamp:
            continue
        cursor[name] = last.timestamp
        notes = project.apps[app].notifications
        if notes is None:  # sla_assets watches only apps with notification targets
            continue
        at = datetime.fromtimestamp(last.timestamp, UTC).isoformat(timespec="seconds")
        payload = {
            "text": slack_text(
                f"Data Hub SLA missed: {name} was last materialised at {at} "
                f"(SLA {seconds / 3600:g} h)"
            ),
            "kind": "sla_miss",
            "asset": name,
            "app": app,
            "sla_seconds": seconds,
            "last_materialization": at,
            "overdue_s": round(now - last.timestamp - seconds),
            "run_id": last.run_id,
            "run_url": f"{ui_url}/runs/{last.run_id}",
        }
        targets = [t for t in notes.targets if wants(t, "sla")]
        deliver(
            targets,
            notes.smtp,
            payload,
            f"[Data Hub] SLA missed: {name}",
            html.unescape(payload["text"]),
            log,
            attempts=attempts,
            app=app,
            settings=settings,
        )
    return cursor
