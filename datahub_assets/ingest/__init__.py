"""File drops (contract 4.1 `<watch/>`): list landed files, validate them, ingest each file
version exactly once, move it to processed/ or rejected/.

    fileinfo  FileInfo: one landed file version (path, size, modified, etag) and its fingerprint
    store     FileStore: local disk and S3 behind one small interface (list, stat, move, ...)
    paths     glob matching and the processed/<date>/, rejected/<date>/ destinations
    validate  file-level validation before ingest (empty, size, sidecar checksum, readable)
    ledger    the Iceberg ledger of ingested files, committed with the rows it describes
"""
