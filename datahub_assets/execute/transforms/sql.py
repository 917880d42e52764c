"""`sql`: a Spark SQL query over the run's datasets, named by id."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import TransformError, register
from datahub_assets.spec.models import Sql


@register("sql")
def sql(step: Sql, datasets: dict[str, DataFrame], ctx: ExecContext) -> DataFrame:
    """Run `query` with each current dataset visible as a table named by its id.

    Why not temp views on Spark: a query result on Spark Connect is re-resolved on every
    action, so a session temp view replaced later (a second sql step, or another run sharing
    the session) would silently change this step's result. Binding the datasets in the plan
    pins them (`engines.spark.write`). On a classic (non-Connect) session the datasets are
    registered with `createOrReplaceTempView` instead; views are session-scoped, so
    concurrent runs in one process would share them — the platform only uses Spark Connect.
    On DuckDB they are views of the run's own database, the query translated with Spark's
    result types (`engines.duckdb.spark_sql`).
    """
    if not step.query.strip():
        raise TransformError(f"sql: empty query for output {step.output!r}")
    return current().sql_query(ctx.spark, step.query, datasets)
