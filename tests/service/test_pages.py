"""The portal pages through FastAPI's TestClient over a real git pipelines tree and a migrated
SQLite state database: sign-in (login CSRF, errors that do not tell whether a user exists,
`next` only local), every page for the roles that may see it (404 invisible, 403 too small a
role), the wizard (fields from the JSON Schema, the XML it writes, the validator's errors next
to the fields, submit → a change), the review page (no approve button for the author, approve
→ a git commit, reject with a reason), the audit page, CSRF refusals, escaping of user text."""

from __future__ import annotations

import dataclasses
import functools
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from lxml import etree  # pyright: ignore[reportAttributeAccessIssue]
from sqlalchemy import select

from datahub_assets.service.app import create_app
from datahub_assets.service.auth.passwords import hash_password
from datahub_assets.service.pages import wizard_form
from datahub_assets.service.pages.routes import local_next
from datahub_assets.service.state.models import AuditEvent, Change, Grant, User
from tests.service.registry_fixtures import SQL_TEXT, audit_rows, commits, settings_for, state_for

PASSWORD = "correct horse battery staple"
USERS = {
    # name: (admin, {app: role})
    "ed": (False, {"shop": "editor"}),
    "ap": (False, {"shop": "approver"}),
    "ap2": (False, {"shop": "approver"}),
    "vi": (False, {"shop": "viewer"}),
    "nobody": (False, {}),
    "root": (True, {}),
}
CSV = "id,status,amount\n1,new,10\n2,paid,20\n3,paid,\n"


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 takes a while: one hash for every user


@pytest.fixture
def portal(tmp_path, settings):
    service_settings = dataclasses.replace(settings_for(tmp_path), platform=settings)
    state = state_for(service_settings)
    with state.session() as db:
        for name, (admin, grants) in USERS.items():
            user = User(
                username=name,
                password_hash=_password_hash(),
                admin=admin,
                created_at=datetime.now(UTC),
            )
            user.grants = [Grant(app=a, role=r) for a, r in grants.items()]
            db.add(user)
    landing = service_settings.data_dir / "shop" / "landing" / "payments"
    landing.mkdir(parents=True)
    (landing / "p1.csv").write_text(CSV)
    app = create_app(service_settings)
    yield app, state, service_settings
    app.state.state.dispose()
    state.dispose()


def _client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def _hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name} in the page"
    return m.group(1)


