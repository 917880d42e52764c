"""Which table a check guards, and which table a referential check reads."""

from __future__ import annotations

from datahub_assets.spec.models import (
    LAYER_ALIASES,
    Check,
    PipelineSpec,
    ReferentialCheck,
    ResolvedTarget,
    TableRef,
    TableTarget,
)


def table_targets(spec: PipelineSpec) -> list[ResolvedTarget]:
    return [t for t in spec.targets if isinstance(t.target, TableTarget)]


def check_target(spec: PipelineSpec, check: Check) -> ResolvedTarget:
    """The table target a check guards (validated at load: exactly one matches)."""
    tables = table_targets(spec)
    if check.target is None:
        return tables[0]
    name = check.target.split(".")[-1]
    return next(t for t in tables if t.ref.table == name)


def referenced(spec: PipelineSpec, check: ReferentialCheck) -> tuple[TableRef, str]:
    """(table, column) named by `ref="[app.]layer.table.column"`."""
    parts = check.ref.split(".")
    app, layer, table, column = [spec.app, *parts] if len(parts) == 3 else parts
    layer = LAYER_ALIASES.get(layer, layer)  # validated at load: a layer or its alias
    return TableRef.model_validate({"app": app, "layer": layer, "table": table}), column


def checks_by_target(spec: PipelineSpec) -> dict[TableRef, list[Check]]:
    out: dict[TableRef, list[Check]] = {t.ref: [] for t in table_targets(spec)}
    for check in spec.pipeline.checks:
        out[check_target(spec, check).ref].append(check)
    return out
