"""What the Dagster UI shows of a table materialisation and its checks, for XML targets
(`runtime/step.py`: asset steps and job ops) and Python assets (`python/assets.py`,
`datahub_resources/iceberg_io.py`) alike."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from datahub_assets.execute.outcomes import TargetOutcome
from datahub_assets.runtime.keys import asset_key

ROWS_WRITTEN = "datahub/rows_written"


def table_metadata(
    outcome: TargetOutcome, descriptions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`dagster/row_count` is the table's rows after the commit (the UI's "Row count"); the
    rows this run wrote (a file drop's batch, an append) are `datahub/rows_written`
    (runs/records.py reads it). `descriptions` (column -> text, `spec.columns`) describe the
    column schema."""
    total = outcome.table_rows if outcome.table_rows is not None else outcome.rows
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(total),
        ROWS_WRITTEN: dg.MetadataValue.int(outcome.rows),
    }
    if outcome.columns:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name,
                    type_str,
                    description=(descriptions or {}).get(name),
                    constraints=dg.TableColumnConstraints(nullable=nullable),
                )
                for name, type_str, nullable in outcome.columns
            ]
        )
    if outcome.snapshot_id is not None:
        metadata["datahub/snapshot_id"] = dg.MetadataValue.text(str(outcome.snapshot_id))
        metadata["datahub/previous_snapshot_id"] = dg.MetadataValue.text(
            str(outcome.previous_snapshot_id or "")
        )
        metadata["datahub/iceberg_table"] = dg.MetadataValue.text(outcome.ref.identifier)
    if outcome.location:
        metadata["dagster/uri"] = dg.MetadataValue.path(outcome.location)
    metadata.update({f"datahub/{k}": v for k, v in outcome.extra.items()})
    return metadata


def check_results(
    outcome: TargetOutcome, published: bool, key: dg.AssetKey | None = None
) -> Iterator[dg.AssetCheckResult]:
    """The asset check results of one table's outcome; `published`: its snapshot is main's
    (else the staged, audited one that a blocking check kept from main)."""
    key = key if key is not None else asset_key(outcome.ref)
    for check in outcome.checks:
        metadata: dict[str, Any] = {
            "datahub/failing_rows": dg.MetadataValue.int(check.failing_rows),
            "datahub/total_rows": dg.MetadataValue.int(check.total_rows),
            "datahub/published": published,
            **{f"datahub/{k}": v for k, v in check.metadata.items()},
        }
        if outcome.snapshot_id is not None:
            name = "datahub/snapshot_id" if published else "datahub/staged_snapshot_id"
            metadata[name] = dg.MetadataValue.text(str(outcome.snapshot_id))
        if check.sample:
            metadata["datahub/failing_sample"] = dg.MetadataValue.json(check.sample)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=check.name,
            passed=check.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR
                if check.severity == "error"
                else dg.AssetCheckSeverity.WARN
            ),
            description=check.description,
            metadata=metadata,
        )
