"""Shared fixtures. Spark tests connect to one local Spark Connect server per machine state dir
(started on first use, reused by every test and test process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.s3"]

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


def _pg_bin() -> Path:
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL binaries not found: `make setup` installs `postgresql`")
    return Path(candidates[-1]).parent


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL cluster (initdb in a temp dir) on a free loopback port."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    bin_dir = _pg_bin()
    # not under pytest's tmp root: that is private to root and the cluster runs as postgres
    root = Path(tempfile.mkdtemp(prefix="datahub-pg-"))
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(prefix + [str(bin_dir / "initdb"), "-D", str(data), "-U", "datahub",
                             "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(prefix + [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                             str(root / "pg.log"), "-o",
                             f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://datahub@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                 "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
