"""A validated project → one Dagster Definitions (assets per pipeline, shared resources)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from datahub_assets.build.automation import watched_closure
from datahub_assets.build.factory import build_pipeline_asset
from datahub_assets.spec.models import Project


def build_assets(project: Project) -> list[dg.AssetsDefinition]:
    downstream_of_watch = watched_closure(project)
    root = Path(project.root)
    return [build_pipeline_asset(spec, root, downstream_of_watch) for spec in project.pipelines]
