"""What reading costs differ per engine: the `Engine` operations that read (files, drops,
lookups, incremental slices). Each engine implements them in its package's `read.py`
(`engines/spark/read.py`, `engines/duckdb/read.py`)."""

from __future__ import annotations


class ReadOps:
    """Reading operations of an engine (declared here, implemented per engine)."""
