"""Quality gates before a write: row validation (`onInvalid`) and schema drift (`onSchemaChange`).

Order for a table target: rows are validated (quarantined, dropped or failing the run), then the
incoming schema is compared with the table's and the target's policy applied, then the frame is
staged. Source-level `onInvalid` runs right after the source is read, against its `schemaRef`.
Quarantined rows land in `<table>__quarantine` (same namespace) in the same catalog commit as
the run's tables (`iceberg.quarantine_write`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyspark.sql import DataFrame

from datahub_assets.execute.checks import CheckOutcome
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.drift import SchemaDriftError, apply_schema_policy, detect_drift
from datahub_assets.execute.outcomes import ChecksFailed, PipelineRunError, TargetOutcome
from datahub_assets.execute.quarantine import (
    InvalidRowsError,
    apply_policy,
    quarantine_ref,
    row_rules,
    validate_rows,
)
from datahub_assets.execute.schemas import schema_for
from datahub_assets.iceberg.read import TableNotFoundError, load_table
from datahub_assets.spec.models import ResolvedTarget, TableRef, TableTarget
from datahub_resources.iceberg import iceberg_to_spark_schema

DRIFT_CHECK = "schema_drift"


@dataclass
class Prepared:
    """A table target's frame after the gates, and what they found."""

    df: DataFrame | None
    """None until `prepare_table` sets the frame to write."""
    checks: list[CheckOutcome] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    quarantine: list[tuple[TableRef, DataFrame]] = field(default_factory=list)


def _table_schema(
    catalog: Catalog, ref: TableRef, loaded: Mapping[TableRef, Table | None] | None = None
):
    """The Spark schema of `ref` (None: no table yet); from `loaded` when the caller has
    loaded the table already."""
    if loaded is not None and ref in loaded:
        table = loaded[ref]
        return iceberg_to_spark_schema(table.schema()) if table is not None else None
    try:
        return iceberg_to_spark_schema(load_table(catalog, ref).schema())
    except TableNotFoundError:
        return None


def split_invalid(
    df: DataFrame,
    schema,
    rules,
    policy: str,
    where: str,
    run_id: str,
    into: TableRef,
    prepared: Prepared,
) -> DataFrame:
    """Apply an `onInvalid` policy; returns the rows to keep and records the rest."""
    valid, invalid = validate_rows(df, schema, rules)
    try:
        keep, rows, count = apply_policy(policy, valid, invalid, where, run_id=run_id)
    except InvalidRowsError as exc:
        raise PipelineRunError(f"{where}: {exc}") from exc
    prepared.extra["invalid_rows"] = prepared.extra.get("invalid_rows", 0) + count
    if rows is not None:
        prepared.quarantine.append((quarantine_ref(into), rows))
        prepared.extra["quarantine_table"] = quarantine_ref(into).identifier
    return keep


def validate_source(
    ctx: ExecContext, source, read, into: TableRef | None, where: str, prepared: Prepared
) -> DataFrame:
    """Read a source with `onInvalid` as written (no schema applied, so bad values survive
    for the quarantine), then cast it to its `schemaRef` under the policy."""
    if into is None and source.on_invalid == "quarantine":
        raise PipelineRunError(
            f'{where}: onInvalid="quarantine" needs a table target to '
            "put <table>__quarantine next to"
        )
    update: dict[str, Any] = {"schema_ref": None}
    if source.kind == "csv":
        update["infer_schema"] = False
    raw = read(source.model_copy(update=update))
    schema = schema_for(ctx.spec, source.schema_ref, ctx.app_path(source.schema_ref))
    return split_invalid(
        raw,
        schema,
        (),
        source.on_invalid,
        where,
        ctx.run_id,
        into or TableRef(app=ctx.app, layer="raw", table=source.id),
        prepared,
    )


def prepare_table(
    ctx: ExecContext,
    catalog: Catalog,
    target: ResolvedTarget,
    df: DataFrame,
    checks: list,
    where: str,
    prepared: Prepared,
    loaded: Mapping[TableRef, Table | None] | None = None,
) -> Prepared:
    """Row validation then schema drift for one table target (no Spark job unless rows are
    validated). `loaded`: the run's tables as already loaded (None: no table yet)."""
    table_schema = _table_schema(catalog, target.ref, loaded)
    spec_target = target.target
    assert isinstance(spec_target, TableTarget), "prepare_table is for table targets"
    if spec_target.on_invalid:
        schema = (
            schema_for(ctx.spec, spec_target.schema_ref, ctx.app_path(spec_target.schema_ref))
            if spec_target.schema_ref
            else table_schema or df.schema
        )
        df = split_invalid(
            df,
            schema,
            row_rules(checks),
            spec_target.on_invalid,
            where,
            ctx.run_id,
            target.ref,
            prepared,
        )
    drift = detect_drift(table_schema, df.schema)
    policy = spec_target.on_schema_change
    outcome = CheckOutcome(
        name=DRIFT_CHECK,
        kind=DRIFT_CHECK,
        severity="warn",
        passed=drift.check_passed(policy),
        failing_rows=0,
        total_rows=0,
        sample=[],
        description=drift.description(),
        metadata=drift.as_metadata(),
    )
    try:
        prepared.df = apply_schema_policy(df, drift, policy, table_schema, target.ref.identifier)
    except SchemaDriftError as exc:
        failed = replace(outcome, passed=False, severity="error", description=str(exc))
        raise ChecksFailed(
            f"{where}: {exc}",
            [TargetOutcome(ref=target.ref, kind="table", rows=0, checks=(failed,))],
        ) from exc
    prepared.checks.append(outcome)
    return prepared
