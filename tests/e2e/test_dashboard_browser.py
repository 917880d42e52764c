"""The dashboard page in a real browser: headless Chromium (Debian's `chromium`, installed by
scripts/ensure_system.sh) loads the page the dashboard asset wrote for a seeded history of
run records, from disk with networking off, without a console error, and shows the seeded
counts. A page that logs to the console is loaded first, so a capture that sees nothing
cannot pass by accident."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from datahub_assets.runs.defs import ops_definitions
from datahub_assets.runs.records import signature
from datahub_assets.runs.store import commit, ensure_table
from datahub_assets.spec.models import Project
from datahub_resources.iceberg import IcebergResource, load_catalog

pytestmark = [pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--hide-scrollbars",
]


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "ERR_" in line
    ]


def _rows(now: datetime) -> tuple[list[dict], dict]:
    """The seven days before today, with known counts per day: day d has d+1 successes, d % 3
    failures (two error messages that differ only in numbers and paths) and one skipped."""
    rows, expected = [], {}
    for d in range(7):
        day = (now - timedelta(days=7 - d)).replace(hour=1, minute=0, second=0, microsecond=0)
        ok, bad = d + 1, d % 3
        for i in range(ok + bad + 1):
            status = "success" if i < ok else "failed" if i < ok + bad else "skipped"
            message = (
                f"shop/silver/orders_{i}.xml:4:{i}: table {1000 + i} has no column x"
                if status == "failed"
                else None
            )
            start = day + timedelta(minutes=10 * i)
            rows.append(
                {
                    "run_id": f"run-{d}-{i}",
                    "pipeline": f"shop.p{i % 4}",
                    "app": "shop",
                    "layer": "silver",
                    "status": status,
                    "trigger": "schedule",
                    "run_status": "FAILURE" if bad else "SUCCESS",
                    "started_at": start,
                    "ended_at": start + timedelta(seconds=5 + i),
                    "duration_s": float(5 + i) if status != "skipped" else None,
                    "error_class": "PipelineRunError" if message else None,
                    "error_message": message,
                    "error_signature": signature("PipelineRunError", message) if message else None,
                    "checks_passed": 1,
                    "checks_failed": 0,
                    "checks_warned": 0,
                }
            )
        expected[f"{day:%Y-%m-%d}"] = (ok + bad + 1, ok, bad)
    return rows, expected


@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run scripts/ensure_system.sh")
def test_dashboard_loads_cleanly_and_shows_the_seeded_counts(tmp_path, settings):
    # the capture works: a console error on a probe page is seen
    probe = tmp_path / "probe.html"
    probe.write_text('<html><body><script>console.error("probe-4711")</script></body></html>')
    seen = _console(_chromium(tmp_path, probe.as_uri(), "--dump-dom").stderr)
    assert any("probe-4711" in line for line in seen), seen

    catalog = load_catalog(settings)
    rows, expected = _rows(datetime.now(UTC))
    commit(ensure_table(catalog), rows, cursor=0)
    ops_assets, _ = ops_definitions(Project(root=".", apps={}, pipelines=()))
    dashboard = next(a for a in ops_assets if a.node_def.name == "ops__dashboard")
    with dg.instance_for_test():
        result = dg.materialize([dashboard], resources={"iceberg": IcebergResource()})
    page = Path(
        result.asset_materializations_for_node("ops__dashboard")[0].metadata["dashboard"].value
    )
    html = page.read_text()
    assert "<script" not in html
    assert "https://" not in html

    loaded = _chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert _console(loaded.stderr) == []
    dom = loaded.stdout

    def kpi(name: str) -> str:
        return re.search(
            rf'id="kpi-{name}"><span class="value[^"]*" data-value="([^"]*)"', dom
        ).group(1)

    runs = sum(v[0] for v in expected.values())
    ok = sum(v[1] for v in expected.values())
    bad = sum(v[2] for v in expected.values())
    assert (int(kpi("runs")), int(kpi("succeeded")), int(kpi("failed")), int(kpi("other"))) == (
        runs,
        ok,
        bad,
        7,
    )
    assert float(kpi("success-rate")) == pytest.approx(ok / (ok + bad), abs=1e-4)
    for day, (n, s, f) in expected.items():
        assert f'data-day="{day}" data-runs="{n}" data-succeeded="{s}" data-failed="{f}"' in dom, (
            day
        )
    # the failures differ only in numbers and paths: one reason, counted once per failure
    assert re.search(
        rf'<tr data-count="{bad}"><td class="n">{bad}</td><td><code>'
        r"PipelineRunError: &lt;path&gt;: table &lt;n&gt; has no column x",
        dom,
    )
    assert dom.count("<rect") > 7
    assert 'id="chart-slowest"' in dom

    shot = Path(os.environ.get("DATAHUB_DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    taken = _chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1200,2400")
    assert taken.returncode == 0
    assert shot.stat().st_size > 20_000
    assert _console(taken.stderr) == []