def sign_in(app, name: str, password: str = PASSWORD, next_url: str = "") -> TestClient:
    client = _client(app)
    page = client.get("/login")
    assert page.status_code == 200
    answer = client.post(
        "/login",
        data={
            "username": name,
            "password": password,
            "login_csrf": _hidden(page.text, "login_csrf"),
            "next": next_url,
        },
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf(client: TestClient) -> str:
    return _hidden(client.get("/apps").text, "csrf")


def wizard_form_data(pipeline_id: str = "ingest_payments", **extra: str) -> dict[str, str]:
    data = {
        "pipeline.id": pipeline_id,
        "pipeline.layer": "raw",
        "source_kind": "csv",
        "source.id": "src",
        "source.path": "landing/payments/*.csv",
        "source.header": "true",
        "target_kind": "table",
        "target.table": "payments",
        "check.0.kind": "notNull",
        "check.0.columns": "id",
        "check.1.kind": "acceptedValues",
        "check.1.column": "status",
        "check.1.values": "new,paid",
        "metadata.owner": "team-shop",
    }
    data.update(extra)
    return data


HTMX = {"HX-Request": "true"}


# ------------------------------------------------------------------ sign in


def test_sign_in_errors_do_not_tell_whether_the_user_exists(portal):
    app, state, _ = portal
    client = _client(app)
    token = _hidden(client.get("/login").text, "login_csrf")
    wrong = client.post(
        "/login", data={"username": "ed", "password": "wrong password!!", "login_csrf": token}
    )
    token = _hidden(wrong.text, "login_csrf")  # the form shown again, with a new token
    unknown = client.post(
        "/login", data={"username": "ghost", "password": "wrong password!!", "login_csrf": token}
    )
    assert wrong.status_code == unknown.status_code == 401
    for answer in (wrong, unknown):
        assert "Wrong user name or password." in answer.text
        assert "datahub_session" not in answer.headers.get("set-cookie", "")
    denied = [e for e in audit_rows(state, "login") if e.outcome == "denied"]
    assert {e.actor for e in denied} == {"ed", "ghost"}


def test_sign_in_needs_the_login_csrf_cookie(portal):
    app, state, _ = portal
    client = _client(app)
    token = _hidden(client.get("/login").text, "login_csrf")
    fresh = _client(app)  # a cross-site form: the field without the cookie
    answer = fresh.post(
        "/login", data={"username": "ed", "password": PASSWORD, "login_csrf": token}
    )
    assert answer.status_code == 403
    assert "datahub_session" not in answer.headers.get("set-cookie", "")
    assert audit_rows(state, "login") == []  # refused before any password check


def test_sign_in_goes_to_next_only_when_local(portal):
    app, _, _ = portal
    client = _client(app)
    answer = client.get("/apps/shop")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fapps%2Fshop"
    token = _hidden(client.get("/login?next=/apps/shop").text, "login_csrf")
    ok = client.post(
        "/login",
        data={"username": "vi", "password": PASSWORD, "login_csrf": token, "next": "/apps/shop"},
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/apps/shop"
    assert client.get("/apps/shop").status_code == 200
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "apps", ""):
        assert local_next(bad) == "/apps"
    assert local_next("/apps/shop?x=1") == "/apps/shop?x=1"


def test_sign_out_ends_the_session(portal):
    app, _, _ = portal
    client = sign_in(app, "vi")
    assert client.post("/logout").status_code == 403  # no CSRF token
    assert client.get("/apps").status_code == 200
    answer = client.post("/logout", data={"csrf": csrf(client)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert client.get("/apps").status_code == 303


# ------------------------------------------------------------------ pages by role


def test_apps_page_lists_visible_apps_with_role_and_counts(portal):
    app, _, _ = portal
    page = sign_in(app, "ed").get("/apps")
    assert page.status_code == 200
    assert re.search(r'href="/apps/shop">shop</a></td><td>editor</td><td class="num">2<', page.text)
    assert "/apps/other" not in page.text
    root = sign_in(app, "root").get("/apps").text
    assert "/apps/other" in root
    assert "/apps/shop" in root
    assert "You have no role" in sign_in(app, "nobody").get("/apps").text


def test_app_page_by_layer_with_assets_and_buttons_by_role(portal):
    app, _, settings = portal
    editor = sign_in(app, "ed")
    page = editor.get("/apps/shop")
    assert page.status_code == 200
    text = page.text
    assert text.index("<h2>raw</h2>") < text.index("<h2>bronze</h2>")
    assert 'href="/apps/shop/pipelines/ingest_orders"' in text
    assert f'href="{settings.ui_url}/assets/shop/raw/orders"' in text
    assert 'id="new-pipeline"' in text
    viewer = sign_in(app, "vi").get("/apps/shop").text
    assert 'id="new-pipeline"' not in viewer
    assert editor.get("/apps/other").status_code == 404
    assert sign_in(app, "vi").get("/apps/shop/new").status_code == 403
    assert editor.get("/apps/other/new").status_code == 404


def test_pipeline_page_shows_the_definition_escaped_and_its_history_with_diffs(portal):
    app, _, _ = portal
    page = sign_in(app, "vi").get("/apps/shop/pipelines/ingest_orders")
    assert page.status_code == 200
    assert "&lt;pipeline id=&#34;ingest_orders&#34;" in page.text
    assert "<pipeline id=" not in page.text
    assert '<span class="add">+&lt;pipeline id=&#34;ingest_orders&#34;' in page.text
    assert sign_in(app, "vi").get("/apps/shop/pipelines/nope").status_code == 404


def test_audit_page_for_approvers_and_admins_only(portal):
    app, _, _ = portal
    approver = sign_in(app, "ap")
    page = approver.get("/audit?since=1d")
    assert page.status_code == 200
    assert 'id="audit"' in page.text
    assert sign_in(app, "ed").get("/audit").status_code == 403
    bad = approver.get("/audit?since=yesterday-ish")
    assert bad.status_code == 200
    assert "since=" in bad.text
    assert sign_in(app, "root").get("/audit?app=shop").status_code == 200


# ------------------------------------------------------------------ the wizard


def test_wizard_fields_come_from_the_json_schema(portal):
    app, _, _ = portal
    client = sign_in(app, "ed")
    page = client.get("/apps/shop/new")
    assert page.status_code == 200
    assert 'name="source.path"' in page.text
    assert 'name="check.0.kind"' in page.text
    fragment = client.post(
        "/apps/shop/new/fields",
        data={"section": "source", "source_kind": "database", "csrf": csrf(client)},
        headers=HTMX,
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'name="source.isolationLevel"' in fragment.text
    assert '<option value="READ_COMMITTED"' in fragment.text  # an enum as a select
    assert "Rows per JDBC round trip." in fragment.text  # a description as help
    mongo = client.post(
        "/apps/shop/new/fields",
        data={"section": "source", "source_kind": "mongo", "csrf": csrf(client)},
        headers=HTMX,
    ).text
    assert re.search(r'for="f-source-collection">collection <abbr title="required"', mongo)
    added = client.post(
        "/apps/shop/new/fields",
        data={"section": "check_add", "check.0.kind": "notNull", "csrf": csrf(client)},
        headers=HTMX,
    ).text
    assert 'id="check-1"' in added
    assert 'name="check.1.columns"' in added
    assert "kafka" not in wizard_form.kinds("sources") or "kafka" in page.text


def test_wizard_validates_as_you_type_with_errors_next_to_the_fields(portal):
    app, state, _ = portal
    client = sign_in(app, "ed")
    token = csrf(client)
    ok = client.post(
        "/apps/shop/new/validate", data=wizard_form_data() | {"csrf": token}, headers=HTMX
    )
    assert ok.status_code == 200
    assert 'class="verdict ok"' in ok.text
    assert "&lt;csv id=&#34;src&#34; path=&#34;landing/payments/*.csv&#34;" in ok.text
    missing = client.post(
        "/apps/shop/new/validate",
        data=wizard_form_data(**{"source.path": "", "check.1.values": ""}) | {"csrf": token},
        headers=HTMX,
    )
    assert missing.status_code == 200
    assert 'class="verdict bad"' in missing.text
    error = re.search(r'id="err-source-path" hx-swap-oob="true">(.*?)</div>', missing.text)
    assert error
    assert "path" in error.group(1)
    assert re.search(r'id="err-check-1(-values)?" hx-swap-oob="true"><span>', missing.text)
    taken = client.post(
        "/apps/shop/new/validate",
        data=wizard_form_data("ingest_orders") | {"csrf": token},
        headers=HTMX,
    ).text
    assert re.search(r'id="err-pipeline-id" hx-swap-oob="true"><span>[^<]*already', taken)
    bad_id = client.post(
        "/apps/shop/new/validate",
        data=wizard_form_data("../../etc") | {"csrf": token},
        headers=HTMX,
    ).text
    assert re.search(r'id="err-pipeline-id" hx-swap-oob="true"><span>required', bad_id)
    without_js = client.post("/apps/shop/new/validate", data=wizard_form_data() | {"csrf": token})
    assert without_js.status_code == 200
    assert "<html" in without_js.text
    with state.session() as db:
        assert db.scalars(select(Change)).all() == []


def test_wizard_xml_is_built_by_lxml_and_holds_any_text_as_text():
    draft = wizard_form.parse_form(
        wizard_form_data(
            **{
                "metadata.description": '"/><evil/>&amp; <![CDATA[',
                "source.nullValue": SQL_TEXT,
            }
        )
    )
    xml, errors, _ = wizard_form.build_xml(draft)
    assert errors == {}
    root = etree.fromstring(xml.encode())
    assert root.find("metadata/description").text == '"/><evil/>&amp; <![CDATA['
    assert root.find("sources/csv").get("nullValue") == SQL_TEXT
    assert root.find(".//evil") is None
    assert [c.tag for c in root.find("checks")] == ["notNull", "acceptedValues"]
    control = wizard_form.parse_form(wizard_form_data(**{"target.table": "a\x00b"}))
    assert wizard_form.build_xml(control)[1] == {
        "target.table": "contains characters XML cannot hold"
    }


def test_wizard_submit_opens_a_change_and_the_title_is_escaped(portal):
    app, state, settings = portal
    client = sign_in(app, "ed")
    title = "<script>alert('x')</script> payments"
    answer = client.post(
        "/apps/shop/new/submit", data=wizard_form_data(title=title) | {"csrf": csrf(client)}
    )
    assert answer.status_code == 303, answer.text
    change_id = answer.headers["location"].rsplit("/", 1)[-1]
    with state.session() as db:
        change = db.get(Change, change_id)
        assert change is not None
        assert (change.status, change.author, change.title) == ("open", "ed", title)
        assert [f["path"] for f in change.files] == ["raw/ingest_payments.xml"]
        root = etree.fromstring(change.files[0]["content"].encode())
        assert root.find("sources/csv").get("path") == "landing/payments/*.csv"
    assert not (settings.pipelines_dir / "shop" / "raw" / "ingest_payments.xml").exists()
    page = client.get(f"/changes/{change_id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; payments" in page.text
    assert 'id="approve"' not in page.text  # the author sees no approve button
    assert "another approver" in page.text


def test_wizard_submit_refuses_an_invalid_pipeline_and_writes_nothing(portal):
    app, state, _ = portal
    client = sign_in(app, "ed")
    answer = client.post(
        "/apps/shop/new/submit",
        data=wizard_form_data(**{"source.path": ""}) | {"csrf": csrf(client)},
    )
    assert answer.status_code == 422
    assert 'class="verdict bad"' in answer.text
    with state.session() as db:
        assert db.scalars(select(Change)).all() == []


def test_csrf_is_refused_on_every_form_post(portal):
    app, state, _ = portal
    client = sign_in(app, "ed")
    data = wizard_form_data()
    assert client.post("/apps/shop/new/submit", data=data).status_code == 403
    assert client.post("/apps/shop/new/submit", data=data | {"csrf": "forged"}).status_code == 403
    forged = client.post("/apps/shop/new/validate", data=data, headers=HTMX | {"X-CSRF-Token": "x"})
    assert forged.status_code == 403
    with state.session() as db:
        assert db.scalars(select(Change)).all() == []
        refusals = db.scalars(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert len(refusals) >= 3


# ------------------------------------------------------------------ review


def _open_change(app, title: str = "Add payments") -> str:
    client = sign_in(app, "ed")
    answer = client.post(
        "/apps/shop/new/submit", data=wizard_form_data(title=title) | {"csrf": csrf(client)}
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


def test_an_approver_approves_and_the_change_is_one_commit(portal):
    app, state, settings = portal
    change_id = _open_change(app)
    author = sign_in(app, "ed")
    assert (
        author.post(f"/changes/{change_id}/approve", data={"csrf": csrf(author)}).status_code == 403
    )
    viewer = sign_in(app, "vi")
    view = viewer.get(f"/changes/{change_id}")
    assert view.status_code == 200
    assert 'id="approve"' not in view.text
    approver = sign_in(app, "ap")
    page = approver.get(f"/changes/{change_id}")
    assert 'id="approve"' in page.text
    assert 'id="reject"' in page.text
    assert '<span class="add">+  &lt;sources&gt;</span>' in page.text
    assert "shop/raw/payments" in page.text  # the plan
    before = len(commits(settings.pipelines_dir))
    answer = approver.post(f"/changes/{change_id}/approve", data={"csrf": csrf(approver)})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/changes/{change_id}"
    assert len(commits(settings.pipelines_dir)) == before + 1
    assert (settings.pipelines_dir / "shop" / "raw" / "ingest_payments.xml").exists()
    with state.session() as db:
        change = db.get(Change, change_id)
        assert change is not None
        assert change.status == "merged"
        assert change.decided_by == "ap"
    merged = approver.get(f"/changes/{change_id}").text
    assert 'id="approve"' not in merged
    assert 'id="change-commit"' in merged
    again = approver.post(f"/changes/{change_id}/approve", data={"csrf": csrf(approver)})
    assert again.status_code == 409
    assert 'id="decision-error"' in again.text
    history = approver.get("/apps/shop/pipelines/ingest_payments")
    assert history.status_code == 200
    assert "Add payments" in history.text


def test_an_approver_rejects_with_a_reason(portal):
    app, state, _ = portal
    change_id = _open_change(app)
    approver = sign_in(app, "ap2")
    token = csrf(approver)
    empty = approver.post(f"/changes/{change_id}/reject", data={"csrf": token, "reason": " "})
    assert empty.status_code == 422
    answer = approver.post(
        f"/changes/{change_id}/reject", data={"csrf": token, "reason": "<b>not now</b>"}
    )
    assert answer.status_code == 303
    with state.session() as db:
        change = db.get(Change, change_id)
        assert change is not None
        assert change.status == "rejected"
        assert change.reason == "<b>not now</b>"
    page = approver.get(f"/changes/{change_id}").text
    assert "&lt;b&gt;not now&lt;/b&gt;" in page
    assert "<b>not now" not in page
    editor = sign_in(app, "ed")
    refused = editor.post(
        f"/changes/{change_id}/reject", data={"csrf": csrf(editor), "reason": "x"}
    )
    assert refused.status_code == 403


# ------------------------------------------------------------------ preview


def test_wizard_preview_shows_first_rows_and_checks_and_writes_nothing(portal):
    app, state, settings = portal
    client = sign_in(app, "ed")
    token = csrf(client)
    answer = client.post(
        "/apps/shop/new/preview", data=wizard_form_data() | {"csrf": token}, headers=HTMX
    )
    assert answer.status_code == 200
    assert 'class="rows preview-rows"' in answer.text, answer.text
    assert "<td>paid</td>" in answer.text
    assert re.search(r"<td>accepted_?values[^<]*</td>|acceptedValues", answer.text)
    assert not (settings.pipelines_dir / "shop" / "raw" / "ingest_payments.xml").exists()
    with state.session() as db:
        assert db.scalars(select(Change)).all() == []
    change_id = _open_change(app)
    approver = sign_in(app, "ap")
    review = approver.post(
        "/apps/shop/new/preview",
        data={"change_id": change_id, "csrf": csrf(approver)},
        headers=HTMX,
    )
    assert review.status_code == 200
    assert "<td>paid</td>" in review.text
    elsewhere = approver.post(
        "/apps/shop/new/preview",
        data={"change_id": "0" * 32, "csrf": csrf(approver)},
        headers=HTMX,
    )
    assert elsewhere.status_code == 404


def test_the_wizard_works_without_javascript(portal):
    app, _, _ = portal
    client = sign_in(app, "ed")
    token = csrf(client)
    # a kind chosen and a check added: the whole page again, with the new fields
    page = client.post(
        "/apps/shop/new/fields",
        data=wizard_form_data(source_kind="database", add_check="1") | {"csrf": token},
    )
    assert page.status_code == 200
    assert "<html" in page.text
    assert 'name="source.jdbcUrl"' in page.text
    assert 'name="check.2.kind"' in page.text
    assert '<noscript><button type="submit" name="add_check"' in page.text
    # preview posts the form and gets the page with the rows
    preview = client.post("/apps/shop/new/preview", data=wizard_form_data() | {"csrf": token})
    assert preview.status_code == 200
    assert "<html" in preview.text
    assert "<td>paid</td>" in preview.text
    # a check row removed with htmx: an empty fragment
    removed = client.post(
        "/apps/shop/new/fields",
        data={"section": "check", "index": "0", "check.0.kind": "", "csrf": token},
        headers=HTMX,
    )
    assert removed.status_code == 200
    assert removed.text == ""
    assert removed.headers["HX-Trigger-After-Settle"] == "revalidate"


def test_the_app_page_lists_open_changes_and_the_login_cookie_is_strict(portal):
    app, _, _ = portal
    change_id = _open_change(app, "<i>payments</i>")
    page = sign_in(app, "vi").get("/apps/shop").text
    assert f'href="/changes/{change_id}">&lt;i&gt;payments&lt;/i&gt;</a>' in page
    login = _client(app).get("/login")
    cookie = login.headers["set-cookie"].lower()
    assert "datahub_login_csrf=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_the_app_page_shows_each_pipelines_last_run(portal):
    from datahub_assets.runs.store import commit, ensure_table
    from datahub_resources.iceberg import load_catalog

    app, _, settings = portal
    table = ensure_table(load_catalog(settings.platform))
    started = datetime.now(UTC)
    rows = [
        {"run_id": "r1", "pipeline": "shop.ingest_orders", "app": "shop", "layer": "raw",
         "status": "failed", "started_at": started.replace(year=started.year - 1)},
        {"run_id": "r2", "pipeline": "shop.ingest_orders", "app": "shop", "layer": "raw",
         "status": "success", "started_at": started},
    ]  # fmt: skip
    commit(table, rows, cursor=1)
    page = sign_in(app, "vi").get("/apps/shop").text
    assert '<span class="status success">success</span>' in page
    assert "could not be read" not in page
