"""Execution engines: the same pipeline code on Spark (scale-out) or DuckDB (one machine).

The transformation, check, masking, quarantine and drift code is written once against the
PySpark DataFrame API. On Spark it runs on the Spark Connect session; on DuckDB it runs on a
`sqlframe` DuckDB session (the PySpark API compiled to DuckDB SQL, `engines/duckdb/session.py`),
injected, never `sqlframe.activate()`d, so both engines live in one process.

Code that builds columns imports `F`, `T` and `Window` from `engines.api`: they resolve to
the functions, types and window of the engine of the running pipeline (`engines.api.use`).
What the two engines do differently (reading and writing files, row order ids, hashing for
partition files, AES) is an operation of the `Engine` object (`engines.base.Engine`).
How an engine is chosen for a pipeline: `engines.choice`.
"""
