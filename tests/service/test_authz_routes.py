"""Every route × every role against an explicit table (contract section 2: deny by default,
invisible apps 404, 403 for a visible thing the role does not allow).

The walk checks the authorization decision, not the handlers: a refusal is the exact status
in EXPECTED (401 / 303 → /login / 403 / 404) with its audit row ("access", "denied"); an
allowed call is any answer that is not a refusal (the handler may still say 404 for a
missing thing or 422 for the empty body the walk sends). Roles on app `shop`, which has one
open change authored by `approver_author`; `other` is an app nobody but admin sees."""

from __future__ import annotations

import pytest
from starlette.routing import Mount

from datahub_assets.service.app import iter_routes
from datahub_assets.service.authz.rules import RULES
from tests.service.conftest import Hub

ROLES = (
    "anonymous",
    "nogrant",
    "viewer",
    "editor",
    "approver",
    "approver_author",
    "admin",
    "operator",
)
OK = "ok"


def _row(anonymous, nogrant, viewer, editor, approver, author, admin, operator) -> dict:
    values = (anonymous, nogrant, viewer, editor, approver, author, admin, operator)
    return dict(zip(ROLES, values, strict=True))


#                  anon nogrant viewer editor approver author admin operator
PUBLIC = _row(OK, OK, OK, OK, OK, OK, OK, OK)
API_USER = _row(401, OK, OK, OK, OK, OK, OK, OK)
API_VIEWER = _row(401, 404, OK, OK, OK, OK, OK, 404)
API_EDITOR = _row(401, 404, 403, OK, OK, OK, OK, 404)
API_APPROVE = _row(401, 404, 403, 403, OK, 403, OK, 404)
API_REJECT = _row(401, 404, 403, 403, OK, OK, OK, 404)
API_AUDITOR = _row(401, 403, 403, 403, OK, OK, OK, 403)
VERIFY = _row(401, 403, 403, 403, 403, 403, OK, OK)
PAGE_USER = _row(303, OK, OK, OK, OK, OK, OK, OK)
PAGE_VIEWER = _row(303, 404, OK, OK, OK, OK, OK, 404)
PAGE_EDITOR = _row(303, 404, 403, OK, OK, OK, OK, 404)
PAGE_APPROVE = _row(303, 404, 403, 403, OK, 403, OK, 404)
PAGE_REJECT = _row(303, 404, 403, 403, OK, OK, OK, 404)
PAGE_AUDITOR = _row(303, 403, 403, 403, OK, OK, OK, 403)

EXPECTED: dict[tuple[str, str], dict[str, object]] = {
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("POST", "/api/v1/auth/revoke"): API_USER,
    ("GET", "/api/v1/me"): API_USER,
    ("GET", "/api/v1/apps"): API_USER,
    ("GET", "/api/v1/apps/{app}/pipelines"): API_VIEWER,
    ("GET", "/api/v1/apps/{app}/pipelines/{pipeline_id}"): API_VIEWER,
    ("POST", "/api/v1/apps/{app}/validate"): API_EDITOR,
    ("POST", "/api/v1/apps/{app}/preview"): API_EDITOR,
    ("POST", "/api/v1/apps/{app}/revert"): API_EDITOR,
    ("GET", "/api/v1/apps/{app}/connections"): API_EDITOR,
    ("GET", "/api/v1/apps/{app}/connections/{name}/tables"): API_EDITOR,
    ("GET", "/api/v1/apps/{app}/connections/{name}/schema"): API_EDITOR,
    ("GET", "/api/v1/apps/{app}/landing"): API_EDITOR,
    ("GET", "/api/v1/apps/{app}/landing/header"): API_EDITOR,
    ("POST", "/api/v1/changes"): API_EDITOR,
    ("GET", "/api/v1/changes"): API_USER,
    ("GET", "/api/v1/changes/{change_id}"): API_VIEWER,
    ("POST", "/api/v1/changes/{change_id}/preview"): API_EDITOR,
    ("POST", "/api/v1/changes/{change_id}/approve"): API_APPROVE,
    ("POST", "/api/v1/changes/{change_id}/reject"): API_REJECT,
    ("GET", "/api/v1/audit"): API_AUDITOR,
    ("GET", "/auth/verify"): VERIFY,
    ("GET", "/auth/oidc/login"): PUBLIC,
    ("GET", "/auth/oidc/callback"): PUBLIC,
    ("GET", "/"): PAGE_USER,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PAGE_USER,
    ("GET", "/apps"): PAGE_USER,
    ("GET", "/apps/{app}"): PAGE_VIEWER,
    ("GET", "/apps/{app}/pipelines/{pipeline_id}"): PAGE_VIEWER,
    ("GET", "/apps/{app}/new"): PAGE_EDITOR,
    ("POST", "/apps/{app}/new/fields"): PAGE_EDITOR,
    ("POST", "/apps/{app}/new/validate"): PAGE_EDITOR,
    ("POST", "/apps/{app}/new/preview"): PAGE_EDITOR,
    ("POST", "/apps/{app}/new/submit"): PAGE_EDITOR,
    ("GET", "/changes/{change_id}"): PAGE_VIEWER,
    ("POST", "/changes/{change_id}/approve"): PAGE_APPROVE,
    ("POST", "/changes/{change_id}/reject"): PAGE_REJECT,
    ("GET", "/audit"): PAGE_AUDITOR,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}

# the order the walk calls them: state-changing calls on the change last (an approval merges)
LAST = ("/api/v1/changes/{change_id}/approve", "/changes/{change_id}/approve")


