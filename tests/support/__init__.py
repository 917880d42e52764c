"""What many tests share, in one place: `context` (the ExecContext builder, one side of the
engine pair), `iceberg` (a catalog in a folder, the Iceberg row readers), `net` (a free loopback
port) and `fixtures` (`engine_pair`: a test once on Spark and once on DuckDB; `catalog`),
registered for every test by `tests/conftest.py`. Functions are imported from their module."""
