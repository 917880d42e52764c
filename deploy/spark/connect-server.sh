#!/bin/sh
# The Spark Connect server in the foreground, for a container (deploy/compose.yaml, or a
# Kubernetes Deployment beside a Spark cluster). It is started by the same code as a laptop's
# shared server (datahub_resources/spark_server.py: session time zone UTC, Parquet timestamps
# as INT64 micros, JDBC drivers and the S3A connector on the classpath, S3 settings from the
# AWS_* environment in a private properties file), then watched: the container ends when the
# server does. Environment: DATAHUB_SPARK_MASTER (spark://host:7077; default local[*]),
# DATAHUB_SPARK_PORT (default 15002), DATAHUB_SPARK_DRIVER_MEMORY, AWS_*.
set -eu
export DATAHUB_SPARK_STATE="${DATAHUB_SPARK_STATE:-/var/lib/datahub/spark}"
export DATAHUB_SPARK_PORT="${DATAHUB_SPARK_PORT:-15002}"
pid=$(python -c 'import os, pathlib
from datahub_resources import spark_server
print(spark_server.ensure_running(pathlib.Path(os.environ["DATAHUB_SPARK_STATE"])).pid)')
echo "Spark Connect server pid $pid listening on sc://0.0.0.0:$DATAHUB_SPARK_PORT"
tail -n +1 -F "$DATAHUB_SPARK_STATE/server.log" &
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
while kill -0 "$pid" 2>/dev/null; do sleep 5; done
echo "Spark Connect server exited" >&2
exit 1
