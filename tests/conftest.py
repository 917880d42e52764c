"""Shared fixtures. Spark tests connect to one local Spark Connect server per machine state dir
(started on first use, reused by every test and test process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# tests/support/fixtures.py: the engine pair and the catalog fixture
pytest_plugins = ["tests.s3", "tests.support.fixtures"]

REPO = Path(__file__).resolve().parents[1]
# One shared server for the whole test session (and for parallel workers / helpers).
os.environ.setdefault("DATAHUB_SPARK_STATE", str(REPO / ".datahub" / "test-spark"))
SHARED_SPARK_STATE = os.environ["DATAHUB_SPARK_STATE"]


@pytest.fixture
def spark():
    """The shared server's session, asked for anew per test: `connect()` returns the cached
    one, or a new one when a test before stopped it or pointed the process at another server
    (S3, cluster, engine-death tests start their own)."""
    from datahub_resources.spark import connect

    os.environ["DATAHUB_SPARK_STATE"] = SHARED_SPARK_STATE
    os.environ.pop("DATAHUB_SPARK_REMOTE", None)
    return connect()


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


APP_USER_PASSWORD = "s3cr3t-P@ss:w0rd'\\\\"


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster (initdb in a temp dir) on a free loopback port, with a
    password-only role `app_user` (password in `APP_USER_PASSWORD`) besides trust `datahub`."""
    from datahub_assets.demo import local_servers

    def start(root: Path):
        server = local_servers.start_postgres(root)
        local_servers.add_password_user(server, "app_user", APP_USER_PASSWORD)
        return server

    yield from _private_server(start, "datahub-pg-")


@pytest.fixture(scope="session")
def postgres_url(postgres_server):
    """The private PostgreSQL server as a SQLAlchemy URL (the Iceberg SQL catalog's form)."""
    return postgres_server.sqlalchemy_url


def _private_server(start, prefix: str):
    """A server from `datahub_assets.demo.local_servers` in its own temp dir (not under pytest's
    tmp root, which is private to root: the servers run as postgres/mysql), stopped and
    purged at the end."""
    import shutil
    import tempfile

    from datahub_assets.demo import local_servers

    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield start(root)
    finally:
        local_servers.stop(root, purge=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server():
    """A private MariaDB server (mariadb-install-db in a temp dir), root without password."""
    from datahub_assets.demo.local_servers import start_mariadb

    yield from _private_server(start_mariadb, "datahub-mariadb-")


@pytest.fixture(scope="session")
def mongo_server():
    """The nx-27017 MongoDB-wire server on a free loopback port, data in a temp dir."""
    from datahub_assets.demo.local_servers import start_mongo

    yield from _private_server(start_mongo, "datahub-mongo-")
