"""`sql`: a Spark SQL query over the run's datasets, named by id."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import current
from datahub_assets.engines.duckdb import functions as DX
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import TransformError, register
from datahub_assets.spec.models import Sql


def _with_relations(ctx: ExecContext, query: str, datasets: dict[str, DataFrame]) -> DataFrame:
    """The query with every dataset bound as a relation *inside the plan* (Spark Connect's
    `WithRelations`, what `spark.sql("... {df} ...", df=df)` uses), not as a session view."""
    from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame
    from pyspark.sql.connect.plan import SQL, SubqueryAlias

    # the pyspark stubs type these internals loosely (a plan where a Column is declared,
    # the classic SparkSession): the values are the Connect ones at run time
    views = [SubqueryAlias(df._plan, name) for name, df in datasets.items()]  # pyright: ignore[reportArgumentType]
    return ConnectDataFrame(SQL(query, [], {}, views), ctx.spark)  # pyright: ignore[reportArgumentType]


@register("sql")
def sql(step: Sql, datasets: dict[str, DataFrame], ctx: ExecContext) -> DataFrame:
    """Run `query` with each current dataset visible as a table named by its id.

    Why not temp views: a query result on Spark Connect is re-resolved on every action,
    so a session temp view replaced later (a second sql step, or another run sharing the
    session) would silently change this step's result. Binding the datasets in the plan
    pins them. On a classic (non-Connect) session the datasets are registered with
    `createOrReplaceTempView` instead; views are session-scoped, so concurrent runs in one
    process would share them — the platform only uses Spark Connect.
    """
    if not step.query.strip():
        raise TransformError(f"sql: empty query for output {step.output!r}")
    if not current().is_duckdb and all(
        type(df).__module__.startswith("pyspark.sql.connect") for df in datasets.values()
    ):
        return _with_relations(ctx, step.query, datasets)
    for name, df in datasets.items():
        df.createOrReplaceTempView(name)
    if current().is_duckdb:
        return ctx.spark.sql(DX.spark_query(step.query, datasets))
    return ctx.spark.sql(step.query)
