"""Load time: validated specs -> Dagster definitions (assets, checks, jobs, sensors,
schedules). Builds; opens no engine, reads no data."""
