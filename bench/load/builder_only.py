"""The builder alone, without the dg defs folder and its component: the load benchmark's
`--cli builder` (`dagster definitions validate -f bench/load/builder_only.py`), to measure
what loading through the `DataHubPipelines` component adds."""

from __future__ import annotations

from datahub_assets.orchestration.project import build_definitions
from datahub_resources.settings import Settings

# built at import, like datahub_assets.definitions
defs = build_definitions(Settings.from_env().pipelines_dir)
