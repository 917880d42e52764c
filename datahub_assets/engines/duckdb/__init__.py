"""The DuckDB engine through sqlframe: `session.py` (DuckDBEngine, the connection), `read.py`
and `write.py` (its operations), `spark_sql.py` (Spark SQL -> DuckDB), `udfs.py` (Python
functions registered per connection), `spark_json.py` (Spark's JSON text), `types.py`,
`s3.py` (s3:// through pyarrow)."""
