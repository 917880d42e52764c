"""The Spark engine's reading operations (`engines.read_ops.ReadOps`)."""

from __future__ import annotations

from datahub_assets.engines.read_ops import ReadOps


class SparkReadOps(ReadOps):
    """Reading on Spark Connect."""
