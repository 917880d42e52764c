"""Trino reads Data Hub's Iceberg tables through deploy/trino/catalog/datahub.properties.

A real Trino server (476, the last release published whole on Maven Central: trino-server-core
plus the Iceberg plugin, ~540 MB, fetched once with `mvn` into ~/.m2 and unpacked under
.datahub/trino/; it needs Java 24+, here Temurin 25) starts with the deploy catalog file as
written, its values from the environment, plus a local file system for this test's file://
warehouse. The tables are written by the pipelines' own writer (Spark writes Parquet,
pyiceberg commits) into a SQL catalog on a private PostgreSQL, and the same query gives the
same rows in Trino and in `datahub sql`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import APP_USER_PASSWORD
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
TRINO_VERSION = "476"
JAVA_HOME = Path(os.environ.get("DATAHUB_TRINO_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]


def _fetch(artifact: str) -> Path:
    """An artifact `group:name:version:type` from Maven Central, through the local repo."""
    group, name, version, kind = artifact.split(":")
    path = (
        Path.home()
        / ".m2"
        / "repository"
        / group.replace(".", "/")
        / name
        / version
        / f"{name}-{version}.{kind}"
    )
    if not path.exists():
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={artifact}", "-Dtransitive=false"],
            check=True,
            capture_output=True,
            timeout=1200,
        )
    return path


def trino_home() -> Path:
    """Trino's server with the Iceberg plugin, unpacked once under .datahub/trino/."""
    home = REPO / ".datahub" / "trino" / TRINO_VERSION
    if (home / ".complete").exists():
        return home
    if shutil.which("mvn") is None:
        pytest.skip("Maven (mvn) is needed once to fetch io.trino:trino-server-core")
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    work = home.with_name(home.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    core = _fetch(f"io.trino:trino-server-core:{TRINO_VERSION}:tar.gz")
    iceberg = _fetch(f"io.trino:trino-iceberg:{TRINO_VERSION}:zip")
    subprocess.run(["tar", "xzf", str(core), "-C", str(work), "--strip-components=1"], check=True)
    subprocess.run(["unzip", "-q", str(iceberg), "-d", str(work / "plugin")], check=True)
    (work / ".complete").touch()
    work.rename(home)
    return home


class Trino:
    """The REST protocol, enough for tests: POST a statement, follow nextUri."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"

    def _call(self, request: urllib.request.Request) -> dict:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def query(self, sql: str) -> tuple[list[str], list[list]]:
        result = self._call(
            urllib.request.Request(
                f"{self.url}/v1/statement",
                data=sql.encode(),
                method="POST",
                headers={"X-Trino-User": "analyst"},
            )
        )
        columns, rows = [], []
        while True:
            if "error" in result:
                raise RuntimeError(result["error"]["message"])
            columns = [c["name"] for c in result.get("columns", [])] or columns
            rows.extend(result.get("data", []))
            if "nextUri" not in result:
                return columns, rows
            result = self._call(urllib.request.Request(result["nextUri"]))

    def started(self) -> bool:
        try:
            return not self._call(urllib.request.Request(f"{self.url}/v1/info"))["starting"]
        except OSError:
            return False


@pytest.fixture
def trino_env(tmp_path, postgres_server):
    """The environment deploy/trino/ reads, for a fresh catalog database and warehouse."""
    from datahub_assets.demo import local_servers

    database = f"catalog_{uuid.uuid4().hex[:8]}"
    local_servers.create_database(postgres_server, database)
    return {
        "DATAHUB_CATALOG_JDBC_URL": f"jdbc:postgresql://127.0.0.1:{postgres_server.port}/"
        f"{database}",
        "DATAHUB_CATALOG_USER": "app_user",
        "DATAHUB_CATALOG_PASSWORD": APP_USER_PASSWORD,  # quotes, backslashes, colon, @
        "DATAHUB_WAREHOUSE": f"file://{tmp_path / 'warehouse'}",
        # the S3 settings are parsed and validated at start; this warehouse is local
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "_catalog_uri": f"postgresql+psycopg://datahub@127.0.0.1:{postgres_server.port}/{database}",
    }


@pytest.fixture
def trino(tmp_path, trino_env):
    if not (JAVA_HOME / "bin" / "java").exists():
        pytest.skip(
            f"Trino {TRINO_VERSION} needs Java 24+: none at {JAVA_HOME} "
            "(set DATAHUB_TRINO_JAVA_HOME)"
        )
    home = trino_home()
    etc, port = tmp_path / "trino-etc", free_port()
    (etc / "catalog").mkdir(parents=True)
    (etc / "node.properties").write_text(
        f"node.environment=test\nnode.id=datahub-test\nnode.data-dir={tmp_path / 'trino'}\n"
    )
    (etc / "jvm.config").write_text(
        "-server\n-Xmx1G\n-XX:+UseG1GC\n-XX:+ExitOnOutOfMemoryError\n"
        "-Djdk.attach.allowAttachSelf=true\n"
    )
    (etc / "config.properties").write_text(
        f"coordinator=true\nnode-scheduler.include-coordinator=true\n"
        f"http-server.http.port={port}\ndiscovery.uri=http://127.0.0.1:{port}\n"
        "query.max-memory=512MB\nquery.max-memory-per-node=512MB\n"
    )
    catalog = (REPO / "deploy" / "trino" / "catalog" / "datahub.properties").read_text()
    (etc / "catalog" / "datahub.properties").write_text(
        catalog + "\n# test only: this test's warehouse is file://\n"
        "fs.native-local.enabled=true\nlocal.location=/\n"
    )
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("_")}
        | {k: v for k, v in trino_env.items() if not k.startswith("_")}
        | {"JAVA_HOME": str(JAVA_HOME), "PATH": f"{JAVA_HOME / 'bin'}:{os.environ['PATH']}"}
    )
    log = tmp_path / "trino.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(home / "bin" / "launcher"),
                "run",
                f"--etc-dir={etc}",
                f"--data-dir={tmp_path / 'trino'}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Trino(port)
    try:
        deadline = time.monotonic() + 240
        while not server.started():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("Trino did not start; log:\n" + log.read_text()[-6000:])
            time.sleep(2)
        yield server
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def test_trino_reads_data_hub_tables_through_the_deploy_catalog(spark, settings, trino_env, trino):
    from datahub_assets.cli.sql import query
    from datahub_assets.iceberg.table import write_table
    from datahub_assets.spec.models import TableRef, TableTarget
    from datahub_resources.iceberg import open_catalog

    catalog = open_catalog(trino_env["_catalog_uri"], trino_env["DATAHUB_WAREHOUSE"])
    orders = TableRef(app="shop", layer="raw", table="orders")
    schema = "id int, customer string, amount decimal(12,2), at timestamp"
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    write_table(
        spark,
        catalog,
        orders,
        spark.createDataFrame([(1, "ann", Decimal("10.50"), at), (2, "bob", None, at)], schema),
        TableTarget(table="orders"),
        "r1",
    )
    write_table(
        spark,
        catalog,
        orders,
        spark.createDataFrame([(3, "ann", Decimal("2.25"), at)], schema),
        TableTarget(table="orders"),
        "r2",
    )
    write_table(
        spark,
        catalog,
        TableRef(app="shop", layer="silver", table="customers"),
        spark.createDataFrame([("ann", "Ann"), ("bob", "Bob")], "customer string, name string"),
        TableTarget(table="customers"),
        "r3",
    )

    _, schemas = trino.query("show schemas from datahub")
    assert {"shop_raw", "shop_silver"} <= {s for (s,) in schemas}
    sql = (
        "select c.name, count(*) as n, sum(o.amount) as total, max(o.at) as last "
        "from datahub.shop_raw.orders o join datahub.shop_silver.customers c "
        "on o.customer = c.customer group by c.name order by c.name"
    )
    columns, rows = trino.query(sql)
    assert columns == ["name", "n", "total", "last"]
    assert [r[:3] for r in rows] == [["Ann", 2, "12.75"], ["Bob", 1, None]]
    assert all(r[3].startswith("2026-01-02 03:04:05") for r in rows)

    # the same text through `datahub sql` (Spark): the same rows
    _, spark_rows, _ = query(sql, settings, limit=10, spark=spark, catalog=catalog)
    assert [(r[0], r[1], r[2]) for r in spark_rows] == [
        ("Ann", 2, Decimal("12.75")),
        ("Bob", 1, None),
    ]

    _, snapshots = trino.query('select count(*) from datahub.shop_raw."orders$snapshots"')
    assert snapshots == [[2]]
    with pytest.raises(RuntimeError, match="(?i)access denied"):
        trino.query("insert into datahub.shop_silver.customers values ('cy', 'Cy')")
