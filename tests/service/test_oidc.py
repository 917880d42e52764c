"""OpenID Connect sign-in against an identity provider started in the test.

The provider is a small real HTTP server (Starlette under uvicorn on a free loopback port, in
a thread) whose keys and tokens are made with authlib's JOSE library (joserfc): discovery,
an authorize endpoint that redirects back with a code, a token endpoint that checks the
client's credentials and the PKCE verifier, and the JWKS. The service runs in FastAPI's
TestClient; the browser's hops to the provider are real HTTP requests.

A full login maps the groups claim to grants (and the operator flag: /auth/verify answers
204), a second login with other groups removes what the provider no longer gives and keeps a
grant on an app the mapping does not name. A wrong nonce, state, signature, audience, an
expired id_token, one signed with HMAC (the client secret), a provider error, a local user of
the same name and a callback without its cookie are refused and audited, and create no user
and no session."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from datahub_assets.demo.local_servers import free_port

CLIENT_ID = "datahub-portal"
CLIENT_SECRET = "idp-client-secret-value"
MAPPING = "shop-team:shop:editor,shop-leads:shop:approver,crm-readers:crm:viewer:pii,ops:*:operator"


@dataclass
class Provider:
    """The identity provider: who signs in next (`claims`), and what to spoil (`spoil`)."""

    issuer: str = ""
    key: Any = None
    other_key: Any = None
    claims: dict[str, Any] = field(default_factory=dict)
    spoil: set[str] = field(default_factory=set)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )

    async def discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["client_id"] == CLIENT_ID
        assert q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256"
        assert q["code_challenge"]
        assert "openid" in q["scope"].split()
        if "error" in self.spoil:
            return RedirectResponse(
                f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', 'state': q['state']})}",
                302,
            )
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }
        state = "another-state" if "state" in self.spoil else q["state"]
        return RedirectResponse(
            f"{q['redirect_uri']}?{urlencode({'code': code, 'state': state})}", 302
        )

    async def token(self, request: Request) -> Response:
        form = await request.form()
        self.token_requests.append({k: str(v) for k, v in form.items()})
        basic = base64.b64decode(request.headers["authorization"].split()[1]).decode()
        if basic != f"{CLIENT_ID}:{CLIENT_SECRET}":
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or challenge.rstrip(b"=").decode() != grant["challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant["nonce"]),
            }
        )

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": "someone-else" if "aud" in self.spoil else CLIENT_ID,
            "iat": now - (7200 if "exp" in self.spoil else 0),
            "exp": now - 3600 if "exp" in self.spoil else now + 300,
            "nonce": "a-replayed-nonce" if "nonce" in self.spoil else nonce,
            **self.claims,
        }
        if "hs256" in self.spoil:  # "signed" with the client secret everyone configured
            return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET))
        key = self.other_key if "signature" in self.spoil else self.key
        return jwt.encode({"alg": "RS256", "kid": "idp-1"}, claims, key)


@pytest.fixture(scope="module")
def provider():
    """The identity provider, serving on a free port for the module's tests."""
    port = free_port()
    idp = Provider(
        issuer=f"http://127.0.0.1:{port}",
        key=RSAKey.generate_key(2048, {"kid": "idp-1", "use": "sig", "alg": "RS256"}),
        # the same kid with another key: a token "signed by the provider" that is not
        other_key=RSAKey.generate_key(2048, {"kid": "idp-1", "use": "sig", "alg": "RS256"}),
    )
    server = uvicorn.Server(
        uvicorn.Config(idp.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive(), "the provider's server stopped"
        assert time.time() < deadline, "the provider did not start in 30 s"
        time.sleep(0.05)
    yield idp
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def service(tmp_path, provider):
    from fastapi.testclient import TestClient

    from datahub_assets.service.app import create_app
    from datahub_assets.service.auth import oidc
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import migrate

    provider.spoil = set()
    provider.claims = {}
    oidc.clear_cache()
    env = {
        "DATAHUB_HOME": str(tmp_path / "home"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "DATAHUB_STATE_URI": f"sqlite:///{tmp_path / 'hub.db'}",
        "DATAHUB_SERVICE_SECRET": "x" * 40,
        "DATAHUB_OIDC_ISSUER": provider.issuer,
        "DATAHUB_OIDC_CLIENT_ID": CLIENT_ID,
        "DATAHUB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "DATAHUB_OIDC_GROUP_GRANTS": MAPPING,
    }
    (tmp_path / "pipelines").mkdir()
    settings = ServiceSettings.from_env(env)
    migrate(settings.state_uri)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, app


def _sign_in(client, next_path: str = "/apps/shop"):
    """The browser's round trip: service → provider → service callback."""
    start = client.get("/auth/oidc/login", params={"next": next_path}, follow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False, timeout=30)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/auth/oidc/callback"
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def _db(app):
    return app.state.state.session()


def _user(app, name: str) -> dict[str, Any]:
    from datahub_assets.service.state.models import User

    with _db(app) as db:
        user = db.scalar(select(User).where(User.username == name))
        if user is None:
            return {}
        return {
            "source": user.source,
            "password_hash": user.password_hash,
            "operator": user.operator,
            "admin": user.admin,
            "grants": {g.app: (g.role, g.pii) for g in user.grants},
        }


def _count(app, model) -> int:
    with _db(app) as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def _logins(app) -> list[tuple[str, str, str]]:
    from datahub_assets.service.state.models import AuditEvent

    with _db(app) as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "login")).all()
        return [(r.actor, r.outcome, r.detail or "") for r in rows]


def test_a_login_maps_groups_to_grants_and_the_next_login_follows_the_groups(service, provider):
    from datahub_assets.service.state.models import Grant, User, WebSession

    client, app = service
    provider.claims = {
        "sub": "u-1001",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "groups": ["shop-team", "shop-leads", "crm-readers", "ops", "unrelated"],
    }
    answer = _sign_in(client, "/apps/shop")
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == "/apps/shop"
    cookie = answer.cookies.get("datahub_session")
    assert cookie
    set_cookie = answer.headers.get_list("set-cookie")
    session_cookie = next(c for c in set_cookie if c.startswith("datahub_session="))
    assert "HttpOnly" in session_cookie
    assert "samesite=lax" in session_cookie.lower()
    alice = _user(app, "alice")
    assert alice == {
        "source": f"oidc:{provider.issuer}",
        "password_hash": None,
        "operator": True,
        "admin": False,
        "grants": {"shop": ("approver", False), "crm": ("viewer", True)},
    }
    assert _count(app, WebSession) == 1
    # the PKCE verifier reached the token endpoint, the client secret only in the header
    last = provider.token_requests[-1]
    assert last["code_verifier"]
    assert "client_secret" not in last
    assert _logins(app)[-1][:2] == ("alice", "ok")

    # the session is a real one: the proxy's check lets the operator through
    assert client.get("/auth/verify").status_code == 204

    # an administrator's grant on an app the mapping does not name stays; the next login
    # takes away what the provider no longer gives
    with _db(app) as db:
        user = db.scalar(select(User).where(User.username == "alice"))
        assert user is not None
        db.add(Grant(user_id=user.id, app="sandbox", role="editor", pii=False))
    provider.claims["groups"] = ["shop-team"]
    client.cookies.clear()
    assert _sign_in(client).status_code == 302
    assert _user(app, "alice")["grants"] == {
        "shop": ("editor", False),
        "sandbox": ("editor", False),
    }
    assert _user(app, "alice")["operator"] is False
    assert _count(app, User) == 1
    from datahub_assets.service.state.models import AuditEvent

    with _db(app) as db:
        actions = [
            (e.action, e.target)
            for e in db.scalars(select(AuditEvent).where(AuditEvent.actor == "alice")).all()
        ]
    assert ("user.add", "alice") in actions
    assert ("user.revoke", "alice crm") in actions
    assert ("user.flag", "alice operator=false") in actions


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("nonce", "nonce"),
        ("state", "state"),
        ("signature", "signature"),
        ("hs256", "signature"),
        ("aud", "aud"),
        ("exp", "expired"),
        ("error", "access_denied"),
    ],
)
def test_a_bad_answer_is_refused_audited_and_writes_nothing(service, provider, spoil, reason):
    from datahub_assets.service.state.models import User, WebSession

    client, app = service
    provider.claims = {"sub": "u-2", "preferred_username": "mallory", "groups": ["ops"]}
    provider.spoil = {spoil}
    answer = _sign_in(client)
    assert answer.status_code == 401, answer.text
    assert reason in answer.text.lower()
    assert "datahub_session" not in answer.cookies
    assert _count(app, User) == 0
    assert _count(app, WebSession) == 0
    ((actor, outcome, detail),) = _logins(app)
    assert outcome == "denied"
    assert actor == f"oidc:{provider.issuer}"
    assert reason in detail.lower()
    assert CLIENT_SECRET not in detail


