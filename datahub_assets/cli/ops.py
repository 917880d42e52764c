"""Operator functions behind `datahub history`, `datahub rollback` and `datahub watermark`.

`history` lists a table's snapshots newest first (what each commit did, which run made it,
which refs point at it); `rollback` moves main back to its parent or to any snapshot still in
the table metadata (an ancestor of main, or e.g. a discarded audit snapshot or a snapshot main
was rolled back from), in one catalog commit that fails if main moved concurrently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from datahub_assets.iceberg.read import load_table
from datahub_assets.spec.models import TableRef


def parse_table(text: str) -> TableRef:
    """`app.layer.table` -> TableRef; anything else is a ValueError naming the expected form."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValueError(f"table {text!r}: expected <app>.<layer>.<table>, e.g. shop.silver.orders")
    app, layer, table = (p.strip() for p in parts)
    try:
        return TableRef.model_validate({"app": app, "layer": layer, "table": table})
    except Exception as exc:  # pydantic validation (unknown layer, bad characters)
        raise ValueError(f"table {text!r}: not a valid <app>.<layer>.<table>: {exc}") from exc


def _int(summary: dict[str, str], key: str) -> int | None:
    value = summary.get(key)
    return int(value) if value is not None else None


def _ordered(table: Table) -> list[Snapshot]:
    return sorted(
        table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0), reverse=True
    )


def history(catalog: Catalog, ref: TableRef) -> list[dict[str, Any]]:
    """The snapshots of `ref`, newest first, one dict each (see the keys below)."""
    table = load_table(catalog, ref)
    current = table.current_snapshot()
    refs: dict[int, list[str]] = {}
    for name, snapshot_ref in table.metadata.refs.items():
        refs.setdefault(snapshot_ref.snapshot_id, []).append(name)
    rows = []
    for s in _ordered(table):
        summary = s.summary.additional_properties if s.summary else {}
        rows.append(
            {
                "snapshot_id": s.snapshot_id,
                "parent_id": s.parent_snapshot_id,
                "committed_at": datetime.fromtimestamp(s.timestamp_ms / 1000, UTC).isoformat(),
                "operation": s.summary.operation.value if s.summary else None,
                "added_records": _int(summary, "added-records") or 0,
                "deleted_records": _int(summary, "deleted-records") or 0,
                "added_files": _int(summary, "added-data-files") or 0,
                "deleted_files": _int(summary, "deleted-data-files") or 0,
                "total_records": _int(summary, "total-records"),
                "run_id": summary.get("datahub.run-id"),
                "current": current is not None and s.snapshot_id == current.snapshot_id,
                "refs": sorted(refs.get(s.snapshot_id, [])),
            }
        )
    return rows


def _valid(table: Table) -> str:
    return ", ".join(str(s.snapshot_id) for s in _ordered(table)) or "none"


def rollback(catalog: Catalog, ref: TableRef, to: int | None = None) -> tuple[int, int]:
    """Point main of `ref` at `to` (default: main's parent); returns (from, to) snapshot ids."""
    table = load_table(catalog, ref)
    current = table.current_snapshot()
    if current is None:
        raise ValueError(
            f"table {ref.identifier} has no current snapshot to roll back from "
            f"(snapshots: {_valid(table)})"
        )
    if to is None:
        to = current.parent_snapshot_id
        if to is None or table.snapshot_by_id(to) is None:
            raise ValueError(
                f"table {ref.identifier}: current snapshot {current.snapshot_id} has no parent "
                f"to roll back to; pass one of: {_valid(table)}"
            )
    elif table.snapshot_by_id(to) is None:
        raise ValueError(
            f"table {ref.identifier} has no snapshot {to}; valid snapshot ids: {_valid(table)}"
        )
    if to == current.snapshot_id:
        return current.snapshot_id, to
    ancestors = {s.snapshot_id for s in ancestors_of(current, table.metadata)}
    manage = table.manage_snapshots()
    if to in ancestors:
        manage = manage.rollback_to_snapshot(to)
    else:  # e.g. back to a snapshot main was rolled back from: replace main's head
        manage = manage.set_current_snapshot(snapshot_id=to)
    manage.commit()
    return current.snapshot_id, to


def find_pipeline(project, key: str):
    """The pipeline `<app>.<id>` of a loaded project (ValueError listing the app's others)."""
    for spec in project.pipelines:
        if spec.key == key:
            return spec
    app = key.split(".")[0]
    known = sorted(p.key for p in project.pipelines if p.app == app)
    raise ValueError(
        f"no pipeline {key!r}; pipelines of app {app!r}: {', '.join(known) or '(none)'}"
    )


def _incremental(spec) -> tuple[list[str], TableRef]:
    from datahub_assets.spec.check_targets import table_targets

    ids = [s.id for s in spec.pipeline.sources if s.incremental is not None]
    tables = list(table_targets(spec))
    if not ids or not tables:
        raise ValueError(f"pipeline {spec.key} has no incremental source")
    return ids, tables[0].ref


def watermarks(catalog: Catalog, spec) -> list[dict[str, Any]]:
    """The committed watermark of each incremental source of `spec` (None: reads all)."""
    from datahub_assets.execute.incremental import load_state

    ids, ref = _incremental(spec)
    state = load_state(catalog, ref, ids)
    columns = {s.id: s.incremental.column for s in spec.pipeline.sources if s.incremental}
    return [
        {
            "source": sid,
            "column": columns[sid],
            "table": ref.identifier,
            "type": state.previous[sid].type if sid in state.previous else None,
            "value": state.previous[sid].value if sid in state.previous else None,
            "snapshot_id": state.recorded_in.get(sid),
        }
        for sid in ids
    ]


def reset_watermarks(catalog: Catalog, spec, source: str | None = None) -> int | None:
    """Forget the watermarks of `spec` (or of one source): the next run reads every row."""
    from datahub_assets.execute.incremental import reset_watermarks as reset

    ids, ref = _incremental(spec)
    if source is not None and source not in ids:
        raise ValueError(
            f"{spec.key} has no incremental source {source!r}; it has {', '.join(ids)}"
        )
    return reset(catalog, ref, [source] if source else ids)
