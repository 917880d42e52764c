"""Dagster component types of this project (the `dg` registry module, see pyproject.toml)."""

from datahub_assets.components.pipelines import DataHubPipelines

__all__ = ["DataHubPipelines"]
