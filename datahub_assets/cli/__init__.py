"""The `datahub` command: one module per command group; `main` dispatches."""

from datahub_assets.cli.main import main

__all__ = ["main"]
