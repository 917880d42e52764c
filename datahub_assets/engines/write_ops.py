"""The `Engine` operations that write or build columns differently per engine (staged
Parquet, partition files, CSV exports, row-order ids, masking functions, samples). Each
engine implements them in its package's `write.py` (`engines/spark/write.py`,
`engines/duckdb/write.py`)."""

from __future__ import annotations


class WriteOps:
    """Writing and column operations of an engine (declared here, implemented per engine)."""
