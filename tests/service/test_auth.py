"""Authentication (contract section 2): argon2 passwords, access and API tokens (expired,
revoked, forged, of a deleted user), the sign-in rate limit, the session cookie and CSRF."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from datahub_assets.service.auth import passwords, tokens
from datahub_assets.service.auth.login import RateLimited, login
from datahub_assets.service.auth.sessions import COOKIE
from datahub_assets.service.state.db import utcnow
from datahub_assets.service.state.models import Change, LoginFailure, User, WebSession
from tests.service.conftest import PASSWORD, Hub

# --- passwords -------------------------------------------------------------------------------


def test_argon2id_hash_verifies_only_the_password():
    digest = passwords.hash_password(PASSWORD)
    assert digest.startswith("$argon2id$")
    assert passwords.verify(digest, PASSWORD)
    assert not passwords.verify(digest, PASSWORD + "x")
    assert not passwords.verify(None, PASSWORD)
    assert not passwords.verify("not a hash", PASSWORD)


def test_short_passwords_are_refused_with_the_minimum():
    with pytest.raises(passwords.WeakPassword, match="at least 12"):
        passwords.hash_password("short")


def test_sign_in_rehashes_when_the_parameters_changed(hub: Hub):
    hub.add_user("ann", password=None)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with hub.state.session() as db:
        db.scalar(select(User).where(User.username == "ann")).password_hash = weak  # type: ignore[union-attr]
    with hub.state.session() as db:
        assert login(db, "ann", PASSWORD, "127.0.0.1") is not None
    stored = hub.user("ann").password_hash
    assert stored != weak
    assert stored is not None
    assert not passwords.needs_rehash(stored)
    assert passwords.verify(stored, PASSWORD)


def test_an_unknown_user_costs_a_password_check_too(hub: Hub):
    hub.add_user("ann")

    def elapsed(name: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            with hub.state.session() as db:
                assert login(db, name, "wrong password!", f"10.0.0.{len(name)}") is None
        return time.perf_counter() - start

    known, unknown = elapsed("ann"), elapsed("nobody-at-all")
    assert unknown > 0.5 * known, (known, unknown)


# --- access tokens ---------------------------------------------------------------------------


def _me(hub: Hub, token: str) -> int:
    return hub.client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_token_endpoint_signs_in_and_audits(hub: Hub):
    hub.add_user("ann", grants={"shop": "editor"})
    client = hub.client()
    answer = client.post("/api/v1/auth/token", data={"username": "ann", "password": PASSWORD})
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "username": "ann",
        "admin": False,
        "operator": False,
        "grants": [{"app": "shop", "role": "editor", "pii": False}],
    }
    wrong = client.post("/api/v1/auth/token", data={"username": "ann", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "wrong user name or password"}
    logins = [(e.actor, e.outcome) for e in hub.events("login")]
    assert logins == [("ann", "ok"), ("ann", "denied")]
    assert all(PASSWORD not in (e.detail or "") for e in hub.events())


def test_an_expired_access_token_is_401(hub: Hub):
    hub.add_user("ann")
    assert _me(hub, hub.access_token("ann", ttl_s=-5)) == 401
    assert _me(hub, hub.access_token("ann")) == 200


def test_a_revoked_access_token_is_401(hub: Hub):
    hub.add_user("ann")
    token = hub.access_token("ann")
    headers = {"Authorization": f"Bearer {token}"}
    assert hub.client().post("/api/v1/auth/revoke", headers=headers).status_code == 200
    assert _me(hub, token) == 401
    assert [e.outcome for e in hub.events("token.revoke")] == ["ok"]


def _claims(hub: Hub, name: str) -> dict:
    token = hub.access_token(name)
    return jwt.decode(token, options={"verify_signature": False})


def _hs256(claims: dict, key: bytes) -> str:
    """A token HMAC-signed with `key` by hand (pyjwt refuses a PEM key as an HMAC secret)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def test_forged_access_tokens_are_401(hub: Hub):
    hub.add_user("ann")
    claims = _claims(hub, "ann")
    claims["sub"] = "ann"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = {
        "wrong key": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),  # pyright: ignore[reportArgumentType]
        "RS256": jwt.encode(claims, private, algorithm="RS256"),
        "HS256 keyed with a public key": _hs256(claims, public_pem),
        "other audience": jwt.encode(
            {**claims, "aud": "other"}, hub.settings.secret_key, algorithm="HS256"
        ),
        "not an access token": jwt.encode(
            {**claims, "typ": "refresh"}, hub.settings.secret_key, algorithm="HS256"
        ),
        "no expiry": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"},
            hub.settings.secret_key,
            algorithm="HS256",
        ),
        "garbage": "not.a.token",
    }
    assert {what: _me(hub, token) for what, token in forged.items()} == dict.fromkeys(forged, 401)
    denied = [e for e in hub.events("access") if e.outcome == "denied"]
    assert len(denied) == len(forged)
    assert all(t not in (e.detail or "") for e in denied for t in forged.values())


