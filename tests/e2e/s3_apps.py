"""Helpers of the S3 and cluster end-to-end tests: the file-based example apps (ecommerce,
github, customer; not crm, which needs its PostgreSQL and MongoDB servers) materialised by the
dagster CLI with data and warehouse in one bucket of moto's S3 server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FILE_APPS = ("ecommerce", "github", "customer")


def run(cmd: list[str], env: dict[str, str], timeout: int = 1200) -> str:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    )
    return proc.stdout


def asset_keys(apps=FILE_APPS) -> list[str]:
    """Every table and export asset of `apps` (Python assets' tables included), as the
    CLI's `--select` wants them."""
    from datahub_assets.python.discovery import discover
    from datahub_assets.spec.loader import load_project

    project = load_project(REPO / "pipelines_xml")
    xml = [
        "/".join(t.ref.asset_path) for p in project.pipelines if p.app in apps for t in p.targets
    ]
    python = ["/".join(ref.asset_path) for ref in discover(REPO / "pipelines_xml").tables]
    return xml + [k for k in python if k.split("/")[0] in apps]


def upload_landing(client, bucket: str, local_data: Path, apps=FILE_APPS) -> int:
    """Put `<local_data>/<app>/landing/**` at `s3://<bucket>/data/<app>/landing/**`."""
    n = 0
    for app in apps:
        for path in sorted((local_data / app / "landing").rglob("*")):
            if path.is_file():
                key = f"data/{path.relative_to(local_data).as_posix()}"
                client.upload_file(str(path), bucket, key)
                n += 1
    return n


def base_env(root: Path, data: str, warehouse: str, aws: dict[str, str]) -> dict[str, str]:
    home = root / "home"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATAHUB_"))}
    return (
        env
        | aws
        | {
            "DATAHUB_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "DATAHUB_DATA_DIR": data,
            "DATAHUB_WAREHOUSE": warehouse,
            "DATAHUB_CATALOG_URI": f"sqlite:///{home}/catalog.db",
            "DATAHUB_PIPELINES_DIR": str(REPO / "pipelines_xml"),
            "DATAHUB_MASK_KEY": "e2e-mask-key",
        }
    )


def materialize(env: dict[str, str], keys: list[str]) -> None:
    """Materialise `keys` once the landing files are older than minAgeSeconds."""
    from datahub_assets.demo.data import settle

    settle(Path(env["DATAHUB_PIPELINES_DIR"]))
    run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "datahub_assets.definitions",
            "--select",
            ",".join(keys),
        ],
        env,
    )


def catalog_of(env: dict[str, str]):
    """The run's catalog, opened with its environment (S3 endpoint and keys included)."""
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.settings import Settings

    old = dict(os.environ)
    os.environ.update(env)
    try:
        return load_catalog(Settings.from_env())
    finally:
        os.environ.clear()
        os.environ.update(old)


VOLATILE = {"_ingested_at", "_run_id", "_source_file", "ingest_date"}


def table_rows(catalog, identifier: str) -> list[tuple]:
    """The rows of a table without run-specific columns, sorted (an order-free comparison).
    A table pyiceberg cannot scan whole (list columns of Spark-written files) is compared by
    its row count."""
    table = catalog.load_table(identifier)
    try:
        rows = table.scan().to_arrow().to_pylist()
    except ValueError:
        return [("rows", table.current_snapshot().summary["total-records"])]
    return sorted(
        tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in VOLATILE) for r in rows
    )


def tables(apps=FILE_APPS) -> list[str]:
    from datahub_assets.spec.loader import load_project

    project = load_project(REPO / "pipelines_xml")
    return sorted(
        t.ref.identifier
        for p in project.pipelines
        if p.app in apps
        for t in p.targets
        if t.target.kind == "table"
    )
