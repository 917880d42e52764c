"""Target writers: Iceberg tables (`table`: Spark stages Parquet, pyiceberg commits) and CSV
exports (`csv_export`: written to a temporary sibling folder, then renamed into place)."""
