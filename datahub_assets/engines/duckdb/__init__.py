"""The DuckDB engine: its session, readers, writers, S3 access and Spark-SQL functions."""
