"""The onInvalid policy for malformed records of csv/json sources (`execute.malformed`).

`checked_reader` wraps how the runner reads a source: the frame comes back without malformed
records and the policy has been applied to them:

- `quarantine` (the default in the raw layer when the pipeline has a table target): the
  records go to `<first table>__quarantine` (`Prepared.quarantine`, staged and committed
  with the run's tables by `iceberg.quarantine_write`); the count is
  `datahub/malformed_rows` and, for a file drop, each file's ledger row `invalid_rows`;
- `drop`: counted the same way, not kept;
- `fail` (the default elsewhere): a file drop rejects each file holding one to
  `rejected/<date>/` (rule `malformed`, the reason lists its first bad lines) and goes on with
  the other files; any other read stops the run with the first bad lines.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.drops import INGEST, DropBatch, reject_files
from datahub_assets.execute.malformed import MalformedError, check, quarantine_frame
from datahub_assets.execute.outcomes import PipelineRunError
from datahub_assets.execute.quarantine import quarantine_ref
from datahub_assets.ingest.validate import Rejection
from datahub_assets.spec.models import PipelineSpec, TableRef

KINDS = ("csv", "json")
MALFORMED = "malformed"


def policy_of(source, layer: str, has_table: bool = True) -> str:
    """The source's onInvalid, else quarantine in the raw layer when the pipeline has a table
    target to quarantine next to, and fail otherwise."""
    return source.on_invalid or ("quarantine" if layer == "raw" and has_table else "fail")


def checked_reader(
    read: Callable[..., DataFrame],
    spec: PipelineSpec,
    ctx: ExecContext,
    source,
    drops: DropBatch | None,
    gate,
    into: TableRef | None,
    where: str,
) -> Callable[..., DataFrame]:
    """`read` with malformed records split off and handled (module doc). `gate` is the
    `quality.Prepared` of the first table target (counts, quarantine rows)."""
    policy = policy_of(source, spec.layer, any(t.target.kind == "table" for t in spec.targets))
    # the file-drop batch of a watched source (its malformed files can be rejected one by one)
    watched = drops if getattr(source, "watch", None) is not None else None

    def run(s) -> DataFrame:
        df = read(s)
        local_of = (
            {f.info.path: f.local for f in watched.files if f.local} if watched is not None else {}
        )
        try:
            good, found = check(df, s, local_of)
        except MalformedError as exc:
            raise PipelineRunError(f"{where}: {exc}") from None
        if not found.count:
            return good
        shown = "\n".join(f"  - {line}" for line in found.first_lines())
        ctx.log.warning(
            "source %s: %d malformed record(s) (onInvalid=%s); first:\n%s",
            source.id,
            found.count,
            policy,
            shown,
        )
        by_file = found.by_file()
        if policy == "fail":
            if watched is None:
                raise PipelineRunError(
                    f"source '{source.id}' has {found.count} malformed record(s) "
                    f'(onInvalid="fail"); first:\n{shown}'
                )
            rejections = {
                file: Rejection(
                    MALFORMED,
                    f'{n} malformed record(s) (onInvalid="fail" on '
                    f"source '{source.id}'); first: " + "; ".join(found.first_lines(file)),
                )
                for file, n in by_file.items()
            }
            reject_files(watched, ctx, spec, rejections)
            return good.where(~F.col("_source_file").isin(list(rejections)))
        gate.extra["malformed_rows"] = gate.extra.get("malformed_rows", 0) + found.count
        if watched is not None:
            for f in watched.with_status(INGEST, source.id):
                f.invalid_rows += by_file.get(f.info.path, 0)
        if policy == "quarantine":
            if into is None:
                raise PipelineRunError(
                    f"{where}: malformed records are quarantined next to "
                    "the pipeline's first table target, and it has none; "
                    'set onInvalid="fail" or "drop"'
                )
            qref = quarantine_ref(into)
            gate.quarantine.append((qref, quarantine_frame(ctx.spark, found, ctx.run_id, where)))
            gate.extra["quarantine_table"] = qref.identifier
        return good

    return run
