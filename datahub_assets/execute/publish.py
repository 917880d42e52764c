"""Write-audit-publish of a run's tables.

Every staged table write is committed as a snapshot on the run's audit branch (main does not
move, readers see the table as it was), the table's checks run against that audited snapshot,
and only when no `error` check failed on any table does main move to the audited snapshots,
for all tables in ONE catalog transaction (`writers.multi_commit`).
Otherwise every audit branch is discarded and `ChecksFailed` carries the results and the
staged snapshot ids (kept in the table's metadata for inspection until snapshots expire).
"""

from __future__ import annotations

from collections.abc import Callable

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException

from datahub_assets.execute.checks import CheckOutcome, evaluate_checks
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.outcomes import ChecksFailed, PipelineRunError, TargetOutcome
from datahub_assets.execute.table_reader import read_table
from datahub_assets.execute.writers.audit import (
    audit_branch,
    audit_commit,
    discard,
    publish_change,
)
from datahub_assets.execute.writers.multi_commit import TableChange, commit_tables
from datahub_assets.execute.writers.table import StagedWrite, abort
from datahub_assets.spec.check_targets import checks_by_target, referenced
from datahub_assets.spec.models import PipelineSpec, ReferentialCheck, ResolvedTarget


def _evaluate(
    spec: PipelineSpec,
    ctx: ExecContext,
    catalog: Catalog,
    target: ResolvedTarget,
    snapshot_id: int | None,
    checks: list,
) -> list[CheckOutcome]:
    if not checks:
        return []
    refs = {c.check_name: referenced(spec, c)[0] for c in checks if isinstance(c, ReferentialCheck)}
    audited = read_table(ctx.spark, catalog, target.ref, snapshot_id)
    return evaluate_checks(ctx.spark, audited, checks, ctx, referenced=refs)


def _failure_message(spec: PipelineSpec, outcomes: list[TargetOutcome]) -> str:
    lines = [
        f"{spec.file}: blocking checks failed; nothing was published, every table stays at "
        "its previous snapshot:"
    ]
    for outcome in outcomes:
        for check in outcome.checks:
            if not check.passed and check.severity == "error":
                lines.append(
                    f"  {outcome.ref} {check.name}: {check.description} "
                    f"(staged snapshot {outcome.snapshot_id})"
                )
    return "\n".join(lines)


def publish_tables(
    spec: PipelineSpec,
    ctx: ExecContext,
    catalog: Catalog,
    tables: list[ResolvedTarget],
    staged: list[StagedWrite],
    extra: dict,
    pre_checks: dict,
    with_changes: Callable[[list[TargetOutcome]], list[TableChange]] | None = None,
) -> list[TargetOutcome]:
    """Audit, check and publish every staged table (all or none, in one catalog commit).
    `extra` maps a table to metadata for its outcome; `pre_checks` to outcomes computed before
    staging (drift); `with_changes` builds, from the audited outcomes, more table changes to
    commit in the same transaction (the file-drop ledger)."""
    branch = audit_branch(ctx.run_id)
    audited = []
    try:
        for s in staged:
            audited.append(audit_commit(s, branch))
        by_target = checks_by_target(spec)
        outcomes = []
        for t, result in zip(tables, audited, strict=True):
            checks = _evaluate(spec, ctx, catalog, t, result.snapshot_id, by_target[t.ref])
            outcomes.append(
                TargetOutcome(
                    ref=t.ref,
                    kind="table",
                    rows=result.rows,
                    table_rows=result.table_rows,
                    snapshot_id=result.snapshot_id,
                    previous_snapshot_id=result.previous_snapshot_id,
                    location=result.location,
                    columns=tuple(result.schema),
                    extra={
                        "files_added": result.files_added,
                        "files_removed": result.files_removed,
                        **extra.get(t.ref, {}),
                    },
                    checks=tuple(pre_checks.get(t.ref, ())) + tuple(checks),
                )
            )
    except Exception as exc:
        _discard(catalog, tables, staged, branch, len(audited))
        if isinstance(exc, PipelineRunError):
            raise
        raise PipelineRunError(
            f"{spec.file}: auditing the new snapshots failed; nothing was published: {exc}"
        ) from exc

    if any(not c.passed and c.severity == "error" for o in outcomes for c in o.checks):
        _discard(catalog, tables, staged, branch, len(audited))
        raise ChecksFailed(_failure_message(spec, outcomes), outcomes)

    try:
        changes = [
            publish_change(catalog, t.ref, result, branch)
            for t, result in zip(tables, audited, strict=True)
        ]
        if with_changes is not None:
            changes += with_changes(outcomes)
        commit_tables(catalog, changes)  # every table (and e.g. the file ledger) or none
    except Exception as exc:
        _discard(catalog, tables, staged, branch, len(audited))
        if isinstance(exc, CommitFailedException):
            raise PipelineRunError(
                f"{spec.file}: another run published to these tables first ({exc}); nothing "
                "was published, run again"
            ) from exc
        raise PipelineRunError(
            f"{spec.file}: publishing failed, nothing was published: {exc}"
        ) from exc
    return outcomes


def _discard(
    catalog: Catalog,
    tables: list[ResolvedTarget],
    staged: list[StagedWrite],
    branch: str,
    audited: int,
) -> None:
    """Drop the audit branches of the first `audited` writes; delete files never referenced."""
    for i, (t, s) in enumerate(zip(tables, staged, strict=True)):
        if i < audited:
            discard(catalog, t.ref, branch, s.created)
            if s.created:
                abort(s)
        else:
            abort(s)