def test_a_local_user_of_the_same_name_is_not_taken_over(service, provider):
    from datahub_assets.service.state.db import utcnow
    from datahub_assets.service.state.models import User, WebSession

    client, app = service
    with _db(app) as db:
        db.add(User(username="root", password_hash="x", admin=True, created_at=utcnow()))
    provider.claims = {"sub": "u-3", "preferred_username": "root", "groups": ["ops"]}
    answer = _sign_in(client)
    assert answer.status_code == 401
    assert _user(app, "root")["source"] == "local"
    assert _count(app, WebSession) == 0
    assert _logins(app)[-1][:2] == ("root", "denied")


def test_a_callback_without_its_cookie_or_to_elsewhere_is_refused(service, provider):
    from datahub_assets.service.state.models import User

    client, app = service
    provider.claims = {"sub": "u-4", "preferred_username": "bob", "groups": []}
    start = client.get(
        "/auth/oidc/login", params={"next": "//evil.example/x"}, follow_redirects=False
    )
    at_provider = httpx.get(start.headers["location"], follow_redirects=False, timeout=30)
    back = urlsplit(at_provider.headers["location"])
    # another browser (no transaction cookie) replays the provider's answer
    client.cookies.clear()
    refused = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert refused.status_code == 401
    assert _count(app, User) == 0
    # `next` off this site is replaced by "/"
    ok = _sign_in(client, "https://evil.example/")
    assert ok.status_code == 302
    assert ok.headers["location"] == "/"
    assert parse_qs(urlsplit(start.headers["location"]).query)["code_challenge_method"] == ["S256"]


