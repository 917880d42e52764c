"""The shared local Spark Connect server: one per state dir, whoever asks first starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from datahub_resources import spark_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark_server")]
BIN = Path(sys.executable).parent


def _ensure(state_dir: str) -> tuple[int, int]:
    info = spark_server.ensure_running(Path(state_dir))
    return info.pid, info.port


def test_concurrent_starts_share_one_server_and_cli_controls_it(tmp_path):
    state = tmp_path / "spark"
    env = os.environ | {
        "DATAHUB_SPARK_STATE": str(state),
        "DATAHUB_HOME": str(tmp_path),
        "DATAHUB_SPARK_DRIVER_MEMORY": "1g",
    }
    env.pop("DATAHUB_SPARK_REMOTE", None)
    try:
        with ProcessPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(_ensure, [str(state)] * 3))
        assert len(set(results)) == 1, results  # one pid, one port for all three callers

        status = subprocess.run(
            [str(BIN / "datahub"), "spark", "status"], env=env, capture_output=True, text=True
        )
        assert status.returncode == 0
        assert f"sc://localhost:{results[0][1]}" in status.stdout

        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(f"sc://localhost:{results[0][1]}").create()
        assert session.range(5).count() == 5
        session.stop()
    finally:
        stop = subprocess.run(
            [str(BIN / "datahub"), "spark", "stop"], env=env, capture_output=True, text=True
        )
    assert stop.stdout.strip() == "stopped"
    after = subprocess.run(
        [str(BIN / "datahub"), "spark", "status"], env=env, capture_output=True, text=True
    )
    assert after.returncode == 3
    assert "not running" in after.stdout
