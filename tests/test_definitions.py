"""Definitions load on every test run: a snapshot of the example graph, and the dagster CLI.

The snapshot (tests/snapshots/definitions.json) makes every change to asset keys, deps,
groups, kinds, automation, asset checks or sensors a reviewed diff. Regenerate with
UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "tests" / "snapshots" / "definitions.json"


def _graph_snapshot() -> dict:
    """The graph every entry point serves: the one builder (`build_definitions`)."""
    from datahub_assets.orchestration.project import build_definitions

    defs = build_definitions(REPO / "pipelines_xml")
    jobs = [j for j in defs.jobs if not j.name.startswith("__")]
    schedules = list(defs.schedules)
    notify = [s for s in defs.sensors if s.name.startswith(("datahub_notify", "datahub_sla"))]
    sensors = [s for s in defs.sensors if s not in notify]
    graph = defs.resolve_asset_graph()
    out: dict = {
        "__sensors__": {
            sensor.name: {
                "interval_seconds": sensor.minimum_interval_seconds,
                "default_status": sensor.default_status.value,
                "targets": sorted(
                    k.to_user_string() for k in sensor.asset_selection.resolve(graph)
                ),
            }
            for sensor in sorted(sensors, key=lambda x: x.name)
        }
    }
    out["__notify_sensors__"] = sorted(s.name for s in notify)
    out["__jobs__"] = {
        job.name: {
            "ops": {
                node: sorted(
                    up.node_name
                    for up in job.graph.dependency_structure.all_upstream_outputs_from_node(node)
                )
                for node in sorted(n.name for n in job.graph.nodes)
            },
            "tags": dict(job.tags),
        }
        for job in jobs
    }
    out["__schedules__"] = {
        s.name: {
            "cron": s.cron_schedule,
            "job": s.job_name,
            "timezone": s.execution_timezone,
            "default_status": s.default_status.value,
        }
        for s in schedules
    }
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        cond = node.automation_condition
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "automation": cond.get_label() if cond else None,
            "op": graph.get(key).assets_def.node_def.name,
            "checks": sorted(
                f"{c.name}{' (blocking)' if c.blocking else ''}"
                for c in graph.get(key).assets_def.check_specs
                if c.asset_key == key
            ),
        }
    return out


def test_definitions_snapshot():
    current = _graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert SNAPSHOT.exists(), "no snapshot: run with UPDATE_SNAPSHOTS=1, review, commit it"
    assert current == json.loads(SNAPSHOT.read_text())


def _validate(pipelines_dir: Path, home: Path) -> subprocess.CompletedProcess:
    """`dagster definitions validate` on the code location, as CI would run it."""
    env = os.environ | {
        "DATAHUB_PIPELINES_DIR": str(pipelines_dir),
        "DAGSTER_HOME": str(home),
        "DATAHUB_HOME": str(home),
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "datahub_assets.definitions",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dagster_definitions_validate(tmp_path):
    proc = _validate(REPO / "pipelines_xml", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_invalid_definitions_fail_validate_with_file_and_line(tmp_path):
    bad = tmp_path / "pipes" / "shop" / "raw"
    bad.mkdir(parents=True)
    (bad / "orders.xml").write_text(
        '<pipeline id="orders" layer="raw">\n'
        '  <sources><csv id="o" path="x.csv"/></sources>\n'
        '  <targets><table table="orders" mode="upsert"/></targets>\n'
        "</pipeline>\n"
    )
    proc = _validate(tmp_path / "pipes", tmp_path)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "orders.xml:3" in text
    assert "upsert" in text
