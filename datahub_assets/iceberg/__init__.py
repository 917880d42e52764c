"""Iceberg storage: table reads, the one write path (stage, audit, one multi-table commit,
schema evolution, quarantine) and the pyiceberg compatibility fence.

Public entry points (what `execute/`, `runs/`, `maintenance/`, `cli/` and the IO manager
`datahub_resources.iceberg_io` use; every other name is the package's own):

- `iceberg.read`: `load_table`, `TableNotFoundError`, `read_table` (a table's rows at a
  snapshot, lazily, on the session's engine), `read_files` (Parquet data files with a read
  schema), `data_files` (a snapshot's DataFile records), `file_key`, `spark_path`.
- `iceberg.tables`: `write_tables` with `TableWrite` (stage -> audit -> checks -> one catalog
  commit), `roll_back`, `read_written` (the rows of the files a write added).
- `iceberg.table`: one table's two-phase write (`stage_write`, `commit`, `abort`,
  `write_table`, `rollback`; `StagedWrite`, `CommitResult`) and the staging folder's files
  (`written_files`, `folder_data_files`, `delete_folder`: also compaction's).
- `iceberg.multi_commit`: `TableChange`, `change_of`, `commit_tables` (several tables' changes
  in one catalog transaction: the run store, the file-drop ledger).
- `iceberg.audit`: write-audit-publish on a branch (`audit_commit`, `publish`, `discard`,
  `ConcurrentCommitError`).
- `iceberg.schema_evolution`: `align`, `evolve_schema`, `SchemaMismatchError`, and the type
  rules schema drift uses (`spark_type_widens`, `without_nullability`).
- `iceberg.quarantine_write`: `stage_quarantine`, `QuarantineWrites`.
- `iceberg.pyiceberg_compat`: every use of pyiceberg internals (used only inside this package).

The engine-specific parts (reading and writing the Parquet files, row order for merges) are
operations of the frame's engine (`engines.write_ops.WriteOps`, `engines.frames`).
"""
