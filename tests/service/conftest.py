"""Fixtures of the service's core tests: `hub` (a migrated SQLite state file, a pipelines git
tree with apps `shop` and `other`, the app, helpers to add users, tokens, sessions and
changes) and `pg_uri` (a fresh database on the session's private PostgreSQL server)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from datahub_assets.service.app import create_app
from datahub_assets.service.auth import sessions, tokens
from datahub_assets.service.auth.passwords import hash_password
from datahub_assets.service.settings import ServiceSettings
from datahub_assets.service.state.db import State, migrate, utcnow
from datahub_assets.service.state.models import AuditEvent, Change, Grant, User
from tests.service.registry_fixtures import raw_xml, settings_for

PASSWORD = "a password long enough"


@dataclass
class Hub:
    """A service over tmp_path and what tests do to its state."""

    settings: ServiceSettings
    app: FastAPI
    state: State
    _hashes: dict[str, str] = field(default_factory=dict)

    def client(self, **kw: Any) -> TestClient:
        return TestClient(self.app, raise_server_exceptions=False, follow_redirects=False, **kw)

    def add_user(
        self,
        name: str,
        *,
        admin: bool = False,
        operator: bool = False,
        grants: dict[str, str] | None = None,
        password: str | None = PASSWORD,
    ) -> int:
        with self.state.session() as db:
            user = User(
                username=name,
                password_hash=self._hash(password) if password else None,
                admin=admin,
                operator=operator,
                created_at=utcnow(),
            )
            db.add(user)
            db.flush()
            for app, role in (grants or {}).items():
                db.add(Grant(user_id=user.id, app=app, role=role))
            return user.id

    def _hash(self, password: str) -> str:
        if password not in self._hashes:  # argon2 is slow on purpose: once per password
            self._hashes[password] = hash_password(password)
        return self._hashes[password]

    def user(self, name: str) -> User:
        with self.state.session() as db:
            user = db.scalar(select(User).where(User.username == name))
            assert user is not None
            return user

    def access_token(self, name: str, ttl_s: int = 900) -> str:
        with self.state.session() as db:
            user = db.scalar(select(User).where(User.username == name))
            assert user is not None
            return tokens.issue_access_token(user, self.settings.secret_key, ttl_s)[0]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token(name)}"}

    def api_token(self, name: str, expires: timedelta | None = None) -> tuple[str, str]:
        """(token text, key id)."""
        with self.state.session() as db:
            user = db.scalar(select(User).where(User.username == name))
            assert user is not None
            text, row = tokens.create_api_token(db, user, expires)
            return text, row.key_id

    def session(self, name: str, ttl_s: int = 3600) -> tuple[str, str]:
        """A signed-in browser session of `name`: (cookie value, CSRF token)."""
        with self.state.session() as db:
            user = db.scalar(select(User).where(User.username == name))
            assert user is not None
            web = sessions.create_session(db, user, ttl_s)
            return web.id, web.csrf

    def browser(self, name: str) -> tuple[TestClient, str]:
        """A client carrying `name`'s session cookie, and the session's CSRF token."""
        cookie, csrf = self.session(name)
        return self.client(cookies={sessions.COOKIE: cookie}), csrf

    def add_change(self, app: str, author: str, files: list[dict[str, Any]] | None = None) -> str:
        change_id = uuid.uuid4().hex[:12]
        with self.state.session() as db:
            db.add(
                Change(
                    id=change_id,
                    app=app,
                    title="Add payments",
                    author=author,
                    status="open",
                    created_at=utcnow(),
                    base_commit="0" * 40,
                    files=files
                    or [{"path": "raw/ingest_payments.xml", "content": raw_xml("payments")}],
                    validation={"ok": True, "errors": []},
                    plan={"added": [], "removed": [], "changed": []},
                    diff="",
                )
            )
        return change_id

    def events(self, action: str | None = None) -> list[AuditEvent]:
        with self.state.session() as db:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if action:
                query = query.where(AuditEvent.action == action)
            return list(db.scalars(query))


def make_hub(tmp_path, state_uri: str | None = None) -> Hub:
    settings = settings_for(tmp_path, state_uri=state_uri)
    migrate(settings.state_uri)
    app = create_app(settings)
    return Hub(settings, app, app.state.state)


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    made = make_hub(tmp_path)
    yield made
    made.state.dispose()


@pytest.fixture
def pg_uri(postgres_server) -> str:
    """A new, empty database on the private PostgreSQL server."""
    from datahub_assets.demo.local_servers import create_database

    name = f"hub_{secrets.token_hex(6)}"
    create_database(postgres_server, name)
    return f"postgresql+psycopg://datahub@127.0.0.1:{postgres_server.port}/{name}"
