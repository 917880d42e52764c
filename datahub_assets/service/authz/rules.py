"""The route table: one explicit Rule for every (method, path template) the service answers.

`authz.decide.authorize` looks the matched route up here; a route without a rule answers 500
(and tests/service/test_authz_routes.py fails). Deny by default: `who` says who may call at
all, `app_from` where the app of an app-scoped call comes from, `min_role` the least role on
that app.

who:
    public    anyone, signed in or not
    user      any signed-in user
    admin     platform admins
    operator  platform operators (and admins): the Dagster UI
    app       a role of at least `min_role` on the call's app (invisible app: 404)
    auditor   admins (everything) and approvers (their apps; the handler filters)
app_from:
    path      the `{app}` path parameter
    body      the `app` field of the JSON body
    query     the `app` query parameter
    change    the app of the `{change_id}` change (unknown: 404)
not_author:  the change's author is refused (403): nobody approves their own change
python_admin: a change touching an app's python/ files needs admin (403)
"""

from __future__ import annotations

from dataclasses import dataclass

from datahub_assets.service.authz.roles import Role

WHO = ("public", "user", "admin", "operator", "app", "auditor")
APP_FROM = ("path", "body", "query", "change")


@dataclass(frozen=True)
class Rule:
    who: str
    app_from: str | None = None
    min_role: Role | None = None
    not_author: bool = False
    python_admin: bool = False

    def __post_init__(self) -> None:
        if self.who not in WHO:
            raise ValueError(f"Rule.who={self.who!r} is not one of {WHO}")
        if (self.who == "app") != (self.app_from is not None and self.min_role is not None):
            raise ValueError("an app rule needs app_from and min_role (and only an app rule)")
        if self.app_from is not None and self.app_from not in APP_FROM:
            raise ValueError(f"Rule.app_from={self.app_from!r} is not one of {APP_FROM}")


PUBLIC = Rule("public")
USER = Rule("user")
AUDITOR = Rule("auditor")
OPERATOR = Rule("operator")


def _app(app_from: str, role: Role, **kw: bool) -> Rule:
    return Rule("app", app_from, role, **kw)


VIEWER_PATH = _app("path", Role.viewer)
EDITOR_PATH = _app("path", Role.editor)
VIEWER_CHANGE = _app("change", Role.viewer)
EDITOR_CHANGE = _app("change", Role.editor)
APPROVE_CHANGE = _app("change", Role.approver, not_author=True, python_admin=True)
REJECT_CHANGE = _app("change", Role.approver)

RULES: dict[tuple[str, str], Rule] = {
    # --- API (Bearer) ---------------------------------------------------------------------
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("POST", "/api/v1/auth/revoke"): USER,
    ("GET", "/api/v1/me"): USER,
    ("GET", "/api/v1/apps"): USER,
    ("GET", "/api/v1/apps/{app}/pipelines"): VIEWER_PATH,
    ("GET", "/api/v1/apps/{app}/pipelines/{pipeline_id}"): VIEWER_PATH,
    ("POST", "/api/v1/apps/{app}/validate"): EDITOR_PATH,
    ("POST", "/api/v1/apps/{app}/preview"): EDITOR_PATH,
    ("POST", "/api/v1/apps/{app}/revert"): EDITOR_PATH,
    ("GET", "/api/v1/apps/{app}/connections"): EDITOR_PATH,
    ("GET", "/api/v1/apps/{app}/connections/{name}/tables"): EDITOR_PATH,
    ("GET", "/api/v1/apps/{app}/connections/{name}/schema"): EDITOR_PATH,
    ("GET", "/api/v1/apps/{app}/landing"): EDITOR_PATH,
    ("GET", "/api/v1/apps/{app}/landing/header"): EDITOR_PATH,
    ("POST", "/api/v1/changes"): _app("body", Role.editor, python_admin=True),
    ("GET", "/api/v1/changes"): USER,
    ("GET", "/api/v1/changes/{change_id}"): VIEWER_CHANGE,
    ("POST", "/api/v1/changes/{change_id}/preview"): EDITOR_CHANGE,
    ("POST", "/api/v1/changes/{change_id}/approve"): APPROVE_CHANGE,
    ("POST", "/api/v1/changes/{change_id}/reject"): REJECT_CHANGE,
    ("GET", "/api/v1/audit"): AUDITOR,
    # --- session cookie -------------------------------------------------------------------
    ("GET", "/auth/verify"): OPERATOR,
    ("GET", "/auth/oidc/login"): PUBLIC,
    ("GET", "/auth/oidc/callback"): PUBLIC,
    # --- pages ----------------------------------------------------------------------------
    ("GET", "/"): USER,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): USER,
    ("GET", "/apps"): USER,
    ("GET", "/apps/{app}"): VIEWER_PATH,
    ("GET", "/apps/{app}/pipelines/{pipeline_id}"): VIEWER_PATH,
    ("GET", "/apps/{app}/new"): EDITOR_PATH,
    ("POST", "/apps/{app}/new/fields"): EDITOR_PATH,
    ("POST", "/apps/{app}/new/validate"): EDITOR_PATH,
    ("POST", "/apps/{app}/new/preview"): EDITOR_PATH,
    ("POST", "/apps/{app}/new/submit"): EDITOR_PATH,
    ("GET", "/changes/{change_id}"): VIEWER_CHANGE,
    ("POST", "/changes/{change_id}/approve"): APPROVE_CHANGE,
    ("POST", "/changes/{change_id}/reject"): REJECT_CHANGE,
    ("GET", "/audit"): AUDITOR,
    # --- FastAPI's own documentation (Starlette routes: no dependency runs on them) --------
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}

API_PREFIX = "/api/"
COOKIE_API_PATHS = frozenset({"/auth/verify"})
"""Non-page paths authenticated by the session cookie (answer 401/403, never a redirect)."""
LOGIN_PATHS = frozenset({"/login"})
"""Public page forms with their own CSRF protection (double-submit cookie): not session-CSRF
checked."""


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get((method.upper(), path))
