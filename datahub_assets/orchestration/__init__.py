"""Load time: validated specs -> Dagster definitions. Builds; opens no engine, catalog or
connection and reads no data. When they run, asset and op bodies call `runtime/step.py`, the
notification sensors `runtime/notify.py`, the file-drop sensors `ingest/`.

- project: the one builder, a pipelines folder -> one Dagster Definitions
- factory: a pipeline -> one multi_asset (an AssetSpec per target, its run config)
- checks: a pipeline's `<checks>` -> asset check specs (and a schema_drift check per table)
- automation: `<schedule>` and watched-upstream automation conditions, the automation sensors
- sensors: one file-drop sensor per `<watch/>`ed source
- jobs: job pipelines -> op jobs (one op per pipelineRef) and their schedules
- notify: the run-status notification sensors and the SLA sensor
"""
