"""Table maintenance: snapshot expiry, orphan-file removal and compaction (`tables.py`),
the `datahub maintain` command (`cli.py`)."""
