"""Generate N pipeline definitions spread over apps, for the definitions-load benchmark.

    .venv/bin/python -m bench.load.gen_pipelines 2000 [--per-app 50] [--out DIR]

Each app (`load_a000`, `load_a001`, ...) gets `--per-app` pipelines: 40% raw CSV pipelines
with `<watch/>` (file-drop sensors), 60% bronze pipelines reading them through table refs
(every 10th also reads a raw table of the previous app: a cross-app lineage edge). Every
pipeline carries several checks; bronze pipelines carry one of a handful of distinct
`<schedule>` crons, and every 4th bronze pipeline has 2-3 table targets. With `--jobs J`,
J job pipelines with a `<schedule>` are spread over the apps, each running 5 of its app's
pipelines (a raw one, the bronze ones reading it, one with dependsOn). Default output:
bench/_work/load/pipelines_<N>[_jobs<J>]/ (regenerated only when missing or --force).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.common import WORK

CRONS = ("0 * * * *", "15 */2 * * *", "30 6 * * *", "0 0 * * 1", "*/30 * * * *")
STATUSES = "new,paid,shipped,cancelled"
LOAD_WORK = WORK / "load"


def app_name(i: int) -> str:
    return f"load_a{i:03d}"


def raw_xml(n: int) -> str:
    return f"""<pipeline id="ingest_src{n:03d}" version="1.0.0" layer="raw">
  <metadata>
    <owner>team-{n % 7}</owner>
    <description>Landing files of source {n}</description>
    <sla>PT2H</sla>
    <tags><tag key="domain" value="d{n % 5}"/></tags>
  </metadata>
  <sources>
    <csv id="src" path="landing/src{n:03d}/*.csv" header="true">
      <watch pollSeconds="60" minAgeSeconds="10"/>
    </csv>
  </sources>
  <targets>
    <table table="src{n:03d}" source="src" mode="append"/>
  </targets>
  <checks>
    <notNull columns="id"/>
    <rowCount min="1"/>
  </checks>
</pipeline>
"""


def bronze_xml(n: int, raw_n: int, n_raw: int, cross_ref: str | None, n_targets: int) -> str:
    sources = [f'    <table id="src" ref="raw.src{raw_n:03d}"/>']
    steps = [
        '    <cast source="src" types="id:bigint,amount:decimal(12,2),updated_at:timestamp"/>',
        '    <deduplicate source="src" keys="id" keep="latest" orderBy="updated_at"/>',
        '    <derive source="src" column="amount_eur" expr="amount * 0.92"/>',
    ]
    cur = "src"
    if cross_ref:
        sources.append(f'    <table id="other" ref="{cross_ref}"/>')
        steps.append(
            '    <join left="src" right="other" condition="src.id = other.id" type="left" '
            'rightPrefix="other_" output="joined"/>'
        )
        cur = "joined"
    targets = [f'    <table table="t{n:03d}" source="{cur}" mode="merge" keys="id"/>']
    if n_targets > 1:
        steps.append(f'    <filter source="{cur}" condition="status = \'paid\'" output="paid"/>')
        targets.append(f'    <table table="t{n:03d}_paid" source="paid" mode="overwrite"/>')
    if n_targets > 2:
        steps.append(
            f'    <aggregate source="{cur}" groupBy="status" metrics="count:n,sum:amount:total" '
            'output="summary"/>'
        )
        targets.append(f'    <table table="t{n:03d}_summary" source="summary" mode="overwrite"/>')
    tgt = f"t{n:03d}"
    checks = [
        f'    <notNull target="{tgt}" columns="id,updated_at"/>',
        f'    <unique target="{tgt}" columns="id"/>',
        f'    <rowCount target="{tgt}" min="1" max="100000000"/>',
        f'    <range target="{tgt}" column="amount" min="0" severity="warn"/>',
        f'    <acceptedValues target="{tgt}" column="status" values="{STATUSES}"/>',
    ]
    if n_targets > 1:
        checks.append(f'    <rowCount target="{tgt}_paid" min="0"/>')
    nl = "\n"
    return f"""<pipeline id="conform_t{n:03d}" version="1.0.0" layer="bronze">
  <metadata>
    <owner>team-{n % 7}</owner>
    <description>Conformed table {n} (of {n_raw} raw sources)</description>
    <sla>PT6H</sla>
    <schedule>{CRONS[n % len(CRONS)]}</schedule>
    <tags><tag key="domain" value="d{n % 5}"/></tags>
  </metadata>
  <sources>
{nl.join(sources)}
  </sources>
  <transformations>
{nl.join(steps)}
  </transformations>
  <targets>
{nl.join(targets)}
  </targets>
  <checks>
{nl.join(checks)}
  </checks>
