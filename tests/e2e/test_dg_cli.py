"""Every documented `dg` command, run as a user runs it (README, Makefile, docs/pipelines.md
"Dagster Components and dg"): `dg check defs`, `dg list defs` with each documented selection
syntax, `dg list components`, `dg utils inspect-component`, `dg launch --assets`, `dg dev` with
the component's Docs-tab entry and a scaffolded pipeline appearing after a reload. None of
them may print a SupersessionWarning.

`make demo` runs `dg launch --assets '*'` over every example app, crm included, which needs
its local PostgreSQL and MongoDB-wire servers; here `dg launch` runs on the file-based
`github` app only (sample files from demo_data, no servers), the other selection syntaxes are
checked through `dg list defs --assets`, which resolves them the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TYPE_NAME = "DataHubPipelines"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def _env(tmp: Path, pipelines: Path | None = None) -> dict[str, str]:
    home = tmp / "home"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp / "data"),
        "DATAHUB_PIPELINES_DIR": str(pipelines or REPO / "pipelines_xml"),
    }


def dg(*args: str, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "dg"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    text = proc.stdout + proc.stderr
    assert "SupersessionWarning" not in text, text[-3000:]
    if ok:
        assert proc.returncode == 0, f"dg {' '.join(args)}:\n{text[-5000:]}"
    return proc


def test_dg_check_defs(tmp_path):
    proc = dg("check", "defs", env=_env(tmp_path))
    assert "All component YAML validated successfully" in proc.stdout
    assert "All definitions loaded successfully" in proc.stdout


def test_dg_check_defs_reports_an_invalid_pipeline_with_file_and_line(tmp_path):
    bad = tmp_path / "pipes" / "shop" / "raw"
    bad.mkdir(parents=True)
    (bad / "orders.xml").write_text(
        '<pipeline id="orders" layer="raw">\n'
        '  <sources><csv id="o" path="x.csv"/></sources>\n'
        '  <targets><table table="orders" mode="upsert"/></targets>\n'
        "</pipeline>\n"
    )
    proc = dg("check", "defs", env=_env(tmp_path, tmp_path / "pipes"), ok=False)
    assert proc.returncode != 0
    assert "orders.xml:3" in proc.stdout + proc.stderr


SELECTIONS = {
    # ecommerce/gold/customer_features is the example Python asset (pipelines_xml/ecommerce/python)
    'key:"ecommerce/gold/*"': {"ecommerce/gold/customer_360", "ecommerce/gold/customer_features"},
    "group:gold": {
        "crm/gold/customer_revenue",
        "customer/gold/customer_by_country",
        "ecommerce/gold/customer_360",
        "ecommerce/gold/customer_features",
    },
    "kind:csv": {
        "customer/service/customer_by_country_export",
        "ecommerce/service/customer_360_csv",
        "ecommerce/service/customer_features_csv",
    },
    "tag:datahub/app=github": {
        "github/raw/events",
        "github/bronze/users_flat",
        "github/silver/users",
    },
    'key:"github/*"': {"github/raw/events", "github/bronze/users_flat", "github/silver/users"},
    'group:gold and key:"ecommerce/*"': {
        "ecommerce/gold/customer_360",
        "ecommerce/gold/customer_features",
    },
    '+key:"ecommerce/gold/customer_360"': {  # with its upstream
        "ecommerce/gold/customer_360",
        "ecommerce/silver/customer_sessions",
        "ecommerce/silver/orders_enriched",
        "ecommerce/bronze/clickstream",
        "ecommerce/bronze/customers",
        "ecommerce/bronze/orders",
        "ecommerce/raw/clickstream",
        "ecommerce/raw/customers",
        "ecommerce/raw/orders",
    },
}


def test_dg_list_defs_with_each_documented_selection(tmp_path):
    env = _env(tmp_path)
    everything = json.loads(dg("list", "defs", "--json", env=env).stdout)
    keys = {a["asset_key"] for a in everything["assets"]}
    assert SELECTIONS["group:gold"] < keys
    assert "ops/gold/pipeline_runs" in keys
    assert {s["name"] for s in everything["sensors"]} >= {"datahub_run_records"}
    iceberg = json.loads(dg("list", "defs", "--json", "--assets", "kind:iceberg", env=env).stdout)[
        "assets"
    ]
    assert {a["asset_key"] for a in iceberg} == {
        a["asset_key"] for a in everything["assets"] if "iceberg" in a["kinds"]
    }
    for selection, expected in SELECTIONS.items():
        listed = json.loads(dg("list", "defs", "--json", "--assets", selection, env=env).stdout)[
            "assets"
        ]
        assert {a["asset_key"] for a in listed} == expected, selection


def test_dg_lists_and_documents_the_component_type(tmp_path):
    env = _env(tmp_path)
    listed = dg("list", "components", "--json", env=env).stdout
    assert f"datahub_assets.components.{TYPE_NAME}" in listed
    doc = dg(
        "utils",
        "inspect-component",
        f"datahub_assets.components.{TYPE_NAME}",
        "--defs-yaml-json-schema",
        env=env,
    ).stdout
    schema = json.loads(doc)
    attributes = schema["properties"]["attributes"]["properties"]
    assert "DATAHUB_PIPELINES_DIR" in attributes["pipelines_dir"]["description"]
    assert attributes["executor"]["description"]


@pytest.mark.spark
def test_dg_launch_materialises_a_selection(tmp_path):
    from datahub_assets.demo.data import generate, settle

    env = _env(tmp_path)
    generate(tmp_path / "data", rows=100, seed=7)
    settle(Path(env["DATAHUB_PIPELINES_DIR"]), ["github"])  # minAgeSeconds of the drops
    proc = dg("launch", "--assets", 'key:"github/*"', env=env)
    assert "RUN_SUCCESS" in proc.stdout + proc.stderr
    tables = subprocess.run(
        [str(BIN / "datahub"), "tables"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = {line.split()[0]: line.split()[1] for line in tables.splitlines()[1:]}
    for table in ("github.raw.events", "github.bronze.users_flat", "github.silver.users"):
        assert rows[table].isdigit(), tables
        assert int(rows[table]) > 0, tables
    assert rows["ecommerce.gold.customer_360"] == "-", "only the selection runs"


# ------------------------------------------------------------------ dg dev
def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]


LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSETS = "{ assetNodes { assetKey { path } } }"
COMPONENTS = """{ componentTypesForLocationOrError(locationName: "datahub") {
  __typename ... on ComponentTypes { componentTypes { name namespace description schema } } } }"""
RELOAD = """mutation { reloadRepositoryLocation(repositoryLocationName: "datahub") {
  __typename } }"""


def _wait_loaded(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.time() < deadline:
        assert proc.poll() is None, "dg dev exited"
        try:
            entries = _graphql(port, LOCATION)["workspaceOrError"]["locationEntries"]
        except OSError:
            time.sleep(1)
            continue
        entry = next((e for e in entries if e["name"] == "datahub"), None)
        if entry and entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        time.sleep(1)
    raise AssertionError("the datahub code location did not load in time")


def _asset_keys(port: int) -> set[str]:
    return {"/".join(n["assetKey"]["path"]) for n in _graphql(port, ASSETS)["assetNodes"]}


def test_dg_dev_docs_tab_and_a_new_pipeline_after_reload(tmp_path):
    from datahub_assets.demo.local_servers import free_port

    pipes = tmp_path / "pipes"
    env = _env(tmp_path, pipes)
    new = [str(BIN / "datahub"), "new", "pipeline", "shop"]
    subprocess.run(
        [*new, "raw", "orders", "--source", "csv"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = (tmp_path / "dg-dev.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "dg"), "dev", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_loaded(port, proc, time.time() + 240)
        assert "shop/raw/orders" in _asset_keys(port)
        # the Docs tab: the component type, its description and its fields' descriptions
        result = _graphql(port, COMPONENTS)["componentTypesForLocationOrError"]
        types = {t["name"]: t for t in result["componentTypes"]}
        ours = types[f"datahub_assets.components.{TYPE_NAME}"]
        assert ours["namespace"] == "datahub_assets"
        assert "Data Hub pipelines" in ours["description"]
        fields = ours["schema"]["properties"]
        assert "DATAHUB_PIPELINES_DIR" in fields["pipelines_dir"]["description"]
        # a scaffolded pipeline shows once the location reloads (the UI's "Reload")
        subprocess.run(
            [*new, "silver", "orders_clean", "--source", "table"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert "shop/silver/orders_clean" not in _asset_keys(port)
        _graphql(port, RELOAD)
        _wait_loaded(port, proc, time.time() + 240)
        assert "shop/silver/orders_clean" in _asset_keys(port)
    finally:
        stop_group(proc, grace=60)
        log.close()
    assert "SupersessionWarning" not in (tmp_path / "dg-dev.log").read_text()