def test_an_escalated_claim_does_not_survive_the_signature(hub: Hub):
    hub.add_user("ann")
    hub.add_user("root", admin=True)
    claims = _claims(hub, "ann")
    forged = jwt.encode({**claims, "sub": "root"}, "guess" * 8, algorithm="HS256")
    assert _me(hub, forged) == 401


def test_tokens_of_a_deleted_user_are_401(hub: Hub):
    hub.add_user("ann")
    access = hub.access_token("ann")
    api, _ = hub.api_token("ann")
    with hub.state.session() as db:
        db.delete(db.scalar(select(User).where(User.username == "ann")))
    assert _me(hub, access) == 401
    assert _me(hub, api) == 401
    hub.add_user("ann")  # a new user of the same name does not inherit the old tokens
    assert _me(hub, access) == 401


def test_a_password_change_ends_older_access_tokens(hub: Hub):
    hub.add_user("ann")
    before = hub.access_token("ann")
    with hub.state.session() as db:
        user = db.scalar(select(User).where(User.username == "ann"))
        user.password_hash = passwords.hash_password("another long password")  # type: ignore[union-attr]
    assert _me(hub, before) == 401
    assert _me(hub, hub.access_token("ann")) == 200


# --- API tokens ------------------------------------------------------------------------------


def test_api_tokens_are_stored_hashed_and_expire(hub: Hub):
    hub.add_user("ann")
    text, key_id = hub.api_token("ann")
    assert text.startswith(f"dh_{key_id}_")
    assert _me(hub, text) == 200
    with hub.state.session() as db:
        row = db.scalar(select(tokens.ApiToken).where(tokens.ApiToken.key_id == key_id))
        assert row is not None
        assert text.split("_", 2)[2] not in row.secret_hash
    expired, _ = hub.api_token("ann", expires=timedelta(minutes=1))
    with hub.state.session() as db:
        row = db.scalar(select(tokens.ApiToken).where(tokens.ApiToken.key_id == expired[3:19]))
        row.expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    assert _me(hub, expired) == 401
    assert _me(hub, text[:-2] + "xx") == 401  # wrong secret
    assert _me(hub, "dh_nosuchkey_secret") == 401
    assert _me(hub, "dh_") == 401


def test_an_api_token_revoked_by_its_owner_is_401(hub: Hub):
    hub.add_user("ann")
    hub.add_user("bob")
    text, key_id = hub.api_token("ann")
    client = hub.client()
    # another user cannot revoke it (nor learn that it exists)
    answer = client.post(
        "/api/v1/auth/revoke", json={"token_id": key_id}, headers=hub.bearer("bob")
    )
    assert answer.status_code == 404
    assert _me(hub, text) == 200
    answer = client.post(
        "/api/v1/auth/revoke", json={"token_id": key_id}, headers=hub.bearer("ann")
    )
    assert answer.status_code == 200
    assert _me(hub, text) == 401


# --- rate limit ------------------------------------------------------------------------------


def test_five_failures_for_a_user_name_answer_429(hub: Hub):
    hub.add_user("ann")
    client = hub.client()
    form = {"username": "ann", "password": "wrong password"}
    codes = [client.post("/api/v1/auth/token", data=form).status_code for _ in range(5)]
    assert codes == [401] * 5
    limited = client.post("/api/v1/auth/token", data={"username": "ann", "password": PASSWORD})
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 900
    last = hub.events("login")[-1]
    assert (last.actor, last.outcome) == ("ann", "denied")
    assert "rate limited" in (last.detail or "")
    # the window passes: the right password works again and clears the failures
    with hub.state.session() as db:
        for row in db.scalars(select(LoginFailure)):
            row.time = utcnow() - timedelta(minutes=16)
    ok = client.post("/api/v1/auth/token", data={"username": "ann", "password": PASSWORD})
    assert ok.status_code == 200
    with hub.state.session() as db:
        assert db.scalars(select(LoginFailure).where(LoginFailure.username == "ann")).all() == []


