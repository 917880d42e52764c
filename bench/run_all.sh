#!/usr/bin/env bash
# Run every benchmark in turn from the repository root; see bench/README.md.
# Exit code 2 from a benchmark means "pending": datahub_assets/definitions.py not built yet.
set -u
cd "$(dirname "$0")/.."
export DATAHUB_SPARK_STATE="${DATAHUB_SPARK_STATE:-$PWD/.datahub/test-spark}"
exec .venv/bin/python bench/run.py all
