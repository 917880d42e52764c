"""The typed model of job pipelines (contract section 6) and of notifications.

A job pipeline (`<app>/jobs/<job>.xml|.yaml`) orders existing data pipelines, with a failure
policy per pipeline, run parameters and notifications. `JobPipeline` is what the file says;
`JobSpec` is the validated job the build stage turns into a Dagster job (`orchestration/jobs.py`).
Notification targets are also the app-wide defaults of `app.yaml` (`AppNotifications`).
This module imports neither dagster nor pyspark.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from datahub_assets.spec.nodes import CommaList, Node

OnFailure = Literal["retry", "halt", "skip", "continue"]
NotifyOn = Literal["failure", "success", "completion", "sla"]
RUN_DATE = "runDate"
RUN_DATE_TEMPLATE = "{{ run_date }}"


class JobParameter(Node):
    name: str = Field(description="Parameter name: `:name` in a database source's <sql>.")
    default: str | None = Field(
        default=None,
        description="Value when the run gives none; `{{ run_date }}` is the "
        "run's date (a scheduled run: the tick's date in UTC).",
    )


class PipelineRef(Node):
    id: str = Field(description="Pipeline id in this app, or `<app>.<id>` in another app.")
    depends_on: CommaList = Field(
        default=(), description="pipelineRef ids of this job that must finish first."
    )
    on_failure: OnFailure = Field(
        default="halt",
        description="retry (maxRetries, exponential backoff) then halt; halt "
        "stops the job; skip marks it skipped and lets independent branches finish; continue "
        "lets dependents run on its last published data.",
    )
    max_retries: int = Field(default=2, ge=0, le=20, description="Retries of onFailure=retry.")
    retry_delay_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="First retry's wait; doubles each retry."
    )


class EmailNotification(Node):
    kind: Literal["email"] = Field(default="email", description="Element name (the discriminator).")
    to: CommaList = Field(description="Recipients, comma-separated.")
    on: NotifyOn = Field(
        default="failure",
        description="failure, success, completion (both) or sla (SLA misses only).",
    )


class WebhookNotification(Node):
    kind: Literal["webhook"] = Field(
        default="webhook", description="Element name (the discriminator)."
    )
    url: str | None = Field(default=None, description="http(s) URL receiving a JSON POST.")
    url_secret_ref: str | None = Field(
        default=None, description="Secret holding the URL (e.g. a Slack hook); instead of url=."
    )
    token_secret_ref: str | None = Field(
        default=None, description="Secret sent as `Authorization: Bearer <token>`."
    )
    on: NotifyOn = Field(
        default="failure",
        description="failure, success, completion (both) or sla (SLA misses only).",
    )


Notification = Annotated[EmailNotification | WebhookNotification, Field(discriminator="kind")]


def _tagged(value: Any) -> Any:
    """YAML's `- email: {to: ...}` (one key naming the element) -> `{kind: email, to: ...}`."""
    if not isinstance(value, list | tuple):
        return value
    out = []
    for item in value:
        if (
            isinstance(item, dict)
            and "kind" not in item
            and len([k for k in item if k != "loc"]) == 1
        ):
            (kind,) = (k for k in item if k != "loc")
            body = item[kind] if isinstance(item[kind], dict) else {}
            item = {"kind": kind, **({"loc": item["loc"]} if "loc" in item else {}), **body}
        out.append(item)
    return out


Notifications = Annotated[tuple[Notification, ...], BeforeValidator(_tagged)]


class SmtpServer(Node):
    host: str = Field(default="localhost", description="SMTP server host.")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    sender: str = Field(default="datahub@localhost", description="From: address.")
    user_secret_ref: str | None = Field(
        default=None, description="Secret holding `user:password` for SMTP AUTH."
    )
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(default=False, description="SMTP over TLS (SMTPS) from the start.")


class AppNotifications(Node):
    """`notifications:` in app.yaml: the SMTP server and the default notification targets of
    the app's jobs (used when a job declares none) and of its assets' SLA misses."""

    smtp: SmtpServer = Field(
        default_factory=SmtpServer, description="SMTP server of email notifications."
    )
    targets: Notifications = Field(
        default=(),
        description="Default targets: `- email: {to: ..., on: ...}`, "
        "`- webhook: {url: ..., on: ...}`.",
    )


class JobPipeline(Node):
    """One job pipeline file, as written (contract section 6)."""

    id: str = Field(description="Job id, unique within the app.")
    version: str = Field(default="1.0.0", description="Definition version, as written.")
    description: str | None = Field(default=None, description="Shown on the job in the UI.")
    schedule: str | None = Field(default=None, description="Cron (UTC); optional.")
    parameters: tuple[JobParameter, ...] = Field(
        default=(), description="Run parameters (runDate always exists)."
    )
    pipelines: tuple[PipelineRef, ...] = Field(
        description="Pipelines run, with order and failure policy."
    )
    notifications: Notifications = Field(
        default=(), description="Targets notified; default: app.yaml's."
    )


# ----------------------------------------------------------------- resolved (validated)


class JobStep(BaseModel):
    """One pipelineRef, resolved: the pipeline it runs and the steps it waits for."""

    model_config = ConfigDict(frozen=True)
    node: str = Field(description="Dagster node name within the job (the ref, `.` -> `__`).")
    ref: PipelineRef = Field(description="The pipelineRef as written.")
    pipeline_key: str = Field(description="`<app>.<pipeline id>` of the pipeline run.")
    after: tuple[str, ...] = Field(
        description="Nodes this one waits for: dependsOn plus lineage within the job."
    )


class JobSpec(BaseModel):
    """A validated job pipeline: steps in a valid order, parameters, notification targets."""

    model_config = ConfigDict(frozen=True)
    app: str = Field(description="App folder name.")
    file: str = Field(description="Definition file, relative to the pipelines dir.")
    line: int = Field(description="Line of the <jobPipeline> element.")
    job: JobPipeline = Field(description="The job pipeline as written.")
    steps: tuple[JobStep, ...] = Field(description="Topologically ordered.")
    notifications: tuple[Notification, ...] = Field(
        description="The job's own <notifications>, else the app.yaml defaults."
    )

    @property
    def name(self) -> str:
        """The Dagster job name: `<app>__<job id>`."""
        return f"{self.app}__{self.job.id}"

    @property
    def parameters(self) -> dict[str, str | None]:
        """Declared parameters with defaults; `runDate` is always there."""
        out: dict[str, str | None] = {RUN_DATE: RUN_DATE_TEMPLATE}
        out.update({p.name: p.default for p in self.job.parameters})
        return out
