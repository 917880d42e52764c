"""A real Spark cluster and an external Spark Connect endpoint, not only `local[*]`.

A standalone master and two workers are started with pyspark's own classes (`spark-class
org.apache.spark.deploy.master.Master` / `worker.Worker`: separate executor JVMs, one core and
a small memory each, loopback only). A Spark Connect server is started against that master
(`DATAHUB_SPARK_MASTER=spark://...`) by this test, not by the platform, and the platform is
pointed at it with `DATAHUB_SPARK_REMOTE=sc://...`: the runs start no server of their own.
The file-based apps github and customer run there with data and warehouse on S3 (moto); their
tables must equal a `local[*]` run (the shared test server, local disk) row for row, except
the per-run lineage columns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from tests.e2e import s3_apps

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]
APPS = ("github", "customer")
SPARK_HOME = Path(pyspark.__file__).parent


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
        return json.loads(r.read())


def start_cluster(root: Path, workers: int = 2, worker_memory: str = "1536m"):
    """(master URL, master UI port, processes) of a standalone cluster on loopback."""
    from datahub_assets.demo.local_servers import free_port

    port, ui = free_port(), free_port()
    env = os.environ | {
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(root),
        "SPARK_NO_DAEMONIZE": "1",
    }
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = []

    def spawn(name: str, args: list[str]) -> None:
        log = (root / f"{name}.log").open("wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [spark_class, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=root,
            )
        )

    spawn(
        "master",
        [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui),
        ],
    )
    url = f"spark://127.0.0.1:{port}"
    _wait(lambda: master_state(ui)["status"] == "ALIVE", 90, "the master did not start")
    for i in range(workers):
        (root / f"work{i}").mkdir()
        spawn(
            f"worker{i}",
            [
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                worker_memory,
                "--webui-port",
                "0",
                "--work-dir",
                str(root / f"work{i}"),
                url,
            ],
        )
    _wait(
        lambda: len([w for w in master_state(ui)["workers"] if w["state"] == "ALIVE"]) == workers,
        90,
        f"{workers} workers did not register",
    )
    return url, ui, procs


def stop_cluster(procs) -> None:
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    url, ui, procs = start_cluster(root)
    try:
        yield url, ui
    finally:
        stop_cluster(procs)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The apps on `local[*]` (the shared test server), data and warehouse on local disk."""
    from datahub_assets.demo.data import generate

    root = tmp_path_factory.mktemp("local_run")
    generate(root / "data", rows=200)
    env = s3_apps.base_env(root, str(root / "data"), f"file://{root}/warehouse", {}) | {
        "DATAHUB_SPARK_STATE": str(s3_apps.REPO / ".datahub" / "test-spark")
    }
    s3_apps.materialize(env, s3_apps.asset_keys(APPS))
    return s3_apps.catalog_of(env)


def test_apps_on_a_standalone_cluster_through_an_external_endpoint_equal_local(
    cluster, local_run, s3_endpoint, tmp_path_factory
):
    from datahub_assets.demo.data import generate
    from datahub_resources import spark_server
    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, make_client

    master, ui = cluster
    root = tmp_path_factory.mktemp("cluster_run")
    client = make_client(s3_endpoint)
    bucket = "datahub-cluster"
    client.create_bucket(Bucket=bucket)
    generate(root / "generated", rows=200)
    s3_apps.upload_landing(client, bucket, root / "generated", APPS)
    aws = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
    }

    # the "external" Spark Connect server: started here, against the cluster
    old = dict(os.environ)
    os.environ.update(aws | {"DATAHUB_SPARK_MASTER": master, "DATAHUB_SPARK_DRIVER_MEMORY": "1g"})
    try:
        server = spark_server.ensure_running(root / "connect")
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        unused = root / "unused-state"
        env = s3_apps.base_env(root, f"s3://{bucket}/data", f"s3://{bucket}/warehouse", aws) | {
            "DATAHUB_SPARK_REMOTE": server.remote,
            "DATAHUB_SPARK_STATE": str(unused),
        }
        s3_apps.materialize(env, s3_apps.asset_keys(APPS))
        state = master_state(ui)
        apps = [a for a in state["activeapps"] if a["name"] == "datahub-spark-connect"]
        assert apps, state["activeapps"]
        assert apps[0]["cores"] == 2, state["activeapps"]  # one executor per worker
    finally:
        spark_server.stop(root / "connect")
    assert not (unused / "server.json").exists()  # the platform started nothing
    catalog = s3_apps.catalog_of(env)
    for identifier in s3_apps.tables(APPS):
        assert catalog.load_table(identifier).location().startswith(f"s3://{bucket}/")
        assert s3_apps.table_rows(catalog, identifier) == s3_apps.table_rows(
            local_run, identifier
        ), identifier
