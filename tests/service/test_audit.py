"""The audit log through the API (`GET /api/v1/audit`: admins all, approvers their apps) and
`datahub audit`."""

from __future__ import annotations

import io
from argparse import Namespace
from datetime import timedelta

import pytest

from datahub_assets.service import audit
from datahub_assets.service.state.db import utcnow
from tests.service.conftest import Hub


def _seed(hub: Hub) -> None:
    with hub.state.session() as db:
        audit.record(db, actor="ed", action="change.create", target="c1", outcome="ok", app="shop")
        audit.record(db, actor="x", action="change.create", target="c2", outcome="ok", app="other")
        audit.record(db, actor="cli:root", action="user.add", target="ed", outcome="ok")


def test_admins_read_everything_approvers_their_apps(hub: Hub):
    hub.add_user("root", admin=True)
    hub.add_user("appr", grants={"shop": "approver", "other": "editor"})
    hub.add_user("ed", grants={"shop": "editor"})
    _seed(hub)
    client = hub.client()
    everything = client.get("/api/v1/audit", headers=hub.bearer("root")).json()
    assert [e["target"] for e in everything] == ["c1", "c2", "ed"]
    assert set(everything[0]) >= {"time", "actor", "action", "target", "outcome", "client"}
    own = client.get("/api/v1/audit", headers=hub.bearer("appr")).json()
    assert [e["target"] for e in own] == ["c1"]
    hidden = client.get("/api/v1/audit?app=other", headers=hub.bearer("appr"))
    assert hidden.status_code == 404
    assert client.get("/api/v1/audit", headers=hub.bearer("ed")).status_code == 403
    only = client.get("/api/v1/audit?app=shop", headers=hub.bearer("root")).json()
    assert [e["target"] for e in only] == ["c1"]


def test_since_takes_durations_and_iso_times(hub: Hub):
    hub.add_user("root", admin=True)
    _seed(hub)
    client = hub.client()
    headers = hub.bearer("root")
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert len(client.get("/api/v1/audit?since=1h", headers=headers).json()) == 3
    assert client.get("/api/v1/audit", params={"since": future}, headers=headers).json() == []
    bad = client.get("/api/v1/audit?since=yesterday", headers=headers)
    assert bad.status_code == 422
    assert "7d" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("text", "delta"),
    [("7d", timedelta(days=7)), ("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30))],
)
def test_parse_since(text, delta):
    now = utcnow()
    assert audit.parse_since(text, now) == now - delta


def test_the_cli_prints_the_log(hub: Hub, monkeypatch):
    from datahub_assets.cli import audit as audit_cli

    _seed(hub)
    monkeypatch.setenv("DATAHUB_HOME", str(hub.settings.home))
    monkeypatch.setenv("DATAHUB_STATE_URI", hub.settings.state_uri)
    monkeypatch.setenv("DATAHUB_SERVICE_SECRET", hub.settings.secret_key.decode())
    out = io.StringIO()
    assert audit_cli.run(Namespace(since="1d", app="shop", limit=100), None, out) == 0  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["time", "(UTC)", "actor"]
    assert len(lines) == 2
    assert lines[1].split()[2:5] == ["ed", "change.create", "c1"]
