"""MongoDB sources: schema inference (`infer`, pure Python), the driver's read plan
(`read`), the Spark-worker reader (`worker`), the run-level entry (`source`) and the
`datahub mongo` command (`cli`)."""
