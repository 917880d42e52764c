"""The Spark engine's writing and column operations (`engines.write_ops.WriteOps`)."""

from __future__ import annotations

from datahub_assets.engines.write_ops import WriteOps


class SparkWriteOps(WriteOps):
    """Writing on Spark Connect."""
