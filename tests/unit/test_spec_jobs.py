"""Job pipelines at load time: XML and YAML read alike, every error with file:line, cycles,
unknown and cross-app refs, job parameters in database <sql>; the transient classifier."""

from __future__ import annotations

import pytest

from datahub_assets.runtime.params import run_parameters
from datahub_assets.runtime.retries import (
    COMMIT_CONFLICT,
    DB_CONNECTION,
    SPARK_SESSION,
    classify,
)
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project

P = """<pipeline id="{pid}" layer="{layer}">
  <sources>{source}</sources>
  <targets><table table="{pid}"/></targets>
</pipeline>
"""


def _csv(pid: str) -> str:
    return P.format(pid=pid, layer="bronze", source=f'<csv id="s" path="{pid}/*.csv"/>')


def _reads(pid: str, ref: str) -> str:
    return P.format(pid=pid, layer="silver", source=f'<table id="s" ref="{ref}"/>')


def _write(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _errors(tmp_path, files) -> list:
    with pytest.raises(SpecErrors) as exc:
        load_project(_write(tmp_path / "p", files))
    return exc.value.errors


BASE = {
    "shop/bronze/a.xml": _csv("a"),
    "shop/bronze/b.xml": _csv("b"),
    "shop/silver/c.xml": _reads("c", "bronze.b"),
    "other/bronze/x.xml": _csv("x"),
}


def test_xml_and_yaml_jobs_load_alike(tmp_path):
    xml = """<jobPipeline id="j1" version="2.0">
  <schedule>0 2 * * *</schedule>
  <parameters><parameter name="region" default="eu"/></parameters>
  <pipelines>
    <pipelineRef id="a" onFailure="retry" maxRetries="3"/>
    <pipelineRef id="c" onFailure="continue"/>
    <pipelineRef id="b" dependsOn="a" onFailure="skip"/>
    <pipelineRef id="other.x"/>
  </pipelines>
  <notifications><webhook url="https://h/x" on="completion"/></notifications>
</jobPipeline>
"""
    yml = """jobPipeline: {id: j2, version: "2.0"}
schedule: "0 2 * * *"
parameters: [{name: region, default: eu}]
pipelines:
  - {id: a, onFailure: retry, maxRetries: 3}
  - {id: c, onFailure: continue}
  - {id: b, dependsOn: a, onFailure: skip}
  - {id: other.x}
notifications:
  - webhook: {url: "https://h/x", "on": completion}
"""
    project = load_project(
        _write(tmp_path / "p", {**BASE, "shop/jobs/j1.xml": xml, "shop/jobs/j2.yaml": yml})
    )
    j1, j2 = project.jobs
    assert (j1.name, j2.name) == ("shop__j1", "shop__j2")
    for job in (j1, j2):
        assert [(s.node, s.after) for s in job.steps] == [
            ("a", ()),
            ("b", ("a",)),
            ("c", ("b",)),
            ("other__x", ()),
        ]  # c reads b's table
        assert job.parameters == {"runDate": "{{ run_date }}", "region": "eu"}
        assert job.steps[0].ref.max_retries == 3
        assert job.notifications[0].on == "completion"


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ('<pipelineRef id="nope"/>', 'pipelineRef id="nope" names no pipeline'),
        ('<pipelineRef id="x"/>', 'write id="other.x"'),
        ('<pipelineRef id="a" dependsOn="zz"/>', 'dependsOn="zz"'),
        ('<pipelineRef id="a" onFailure="ignore"/>', 'onFailure="ignore" is not allowed'),
        ('<pipelineRef id="a" maxRetries="2"/>', "have no effect"),
    ],
)
def test_job_errors_name_file_and_line(tmp_path, job, expected):
    text = f'<jobPipeline id="j">\n  <pipelines>\n    {job}\n  </pipelines>\n</jobPipeline>\n'
    errors = _errors(tmp_path, {**BASE, "shop/jobs/j.xml": text})
    (err,) = [e for e in errors if expected in e.message]
    assert (err.file, err.line) == ("shop/jobs/j.xml", 3)


def test_cycle_through_depends_on_and_lineage_is_named(tmp_path):
    text = """<jobPipeline id="j">
  <pipelines>
    <pipelineRef id="b" dependsOn="c"/>
    <pipelineRef id="c"/>
  </pipelines>
</jobPipeline>
"""
    (err,) = _errors(tmp_path, {**BASE, "shop/jobs/j.xml": text})
    assert err.file == "shop/jobs/j.xml"
    assert err.line in (3, 4)
    assert "cycle" in err.message
    assert "b dependsOn c" in err.message
    assert "c reads a table of b" in err.message


def test_yaml_job_errors_carry_lines(tmp_path):
    text = "jobPipeline: {id: j}\npipelines:\n  - {id: a}\n  - {id: a, onFailure: nope}\n"
    errors = _errors(tmp_path, {**BASE, "shop/jobs/j.yaml": text})
    assert any(e.line == 4 and "nope" in e.message for e in errors), errors


def test_job_parameters_are_allowed_in_database_sql(tmp_path):
    db = P.format(
        pid="d",
        layer="bronze",
        source=(
            '<database id="s" jdbcUrl="jdbc:postgresql://h:5432/db">'
            "<sql>select * from t where region = :region and day = :runDate</sql></database>"
        ),
    )
    files = {**BASE, "shop/bronze/d.xml": db}
    errors = _errors(tmp_path / "1", files)
    assert any(":region" in e.message and e.file == "shop/bronze/d.xml" for e in errors)
    job = (
        '<jobPipeline id="j"><parameters><parameter name="region"/></parameters>'
        '<pipelines><pipelineRef id="d"/></pipelines></jobPipeline>'
    )
    project = load_project(_write(tmp_path / "2", {**files, "shop/jobs/j.xml": job}))
    assert project.jobs[0].parameters["region"] is None


def test_run_parameters_precedence():
    tags = {"datahub/run_date": "2026-03-01", "datahub/param/region": "us"}
    day, params = run_parameters(
        tags, {"runDate": "{{ run_date }}", "region": "eu", "tier": "gold"}, {"tier": "silver"}
    )
    assert day.isoformat() == "2026-03-01"
    assert params == {"runDate": "2026-03-01", "region": "us", "tier": "silver"}
    day, _ = run_parameters({"dagster/scheduled_execution_time": "2026-04-02T02:00:00+00:00"})
    assert day.isoformat() == "2026-04-02"
    with pytest.raises(ValueError, match="runDate"):
        run_parameters({}, {}, {"runDate": "yesterday"})


def test_transient_classes():
    from pyiceberg.exceptions import CommitFailedException

    outer = RuntimeError("publishing failed")
    outer.__cause__ = CommitFailedException("branch main changed")
    assert classify(outer) is COMMIT_CONFLICT
    assert classify(RuntimeError("[INVALID_HANDLE.SESSION_CLOSED] gone")) is SPARK_SESSION
    assert classify(RuntimeError("PSQLException: Connection reset")) is DB_CONNECTION
    assert classify(ValueError("column 'amount' is not decimal")) is None
    assert [COMMIT_CONFLICT.wait(n) for n in range(3)] == [1.0, 2.0, 4.0]
