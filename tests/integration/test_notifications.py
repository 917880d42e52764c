"""Notifications delivered for real: a local SMTP server (aiosmtpd) and a local HTTP server
receive what the run-status sensors send after real job runs; SLA misses; a dead target is
logged and never raises."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from datahub_assets.orchestration.jobs import build_jobs
from datahub_assets.orchestration.notify import notification_sensors, sla_assets
from datahub_assets.runtime.notify import check_sla
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources
from tests.support.net import free_port

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="{pid}" layer="bronze">
  <metadata><sla>PT1H</sla></metadata>
  <sources><csv id="src" path="landing/{pid}/*.csv" inferSchema="true"/></sources>
  <transformations>
    <derive source="src" column="y" expr="IF(x = 99, raise_error('boom in {pid}'), x)"/>
  </transformations>
  <targets><table table="{pid}" mode="overwrite"/></targets>
</pipeline>
"""
# a run that fails on a data value: Spark's error quotes it
CAST_PIPELINE = """<pipeline id="{pid}" layer="bronze">
  <sources><csv id="src" path="landing/{pid}/*.csv"/></sources>
  <transformations><derive source="src" column="n" expr="CAST(x AS INT)"/></transformations>
  <targets><table table="{pid}" mode="overwrite"/></targets>
</pipeline>
"""
JOB = """<jobPipeline id="nightly">
  <pipelines>
    <pipelineRef id="good"/>
    <pipelineRef id="bad" dependsOn="good"/>
  </pipelines>
  <notifications>
    <email to="ops@example.com, lead@example.com" on="failure"/>
    <webhook url="http://127.0.0.1:{http}/hook" tokenSecretRef="SHOP_HOOK_TOKEN" on="completion"/>
    <webhook url="http://127.0.0.1:{dead}/nobody" on="completion"/>
    <email to="happy@example.com" on="success"/>
  </notifications>
</jobPipeline>
"""
APP = """notifications:
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: datahub@example.com}}
  targets:
    - webhook: {{url: "http://127.0.0.1:{http}/sla", "on": sla}}
"""


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 - aiosmtpd's hook
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def sinks():
    box = _Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    http = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield {
            "smtp": smtp.port,
            "http": http.server_address[1],
            "mail": box.messages,
            "posts": posts,
        }
    finally:
        smtp.stop()
        http.shutdown()


def _setup(settings, sinks, bad: bool, bad_pipeline: str = PIPELINE, bad_value: str = "99"):
    app = settings.pipelines_dir / "shop"
    (app / "bronze").mkdir(parents=True, exist_ok=True)
    (app / "jobs").mkdir(exist_ok=True)
    for pid in ("good", "bad"):
        text = bad_pipeline if pid == "bad" else PIPELINE
        (app / "bronze" / f"{pid}.xml").write_text(text.format(pid=pid))
        landing = settings.data_dir / "shop" / "landing" / pid
        landing.mkdir(parents=True, exist_ok=True)
        (landing / "f.csv").write_text(
            "x\n1\n" + (f"{bad_value}\n" if pid == "bad" and bad else "")
        )
    (app / "jobs" / "nightly.xml").write_text(JOB.format(http=sinks["http"], dead=free_port()))
    (app / "app.yaml").write_text(APP.format(smtp=sinks["smtp"], http=sinks["http"]))
    project = load_project(settings.pipelines_dir)
    (job,) = build_jobs(project)[0]
    return project, job