def app_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in iter_routes(app=app):
        if isinstance(route, Mount):
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_every_route_has_a_rule_and_a_row(hub: Hub):
    routes = app_routes(hub.app)
    assert sorted(routes - RULES.keys()) == [], "routes without a rule in authz/rules.py"
    assert sorted(routes - EXPECTED.keys()) == [], "routes without a row in EXPECTED"
    assert sorted(RULES.keys() - routes) == [], "rules of routes the app does not serve"
    assert sorted(EXPECTED.keys() - routes) == [], "EXPECTED rows of routes not served"


def test_a_route_without_a_rule_answers_500(hub: Hub):
    @hub.app.get("/api/v1/unruled")
    def unruled() -> dict:
        return {"reached": True}

    hub.add_user("admin", admin=True)
    answer = hub.client().get("/api/v1/unruled", headers=hub.bearer("admin"))
    assert answer.status_code == 500
    assert "no authorization rule" in answer.json()["detail"]


@pytest.fixture
def walk(hub: Hub):
    hub.add_user("nogrant")
    hub.add_user("viewer", grants={"shop": "viewer"})
    hub.add_user("editor", grants={"shop": "editor"})
    hub.add_user("approver", grants={"shop": "approver"})
    hub.add_user("approver_author", grants={"shop": "approver"})
    hub.add_user("admin", admin=True)
    hub.add_user("operator", operator=True)
    change = hub.add_change("shop", "approver_author")
    return hub, change


def _url(path: str, change: str) -> str:
    return (
        path.replace("{app}", "shop")
        .replace("{pipeline_id}", "ingest_orders")
        .replace("{change_id}", change)
        .replace("{name}", "warehouse")
    )


def _call(hub: Hub, role: str, method: str, path: str, change: str):
    url = _url(path, change)
    kw: dict = {}
    if path == "/api/v1/changes" and method == "POST":
        kw["json"] = {"app": "shop", "title": "t", "files": []}
    if role == "anonymous":
        return hub.client().request(method, url, **kw)
    if path.startswith("/api/"):
        return hub.client().request(method, url, headers=hub.bearer(role), **kw)
    client, csrf = hub.browser(role)
    return client.request(method, url, headers={"X-CSRF-Token": csrf}, **kw)


def _refused(answer, denied_rows: int) -> bool:
    to_login = answer.status_code == 303 and answer.headers.get("location", "").startswith(
        "/login?next="
    )
    return denied_rows > 0 or to_login or answer.status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_every_route_answers_each_role_as_the_table_says(walk, role):
    hub, change = walk
    wrong = []
    keys = sorted(EXPECTED, key=lambda k: (k[1] in LAST, k))
    for method, path in keys:
        expected = EXPECTED[(method, path)][role]
        before = len(hub.events("access"))
        answer = _call(hub, role, method, path, change)
        denied = [e for e in hub.events("access")[before:] if e.outcome == "denied"]
        refused = _refused(answer, len(denied))
        if expected == OK and refused:
            wrong.append(f"{method} {path}: refused {answer.status_code}, expected allowed")
        elif expected != OK and (not refused or answer.status_code != expected):
            wrong.append(f"{method} {path}: {answer.status_code}, expected refusal {expected}")
        elif expected != OK and role != "anonymous" and not denied:
            wrong.append(f"{method} {path}: refusal {expected} not audited")
    assert wrong == [], f"{role}:\n" + "\n".join(wrong)


def test_invisible_and_missing_apps_answer_alike(walk):
    hub, _ = walk
    client = hub.client()
    for app in ("other", "no-such-app"):
        answer = client.get(f"/api/v1/apps/{app}/pipelines", headers=hub.bearer("editor"))
        assert answer.status_code == 404
        assert answer.json() == {"detail": f"app {app!r} not found"}
        refusal = hub.events("access")[-1]
        assert (refusal.actor, refusal.app, refusal.outcome) == ("editor", app, "denied")


def test_a_change_of_an_invisible_app_is_404_like_an_unknown_one(walk):
    hub, _ = walk
    hidden = hub.add_change("other", "admin")
    client = hub.client()
    seen = client.get(f"/api/v1/changes/{hidden}", headers=hub.bearer("editor"))
    unknown = client.get("/api/v1/changes/nosuchchange", headers=hub.bearer("editor"))
    assert seen.status_code == unknown.status_code == 404


def test_python_files_need_admin_to_change_and_to_approve(walk):
    hub, _ = walk
    client = hub.client()
    body = {
        "app": "shop",
        "title": "code",
        "files": [{"path": "python/features.py", "content": "x = 1\n"}],
    }
    for sneaky in ("python/features.py", "./python/features.py", "raw/../python/f.py"):
        body["files"][0]["path"] = sneaky
        answer = client.post("/api/v1/changes", json=body, headers=hub.bearer("editor"))
        assert answer.status_code == 403, sneaky
    python_change = hub.add_change(
        "shop", "editor", files=[{"path": "python/features.py", "content": "x = 1\n"}]
    )
    answer = client.post(f"/api/v1/changes/{python_change}/approve", headers=hub.bearer("approver"))
    assert answer.status_code == 403
    assert "python/" in answer.json()["detail"]
    denied = [e for e in hub.events("access") if e.outcome == "denied"]
    assert len(denied) == 4


def test_a_body_without_app_is_422(walk):
    hub, _ = walk
    client = hub.client()
    answer = client.post("/api/v1/changes", json={"title": "t"}, headers=hub.bearer("editor"))
    assert answer.status_code == 422
    answer = client.post(
        "/api/v1/changes",
        content=b"not json",
        headers={**hub.bearer("editor"), "content-type": "application/json"},
    )
    assert answer.status_code == 422
