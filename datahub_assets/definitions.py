"""Entry point: the code location is the project's `dg` defs folder.

`datahub_assets/defs/pipelines/defs.yaml` instantiates the `DataHubPipelines` component
(datahub_assets/components/), whose `build_defs` calls the one builder,
`datahub_assets.orchestration.project.build_definitions` (read specs → validate → build assets,
sensors, jobs, schedules → attach resources and the executor): add new definitions there.
`dg` commands, workspace.yaml and `-m datahub_assets.definitions` all load this module, so
they all get the same definitions, built once at import (a forkserver preloads it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from datahub_assets.orchestration.project import paused_gc


def _project_root() -> Path:
    """The checkout (pyproject.toml beside the package), else the working directory (an
    installed package; deployments set DATAHUB_PIPELINES_DIR)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def load_defs_folder() -> dg.Definitions:
    """The components of `datahub_assets/defs/`, loaded as `dg` loads a project's defs."""
    from dagster._utils.warnings import BetaWarning, PreviewWarning
    from dagster.components.core.component_tree import ComponentTree

    import datahub_assets.defs

    with paused_gc(), warnings.catch_warnings():
        # the component loader uses beta/preview Dagster APIs itself (code references,
        # sensor owners) and would print one warning per asset: nothing a user can act on
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        tree = ComponentTree.from_module(
            defs_module=datahub_assets.defs, project_root=_project_root()
        )
        return tree.build_defs()


defs = load_defs_folder()
