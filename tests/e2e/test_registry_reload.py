"""Approve → the new asset in Dagster: a real dagster-webserver (the repository's
workspace.yaml, code location `datahub`) over a temp pipelines git tree; the Registry
approves a change adding a pipeline, reloads the code location through Dagster's GraphQL
client, and the new asset key is listed by GraphQL `assetNodes` (what the UI shows). The
approve → visible time is printed."""

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

from tests.service.registry_fixtures import raw_xml, settings_for, state_for
from tests.support.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

LOCATION = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
ASSETS = "query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } } }"


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]


def _loaded(url: str) -> bool:
    try:
        entries = _graphql(url, LOCATION)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    return any(e["name"] == "datahub" and e["loadStatus"] == "LOADED" for e in entries)


def _visible(url: str, key: list[str]) -> bool:
    nodes = _graphql(url, ASSETS, {"keys": [{"path": key}]})["assetNodes"] or []
    return any(n["assetKey"]["path"] == key for n in nodes)


def test_approve_reloads_dagster_and_the_asset_appears(tmp_path):
    from datahub_assets.demo.local_servers import free_port
    from datahub_assets.service.registry.changes import Registry

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings_for(tmp_path, dagster_url=url)
    registry = Registry(settings)  # the pipelines folder becomes a git work tree
    state = state_for(settings)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(settings.pipelines_dir),
    }
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(REPO / "workspace.yaml"),
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not _loaded(url):
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            assert time.time() < deadline, "the code location did not load"
            time.sleep(0.5)
        key = ["shop", "raw", "items"]
        assert _visible(url, ["shop", "raw", "orders"])
        assert not _visible(url, key)
        files = [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]
        with state.session() as db:
            change_id = registry.create_change(db, "shop", "Add items", files, "ed").id
        start = time.perf_counter()
        with state.session() as db:
            answer = registry.approve(db, change_id, "ann")
        approve_s = time.perf_counter() - start
        assert answer["status"] == "merged"
        assert answer["reload"]["ok"], answer["reload"]
        while not _visible(url, key):
            assert time.perf_counter() - start < 120, "the new asset did not appear"
            time.sleep(0.1)
        visible_s = time.perf_counter() - start
        print(
            f"approve (merge + reload) {approve_s:.2f} s; approve -> asset visible "
            f"{visible_s:.2f} s"
        )
    finally:
        stop_group(proc, grace=60)
        log.close()
