"""A pipeline's `<checks>` → Dagster asset check specs on its table targets.

`error` checks are blocking: the pipeline's step audits the new snapshot before publishing it
(write-audit-publish), so a failing error check leaves the table as it was and Dagster does not
run downstream assets. Every table target also gets a `schema_drift` check.
"""

from __future__ import annotations

import dagster as dg

from datahub_assets.runtime.keys import asset_key
from datahub_assets.spec.check_targets import check_target, referenced, table_targets
from datahub_assets.spec.models import PipelineSpec, ReferentialCheck

DRIFT_CHECK = "schema_drift"


def check_specs(spec: PipelineSpec) -> list[dg.AssetCheckSpec]:
    specs = []
    for check in spec.pipeline.checks:
        target = check_target(spec, check)
        line = check.loc.line if check.loc else spec.line
        extra = []
        if isinstance(check, ReferentialCheck):
            extra = [asset_key(referenced(spec, check)[0])]
        specs.append(
            dg.AssetCheckSpec(
                name=check.check_name,
                asset=asset_key(target.ref),
                blocking=check.severity == "error",
                description=f"{check.kind} ({check.severity})",
                additional_deps=extra,
                metadata={
                    "datahub/definition": f"{spec.file}:{line}",
                    "datahub/severity": check.severity,
                },
            )
        )
    for target in table_targets(spec):
        policy = getattr(target.target, "on_schema_change", "evolve")
        specs.append(
            dg.AssetCheckSpec(
                name=DRIFT_CHECK,
                asset=asset_key(target.ref),
                description=f"incoming schema vs the table's (onSchemaChange={policy})",
            )
        )
    return specs
