"""Shared fixtures. Spark tests connect to one local Spark Connect server per machine state dir
(started on first use, reused by every test and test process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# One shared server for the whole test session (and for parallel workers / helpers).
os.environ.setdefault("DATAHUB_SPARK_STATE", str(REPO / ".datahub" / "test-spark"))


@pytest.fixture(scope="session")
def spark():
    from datahub_resources.spark import connect

    session = connect()
    yield session


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """A private DATAHUB_HOME / data dir / catalog in tmp_path."""
    from datahub_resources.settings import Settings

    home = tmp_path / "home"
    monkeypatch.setenv("DATAHUB_HOME", str(home))
    monkeypatch.setenv("DATAHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(tmp_path / "pipelines"))
    monkeypatch.delenv("DATAHUB_CATALOG_URI", raising=False)
    monkeypatch.delenv("DATAHUB_WAREHOUSE", raising=False)
    home.mkdir(parents=True)
    return Settings.from_env()
