"""The registry's routes over HTTP (FastAPI's TestClient on create_app): pipelines, validate,
changes, approve/reject, revert; the answers, the rows, the commits and the audit log; bad
input refused with nothing written."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from datahub_assets.service.app import create_app
from datahub_assets.service.auth.tokens import create_api_token
from datahub_assets.service.state.db import utcnow
from datahub_assets.service.state.models import Grant, User
from tests.service.registry_fixtures import (
    DOCTYPE_EXTERNAL,
    SQL_TEXT,
    YAML_BOMB,
    audit_rows,
    change_count,
    commits,
    raw_xml,
    settings_for,
    state_for,
)

USERS = {
    "ed": {"shop": "editor"},
    "ann": {"shop": "approver"},
    "vic": {"shop": "viewer"},
    "out": {"other": "editor"},
}


@pytest.fixture
def api(tmp_path):
    settings = settings_for(tmp_path)
    state = state_for(settings)
    tokens = {}
    with state.session() as db:
        for name, grants in {**USERS, "adm": {}}.items():
            user = User(username=name, admin=name == "adm", created_at=utcnow())
            db.add(user)
            db.flush()
            for app, role in grants.items():
                db.add(Grant(user_id=user.id, app=app, role=role))
            tokens[name] = create_api_token(db, user)[0]
    app = create_app(settings)
    client = TestClient(app)

    def call(method: str, path: str, who: str, **kw):
        headers = {"Authorization": f"Bearer {tokens[who]}", **kw.pop("headers", {})}
        return client.request(method, path, headers=headers, **kw)

    call.state = state  # type: ignore[attr-defined]
    call.root = settings.pipelines_dir  # type: ignore[attr-defined]
    return call


def _new(table: str = "items", title: str = "Add items") -> dict:
    return {
        "app": "shop",
        "title": title,
        "files": [{"path": f"raw/ingest_{table}.xml", "content": raw_xml(table)}],
    }


def test_change_lifecycle(api):
    r = api("POST", "/api/v1/changes", "ed", json=_new())
    assert r.status_code == 201, r.text
    change = r.json()
    assert change["status"] == "open"
    assert change["validation"] == {"ok": True, "errors": []}
    cid = change["id"]

    r = api("GET", f"/api/v1/changes/{cid}", "vic")
    assert r.status_code == 200
    assert r.json()["plan"]["added"] == [["shop", "raw", "items"]]
    assert "+++ b/raw/ingest_items.xml" in r.json()["diff"]
    assert [c["id"] for c in api("GET", "/api/v1/changes?app=shop", "vic").json()] == [cid]
    assert api("GET", "/api/v1/changes?app=shop", "out").status_code == 404
    assert api("GET", "/api/v1/changes", "out").json() == []
    assert api("GET", f"/api/v1/changes/{cid}", "out").status_code == 404
    assert api("GET", "/api/v1/changes?status=bogus", "vic").status_code == 422

    assert api("POST", f"/api/v1/changes/{cid}/approve", "ed").status_code == 403
    assert api("POST", f"/api/v1/changes/{cid}/approve", "vic").status_code == 403
    r = api("POST", f"/api/v1/changes/{cid}/approve", "ann")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "merged"
    assert answer["commit"] == commits(api.root)[0].hexsha
    assert api("POST", f"/api/v1/changes/{cid}/approve", "ann").status_code == 409

    rows = api("GET", "/api/v1/apps/shop/pipelines", "vic").json()
    assert {r["id"]: r["assets"] for r in rows}["ingest_items"] == [["shop", "raw", "items"]]
    assert {r["id"]: r["path"] for r in rows}["ingest_items"] == "raw/ingest_items.xml"
    assert api("GET", "/api/v1/apps/shop/pipelines", "out").status_code == 404
    one = api("GET", "/api/v1/apps/shop/pipelines/ingest_items", "vic").json()
    assert one["content"] == raw_xml("items")
    assert one["history"][0]["approver"] == "ann"
    assert api("GET", "/api/v1/apps/shop/pipelines/nope", "vic").status_code == 404

    r = api("POST", "/api/v1/apps/shop/revert", "ed", json={"commit": answer["commit"]})
    assert r.status_code == 201, r.text
    revert = r.json()
    assert revert["reverts"] == answer["commit"]
    assert revert["plan"]["removed"] == [["shop", "raw", "items"]]
    r = api("POST", f"/api/v1/changes/{revert['id']}/reject", "ann", json={"reason": "keep it"})
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"

    actions = [(a.action, a.actor, a.outcome) for a in audit_rows(api.state)]
    assert ("change.create", "ed", "ok") in actions
    assert ("change.approve", "ann", "ok") in actions
    assert ("change.reject", "ann", "ok") in actions


def test_validate_writes_nothing(api):
    before = commits(api.root)
    body = {"files": [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]}
    r = api("POST", "/api/v1/apps/shop/validate", "ed", json=body)
    assert r.json() == {"ok": True, "errors": []}
    bad = {"files": [{"path": "raw/x.xml", "content": DOCTYPE_EXTERNAL}]}
    r = api("POST", "/api/v1/apps/shop/validate", "ed", json=bad)
    assert r.status_code == 200
    assert r.json()["ok"] is False
    assert r.json()["errors"][0]["file"] == "raw/x.xml"
    assert api("POST", "/api/v1/apps/shop/validate", "vic", json=body).status_code == 403
    assert commits(api.root) == before
    assert change_count(api.state) == 0
    assert not (api.root / "shop" / "raw" / "ingest_items.xml").exists()


@pytest.mark.parametrize(
    "files",
    [
        [{"path": "../other/raw/x.xml", "content": "x"}],
        [{"path": "/etc/passwd", "content": "x"}],
        [{"path": "raw/x.txt", "content": "x"}],
        [{"path": "raw/x.xml; DROP TABLE changes", "content": "x"}],
        [],
        [{"path": f"raw/a{i}.xml", "content": "x"} for i in range(201)],
    ],
)
def test_bad_paths_are_422_and_write_nothing(api, files):
    r = api("POST", "/api/v1/changes", "ed", json={"app": "shop", "title": "t", "files": files})
    assert r.status_code == 422, r.text
    assert "detail" in r.json()
    assert change_count(api.state) == 0
    assert len(commits(api.root)) == 1


def test_bad_titles_and_bodies(api):
    r = api("POST", "/api/v1/changes", "ed", json=_new(title="x" * 201))
    assert r.status_code == 422
    r = api("POST", "/api/v1/changes", "ed", json=_new(title=""))
    assert r.status_code == 422
    body = json.dumps(_new()).encode().replace(b"Orders", b"\xff\xfe")
    r = api(
        "POST", "/api/v1/changes", "ed", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text  # not JSON text: refused before any handler
    surrogate = json.dumps(_new()).replace("team-shop", "\\udc80")
    r = api(
        "POST",
        "/api/v1/changes",
        "ed",
        content=surrogate.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "UTF-8" in r.json()["detail"]
    assert change_count(api.state) == 0


@pytest.mark.parametrize(
    ("path", "content"), [("raw/e.xml", DOCTYPE_EXTERNAL), ("raw/b.yaml", YAML_BOMB)]
)
def test_hostile_content_is_an_invalid_change(api, path, content):
    r = api(
        "POST",
        "/api/v1/changes",
        "ed",
        json={"app": "shop", "title": "t", "files": [{"path": path, "content": content}]},
    )
    assert r.status_code == 201
    assert r.json()["status"] == "invalid"
    assert r.json()["validation"]["errors"][0]["file"] == path
    r = api("POST", f"/api/v1/changes/{r.json()['id']}/approve", "ann")
    assert r.status_code == 409
    assert not (api.root / "shop" / path).exists()
    assert len(commits(api.root)) == 1


def test_sql_looking_text_everywhere(api):
    r = api("POST", "/api/v1/changes", "ed", json=_new(title=SQL_TEXT))
    assert r.status_code == 201
    cid = r.json()["id"]
    assert api("GET", f"/api/v1/changes/{cid}", "vic").json()["title"] == SQL_TEXT
    r = api("POST", f"/api/v1/changes/{cid}/reject", "ann", json={"reason": SQL_TEXT})
    assert r.json()["reason"] == SQL_TEXT
    assert api("GET", f"/api/v1/changes/{SQL_TEXT}", "vic").status_code == 404
    assert api("GET", f"/api/v1/apps/shop/pipelines/{SQL_TEXT}", "vic").status_code == 404
    assert change_count(api.state) == 1


def test_a_50_mb_body_is_refused_and_writes_nothing(api):
    body = _new()
    body["files"][0]["content"] = "x" * (50 << 20)
    r = api("POST", "/api/v1/changes", "ed", json=body)
    assert r.status_code == 413
    assert change_count(api.state) == 0
    assert len(commits(api.root)) == 1


def test_python_files_need_admin(api):
    body = {
        "app": "shop",
        "title": "code",
        "files": [{"path": "python/a.py", "content": "x = 1\n"}],
    }
    assert api("POST", "/api/v1/changes", "ed", json=body).status_code == 403
    assert change_count(api.state) == 0


def test_a_change_to_an_invisible_app_is_404(api):
    body = {**_new(), "app": "other"}
    assert api("POST", "/api/v1/changes", "ann", json=body).status_code == 404
    assert change_count(api.state) == 0
