"""The Dagster code location never imports the front door: loading the definitions module
imports neither `datahub_assets.service` nor the web stack (FastAPI, the portal's auth
libraries), so a broken or slow service cannot stop or slow the code location, and the
service's secrets (state database, signing key) never reach a run's process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE_ONLY = ("datahub_assets.service", "fastapi", "argon2", "authlib", "git")


def test_the_code_location_imports_no_service_module(tmp_path):
    script = (
        "import json, sys\n"
        "import datahub_assets.definitions  # noqa: F401\n"
        f"names = {SERVICE_ONLY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if any(m == n or m.startswith(n + '.') for n in names))))\n"
    )
    env = {
        "DATAHUB_HOME": str(tmp_path / "home"),
        "DATAHUB_PIPELINES_DIR": str(REPO / "pipelines_xml"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "PATH": "/usr/bin:/bin",
        "CRM_DB": "x",
        "CRM_PRODUCTS_MONGO_URI": "mongodb://127.0.0.1:1/",
    }
    (tmp_path / "dagster").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_code_location_modules_never_name_the_service():
    """Statically too: no module outside datahub_assets/service and the CLI imports it."""
    offenders = []
    for path in sorted((REPO / "datahub_assets").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(("datahub_assets/service/", "datahub_assets/cli/")):
            continue
        if "datahub_assets.service" in path.read_text(encoding="utf-8"):
            offenders.append(rel)
    assert offenders == []
