"""Run records and the daily dashboard (contract 8).

`records` turns a finished Dagster run into rows, `store` is the Iceberg table
`ops_gold.pipeline_runs`, `sync` moves it forward from the instance's event log, `summary`
computes the dashboard's numbers, `page` renders them as HTML, `defs` holds the two ops
assets and the sensor, `cli` the `datahub runs` command.
"""
