"""The state database: migrations on an empty SQLite file and an empty PostgreSQL database
give exactly the models' tables; the audit log is append-only through the ORM and in the
database itself; the service settings and their key file."""

from __future__ import annotations

import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.settings import ServiceSettings, parse_group_grants
from datahub_assets.service.state.db import AppendOnlyError, State, migrate
from datahub_assets.service.state.models import AuditEvent, Base

TABLES = {
    "alembic_version",
    "api_tokens",
    "audit_events",
    "changes",
    "grants",
    "login_failures",
    "revoked_access_tokens",
    "users",
    "web_sessions",
}


def _check_migrated(uri: str) -> None:
    migrate(uri)
    migrate(uri)  # a second upgrade is a no-op
    state = State(uri)
    try:
        with state.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        _check_append_only(state)
    finally:
        state.dispose()


def _check_append_only(state: State) -> None:
    with state.session() as db:
        audit.record(db, actor="ann", action="user.add", target="bob", outcome="ok")
    with Session(state.engine) as db:  # never committed: each refusal happens first
        db.query(AuditEvent).one().outcome = "denied"
        with pytest.raises(AppendOnlyError):
            db.flush()
        db.rollback()
        db.delete(db.query(AuditEvent).one())
        with pytest.raises(AppendOnlyError):
            db.flush()
        db.rollback()
        with pytest.raises(AppendOnlyError):
            db.execute(update(AuditEvent).values(outcome="denied"))
        with pytest.raises(AppendOnlyError):
            db.execute(delete(AuditEvent))
    # below the ORM, the database's triggers refuse too
    for sql in ("UPDATE audit_events SET outcome = 'denied'", "DELETE FROM audit_events"):
        with state.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(sql))
    with state.session() as db:
        assert [(e.actor, e.outcome) for e in db.query(AuditEvent)] == [("ann", "ok")]


def test_migrations_on_an_empty_sqlite_file(tmp_path):
    _check_migrated(f"sqlite:///{tmp_path / 'new' / 'hub.db'}")


def test_migrations_on_an_empty_postgresql_database(pg_uri):
    _check_migrated(pg_uri)
    state = State(pg_uri)
    try:
        with state.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("TRUNCATE audit_events"))
    finally:
        state.dispose()


def test_the_signing_key_file_is_created_once_private(tmp_path):
    env = {"DATAHUB_HOME": str(tmp_path / "home")}
    first = ServiceSettings.from_env(env)
    key_file = tmp_path / "home" / "secrets" / "service.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert ServiceSettings.from_env(env).secret_key == first.secret_key
    assert first.state_uri == f"sqlite:///{tmp_path / 'home'}/hub.db"
    assert first.access_ttl_s == 900
    assert first.oidc is None
    assert repr(first.secret_key.decode()) not in repr(first)
    assert [p.name for p in key_file.parent.iterdir()] == ["service.key"]


def test_settings_from_variables(tmp_path):
    settings = ServiceSettings.from_env(
        {
            "DATAHUB_HOME": str(tmp_path),
            "DATAHUB_SERVICE_SECRET": "s" * 40,
            "DATAHUB_STATE_URI": "postgresql+psycopg://hub@db/hub",
            "DATAHUB_ACCESS_TOKEN_MINUTES": "5",
            "DATAHUB_COOKIE_SECURE": "1",
            "DATAHUB_DAGSTER_URL": "http://dagster:3000/",
            "DATAHUB_OIDC_ISSUER": "https://idp.example.com/",
            "DATAHUB_OIDC_CLIENT_ID": "datahub",
            "DATAHUB_OIDC_GROUP_GRANTS": "team-shop:shop:editor, auditors:shop:viewer:pii,"
            "platform-ops:*:operator",
        }
    )
    assert settings.secret_key == b"s" * 40
    assert not (tmp_path / "secrets").exists()
    assert settings.access_ttl_s == 300
    assert settings.cookie_secure
    assert settings.dagster_url == "http://dagster:3000"
    assert settings.oidc is not None
    assert settings.oidc.issuer == "https://idp.example.com"
    assert settings.oidc.groups_claim == "groups"
    assert [(g.group, g.app, g.role, g.pii) for g in settings.oidc.group_grants] == [
        ("team-shop", "shop", "editor", False),
        ("auditors", "shop", "viewer", True),
        ("platform-ops", "*", "operator", False),
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATAHUB_SERVICE_SECRET": "short"}, "at least 32"),
        ({"DATAHUB_ACCESS_TOKEN_MINUTES": "soon"}, "DATAHUB_ACCESS_TOKEN_MINUTES='soon'"),
        ({"DATAHUB_COOKIE_SECURE": "maybe"}, "DATAHUB_COOKIE_SECURE"),
        ({"DATAHUB_OIDC_ISSUER": "https://idp"}, "DATAHUB_OIDC_CLIENT_ID"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path, env, message):
    with pytest.raises(ValueError, match=message):
        ServiceSettings.from_env({"DATAHUB_HOME": str(tmp_path), **env})


@pytest.mark.parametrize("bad", ["team:shop:owner", "team:*:editor", "team-shop", "a:b:c:d:e"])
def test_bad_group_grants_are_refused(bad):
    with pytest.raises(ValueError, match="group:app:role"):
        parse_group_grants(bad)


def test_the_service_on_postgresql(tmp_path, pg_uri):
    """Sign-in, a token, a revocation and the audit rows on PostgreSQL (DateTime with time
    zone, the append-only triggers in place)."""
    from tests.service.conftest import PASSWORD, make_hub

    hub = make_hub(tmp_path, pg_uri)
    try:
        hub.add_user("ann", grants={"shop": "viewer"})
        client = hub.client()
        form = {"username": "ann", "password": PASSWORD}
        token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/me", headers=headers).json()["grants"][0]["app"] == "shop"
        assert client.post("/api/v1/auth/revoke", headers=headers).status_code == 200
        assert client.get("/api/v1/me", headers=headers).status_code == 401
        actions = [(e.action, e.outcome) for e in hub.events()]
        assert actions == [("login", "ok"), ("token.revoke", "ok"), ("access", "denied")]
    finally:
        hub.state.dispose()