def test_the_sign_in_page_offers_the_provider(service):
    client, _ = service
    page = client.get("/login", params={"next": "/apps/shop"})
    assert page.status_code == 200
    assert 'href="/auth/oidc/login?next=/apps/shop"' in page.text


def test_without_a_provider_the_routes_answer_404(tmp_path):
    from fastapi.testclient import TestClient

    from datahub_assets.service.app import create_app
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import migrate

    (tmp_path / "pipelines").mkdir()
    settings = ServiceSettings.from_env(
        {
            "DATAHUB_HOME": str(tmp_path / "home"),
            "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
            "DATAHUB_STATE_URI": f"sqlite:///{tmp_path / 'hub.db'}",
            "DATAHUB_SERVICE_SECRET": "y" * 40,
        }
    )
    migrate(settings.state_uri)
    with TestClient(create_app(settings)) as client:
        assert client.get("/auth/oidc/login", follow_redirects=False).status_code == 404
        assert client.get("/auth/oidc/callback?code=x&state=y").status_code == 404
        assert "/auth/oidc/login" not in client.get("/login").text


def test_the_mapping_takes_the_highest_role_and_only_speaks_for_what_it_names():
    from datahub_assets.service.auth.oidc import entitlements, safe_next
    from datahub_assets.service.settings import parse_group_grants

    mapping = parse_group_grants(MAPPING)
    got = entitlements(["shop-team", "shop-leads"], mapping)
    assert dict(got.roles) == {"shop": ("approver", False)}
    assert got.managed_apps == {"shop", "crm"}
    assert (got.operator, got.admin) == (False, None)
    assert entitlements(["ops"], mapping).operator is True
    for bad in ("//evil", "/\\evil", "https://x", "javascript:alert(1)", "", None, "/a\r\nb"):
        assert safe_next(bad) == "/"
    assert safe_next("/runs?x=1") == "/runs?x=1"