def test_twenty_failures_from_one_client_answer_429(hub: Hub):
    with hub.state.session() as db:
        for i in range(20):
            assert login(db, f"user{i}", "wrong password", "10.1.1.1") is None
    with hub.state.session() as db, pytest.raises(RateLimited):
        login(db, "someone-else", "wrong password", "10.1.1.1")
    with hub.state.session() as db:  # another client is not limited
        assert login(db, "someone-else", "wrong password", "10.1.1.2") is None


# --- sessions, the cookie and CSRF -----------------------------------------------------------


def test_the_session_cookie_is_not_accepted_by_the_api(hub: Hub):
    hub.add_user("ann", admin=True)
    client, _ = hub.browser("ann")
    answer = client.get("/api/v1/me")
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["detail"]


def test_pages_without_a_session_redirect_to_sign_in(hub: Hub):
    answer = hub.client().get("/apps?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fapps%3Fx%3D1"


def test_expired_and_revoked_sessions_are_signed_out(hub: Hub):
    hub.add_user("ann", operator=True)
    cookie, _ = hub.session("ann")
    client = hub.client(cookies={COOKIE: cookie})
    assert client.get("/auth/verify").status_code == 204
    with hub.state.session() as db:
        db.get(WebSession, cookie).expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    assert client.get("/auth/verify").status_code == 401
    cookie, _ = hub.session("ann")
    with hub.state.session() as db:
        db.get(WebSession, cookie).revoked_at = utcnow()  # type: ignore[union-attr]
    assert hub.client(cookies={COOKIE: cookie}).get("/auth/verify").status_code == 401


def test_verify_answers_nginx(hub: Hub):
    hub.add_user("op", operator=True)
    hub.add_user("ed", grants={"shop": "editor"})
    assert hub.client().get("/auth/verify").status_code == 401
    assert hub.browser("ed")[0].get("/auth/verify").status_code == 403
    answer = hub.browser("op")[0].get("/auth/verify")
    assert answer.status_code == 204
    assert answer.headers["x-datahub-user"] == "op"


def test_a_page_post_without_the_right_csrf_token_is_403(hub: Hub):
    hub.add_user("ann")
    client, csrf = hub.browser("ann")
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    reasons = [e.detail for e in hub.events("access")]
    assert len(reasons) == 3
    assert all('"csrf"' in (r or "") for r in reasons)
    with hub.state.session() as db:  # still signed in: nothing happened
        assert db.scalars(select(WebSession).where(WebSession.revoked_at.is_not(None))).all() == []
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303


# --- the answers themselves ------------------------------------------------------------------


def test_security_headers_on_every_answer(hub: Hub):
    client = hub.client()
    for answer in (
        client.get("/api/v1/health"),
        client.get("/api/v1/me"),
        client.get("/apps"),
        client.post("/api/v1/changes", content=b"x" * (6 << 20)),
    ):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert client.get("/api/v1/health").json() == {"status": "ok"}


def test_a_body_over_the_limit_is_413_and_writes_nothing(hub: Hub):
    hub.add_user("ed", grants={"shop": "editor"})
    big = {
        "app": "shop",
        "title": "big",
        "files": [{"path": "raw/a.xml", "content": "x" * (6 << 20)}],
    }
    client = hub.client()
    answer = client.post("/api/v1/changes", json=big, headers=hub.bearer("ed"))
    assert answer.status_code == 413
    assert "larger than" in answer.json()["detail"]

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(7):
            yield b"x" * (1 << 20)

    streamed = client.post(
        "/api/v1/changes",
        content=chunks(),
        headers={**hub.bearer("ed"), "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    with hub.state.session() as db:
        assert db.scalars(select(Change)).all() == []


def test_a_browser_gets_refusals_of_pages_as_html_and_scripts_as_json(hub: Hub):
    hub.add_user("ed", grants={"shop": "editor"})
    client, _ = hub.browser("ed")
    page = client.get("/apps/other", headers={"accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "app &#x27;other&#x27; not found" in page.text
    assert client.get("/apps/other").json() == {"detail": "app 'other' not found"}
    api = hub.client().get("/api/v1/me", headers={"accept": "text/html"})
    assert api.json() == {"detail": "missing Authorization: Bearer token"}


def test_an_internal_error_is_json_with_the_headers_and_no_trace(hub: Hub):
    @hub.app.get("/api/v1/health/boom")
    def boom() -> None:
        raise RuntimeError("secret-ish internals")

    from datahub_assets.service.authz.rules import PUBLIC, RULES

    RULES[("GET", "/api/v1/health/boom")] = PUBLIC
    try:
        answer = hub.client().get("/api/v1/health/boom")
    finally:
        del RULES[("GET", "/api/v1/health/boom")]
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error (see the service log)"}
    assert answer.headers["x-frame-options"] == "DENY"
