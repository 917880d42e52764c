"""A secret's value set in the environment never appears in any answer, page or audit row
(issue #21, "Bad input"), whatever the service is asked: the definitions that name it, a
change that uses it, validation, preview and the source helpers failing to connect with it,
the review page, the audit log; nor a password a user types (a failed sign-in's audit row
names the user, never the password)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from datahub_assets.service.state.models import AuditEvent
from tests.service.conftest import Hub

PASSWORD_PART = "pw-Zq81-never-shown"
SECRET = f"crm_reader:{PASSWORD_PART}"
TYPED = "typed-Password-never-logged-42"

APP_YAML = """owner: team-shop
connections:
  crm: {jdbcUrl: "jdbc:postgresql://127.0.0.1:9/crm", userSecretRef: SHOP_CRM_DB}
"""
DB_XML = """<pipeline id="extract_customers" version="1.0.0" layer="raw">
  <sources>
    <database id="customers" connection="crm"><table name="public.customers"/></database>
  </sources>
  <targets>
    <table table="customers" source="customers" mode="overwrite"/>
  </targets>
</pipeline>
"""


@pytest.fixture
def walked(hub: Hub, monkeypatch, caplog) -> tuple[list[str], list[str]]:
    """(every answer's text, every audit row's text) after a walk through the service."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SHOP_CRM_DB", SECRET)
    hub.add_user("ed", grants={"shop": "editor"})
    hub.add_user("ap", grants={"shop": "approver"})
    hub.add_user("root", admin=True, operator=True)
    api, answers = hub.client(), []

    def keep(response):
        answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    files = [
        {"path": "app.yaml", "content": APP_YAML},
        {"path": "raw/extract_customers.xml", "content": DB_XML},
    ]
    ed, ap, root = hub.bearer("ed"), hub.bearer("ap"), hub.bearer("root")
    keep(api.post("/api/v1/apps/shop/validate", json={"files": files}, headers=ed))
    created = keep(
        api.post(
            "/api/v1/changes", json={"app": "shop", "title": "crm", "files": files}, headers=ed
        )
    )
    change = created.json().get("id", "missing")
    keep(api.post(f"/api/v1/changes/{change}/preview", headers=ed))
    keep(api.post("/api/v1/apps/shop/preview", json={"files": files}, headers=ed))
    keep(api.get(f"/api/v1/changes/{change}", headers=ap))
    keep(api.post(f"/api/v1/changes/{change}/approve", headers=ap))
    for path in (
        "/api/v1/apps/shop/pipelines",
        "/api/v1/apps/shop/pipelines/extract_customers",
        "/api/v1/apps/shop/connections",
        "/api/v1/apps/shop/connections/crm/tables",
        "/api/v1/apps/shop/connections/crm/schema?table=public.customers",
        "/api/v1/changes?app=shop",
        "/api/v1/audit?since=1d",
        "/api/v1/me",
    ):
        keep(api.get(path, headers=root))
        keep(api.get(path, headers=ed))
    keep(api.post("/api/v1/auth/token", data={"username": "ed", "password": TYPED}))
    keep(api.post("/api/v1/auth/token", data={"username": "nobody", "password": TYPED}))
    browser, _ = hub.browser("root")
    for path in (
        "/apps",
        "/apps/shop",
        "/apps/shop/pipelines/extract_customers",
        f"/changes/{change}",
        "/apps/shop/new",
        "/audit",
    ):
        keep(browser.get(path))
    with hub.state.session() as db:
        rows = [
            " ".join(str(getattr(e, c.key)) for c in AuditEvent.__table__.columns)
            for e in db.scalars(select(AuditEvent))
        ]
    return answers + [caplog.text], rows


def test_the_walk_did_what_it_says(walked, hub: Hub):
    """So the absence below means something: the change merged, the secret's connection was
    tried (and failed), the failed sign-ins were audited."""
    answers, rows = walked
    assert any(a.startswith("201 ") for a in answers)
    assert any('"status":"merged"' in a.replace(" ", "") for a in answers)
    assert any("SHOP_CRM_DB" in a for a in answers)  # the name is shown, as written
    assert any(a.startswith("502 ") for a in answers)  # the connection with the secret failed
    assert [e.outcome for e in hub.events("login")][-2:] != ["ok", "ok"]


def test_no_secret_or_typed_password_in_any_answer_page_log_or_audit_row(walked):
    answers, rows = walked
    for text in (*answers, *rows):
        assert PASSWORD_PART not in text
        assert TYPED not in text
