"""Customer features for the CRM's propensity model, computed in Python from the customer 360.

A Python asset beside the XML pipelines (docs/pipelines.md, "Python assets"): it reads the
XML-built table `ecommerce.gold.customer_360` as a Spark DataFrame, scores every customer
by recency, frequency and monetary value (quintiles, 1 = worst, 5 = best), and returns the
frame; the Iceberg IO manager stores it as `ecommerce_gold.customer_features` through the
same write-audit-publish path as XML targets, with the checks below. The XML pipeline
`service/customer_features_export.xml` reads it back.
"""

import dagster as dg
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from datahub_assets.python import checks as c
from datahub_assets.python import table_asset

TIERS = ("champion", "loyal", "potential", "at_risk", "dormant")


def _quintile(column: str, ascending: bool = True):
    """1..5 by `column` over all customers (5 = best); customers without a value get 1."""
    order = F.col(column).asc_nulls_first() if ascending else F.col(column).desc_nulls_first()
    score = F.ntile(5).over(Window.orderBy(order, F.col("customer_id")))
    return F.when(F.col(column).isNull(), F.lit(1)).otherwise(score)


@table_asset(
    layer="gold",
    ins={"customer_360": "gold.customer_360"},
    mode="overwrite",
    checks=[
        c.row_count(min=1),
        c.not_null("customer_id", "rfm_score", "value_tier"),
        c.unique("customer_id"),
        c.range_("rfm_score", min=3, max=15),
        c.accepted_values("value_tier", *TIERS),
        c.range_("pages_per_session", min=0, severity="warn"),
    ],
    automation_condition=dg.AutomationCondition.eager(),
)
def customer_features(customer_360: DataFrame) -> DataFrame:
    """RFM scores (recency, frequency, monetary quintiles), their sum and a value tier, plus
    pages per session, one row per customer."""
    scored = (
        customer_360.select(
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            "sessions",
            "page_views",
            "conversion_rate",
        )
        # recent buyers score high: fewer days since the last order is better
        .withColumn("r_score", _quintile("recency_days", ascending=False))
        .withColumn("f_score", _quintile("frequency"))
        .withColumn("m_score", _quintile("monetary"))
    )
    rfm = F.col("r_score") + F.col("f_score") + F.col("m_score")
    return (
        scored.withColumn("rfm_score", rfm)
        .withColumn(
            "value_tier",
            F.when(rfm >= 13, "champion")
            .when(rfm >= 10, "loyal")
            .when(rfm >= 7, "potential")
            .when(rfm >= 5, "at_risk")
            .otherwise("dormant"),
        )
        .withColumn(
            "pages_per_session",
            F.when(
                F.col("sessions") > 0,
                F.round(F.col("page_views") / F.col("sessions"), 2),
            ),
        )
        .drop("page_views")
    )
