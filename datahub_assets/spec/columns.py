"""Column descriptions of a target, for the UI's column schema (`dagster/column_schema`).

Sources, weakest first (a later one overrides an earlier one for the same column):
1. the `doc` / `description` of columns in the schemaRef files of the pipeline's sources
   (a raw pipeline writes its source's columns as they are);
2. the target's own schemaRef file;
3. the target's `<columns><column name=... description=.../></columns>` block.
Only files parsed at load are used (`PipelineSpec.schemas`; an `s3://` schemaRef is not).
The result may name columns the table does not have (e.g. a source column dropped by a
transformation): a caller shows the descriptions of the columns the table has.
"""

from __future__ import annotations

from datahub_assets.spec.models import (
    CsvTarget,
    DatabaseTarget,
    PipelineSpec,
    ResolvedTarget,
    TableTarget,
)


def column_descriptions(
    spec: PipelineSpec, target: ResolvedTarget | TableTarget | CsvTarget | DatabaseTarget
) -> dict[str, str]:
    """Column name -> description for `target` of `spec` (module doc)."""
    node = target.target if isinstance(target, ResolvedTarget) else target
    out: dict[str, str] = {}
    refs = [getattr(s, "schema_ref", None) for s in spec.pipeline.sources]
    refs.append(node.schema_ref)
    for ref in refs:
        parsed = spec.schemas.get(ref) if ref else None
        if parsed is not None:
            out.update(parsed.descriptions())
    if isinstance(node, TableTarget):
        out.update({c.name: c.description for c in node.columns if c.description.strip()})
    return out