def _sensor_tick(project, instance, result):
    """Evaluate the real sensor for the run, as the daemon would."""
    sensors = {s.name: s for s in notification_sensors(project)}
    run = instance.get_run_by_id(result.run_id)
    if result.success:
        event = result.get_run_success_event()
        context = dg.build_run_status_sensor_context(
            sensor_name="datahub_notify_success",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
        )
        sensors["datahub_notify_success"](context)
    else:
        event = result.get_run_failure_event()
        context = dg.build_run_status_sensor_context(
            sensor_name="datahub_notify_failure",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        sensors["datahub_notify_failure"](context)


@pytest.mark.usefixtures("spark")
def test_failed_run_notifies_email_and_webhook(settings, sinks, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_TOKEN", "t0ken-secret")
    monkeypatch.setenv("DATAHUB_UI_URL", "https://dagster.example.com/")
    project, job = _setup(settings, sinks, bad=True)
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(resources=resources(), instance=instance, raise_on_error=False)
    assert not result.success
    started = time.monotonic()
    _sensor_tick(project, instance, result)
    assert time.monotonic() - started < 30  # the dead webhook's retries are bounded

    ((rcpts, mail),) = sinks["mail"]
    assert sorted(rcpts) == ["lead@example.com", "ops@example.com"]
    assert "shop__nightly" in mail
    assert "FAILURE" in mail
    assert result.run_id in mail
    ((path, headers, payload),) = [p for p in sinks["posts"] if p[0] == "/hook"]
    assert headers["Authorization"] == "Bearer t0ken-secret"
    assert payload["job"] == "shop__nightly"
    assert payload["status"] == "FAILURE"
    assert payload["run_id"] == result.run_id
    assert payload["failed_pipelines"] == ["shop.bad"]
    assert payload["skipped_pipelines"] == []
    assert payload["error"]["pipeline"] == "shop.bad"
    assert "boom in bad" in payload["error"]["message"]
    assert payload["error"]["class"]
    assert payload["run_url"] == f"https://dagster.example.com/runs/{result.run_id}"
    assert payload["text"].startswith("Data Hub job shop__nightly: FAILURE")
    durations = {s["pipeline"]: s["duration_s"] for s in payload["steps"]}
    assert durations["shop.good"] > 0
    assert durations["shop.bad"] > 0


@pytest.mark.usefixtures("spark")
def test_notifications_carry_the_error_without_the_data_values_it_quotes(
    settings, sinks, monkeypatch
):
    """#19 finding 12: the payload and the mail leave the platform; the value that failed
    the cast (a card number here) stays in the run's log behind the link."""
    monkeypatch.setenv("SHOP_HOOK_TOKEN", "t0ken-secret")
    card = "4111-1111-1111-1111"
    project, job = _setup(settings, sinks, bad=True, bad_pipeline=CAST_PIPELINE, bad_value=card)
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(resources=resources(), instance=instance, raise_on_error=False)
    assert not result.success
    _sensor_tick(project, instance, result)
    ((_, mail),) = sinks["mail"]
    ((_, _, payload),) = [p for p in sinks["posts"] if p[0] == "/hook"]
    assert "CAST_INVALID_INPUT" in payload["error"]["message"]
    assert payload["error"]["class"]
    assert payload["error"]["pipeline"] == "shop.bad"
    assert "4111" not in json.dumps(payload)
    assert "4111" not in mail
    assert "CAST_INVALID_INPUT" in mail
    assert len(payload["error"]["message"]) <= 300
    assert "\n" not in payload["error"]["message"]


@pytest.mark.usefixtures("spark")
def test_successful_run_notifies_success_and_completion_targets(settings, sinks, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_TOKEN", "t0ken-secret")
    project, job = _setup(settings, sinks, bad=False)
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(resources=resources(), instance=instance)
    _sensor_tick(project, instance, result)
    assert [sorted(r) for r, _ in sinks["mail"]] == [["happy@example.com"]]
    (payload,) = [p[2] for p in sinks["posts"] if p[0] == "/hook"]
    assert payload["status"] == "SUCCESS"
    assert payload["failed_pipelines"] == []
    assert [s["status"] for s in payload["steps"]] == ["succeeded", "succeeded"]


@pytest.mark.usefixtures("spark")
def test_sla_miss_notifies_once_per_materialization(settings, sinks):
    project, job = _setup(settings, sinks, bad=False)
    instance = dg.DagsterInstance.ephemeral()
    job.execute_in_process(resources=resources(), instance=instance)
    watched = sla_assets(project)
    assert set(watched) == {
        dg.AssetKey(["shop", "bronze", "good"]),
        dg.AssetKey(["shop", "bronze", "bad"]),
    }
    logs: list[str] = []
    cursor = check_sla(instance, project, watched, {}, logs.append)
    assert [p for p in sinks["posts"] if p[0] == "/sla"] == []  # fresh: nothing
    later = time.time() + 3601
    cursor = check_sla(instance, project, watched, cursor, logs.append, now=later)
    posts = [p[2] for p in sinks["posts"] if p[0] == "/sla"]
    assert sorted(p["asset"] for p in posts) == ["shop/bronze/bad", "shop/bronze/good"]
    assert all(p["kind"] == "sla_miss" and p["sla_seconds"] == 3600 for p in posts)
    check_sla(instance, project, watched, cursor, logs.append, now=later + 60)
    assert len([p for p in sinks["posts"] if p[0] == "/sla"]) == 2  # not again


def test_dead_targets_are_logged_and_never_raise():
    from datahub_assets.runtime.notify_delivery import deliver
    from datahub_assets.spec.job_models import SmtpServer, WebhookNotification

    logs: list[str] = []
    dead = WebhookNotification(url=f"http://127.0.0.1:{free_port()}/x", on="failure")
    failed = deliver(
        [dead],
        SmtpServer(port=free_port()),
        {"text": "x"},
        "s",
        "b",
        logs.append,
        attempts=2,
        first_wait_s=0.01,
    )
    assert failed == [f"webhook {dead.url}"]
    assert any("attempt 1" in line for line in logs)
    assert any("failed after 2 attempts" in line for line in logs)
