"""`datahub users` and `datahub tokens`: passwords from stdin only (at least 12 characters),
grants, deletion, token create/list/revoke, every change audited as `cli:<os user>`."""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from datahub_assets.cli.main import main
from datahub_assets.service.state.models import ApiToken, User
from tests.service.conftest import Hub


@pytest.fixture
def cli(hub: Hub, monkeypatch, capsys):
    monkeypatch.setenv("DATAHUB_HOME", str(hub.settings.home))
    monkeypatch.setenv("DATAHUB_STATE_URI", hub.settings.state_uri)
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(hub.settings.pipelines_dir))
    monkeypatch.setenv("DATAHUB_SERVICE_SECRET", hub.settings.secret_key.decode())

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_users_lifecycle(cli, hub: Hub):
    code, out, _ = cli(
        "users", "add", "ann", "--operator", "--password-stdin", stdin="a long password!\n"
    )
    assert (code, out.strip()) == (0, "added user ann (operator)")
    assert cli("users", "grant", "ann", "--app", "shop", "--role", "editor", "--pii")[0] == 0
    assert cli("users", "grant", "ann", "--app", "other", "--role", "viewer")[0] == 0
    assert cli("users", "grant", "ann", "--app", "other", "--role", "approver")[0] == 0
    assert cli("users", "revoke", "ann", "--app", "shop")[0] == 0
    code, out, _ = cli("users", "list")
    assert out.splitlines()[1].split() == ["ann", "operator", "other:approver"]
    client = hub.client()
    token = client.post(
        "/api/v1/auth/token", data={"username": "ann", "password": "a long password!"}
    )
    assert token.status_code == 200
    code, _, _ = cli("users", "passwd", "ann", "--password-stdin", stdin="another password\n")
    assert code == 0
    me = client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.status_code == 401  # issued before the new password
    assert cli("users", "delete", "ann")[0] == 0
    with hub.state.session() as db:
        assert db.scalars(select(User)).all() == []
    actions = [(e.actor, e.action, e.app) for e in hub.events() if e.actor.startswith("cli:")]
    actor = f"cli:{getpass.getuser()}"
    assert actions == [
        (actor, "user.add", None),
        (actor, "user.grant", "shop"),
        (actor, "user.grant", "other"),
        (actor, "user.grant", "other"),
        (actor, "user.revoke", "shop"),
        (actor, "user.passwd", None),
        (actor, "user.delete", None),
    ]
    texts = [f"{e.target} {e.detail}" for e in hub.events()]
    assert not [t for t in texts if "a long password!" in t or "another password" in t]


def test_passwords_come_from_stdin_and_are_long_enough(cli, hub: Hub):
    code, _, err = cli("users", "add", "ann")
    assert code == 1
    assert "--password-stdin" in err
    code, _, err = cli("users", "add", "ann", "--password-stdin", stdin="short\n")
    assert code == 1
    assert "at least 12" in err
    code, _, err = cli("users", "add", "bad name", "--password-stdin", stdin="a long password!\n")
    assert code == 1
    assert "user name" in err
    with hub.state.session() as db:
        assert db.scalars(select(User)).all() == []
    assert cli("users", "grant", "nobody", "--app", "shop", "--role", "viewer")[0] == 1


def test_tokens_create_list_revoke(cli, hub: Hub):
    hub.add_user("ann")
    code, out, _ = cli("tokens", "create", "ann", "--expires", "30d")
    token = out.strip()
    assert code == 0
    assert token.startswith("dh_")
    client = hub.client()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    key_id = token.split("_")[1]
    code, out, _ = cli("tokens", "list", "ann")
    assert key_id in out
    assert "active" in out
    assert token not in out
    assert cli("tokens", "revoke", key_id)[0] == 0
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert "revoked" in cli("tokens", "list", "ann")[1]
    assert cli("tokens", "create", "ann", "--expires", "soon")[0] == 1
    with hub.state.session() as db:
        assert len(db.scalars(select(ApiToken)).all()) == 1
    created = hub.events("token.create")
    assert len(created) == 1
    assert token.split("_", 2)[2] not in (created[0].detail or "")


def test_a_grant_from_the_cli_process_signals_running_servers(hub: Hub):
    """A server caches checked tokens for a few seconds; a `datahub users ...` in another
    process must void those caches at once (the auth signal file next to the state DB)."""
    from sqlalchemy.engine import make_url

    from datahub_assets.service.auth.tokens import signal_path

    hub.add_user("carol")
    signal = signal_path(make_url(hub.settings.state_uri))
    before = signal.read_bytes() if signal.exists() else b""
    env = {
        **os.environ,
        "DATAHUB_HOME": str(hub.settings.home),
        "DATAHUB_STATE_URI": hub.settings.state_uri,
        "DATAHUB_PIPELINES_DIR": str(hub.settings.pipelines_dir),
        "DATAHUB_SERVICE_SECRET": hub.settings.secret_key.decode(),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("datahub")),
            "users",
            "grant",
            "carol",
            "--app",
            "shop",
            "--role",
            "viewer",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert signal.exists()
    assert signal.read_bytes() != before
