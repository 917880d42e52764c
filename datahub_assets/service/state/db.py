"""The state database (DATAHUB_STATE_URI): engine, sessions, migrations.

- `State(uri).session()` is a context manager: commit at the end, rollback on an error.
- `get_db(request)` is the FastAPI dependency: one session per request. It commits when the
  handler returns or deliberately answers with an HTTP error (an `HTTPException`, or an
  exception carrying a `status_code` < 500, e.g. the registry's errors): the audit rows of a
  refusal are kept. Any other exception rolls everything back. Handlers that write
  something and then refuse must refuse before writing.
- `migrate(uri)` upgrades the database to the newest Alembic revision (state/migrations/,
  found inside the installed package).
- `audit_events` is append-only: the ORM refuses to update or delete an `AuditEvent` (a
  `before_flush` hook and a bulk-statement hook), and the migration adds database triggers
  that refuse UPDATE and DELETE on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from starlette.requests import Request

from datahub_assets.service.state.models import AuditEvent

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete an audit event."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database as an aware UTC datetime (SQLite drops the
    zone; every value the service writes is UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(uri: str) -> Engine:
    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.close()


class State:
    """The state database of one URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self.engine = make_engine(uri)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        db = self._sessions()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _alembic_config(uri: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # passed as an attribute, not an ini option: a password may hold '%'
    config.attributes["uri"] = uri
    return config


def migrate(uri: str, revision: str = "head") -> None:
    """Upgrade the database at `uri` to `revision` (creating the tables on first use)."""
    from alembic import command

    make_engine(uri).dispose()  # creates a SQLite file's folder
    command.upgrade(_alembic_config(uri), revision)


def _is_deliberate(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status < 500


def get_db(request: Request) -> Iterator[Session]:
    """FastAPI dependency: the request's session (see the module docstring). Always used
    as `Depends(get_db, scope="function")`: the session commits when the handler returns,
    BEFORE the answer is sent, so a client that reads right after a write (a redirect
    after a form, a GET after a POST) sees it (the default scope commits after sending)."""
    state: State = request.app.state.state
    db = state._sessions()
    try:
        yield db
        db.commit()
    except BaseException as exc:
        if _is_deliberate(exc):
            db.commit()
        else:
            db.rollback()
        raise
    finally:
        db.close()


# --- audit_events is append-only through the ORM -------------------------------------------


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("audit_events is append-only: an audit event cannot change")


@event.listens_for(Session, "do_orm_execute")
def _refuse_audit_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is AuditEvent:
        raise AppendOnlyError("audit_events is append-only: no UPDATE or DELETE")