</pipeline>
"""


def job_xml(j: int, n_raw: int, n_bronze: int) -> str:
    r = j % n_raw
    bronze = [b for b in range(n_bronze) if b % n_raw == r][:3] or [0]
    refs = [f'    <pipelineRef id="ingest_src{r:03d}" onFailure="retry" maxRetries="2"/>']
    refs += [f'    <pipelineRef id="conform_t{b:03d}"/>' for b in bronze]
    refs.append(
        f'    <pipelineRef id="conform_t{(bronze[-1] + 1) % n_bronze:03d}" '
        f'dependsOn="conform_t{bronze[0]:03d}" onFailure="continue"/>'
    )
    refs = list(dict.fromkeys(refs))
    nl = "\n"
    return f"""<jobPipeline id="job{j:03d}" version="1.0">
  <schedule>{CRONS[j % len(CRONS)]}</schedule>
  <parameters><parameter name="region" default="eu"/></parameters>
  <pipelines>
{nl.join(refs)}
  </pipelines>
  <notifications><webhook url="http://localhost:8765/x" on="failure"/></notifications>
</jobPipeline>
"""


def generate(
    n: int, per_app: int = 50, out: Path | None = None, force: bool = False, jobs: int = 0
) -> dict:
    out = out or LOAD_WORK / (f"pipelines_{n}" + (f"_jobs{jobs}" if jobs else ""))
    manifest = out / "_manifest.json"
    if manifest.exists() and not force:
        return json.loads(manifest.read_text())
    if out.exists():
        shutil.rmtree(out)
    counts = {
        "pipelines": 0,
        "raw": 0,
        "bronze": 0,
        "assets": 0,
        "checks": 0,
        "watch_sensors": 0,
        "schedules": 0,
        "apps": 0,
        "jobs": 0,
    }
    n_apps = -(-n // per_app)
    app_i = 0
    remaining = n
    while remaining > 0:
        size = min(per_app, remaining)
        app = app_name(app_i)
        app_dir = out / app
        (app_dir / "raw").mkdir(parents=True)
        (app_dir / "bronze").mkdir(parents=True)
        (app_dir / "app.yaml").write_text(f"owner: bench\ntags:\n  app_index: '{app_i}'\n")
        n_raw = max(1, round(size * 0.4)) if size > 1 else 1
        n_bronze = size - n_raw
        for r in range(n_raw):
            (app_dir / "raw" / f"ingest_src{r:03d}.xml").write_text(raw_xml(r))
        prev_raw = counts.get("_last_raw", 0)
        for b in range(n_bronze):
            cross = None
            if b % 10 == 9 and app_i > 0 and prev_raw:
                cross = f"{app_name(app_i - 1)}.raw.src{b % prev_raw:03d}"
            n_targets = 1 + (b % 4 == 3) + (b % 8 == 7)
            xml = bronze_xml(b, b % n_raw, n_raw, cross, n_targets)
            (app_dir / "bronze" / f"conform_t{b:03d}.xml").write_text(xml)
            counts["assets"] += n_targets
            counts["checks"] += 5 + (n_targets > 1)
        app_jobs = jobs // n_apps + (app_i < jobs % n_apps)
        if app_jobs and n_bronze:
            (app_dir / "jobs").mkdir()
            for j in range(app_jobs):
                (app_dir / "jobs" / f"job{j:03d}.xml").write_text(job_xml(j, n_raw, n_bronze))
            counts["jobs"] += app_jobs
        counts["_last_raw"] = n_raw
        counts["pipelines"] += size
        counts["raw"] += n_raw
        counts["bronze"] += n_bronze
        counts["assets"] += n_raw
        counts["checks"] += 2 * n_raw
        counts["watch_sensors"] += n_raw
        counts["schedules"] += n_bronze
        counts["apps"] += 1
        remaining -= size
        app_i += 1
    counts.pop("_last_raw")
    counts["distinct_crons"] = len(CRONS)
    result = {"n": n, "per_app": per_app, "dir": str(out), **counts}
    manifest.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="+")
    parser.add_argument("--per-app", type=int, default=50)
    parser.add_argument("--out", type=Path, help="output dir (only with a single N)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--jobs", type=int, default=0, help="job pipelines with schedules")
    args = parser.parse_args()
    for n in args.n:
        print(json.dumps(generate(n, args.per_app, args.out, args.force, args.jobs)))


if __name__ == "__main__":
    main()
