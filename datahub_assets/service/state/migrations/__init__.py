"""Alembic migrations of the state database (`state.db.migrate(uri)` runs them)."""
