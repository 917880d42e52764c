"""Alembic environment of the state database. `state.db.migrate(uri)` passes the URI as the
config attribute "uri" (or a live connection as "connection")."""

from __future__ import annotations

from alembic import context

from datahub_assets.service.state.db import make_engine
from datahub_assets.service.state.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    uri = config.attributes.get("uri") or config.get_main_option("sqlalchemy.url")
    if not uri:
        raise RuntimeError("no database: call datahub_assets.service.state.db.migrate(uri)")
    engine = make_engine(uri)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run migrate(uri)")
run_migrations_online()
