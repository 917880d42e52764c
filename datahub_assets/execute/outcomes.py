"""What a run reports: one outcome per target, and the errors a run raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datahub_assets.spec.models import TableRef


class PipelineRunError(RuntimeError):
    """A run failed; the message names the definition file and line of the failing element."""


@dataclass(frozen=True)
class TargetOutcome:
    ref: TableRef
    kind: str
    rows: int
    """Rows this run wrote (a file drop's batch, an append's new rows)."""
    snapshot_id: int | None = None
    previous_snapshot_id: int | None = None
    location: str | None = None
    columns: tuple[tuple[str, str, bool], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    checks: tuple[Any, ...] = ()
    """CheckOutcomes of this table's checks (schema drift included)."""
    table_rows: int | None = None
    """The table's total rows after the commit (the snapshot summary's `total-records`);
    None for exports and when the summary has no total."""
    files: tuple[str, ...] = ()
    """The data files this run added to the table (to read back exactly what it wrote)."""
    invalid_by_file: dict[str, int] = field(default_factory=dict)
    """Invalid (not malformed) rows this write quarantined, per `_source_file` (file drops)."""
    committed_with: tuple[tuple[str, int | None], ...] = ()
    """Other tables the same catalog commit changed for this write (its quarantine tables,
    the file-drop ledger): (identifier, main snapshot before the commit), so
    `iceberg.tables.roll_back` can restore them."""


class ChecksFailed(PipelineRunError):
    """A blocking check failed: nothing was published. `outcomes` carry the check results and
    the staged (audited, unpublished) snapshot ids."""

    def __init__(self, message: str, outcomes: list[TargetOutcome]):
        super().__init__(message)
        self.outcomes = outcomes
