"""What every source reader shares (`readers/`, `mongo/`), below both in the import graph:
the `SourceError` a source that cannot be read raises, and `materialise` (loadPolicy eager)."""

from __future__ import annotations

from pyspark.sql import DataFrame


class SourceError(ValueError):
    """A source cannot be read: names the source id and the offending path or value."""


def materialise(df: DataFrame) -> DataFrame:
    """Compute `df` now and keep it on the cluster (a local checkpoint: works on Spark
    Connect, cuts the lineage, so files moved after the read no longer matter)."""
    return df.localCheckpoint(eager=True)
