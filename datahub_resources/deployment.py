"""The one place that picks resources for a deployment (local laptop, CI, production).

Everything comes from the environment (contract section 3), so the same code runs against a
local Spark Connect server + SQLite catalog, or a cluster `sc://` URL + PostgreSQL catalog.
"""

from __future__ import annotations

from datahub_resources.iceberg import IcebergResource
from datahub_resources.spark import SparkConnectResource


def resources() -> dict[str, object]:
    return {"spark": SparkConnectResource(), "iceberg": IcebergResource()}
