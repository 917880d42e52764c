"""The cache of authenticated bearer tokens (auth/tokens.py `AuthCache`, used by
authz/decide.py): a token checked in the last seconds skips the database, but a revocation,
a deleted user, a new password or a removed grant committed in this process refuses it at
once; a process on this host that signals the change (the signal file) too; any other change
within CACHE_TTL_S. Refusals are never cached and still audited."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, delete, select, text, update

from datahub_assets.service.auth import tokens
from datahub_assets.service.state.db import utcnow
from datahub_assets.service.state.models import ApiToken, Grant, User
from tests.service.conftest import Hub

LIST = "/api/v1/apps/shop/pipelines"


def _get(hub: Hub, token: str, path: str = LIST) -> int:
    return hub.client().get(path, headers={"Authorization": f"Bearer {token}"}).status_code


def _cached(hub: Hub, token: str) -> bool:
    cache: tokens.AuthCache = hub.app.state.auth_cache
    return cache.get(cache.key(token)) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fake_clock(hub: Hub) -> Clock:
    clock = Clock()
    old: tokens.AuthCache = hub.app.state.auth_cache
    hub.app.state.auth_cache = tokens.AuthCache(signal=old.signal, clock=clock)
    return clock


def test_a_token_is_checked_once_then_answered_from_the_cache(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    assert not _cached(hub, token)
    assert _get(hub, token) == 200
    assert _cached(hub, token)
    assert _get(hub, token) == 200
    # the cache keeps the decision exact: another app is still invisible, a bigger role 403
    assert _get(hub, token, "/api/v1/apps/other/pipelines") == 404
    client = hub.client()
    answer = client.post(
        "/api/v1/apps/shop/validate",
        json={"files": [{"path": "raw/x.xml", "content": "<x/>"}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403
    denied = [(e.outcome, e.app) for e in hub.events("access")]
    assert denied == [("denied", "other"), ("denied", "shop")]


def test_a_revoked_access_token_is_refused_at_once(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    assert _get(hub, token) == 200
    assert _cached(hub, token)
    headers = {"Authorization": f"Bearer {token}"}
    assert hub.client().post("/api/v1/auth/revoke", headers=headers).status_code == 200
    assert _get(hub, token) == 401
    assert ["access token revoked" in (e.detail or "") for e in hub.events("access")] == [True]


def test_a_deleted_users_token_is_refused_at_once(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    api_text, _ = hub.api_token("ann")
    assert _get(hub, token) == 200
    assert _get(hub, api_text) == 200
    with hub.state.session() as db:
        user = db.scalar(select(User).where(User.username == "ann"))
        db.delete(user)
    assert _get(hub, token) == 401
    assert _get(hub, api_text) == 401


def test_a_revoked_api_token_is_refused_at_once(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    text_, key_id = hub.api_token("ann")
    assert _get(hub, text_) == 200  # its first use writes last_used_at: voids the cache
    assert _get(hub, text_) == 200
    assert _cached(hub, text_)
    answer = hub.client().post(
        "/api/v1/auth/revoke", json={"token_id": key_id}, headers=hub.bearer("ann")
    )
    assert answer.status_code == 200
    assert _get(hub, text_) == 401
    # and by a bulk UPDATE statement of this process
    other, other_id = hub.api_token("ann")
    assert _get(hub, other) == 200
    assert _get(hub, other) == 200
    assert _cached(hub, other)
    with hub.state.session() as db:
        db.execute(update(ApiToken).where(ApiToken.key_id == other_id).values(revoked_at=utcnow()))
    assert _get(hub, other) == 401


def test_a_removed_grant_and_a_new_password_apply_at_once(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    assert _get(hub, token) == 200
    with hub.state.session() as db:
        db.execute(delete(Grant).where(Grant.app == "shop"))
    assert _get(hub, token) == 404
    hub.add_user("bob", grants={"shop": "viewer"})
    token = hub.access_token("bob")
    assert _get(hub, token) == 200
    with hub.state.session() as db:
        user = db.scalar(select(User).where(User.username == "bob"))
        assert user is not None
        user.password_hash = "$argon2id$changed"
    assert _get(hub, token) == 401


def test_a_change_by_another_process_is_seen_within_the_ttl(hub: Hub):
    """A statement that did not go through this module (another host, hand-made SQL) is
    trusted for at most CACHE_TTL_S: the clock is the cache's own."""
    hub.add_user("ann", grants={"shop": "viewer"})
    clock = _fake_clock(hub)
    token = hub.access_token("ann")
    assert _get(hub, token) == 200
    raw = create_engine(hub.settings.state_uri)
    with raw.begin() as conn:  # no ORM session: nothing tells this process
        conn.execute(text("DELETE FROM grants"))
    raw.dispose()
    clock.now += tokens.CACHE_TTL_S - 0.5
    assert _get(hub, token) == 200  # still inside the documented bound
    clock.now += 0.5
    assert _get(hub, token) == 404


def test_a_signalling_process_is_seen_at_once(hub: Hub):
    """Another process on this host that imported auth/tokens.py (a `--workers` sibling,
    `datahub tokens`) writes the signal file when it commits: this process sees it."""
    hub.add_user("ann", grants={"shop": "viewer"})
    _fake_clock(hub)  # time does not move: only the signal can void the entry
    token = hub.access_token("ann")
    assert _get(hub, token) == 200
    script = (
        "import sys\n"
        "from sqlalchemy import delete\n"
        "from datahub_assets.service.auth import tokens  # registers the hooks\n"
        "from datahub_assets.service.state.db import State\n"
        "from datahub_assets.service.state.models import Grant\n"
        "state = State(sys.argv[1])\n"
        "with state.session() as db:\n"
        "    db.execute(delete(Grant))\n"
    )
    subprocess.run([sys.executable, "-c", script, hub.settings.state_uri], check=True)
    assert _get(hub, token) == 404


def test_an_expired_token_leaves_the_cache_at_its_expiry(hub: Hub):
    hub.add_user("ann", grants={"shop": "viewer"})
    token = hub.access_token("ann")
    assert _get(hub, token) == 200
    cache: tokens.AuthCache = hub.app.state.auth_cache
    credential, who = cache.get(cache.key(token)) or (None, None)
    assert credential is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = tokens.Credential(credential.user, credential.kind, credential.token_id, past)
    cache.put(cache.key(token), expired, who, cache.stamp())
    assert cache.get(cache.key(token)) is None


def test_the_cache_is_bounded_and_keeps_no_token_text():
    cache = tokens.AuthCache(max_entries=3)
    user = User(username="ann")
    for i in range(10):
        credential = tokens.Credential(user, "access", f"jti{i}", None)
        cache.put(cache.key(f"token {i}"), credential, None, cache.stamp())
        assert len(cache._entries) <= 3
    assert all(len(k) == 64 and "token" not in k for k in cache._entries)
    # a lookup that began before a change is not stored
    stamp = cache.stamp()
    tokens.invalidate_auth_caches()
    cache.put(cache.key("late"), tokens.Credential(user, "access", "late", None), None, stamp)
    assert cache.get(cache.key("late")) is None
