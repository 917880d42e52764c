"""Iceberg storage: table reads, the one write path (stage, audit, one multi-table
commit, schema evolution, quarantine) and the pyiceberg compatibility fence."""
