"""Run time: what a step (asset body or job op) and a notification sensor's tick do when they
run; `orchestration/` hands them its definitions' bodies.

- step: the one step wrapper of asset bodies and job ops (events, failures, onFailure policy)
- engine: chooses and opens the engine of one pipeline run
- retries: bounded retries of transient failures
- params: the run date and `:name` parameters of a run
- metadata: what the UI shows of a table materialisation and its checks
- keys: the Dagster names of a pipeline (asset keys, op names, the Spark pool)
- notify: what a notification says (a finished job run's summary, an SLA miss)
- notify_delivery: sends it (SMTP, webhooks)
"""
