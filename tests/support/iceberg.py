"""Iceberg in the tests: a catalog of its own in a folder (`folder_catalog`; the platform
catalog of the test's DATAHUB_HOME is the `catalog` fixture of `fixtures.py`), and the row
readers: with pyiceberg, independent of both engines (`table_rows`, `table_column`), or
through an engine's table read (`frame_rows`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog

from datahub_assets.iceberg.read import read_table
from datahub_assets.spec.models import TableRef
from datahub_resources.iceberg import open_catalog

TableName = TableRef | str | tuple[str, ...]
"""A table: its TableRef, `namespace.table`, or pyiceberg's identifier tuple."""


def folder_catalog(folder: Path, uri: str | None = None) -> Catalog:
    """A catalog of its own: warehouse `folder/wh`, database `uri` (default: SQLite
    `folder/c.db`). The caller disposes of `catalog.engine`."""
    return open_catalog(uri or f"sqlite:///{folder}/c.db", f"file://{folder}/wh")


def _identifier(table: TableName) -> str | tuple[str, ...]:
    return table.identifier if isinstance(table, TableRef) else table


def _sort_key(row: tuple) -> tuple:
    """Natural order, None last (rows that plain `sorted` orders keep that order)."""
    return tuple((value is None, value) for value in row)


def table_rows(
    catalog: Catalog, table: TableName, *columns: str, missing_ok: bool = False
) -> list[tuple]:
    """The rows of `table` read with pyiceberg, as tuples of `columns` (default: every column
    in schema order), sorted. A missing table is an error, or no rows with `missing_ok`."""
    identifier = _identifier(table)
    if missing_ok and not catalog.table_exists(identifier):
        return []
    records = catalog.load_table(identifier).scan().to_arrow().to_pylist()
    return sorted(
        (tuple(r[c] for c in columns) if columns else tuple(r.values()) for r in records),
        key=_sort_key,
    )


def table_column(catalog: Catalog, table: TableName, column: str) -> list[Any]:
    """The values of one column of `table` (pyiceberg), sorted."""
    return [value for (value,) in table_rows(catalog, table, column)]


def frame_rows(
    session: Any,
    catalog: Catalog,
    ref: TableRef,
    *,
    snapshot_id: int | None = None,
    order: str | None = "id",
    columns: Iterable[str] = (),
    missing_ok: bool = False,
) -> list[tuple]:
    """The rows of `ref` (at `snapshot_id`) as the platform's table read gives them to
    `session` (Spark, or the DuckDB engine's session): tuples of `columns` (default: every
    column), ordered by the `order` column (None: sorted in Python). A missing table is an
    error, or no rows with `missing_ok`."""
    if missing_ok and not catalog.table_exists(ref.identifier):
        return []
    frame = read_table(session, catalog, ref, snapshot_id)
    if columns:
        frame = frame.select(*columns)
    if order is None:
        return sorted((tuple(r) for r in frame.collect()), key=_sort_key)
    return [tuple(r) for r in frame.orderBy(order).collect()]
