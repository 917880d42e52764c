"""`datahub serve --workers N`: N uvicorn worker processes, each building the app with
`create_app()`; a token revoked through one worker is refused by every worker at once (the
token caches of the processes hear of it through the signal file: auth/tokens.py)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from uvicorn.importer import import_from_string

from datahub_assets.cli import serve
from datahub_assets.service.app import create_app
from tests.service.conftest import Hub

DATAHUB = Path(sys.executable).with_name("datahub")


def _env(hub: Hub) -> dict[str, str]:
    s = hub.settings
    return {
        "DATAHUB_HOME": str(s.home),
        "DATAHUB_STATE_URI": s.state_uri,
        "DATAHUB_PIPELINES_DIR": str(s.pipelines_dir),
        "DATAHUB_DATA_DIR": str(s.data_dir),
        "DATAHUB_SERVICE_SECRET": s.secret_key.decode(),
    }


def _args(workers: int) -> argparse.Namespace:
    return argparse.Namespace(host="127.0.0.1", port=8080, log_level="warning", workers=workers)


def test_workers_run_the_app_factory(hub: Hub, monkeypatch):
    for name, value in _env(hub).items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: calls.append((a, kw)))
    assert serve.run(_args(3), None) == 0  # type: ignore[arg-type]
    (target,), options = calls[0]
    assert import_from_string(target) is create_app
    assert options["factory"] is True
    assert options["workers"] == 3
    assert options["server_header"] is False
    assert serve.run(_args(0), None) == 2  # type: ignore[arg-type]
    assert len(calls) == 1


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_token_revoked_through_one_worker_is_refused_by_all(hub: Hub, tmp_path):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    port = _port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(DATAHUB), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env={**os.environ, **_env(hub)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}

    def fresh_get(path: str) -> int:  # a new connection each time: any worker answers
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            return client.get(path).status_code

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        assert {fresh_get("/api/v1/me") for _ in range(20)} == {200}  # cached by both
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            assert client.post("/api/v1/auth/revoke").status_code == 200
        assert {fresh_get("/api/v1/me") for _ in range(20)} == {401}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
